"""``JsonlTraceWriter``: every adaptive event as one JSON line, for offline analysis.

Each line is a :class:`TraceRecord` with the event, its run's ``run_id`` and
``parent_run_id``, and the run's tags and metadata (which name the question
and strategy), so a trace groups by question and strategy with one pass.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, model_validator

from langchain_adaptive._jsonl import ends_open, read_jsonl_models
from langchain_adaptive.callbacks._events import AdaptiveEvent, parse_event
from langchain_adaptive.callbacks._handler import AdaptiveCallbackHandler


class TraceRecord(BaseModel):
    """One line of a trace file."""

    event: str
    """The custom event's name, e.g. ``"adaptive_finished"``."""
    data: dict[str, Any]
    """The event's payload (text fields ``None`` when the writer redacts)."""
    run_id: UUID
    parent_run_id: UUID | None = None
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    time: float
    """Unix time the event was written."""

    @model_validator(mode="after")
    def _known_event(self) -> TraceRecord:
        try:  # a line that does not parse is skipped on read
            parse_event(self.event, self.data)
        except (KeyError, ValueError) as error:
            raise ValueError(f"not a valid adaptive event: {error}") from None
        return self

    def parsed(self) -> AdaptiveEvent:
        """The event as its typed model."""
        return parse_event(self.event, self.data)


class JsonlTraceWriter(AdaptiveCallbackHandler):
    """Appends one :class:`TraceRecord` JSON line per adaptive event to ``path``.

    Each line is written whole with one ``write`` to a file opened for
    appending, under a lock, so concurrent questions of a batch (threads or
    asyncio) never interleave lines, and a new writer can append to an existing
    trace. Nothing is held open between events.

    Args:
        path: The JSONL file (its folder is created).
        redact: Write text fields (answers) as ``null``, so the trace carries
            no prompt or answer text; use it when traces leave your machine.

    Example:
        .. code-block:: python

            writer = JsonlTraceWriter("trace.jsonl", redact=True)
            reasoner.invoke("What is 2 + 3?", config={"callbacks": [writer]})
            [record.event for record in read_trace("trace.jsonl")]
    """

    def __init__(self, path: str | Path, *, redact: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.redact = redact
        self._lock = threading.Lock()

    def on_adaptive_event(
        self,
        event: AdaptiveEvent,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        record = {
            "event": event.event_name,
            "data": event.payload(redact=self.redact),
            "run_id": str(run_id),
            "parent_run_id": None if parent_run_id is None else str(parent_run_id),
            "tags": list(tags or []),
            "metadata": dict(metadata or {}),
            "time": time.time(),
        }
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                if handle.tell() > 0 and ends_open(self.path):
                    line = "\n" + line  # keep a truncated last line apart from this one
                handle.write(line)


def read_trace(path: str | Path) -> list[TraceRecord]:
    """The records of a trace file, in order; malformed lines are skipped with a warning."""
    return read_jsonl_models(Path(path), TraceRecord)


__all__ = ["JsonlTraceWriter", "TraceRecord", "read_trace"]
