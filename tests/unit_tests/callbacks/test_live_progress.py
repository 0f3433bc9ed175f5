"""Progress is live: a budget decision reaches handlers before the samples it asks for."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from langchain_adaptive import AdaptiveReasoningRunnable
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."


class SlowModel(ScriptedChatModel):
    """Takes 0.05 s a call and notes when each call started."""

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.calls.append({"started": time.perf_counter()})
        time.sleep(0.05)
        return super()._generate(messages, stop, run_manager, **kw)


class Timeline(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, time.perf_counter()))


def _first_call_and_decision(model: SlowModel, timeline: Timeline) -> tuple[float, float]:
    starts = [c["started"] for c in model.calls if "started" in c]
    decided = [t for name, t in timeline.events if name == "adaptive_budget_decided"]
    return min(starts), decided[0]


def test_the_budget_decision_is_dispatched_before_the_model_is_called() -> None:
    model = SlowModel(responses=[RIGHT])
    timeline = Timeline()
    reasoner = AdaptiveReasoningRunnable(
        model=model, prm=ScriptedPRM(default_p=0.3), target_confidence=0.9, max_samples=4
    )
    reasoner.invoke("What is 7 + 8?", {"callbacks": [timeline], "max_concurrency": 1})
    first_call, decided = _first_call_and_decision(model, timeline)
    assert decided < first_call
    names = [name for name, _ in timeline.events]
    assert names.index("adaptive_budget_decided") < names.index("adaptive_candidate_generated")


async def test_the_async_path_dispatches_it_first_too() -> None:
    model = SlowModel(responses=[RIGHT])
    timeline = Timeline()
    reasoner = AdaptiveReasoningRunnable(
        model=model, prm=ScriptedPRM(default_p=0.3), target_confidence=0.9, max_samples=4
    )
    await reasoner.ainvoke("What is 7 + 8?", {"callbacks": [timeline]})
    first_call, decided = _first_call_and_decision(model, timeline)
    assert decided < first_call
