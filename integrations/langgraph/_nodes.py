"""A LangGraph node that answers the state's question with an adaptive reasoner."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Annotated, Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import MessagesState

from langchain_adaptive.errors import UnsupportedInputError
from langchain_adaptive.results import AdaptiveResult
from langchain_adaptive.runnable import AdaptiveReasoningRunnable


class AdaptiveState(MessagesState, total=False):
    """Graph state for adaptive reasoning: the conversation plus what the reasoner found.

    ``question`` is optional: without it the node answers the last human message.
    Every attempt is kept in ``adaptive_attempts`` (escalation never discards the
    cheaper run), and ``adaptive_result`` is the latest.
    """

    question: str
    adaptive_result: AdaptiveResult
    adaptive_attempts: Annotated[list[AdaptiveResult], operator.add]


def answer_message(result: AdaptiveResult, *, name: str | None = None) -> AIMessage:
    """The answer as a chat message, with the confidence in ``response_metadata["adaptive"]``.

    Args:
        result: The reasoner's result.
        name: The message's ``name`` (the node that answered), if any.

    Returns:
        An ``AIMessage`` whose content is the answer (or says that no sample had one),
        so the next node or the user reads the answer and downstream code reads the
        calibrated numbers without parsing text.
    """
    estimate = result.question_estimate
    content = (
        result.answer
        if result.answer is not None
        else f"No answer: none of the {result.budget.samples_used} sample(s) stated one."
    )
    return AIMessage(
        content=content,
        name=name,
        response_metadata={
            "adaptive": {
                "answer": result.answer,
                "confidence": result.confidence,
                "low_confidence": result.low_confidence,
                "question_estimate_lower": estimate.lower if estimate else None,
                "samples_used": result.budget.samples_used,
                "max_samples": result.budget.max_samples,
                "strategy": result.strategy,
                "stop_reason": result.stop_reason,
            }
        },
    )


def state_question(state: Mapping[str, Any]) -> str:
    """The question a node answers: ``state["question"]``, else the last human message.

    Raises:
        UnsupportedInputError: The state has neither.
    """
    question = state.get("question")
    if isinstance(question, str) and question.strip():
        return question
    messages: list[BaseMessage] = state.get("messages") or []
    for message in reversed(messages):
        if message.type == "human":
            return str(message.text)
    raise UnsupportedInputError(
        "the graph state has no 'question' and no human message in 'messages' to answer"
    )


def adaptive_node(
    reasoner: AdaptiveReasoningRunnable,
    *,
    name: str = "adaptive_reasoning",
    add_message: bool = True,
) -> RunnableLambda[AdaptiveState, dict[str, Any]]:
    """A node (sync and async) that answers the state's question with ``reasoner``.

    The update it returns sets ``adaptive_result``, appends the result to
    ``adaptive_attempts`` and, with ``add_message``, appends an
    :func:`answer_message` to ``messages``. The reasoner runs as a child of the
    node's run, with the graph's config (callbacks, tags, ``configurable``).

    Args:
        reasoner: The adaptive runnable that answers.
        name: The node's run name and the answer message's ``name``.
        add_message: Whether to append the answer to ``messages``.

    Returns:
        A runnable to pass to ``StateGraph.add_node`` (state schema:
        :class:`AdaptiveState` or any state with the same keys).

    Example:
        .. code-block:: python

            from langgraph.graph import START, StateGraph

            graph = StateGraph(AdaptiveState)
            graph.add_node("reason", adaptive_node(reasoner))
            graph.add_edge(START, "reason")
            graph.compile().invoke({"question": "What is 7 + 8?"})["adaptive_result"].answer
    """

    def update(result: AdaptiveResult) -> dict[str, Any]:
        out: dict[str, Any] = {"adaptive_result": result, "adaptive_attempts": [result]}
        if add_message:
            out["messages"] = [answer_message(result, name=name)]
        return out

    def run(state: AdaptiveState, config: RunnableConfig) -> dict[str, Any]:
        return update(reasoner.invoke(state_question(state), config))

    async def arun(state: AdaptiveState, config: RunnableConfig) -> dict[str, Any]:
        return update(await reasoner.ainvoke(state_question(state), config))

    return RunnableLambda(run, afunc=arun, name=name)


__all__ = ["AdaptiveState", "adaptive_node", "answer_message", "state_question"]
