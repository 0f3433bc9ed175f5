"""Shared scripted reasoners and a handler that records what it receives."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_adaptive import AdaptiveCallbackHandler, AdaptiveReasoningRunnable
from langchain_adaptive.callbacks import AdaptiveEvent
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."


def reasoner(**kwargs: Any) -> AdaptiveReasoningRunnable:
    kwargs.setdefault("model", ScriptedChatModel(responses=[RIGHT, WRONG, RIGHT]))
    kwargs.setdefault("prm", ScriptedPRM(question_p={"easy": 0.9, "hard": 0.5}))
    return AdaptiveReasoningRunnable(**kwargs)


class Recorder(AdaptiveCallbackHandler):
    """Keeps every typed call it gets: (method, event, run_id, parent_run_id, tags, metadata)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, AdaptiveEvent, UUID, UUID | None, list[str], dict]] = []

    def _keep(self, method: str, event: AdaptiveEvent, run_id: UUID, kwargs: dict) -> None:
        self.calls.append(
            (
                method,
                event,
                run_id,
                kwargs.get("parent_run_id"),
                kwargs.get("tags") or [],
                kwargs.get("metadata") or {},
            )
        )

    def on_budget_decided(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        self._keep("on_budget_decided", event, run_id, kwargs)

    def on_candidate_generated(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        self._keep("on_candidate_generated", event, run_id, kwargs)

    def on_candidate_scored(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        self._keep("on_candidate_scored", event, run_id, kwargs)

    def on_step_scored(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        self._keep("on_step_scored", event, run_id, kwargs)

    def on_beams_pruned(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        self._keep("on_beams_pruned", event, run_id, kwargs)

    def on_early_stop(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        self._keep("on_early_stop", event, run_id, kwargs)

    def on_adaptive_finished(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        self._keep("on_adaptive_finished", event, run_id, kwargs)

    def methods(self) -> list[str]:
        return [call[0] for call in self.calls]
