"""LangChain's agent calls the adaptive tool, with the real bundled SmolLM2 behind it."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("langgraph", reason='needs the "langgraph" extra')
pytest.importorskip("langchain.agents", reason='needs the "langgraph" extra')

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_adaptive import AdaptiveReasoningRunnable, AdaptiveResult
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.integrations.langgraph import create_adaptive_graph
from langchain_adaptive.integrations.llamacpp import default_reasoner
from tests.tracing import RunCollector, walk
from tests.unit_tests.fakes import ScriptedToolCallingModel

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

QUESTION = "What is 7 + 8?"


@pytest.fixture(scope="module")
def reasoner() -> AdaptiveReasoningRunnable:
    return default_reasoner(seed=0, max_samples=2, max_tokens_per_sample=48)


def test_agent_tool_loop_with_the_real_model(reasoner: AdaptiveReasoningRunnable) -> None:
    def answer(messages: list[BaseMessage]) -> AIMessage:
        first_line = str(messages[-1].content).splitlines()[0]
        return AIMessage(content=f"From the thinker: {first_line}")

    call = AIMessage(
        content="",
        tool_calls=[{"name": "think_hard", "args": {"question": QUESTION}, "id": "t1"}],
    )
    agent_model = ScriptedToolCallingModel(script=[call, answer])
    tracer = RunCollector()
    agent = create_agent(agent_model, [reasoner.as_tool()])
    out = agent.invoke({"messages": [HumanMessage("Add 7 and 8.")]}, {"callbacks": [tracer]})
    tool_message = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    result = tool_message.artifact
    assert isinstance(result, AdaptiveResult) and result.question == QUESTION
    estimate = result.question_estimate
    assert estimate is not None and 0.0 < estimate.lower < 1.0
    assert result.budget.samples_used == min(2, ias_sample_count(estimate.lower, 0.99))
    assert all(c.usage.output_tokens <= 48 for c in result.candidates)
    assert result.confidence is not None
    assert f"Confidence: {result.confidence:.3f}" in str(tool_message.content)
    expected_first = f"Answer: {result.answer}" if result.answer is not None else "No answer"
    assert str(out["messages"][-1].content).startswith(f"From the thinker: {expected_first}")
    llm_runs = [r for r in walk(tracer.root()) if r.run_type == "llm"]
    assert any(r.name == "ChatLlamaCpp" for r in llm_runs)  # the real model, under the agent


async def test_escalating_graph_with_the_real_model(reasoner: AdaptiveReasoningRunnable) -> None:
    cheap = reasoner.model_copy(update={"max_samples": 1})
    graph = create_adaptive_graph(cheap, escalation=reasoner)
    out = await graph.ainvoke({"messages": [HumanMessage(QUESTION)]})
    attempts = out["adaptive_attempts"]
    first = attempts[0]
    assert first.budget.samples_used == 1
    # the graph escalates exactly when the one-sample run fell short of its target
    assert first.low_confidence == (len(attempts) == 2)
    assert out["adaptive_result"] is attempts[-1]
    assert out["messages"][-1].response_metadata["adaptive"]["answer"] == attempts[-1].answer
