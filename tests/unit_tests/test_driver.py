"""The episode driver: one action table, and sync and async executors that answer alike."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.runnables import RunnableConfig

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive._driver import (
    AsyncExecutor,
    Episode,
    EstimateCall,
    Flush,
    ScoreCall,
    Step,
    SyncExecutor,
    adrive,
    drive,
)
from langchain_adaptive.errors import PRMError
from langchain_adaptive.strategies import Action
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."


def episode(prm: ScriptedPRM) -> Episode:
    runnable = AdaptiveReasoningRunnable(model=ScriptedChatModel(responses=[RIGHT]), prm=prm)
    return Episode(runnable, "What is 7 + 8?", lambda: CallbackManager(handlers=[]), {})


def test_every_action_has_exactly_one_handler() -> None:
    # a new action added to the plans must get a handler, or both drivers would miss it
    assert set(episode(ScriptedPRM()).handlers) == set(typing.get_args(Action))


def probe(prm: ScriptedPRM, config: RunnableConfig, events: Any) -> Step[list[object]]:
    """A step that asks for an estimate, a score that fails, and a flush."""
    seen: list[object] = []
    estimate = yield EstimateCall(prm, "easy", config)
    seen.append(estimate.median)
    try:
        yield ScoreCall(prm, "easy", [["7 + 8 = 15"]], config)
    except PRMError as error:  # thrown in at the yield that asked, as a direct call raises
        seen.append(type(error).__name__)
    seen.append((yield Flush(events)))
    return seen


async def test_sync_and_async_executors_answer_a_step_alike() -> None:
    prm = ScriptedPRM(question_p={"easy": 0.75}, fail_steps=True)
    ep = episode(prm)
    sync = drive(probe(prm, ep.prm_config, ep.events), SyncExecutor())
    asynchronous = await adrive(probe(prm, ep.prm_config, ep.events), AsyncExecutor())
    assert sync == asynchronous == [0.75, "PRMError", None]


def test_an_error_the_step_does_not_handle_leaves_the_driver() -> None:
    prm = ScriptedPRM(fail_steps=True)

    def step() -> Step[None]:
        yield ScoreCall(prm, "q", [["a step"]], {})

    with pytest.raises(PRMError):
        drive(step(), SyncExecutor())
