"""The adaptive reasoner as an agent tool: schema, message content, artifact, errors, tracing."""

from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from langchain_adaptive import AdaptiveReasoningRunnable, AdaptiveResult, BestOfN
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.errors import ConfigurationError, ModelError
from langchain_adaptive.tools import AdaptiveReasoningTool, adaptive_tool, format_tool_content
from tests.tracing import RunCollector, walk
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."


def reasoner(**kwargs: object) -> AdaptiveReasoningRunnable:
    kwargs.setdefault("model", ScriptedChatModel(responses=[RIGHT, WRONG, RIGHT]))
    kwargs.setdefault("prm", ScriptedPRM(question_p={"easy": 0.9, "hard": 0.1}))
    return AdaptiveReasoningRunnable(**kwargs)  # type: ignore[arg-type]


def call(tool: BaseTool, question: str, call_id: str = "call-1") -> ToolMessage:
    message = tool.invoke(
        {"type": "tool_call", "id": call_id, "name": tool.name, "args": {"question": question}}
    )
    assert isinstance(message, ToolMessage)
    return message


def test_as_tool_takes_one_question_string() -> None:
    tool = reasoner().as_tool(name="solve", description="Solve arithmetic.")
    assert isinstance(tool, AdaptiveReasoningTool)
    assert (tool.name, tool.description) == ("solve", "Solve arithmetic.")
    assert list(tool.args) == ["question"] and tool.args["question"]["type"] == "string"
    assert tool.tool_call_schema.model_json_schema()["required"] == ["question"]


def test_tool_message_carries_answer_confidence_and_the_result() -> None:
    runnable = reasoner(max_samples=64)
    message = call(runnable.as_tool(), "easy", call_id="abc")
    result = message.artifact
    assert isinstance(result, AdaptiveResult)
    assert message.tool_call_id == "abc" and message.status == "success"
    assert result.budget.samples_used == ias_sample_count(0.9, 0.99)
    assert result.answer is not None and result.confidence is not None
    lines = str(message.content).splitlines()
    assert lines[0] == f"Answer: {result.answer}"
    assert lines[1] == f"Confidence: {result.confidence:.3f} (target reached)"
    assert f"lower {result.question_estimate.lower:.3f}" in lines[2]
    assert message.content == format_tool_content(result)


def test_low_confidence_is_said_in_the_message() -> None:
    message = call(reasoner(max_samples=3).as_tool(), "hard")
    assert message.artifact.low_confidence
    assert "target not reached within the cap of 3 samples" in str(message.content)


def test_no_answer_is_said_in_the_message() -> None:
    runnable = reasoner(model=ScriptedChatModel(responses=["I am not sure."]), max_samples=2)
    message = call(runnable.as_tool(), "easy")
    assert message.artifact.answer is None
    assert str(message.content).startswith("No answer: none of the 2 sample(s)")


def test_content_only_response_format() -> None:
    tool = adaptive_tool(reasoner(), response_format="content")
    message = call(tool, "easy")
    assert message.artifact is None and str(message.content).startswith("Answer: 15")


async def test_async_tool_call_matches_sync() -> None:
    tool = reasoner(max_samples=64).as_tool()
    message = await tool.ainvoke(
        {"type": "tool_call", "id": "a", "name": tool.name, "args": {"question": "hard"}}
    )
    assert message.artifact.budget.samples_used == ias_sample_count(0.1, 0.99)
    assert str(message.content).startswith(f"Answer: {message.artifact.answer}")


def test_bad_question_comes_back_as_a_tool_error_without_compute() -> None:
    model = ScriptedChatModel(responses=[RIGHT])
    message = call(reasoner(model=model).as_tool(), "   ")
    assert message.status == "error" and "EmptyQuestionError" in str(message.content)
    assert model.calls == []


def test_model_failure_raises_with_the_partial_result() -> None:
    model = ScriptedChatModel(responses=[RIGHT], fail_on_calls={2})
    tool = reasoner(model=model, strategy=BestOfN(n=4)).as_tool()
    with pytest.raises(ModelError) as caught:
        tool.invoke({"question": "q"}, config={"max_concurrency": 1})
    partial = caught.value.partial
    assert partial is not None and len(partial.candidates) == 3  # every call but the failed one


def test_generic_schemas_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="question string"):
        reasoner().as_tool(arg_types={"x": int})


def test_reasoner_runs_are_children_of_the_tool_run() -> None:
    tracer = RunCollector()
    tool = reasoner(strategy=BestOfN(n=2)).as_tool()
    tool.invoke({"question": "q"}, config={"callbacks": [tracer], "tags": ["agent"]})
    root = tracer.root()
    assert root.run_type == "tool" and root.name == "think_hard"
    (chain,) = root.child_runs
    assert chain.name == "AdaptiveReasoningRunnable"
    kinds = [r.run_type for r in walk(chain)[1:]]
    assert kinds.count("llm") == 2 and kinds.count("prm") == 1
    assert all("agent" in r.tags for r in walk(root))
