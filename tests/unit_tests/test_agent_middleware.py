"""AdaptiveSamplingMiddleware in real ``create_agent`` agents, on a scripted tool-calling model.

The model is langchain-core's ``GenericFakeChatModel`` with ``bind_tools``: it
plays a script of replies, one per sample, so each test knows exactly which
samples the middleware drew, what they cost and which one the vote must pick.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest

pytest.importorskip("langchain.agents", reason='needs the "langgraph" extra')

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import tool
from pydantic import Field

from langchain_adaptive.callbacks import parse_event
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.integrations.langgraph import (
    AdaptiveSamplingBudget,
    AdaptiveSamplingMiddleware,
)
from tests.unit_tests.fakes import ScriptedPRM

_ids = itertools.count()


def call(name: str, tokens: int = 10, **args: Any) -> AIMessage:
    """A scripted sample that calls ``name`` and reports ``tokens`` generated tokens."""
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{next(_ids)}"}],
        usage_metadata={"input_tokens": 20, "output_tokens": tokens, "total_tokens": 20 + tokens},
    )


def answer(text: str, tokens: int = 10) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata={"input_tokens": 30, "output_tokens": tokens, "total_tokens": 30 + tokens},
    )


class ToolCallingFake(GenericFakeChatModel):
    """``GenericFakeChatModel`` that accepts tools and keeps each call's kwargs."""

    calls: list[dict[str, Any]] = Field(default_factory=list)
    max_tokens: int | None = None

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(kwargs)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def fake(script: list[AIMessage], **fields: Any) -> ToolCallingFake:
    return ToolCallingFake(messages=iter(script), **fields)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Events(BaseCallbackHandler):
    """Adaptive custom events and the metadata of every chat-model start."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.starts: list[tuple[dict[str, Any], list[str]]] = []
        self.chains: list[dict[str, Any]] = []

    def on_custom_event(
        self, name: str, data: Any, *, run_id: UUID, tags: Any = None, metadata: Any = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        self.events.append(parse_event(name, data))

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, metadata: Any = None, tags: Any = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        self.starts.append((dict(metadata or {}), list(tags or [])))

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, metadata: Any = None, **kwargs: Any
    ) -> None:
        self.chains.append(dict(metadata or {}))

    def named(self, name: str) -> list[Any]:
        return [e for e in self.events if e.event_name == name]


def run(agent: Any, question: str, handler: Events | None = None) -> dict[str, Any]:
    config = {"callbacks": [handler]} if handler else {}
    return agent.invoke({"messages": [("user", question)]}, config=config)


def adaptive(message: BaseMessage) -> dict[str, Any]:
    return message.response_metadata["adaptive"]


# -- the vote and consensus (no PRM) ------------------------------------------------------


def test_sync_agent_votes_on_tool_calls_then_on_answers() -> None:
    first = call("add", a=2, b=3)
    script = [
        first, call("add", b=3, a=2), call("add", a=2, b=3),  # agree (keys in any order)
        answer("2 + 3 = 5. The answer is 5."), answer("The answer is 5"), answer("It is 5."),
    ]  # fmt: skip
    model = fake(script)
    middleware = AdaptiveSamplingMiddleware(temperature=0.7)
    agent = create_agent(model, tools=[add], middleware=[middleware])
    handler = Events()
    state = run(agent, "What is 2 + 3?", handler)

    kinds = [type(m).__name__ for m in state["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    chosen, tool_message, final = state["messages"][1:]
    assert chosen.tool_calls == first.tool_calls  # the first sample of the winning group, whole
    assert (
        isinstance(tool_message, ToolMessage)
        and tool_message.tool_call_id == first.tool_calls[0]["id"]
    )
    assert tool_message.content == "5"
    assert final.content == "2 + 3 = 5. The answer is 5."
    for message in (chosen, final):
        report = adaptive(message)
        assert report["samples_used"] == 3 and report["votes"] == 3 and report["groups"] == 1
        assert report["stop_reason"] == "consensus" and report["fallback"] is False
        assert report["strategy"] == "agent_adaptive_consistency"
    assert adaptive(final)["run_usage"] == {
        "samples": 6, "output_tokens": 60, "input_tokens": 150, "model_calls": 2, "fallbacks": 0,
    }  # fmt: skip
    assert all(c.get("temperature") == 0.7 for c in model.calls) and len(model.calls) == 6

    finished = handler.named("adaptive_finished")
    assert [e.samples_used for e in finished] == [3, 3]
    assert len(handler.named("adaptive_candidate_generated")) == 6
    assert [e.reason for e in handler.named("adaptive_early_stop")] == ["consensus", "consensus"]
    generated = handler.named("adaptive_candidate_generated")
    assert generated[0].answer == 'call:add({"a":2,"b":3})' and generated[3].answer == "answer:5"
    policy = [m for m, tags in handler.starts if m.get("adaptive_role") == "policy"]
    assert len(policy) == 6
    assert all(m["adaptive_strategy"] == "agent_adaptive_consistency" for m in policy)
    assert all("adaptive:agent_adaptive_consistency" in tags for _, tags in handler.starts)


def test_the_majority_call_wins_and_a_split_vote_runs_to_the_cap() -> None:
    minority = call("add", a=1, b=1)
    majority = call("add", a=2, b=3)
    script = [minority, majority, call("add", b=3, a=2), call("add", a=2, b=3)]
    script += [answer("5"), answer("5"), answer("5")]
    budget = AdaptiveSamplingBudget(max_samples_per_call=4)
    agent = create_agent(
        fake(script), tools=[add], middleware=[AdaptiveSamplingMiddleware(budget=budget)]
    )
    state = run(agent, "What is 2 + 3?")
    chosen = state["messages"][1]
    assert chosen.tool_calls == majority.tool_calls
    report = adaptive(chosen)
    assert report["votes"] == 3 and report["groups"] == 2 and report["samples_used"] == 4
    assert report["stop_reason"] == "max_samples" and report["confidence"] == 0.75
    assert state["messages"][-1].content == "5"
    assert adaptive(state["messages"][-1])["samples_used"] == 3  # three agree: settled


def test_async_agent_draws_through_the_async_handler() -> None:
    script = [call("add", a=2, b=3) for _ in range(3)] + [
        answer("The answer is 5") for _ in range(3)
    ]
    model = fake(script)
    agent = create_agent(model, tools=[add], middleware=[AdaptiveSamplingMiddleware()])
    handler = Events()
    state = asyncio.run(
        agent.ainvoke({"messages": [("user", "What is 2 + 3?")]}, config={"callbacks": [handler]})
    )
    assert [type(m).__name__ for m in state["messages"]][-1] == "AIMessage"
    assert state["messages"][-1].content == "The answer is 5"
    assert adaptive(state["messages"][-1])["run_usage"]["samples"] == 6
    assert len(handler.named("adaptive_finished")) == 2


# -- IAS with a PRM ------------------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
def test_prm_sets_each_call_s_budget_by_ias(asynchronous: bool) -> None:
    # p = 0.5, C = 0.9: N = ceil(log(0.1) / log(0.5)) = 4 samples a call
    prm = ScriptedPRM(default_p=0.5)
    script = [call("add", a=2, b=3) for _ in range(4)] + [
        answer("The answer is 5"), answer("The answer is 6"), answer("5"), answer("5.0"),
    ]  # fmt: skip
    middleware = AdaptiveSamplingMiddleware(prm=prm, target_confidence=0.9)
    agent = create_agent(fake(script), tools=[add], middleware=[middleware])
    handler = Events()
    inputs = {"messages": [("user", "What is 2 + 3?")]}
    config = {"callbacks": [handler]}
    state = (
        asyncio.run(agent.ainvoke(inputs, config=config))
        if asynchronous
        else agent.invoke(inputs, config=config)
    )
    final = state["messages"][-1]
    assert final.content == "The answer is 5"  # 5, 5 and 5.0 outvote 6
    report = adaptive(final)
    assert report["samples_used"] == 4 and report["votes"] == 3 and report["groups"] == 2
    assert report["stop_reason"] == "adaptive_budget" and report["question_estimate_lower"] == 0.5
    decided = handler.named("adaptive_budget_decided")
    assert [(d.n, d.reason, d.estimate.lower) for d in decided] == [(4, "ias", 0.5)] * 2
    assert [q for q, _ in prm.calls] == ["What is 2 + 3?"] * 2
    prm_runs = [m for m in handler.chains if m.get("adaptive_role") == "prm"]
    assert len(prm_runs) == 2 and all(m["adaptive_strategy"] == "agent_ias_vote" for m in prm_runs)


def test_an_unreachable_target_is_capped_and_flagged() -> None:
    prm = ScriptedPRM(default_p=0.01)  # IAS would want 230 samples at C = 0.9
    budget = AdaptiveSamplingBudget(max_samples_per_call=2)
    middleware = AdaptiveSamplingMiddleware(prm=prm, budget=budget)
    agent = create_agent(fake([answer("7"), answer("7")]), tools=[add], middleware=[middleware])
    report = adaptive(run(agent, "Hard?")["messages"][-1])
    assert report["samples_used"] == 2 and report["stop_reason"] == "max_samples"
    assert report["low_confidence"] is True


# -- budgets -------------------------------------------------------------------------------


def test_run_token_budget_holds_and_then_falls_back_to_one_plain_sample() -> None:
    # every sample reports 10 tokens; the run may spend 50, one sample reserves 10
    script = [call("add", a=i, b=1) for i in range(4)] + [call("add", a=9, b=9)] + [answer("10")]
    model = fake(script)
    budget = AdaptiveSamplingBudget(
        max_samples_per_call=4, max_tokens_per_run=50, max_tokens_per_sample=10
    )
    agent = create_agent(model, tools=[add], middleware=[AdaptiveSamplingMiddleware(budget=budget)])
    handler = Events()
    state = run(agent, "Add things.", handler)
    ai = [m for m in state["messages"] if isinstance(m, AIMessage)]
    reports = [adaptive(m) for m in ai]
    # call 1: four split samples (40 tokens); call 2: room for one (50 - 40) // 10;
    # call 3: the run budget is spent, so one plain sample, said to be a fallback
    assert [r["samples_used"] for r in reports] == [4, 1, 1]
    assert [r["stop_reason"] for r in reports] == ["max_samples", "token_budget", "token_budget"]
    assert [r["fallback"] for r in reports] == [False, False, True]
    assert reports[2]["fallback_reason"] == "run budget exhausted: one plain sample"
    assert [r["run_usage"]["output_tokens"] for r in reports] == [40, 50, 60]
    assert reports[2]["run_usage"]["fallbacks"] == 1
    assert all(c.get("max_tokens") == 10 for c in model.calls)  # the reservation's cap, passed
    reasons = [e.reason for e in handler.named("adaptive_budget_decided")]
    assert reasons == ["sequential_round", "sequential_round", "run_budget_exhausted"]
    assert ai[-1].content == "10"


def test_per_call_and_per_run_sample_limits() -> None:
    script = [call("add", a=i, b=0) for i in range(3)] + [answer(str(i)) for i in range(2)]
    budget = AdaptiveSamplingBudget(max_samples_per_call=3, max_samples_per_run=5)
    agent = create_agent(
        fake(script), tools=[add], middleware=[AdaptiveSamplingMiddleware(budget=budget)]
    )
    reports = [adaptive(m) for m in run(agent, "Sum?")["messages"] if isinstance(m, AIMessage)]
    assert [r["samples_used"] for r in reports] == [3, 2]
    assert reports[-1]["run_usage"]["samples"] == 5


def test_the_run_budget_starts_afresh_for_each_run() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    script = [answer("1"), answer("2"), answer("3"), answer("4")]
    budget = AdaptiveSamplingBudget(max_samples_per_call=2, max_samples_per_run=2)
    agent = create_agent(
        fake(script), tools=[add], middleware=[AdaptiveSamplingMiddleware(budget=budget)],
        checkpointer=InMemorySaver(),
    )  # fmt: skip
    config = {"configurable": {"thread_id": "t"}}
    first = agent.invoke({"messages": [("user", "One?")]}, config=config)["messages"][-1]
    second = agent.invoke({"messages": [("user", "Two?")]}, config=config)["messages"][-1]
    assert adaptive(first)["run_usage"]["samples"] == 2
    assert adaptive(second)["run_usage"]["samples"] == 2  # a new run: not a fallback
    assert adaptive(second)["fallback"] is False


def test_a_token_budget_needs_a_known_sample_cap() -> None:
    budget = AdaptiveSamplingBudget(max_tokens_per_run=100)
    agent = create_agent(
        fake([answer("1")]), tools=[add], middleware=[AdaptiveSamplingMiddleware(budget=budget)]
    )
    with pytest.raises(ConfigurationError, match="max_tokens_per_sample"):
        run(agent, "One?")
    # the model's own max_tokens field is a known cap
    agent = create_agent(
        fake([answer("1"), answer("1"), answer("1")], max_tokens=20),
        tools=[add],
        middleware=[AdaptiveSamplingMiddleware(budget=budget)],
    )
    assert adaptive(run(agent, "One?")["messages"][-1])["samples_used"] == 3


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        AdaptiveSamplingMiddleware(target_confidence=1.0)
    with pytest.raises(ConfigurationError):
        AdaptiveSamplingMiddleware(consensus_threshold=0.5)
    with pytest.raises(ConfigurationError):
        AdaptiveSamplingMiddleware(max_tokens_kwarg="max tokens")
    with pytest.raises(ValueError, match="no sample could be drawn"):
        AdaptiveSamplingBudget(max_tokens_per_run=5, max_tokens_per_sample=10)


def test_events_can_be_redacted() -> None:
    agent = create_agent(
        fake([answer("The answer is 5")] * 3),
        tools=[add],
        middleware=[AdaptiveSamplingMiddleware(redact_events=True)],
    )
    handler = Events()
    run(agent, "What is 2 + 3?", handler)
    generated = handler.named("adaptive_candidate_generated")
    assert len(generated) == 3 and all(e.answer is None for e in generated)
