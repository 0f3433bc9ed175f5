"""A tracer that keeps finished runs, shared by unit and integration tests."""

from __future__ import annotations

from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run


class RunCollector(BaseTracer):
    """Keeps every finished root run, so tests can inspect the trace tree."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        pass

    def _end_trace(self, run: Run) -> None:
        super()._end_trace(run)
        self.runs.append(run)

    def root(self) -> Run:
        (root,) = [r for r in self.runs if r.parent_run_id is None]
        return root


def walk(run: Run) -> list[Run]:
    """The run and all its descendants, depth first."""
    return [run, *(r for child in run.child_runs for r in walk(child))]


def message_usage(message: object) -> dict[str, int]:
    """``usage_metadata`` of a traced message (a message object or its serialised dict)."""
    if isinstance(message, dict):
        return message["kwargs"]["usage_metadata"]
    return message.usage_metadata  # type: ignore[attr-defined]


def run_usage(run: Run) -> tuple[int, int]:
    """(input, output) tokens over every generation of one traced model run."""
    usages = [message_usage(g["message"]) for gens in run.outputs["generations"] for g in gens]
    return sum(u["input_tokens"] for u in usages), sum(u["output_tokens"] for u in usages)
