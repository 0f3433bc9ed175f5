"""Append-only JSONL files that survive crashes: the storage of every resumable run.

Calibration collection and benchmark recording both append one pydantic model
per line the moment it is known, so a crash loses only what was in flight.
Reading skips lines that do not parse (typically the truncated last line of a
crash) with one warning that counts them; appending first ends a truncated
last line so new records start on their own line; an advisory lock keeps two
runs from interleaving their lines in one file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from langchain_adaptive.errors import ConfigurationError

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)

_SHOWN_BAD_LINES = 5


def read_jsonl_models(path: Path, model: type[_M]) -> list[_M]:
    """Parse each line of ``path`` as ``model``; skip bad lines with one counting warning."""
    return parse_jsonl_lines(path, path.read_bytes().split(b"\n"), model)


def parse_jsonl_lines(
    path: Path, lines: Sequence[bytes], model: type[_M], *, first_line: int = 1
) -> list[_M]:
    """Parse ``lines`` of ``path`` (numbered from ``first_line``), skipping bad ones."""
    parsed: list[_M] = []
    bad: list[int] = []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            parsed.append(model.model_validate_json(line))
        except ValidationError:
            bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:_SHOWN_BAD_LINES]))
        more = ", ..." if len(bad) > _SHOWN_BAD_LINES else ""
        logger.warning(
            "%s: skipped %d malformed line(s) (line %s%s); a crash can truncate the last "
            "line, the rest is intact",
            path,
            len(bad),
            shown,
            more,
        )
    return parsed


class JsonlAppender:
    """Appends models as JSON lines to one or more files, one writer per primary file.

    Thread-safe: appends hold one lock and never await, so threads and asyncio
    tasks both write whole lines. Use as a context manager.

    Args:
        primary: The file whose ``.lock`` sibling marks this run as its only writer.
        others: Further files written by the same run (e.g. a sidecar).
        busy_message: The error text when another run holds the lock.
    """

    def __init__(self, primary: Path, *others: Path, busy_message: str | None = None) -> None:
        self.paths = (primary, *others)
        self.busy_message = busy_message or f"{primary} is being written by another run"
        self._lock = threading.Lock()
        self._files: dict[Path, Any] = {}
        self._lock_file: Any = None

    def __enter__(self) -> JsonlAppender:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        primary = self.paths[0]
        primary.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock(primary)
        for path in self.paths:
            unterminated = path.exists() and path.stat().st_size > 0 and ends_open(path)
            handle = path.open("a", encoding="utf-8")
            if unterminated:  # keep a truncated line apart from the next record
                handle.write("\n")
                handle.flush()
            self._files[path] = handle

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the lock
            self._lock_file = None

    def append(self, item: BaseModel, path: Path | None = None) -> None:
        """Write ``item`` as one line of ``path`` (default: the primary file) and flush."""
        with self._lock:
            handle = self._files[path or self.paths[0]]
            handle.write(item.model_dump_json() + "\n")
            handle.flush()

    def _take_lock(self, primary: Path) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no advisory locks
            return
        handle = primary.with_name(primary.name + ".lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            raise ConfigurationError(self.busy_message) from error
        self._lock_file = handle


def ends_open(path: Path) -> bool:
    """Whether a non-empty file's last line lacks its newline (a write cut short)."""
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


class ProgressBar:
    """A tqdm bar with running counts in its postfix; silent when disabled or without tqdm."""

    def __init__(self, total: int, initial: int, *, desc: str, unit: str, enabled: bool) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                logger.info("tqdm is not installed; running without a progress bar")
            else:
                self._bar = tqdm(total=total, initial=initial, unit=unit, desc=desc)

    def add(self, name: str, count: int = 1) -> None:
        """Add to a running count shown in the postfix (tokens, records, ...)."""
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + count
            if self._bar is not None:
                self._bar.set_postfix(self.counts, refresh=False)

    def step(self) -> None:
        """One more unit (question) done."""
        with self._lock:
            if self._bar is not None:
                self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


__all__ = ["JsonlAppender", "ProgressBar", "ends_open", "parse_jsonl_lines", "read_jsonl_models"]
