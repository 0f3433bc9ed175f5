"""LangGraph: the adaptive node, the escalating subgraph, and LangChain's agent calling the tool."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langgraph", reason='needs the "langgraph" extra')
pytest.importorskip("langchain.agents", reason='needs the "langgraph" extra')

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.graph import START, StateGraph

from langchain_adaptive import AdaptiveReasoningRunnable, AdaptiveResult
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.errors import ConfigurationError, UnsupportedInputError
from langchain_adaptive.integrations.langgraph import (
    AdaptiveState,
    adaptive_node,
    create_adaptive_graph,
)
from tests.tracing import RunCollector, walk
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM, ScriptedToolCallingModel

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."


def reasoner(**kwargs: object) -> AdaptiveReasoningRunnable:
    kwargs.setdefault("model", ScriptedChatModel(responses=[RIGHT, WRONG, RIGHT]))
    kwargs.setdefault("prm", ScriptedPRM(question_p={"easy": 0.9, "hard": 0.1}))
    return AdaptiveReasoningRunnable(**kwargs)  # type: ignore[arg-type]


def one_node_graph(runnable: AdaptiveReasoningRunnable) -> Any:
    graph = StateGraph(AdaptiveState)
    graph.add_node("reason", adaptive_node(runnable))
    graph.add_edge(START, "reason")
    return graph.compile()


# -- the node -----------------------------------------------------------------------------


def test_node_answers_the_state_question_and_adds_a_message() -> None:
    out = one_node_graph(reasoner(max_samples=64)).invoke({"question": "easy", "messages": []})
    result = out["adaptive_result"]
    assert isinstance(result, AdaptiveResult) and out["adaptive_attempts"] == [result]
    assert result.question == "easy"
    assert result.budget.samples_used == ias_sample_count(0.9, 0.99)
    (message,) = out["messages"]
    assert message.content == result.answer and message.name == "adaptive_reasoning"
    meta = message.response_metadata["adaptive"]
    assert meta["confidence"] == result.confidence and meta["question_estimate_lower"] == 0.9


async def test_node_answers_the_last_human_message_async() -> None:
    history = [HumanMessage("easy"), AIMessage("?"), HumanMessage("hard")]
    out = await one_node_graph(reasoner(max_samples=64)).ainvoke({"messages": history})
    assert out["adaptive_result"].question == "hard"
    assert out["adaptive_result"].budget.samples_used == ias_sample_count(0.1, 0.99)
    assert len(out["messages"]) == 4


def test_node_without_a_question_raises_before_any_compute() -> None:
    model = ScriptedChatModel(responses=[RIGHT])
    with pytest.raises(UnsupportedInputError, match="no 'question'"):
        one_node_graph(reasoner(model=model)).invoke({"messages": [AIMessage("hi")]})
    assert model.calls == []


def test_node_runs_the_reasoner_as_a_child_with_the_graph_config() -> None:
    tracer = RunCollector()
    one_node_graph(reasoner()).invoke(
        {"question": "easy"}, config={"callbacks": [tracer], "tags": ["g"]}
    )
    runs = walk(tracer.root())
    names = [r.name for r in runs]
    assert names.index("adaptive_reasoning") < names.index("AdaptiveReasoningRunnable")
    assert any(r.run_type == "llm" for r in runs) and any(r.run_type == "prm" for r in runs)
    assert all("g" in r.tags for r in runs)


# -- the escalating subgraph ----------------------------------------------------------------


def escalating(**kwargs: Any) -> Any:
    cheap = reasoner(max_samples=3)
    strong = cheap.model_copy(update={"max_samples": 64})
    return create_adaptive_graph(cheap, escalation=strong, **kwargs)


def test_confident_answer_is_returned_without_escalation() -> None:
    out = escalating().invoke({"question": "easy"})
    (attempt,) = out["adaptive_attempts"]
    assert not attempt.low_confidence and out["adaptive_result"] is attempt
    (message,) = out["messages"]
    assert message.name == "adaptive_reasoning" and message.content == attempt.answer


def test_unsure_answer_escalates_and_keeps_both_attempts() -> None:
    out = escalating().invoke({"messages": [HumanMessage("hard")]})
    cheap, strong = out["adaptive_attempts"]
    assert cheap.low_confidence and cheap.budget.samples_used == 3
    assert strong.budget.samples_used == ias_sample_count(0.1, 0.99)
    assert out["adaptive_result"] is strong
    assert [m.type for m in out["messages"]] == ["human", "ai"]
    meta = out["messages"][-1].response_metadata["adaptive"]
    assert meta["samples_used"] == strong.budget.samples_used


def test_min_confidence_escalates_a_result_that_met_a_lower_target() -> None:
    cheap = reasoner(max_samples=64, target_confidence=0.5)
    strong = cheap.model_copy(update={"target_confidence": 0.99})
    graph = create_adaptive_graph(cheap, escalation=strong, min_confidence=0.9)
    out = graph.invoke({"question": "hard"})
    assert [a.budget.samples_used for a in out["adaptive_attempts"]] == [
        ias_sample_count(0.1, 0.5),
        ias_sample_count(0.1, 0.99),
    ]


def test_graph_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="escalation"):
        create_adaptive_graph(reasoner(), min_confidence=0.9)
    with pytest.raises(ConfigurationError, match=r"\(0, 1\)"):
        create_adaptive_graph(reasoner(), escalation=reasoner(), min_confidence=1.5)


# -- LangChain's agent (a compiled LangGraph graph) with the adaptive tool -----------------


def tool_call(question: str) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": "think_hard", "args": {"question": question}, "id": "c1"}]
    )


def quote_tool(messages: list[BaseMessage]) -> AIMessage:
    tool_message = messages[-1]
    assert isinstance(tool_message, ToolMessage)
    return AIMessage(content=f"The thinker says: {tool_message.content.splitlines()[0]}")


def test_prebuilt_agent_calls_the_adaptive_tool() -> None:
    agent_model = ScriptedToolCallingModel(script=[tool_call("easy"), quote_tool])
    runnable = reasoner(max_samples=64)
    tracer = RunCollector()
    agent = create_agent(agent_model, [runnable.as_tool()])
    out = agent.invoke(
        {"messages": [HumanMessage("Think hard: easy")]}, config={"callbacks": [tracer]}
    )
    _human, call, tool_message, final = out["messages"]
    assert call.tool_calls[0]["name"] == "think_hard"
    assert isinstance(tool_message, ToolMessage) and tool_message.tool_call_id == "c1"
    result = tool_message.artifact
    assert isinstance(result, AdaptiveResult) and result.question == "easy"
    assert result.budget.samples_used == ias_sample_count(0.9, 0.99)
    assert f"Confidence: {result.confidence:.3f}" in tool_message.content
    assert final.content == f"The thinker says: Answer: {result.answer}"
    assert agent_model.bound_tools[0] == ["think_hard"]
    assert len(agent_model.calls) == 2 and agent_model.calls[1][-1] == tool_message
    runs = walk(tracer.root())
    tool_run = next(r for r in runs if r.run_type == "tool")
    assert any(r.name == "AdaptiveReasoningRunnable" for r in tool_run.child_runs)


async def test_prebuilt_agent_recovers_from_a_bad_question_async() -> None:
    def retry(messages: list[BaseMessage]) -> AIMessage:
        assert isinstance(messages[-1], ToolMessage) and messages[-1].status == "error"
        return tool_call("hard")

    agent_model = ScriptedToolCallingModel(script=[tool_call("  "), retry, quote_tool])
    agent = create_agent(agent_model, [reasoner(max_samples=4).as_tool()])
    out = await agent.ainvoke({"messages": [HumanMessage("hard")]})
    errors = [m for m in out["messages"] if isinstance(m, ToolMessage) and m.status == "error"]
    assert len(errors) == 1 and "EmptyQuestionError" in errors[0].content
    answered = out["messages"][-2]
    assert answered.artifact.low_confidence and answered.artifact.budget.samples_used == 4
    assert "target not reached" in answered.content


async def test_agent_event_stream_carries_the_reasoners_events() -> None:
    agent_model = ScriptedToolCallingModel(script=[tool_call("easy"), quote_tool])
    agent = create_agent(agent_model, [reasoner(max_samples=64).as_tool()])
    events = [
        e async for e in agent.astream_events({"messages": [HumanMessage("easy")]}, version="v2")
    ]
    names = [(e["event"], e["name"]) for e in events]
    assert ("on_tool_start", "think_hard") in names and ("on_tool_end", "think_hard") in names
    decision = next(e for e in events if e["name"] == "adaptive_finished")
    assert decision["data"]["samples_used"] == ias_sample_count(0.9, 0.99)
    start = names.index(("on_tool_start", "think_hard"))
    end = names.index(("on_tool_end", "think_hard"))
    assert start < names.index(("on_custom_event", "adaptive_finished")) < end
