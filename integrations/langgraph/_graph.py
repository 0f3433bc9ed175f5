"""A subgraph that answers cheaply and escalates only when the calibrated confidence is low."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.escalation import needs_escalation
from langchain_adaptive.runnable import AdaptiveReasoningRunnable

from ._nodes import AdaptiveState, adaptive_node, answer_message


def create_adaptive_graph(
    reasoner: AdaptiveReasoningRunnable,
    *,
    escalation: AdaptiveReasoningRunnable | None = None,
    min_confidence: float | None = None,
    name: str = "adaptive_reasoning",
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A compiled graph (usable as a subgraph node) over :class:`AdaptiveState`.

    ``reason`` answers with ``reasoner``. With ``escalation`` (the same policy
    with a bigger budget, or a bigger model), a result that
    :func:`~langchain_adaptive.escalation.needs_escalation` goes on to ``escalate``;
    a confident one ends the graph, so easy questions cost only the cheap run. Both
    results stay in ``adaptive_attempts``; ``adaptive_result`` holds the final one, and ``respond``
    appends one answer message (:func:`answer_message`) to ``messages``.

    Args:
        reasoner: The first, cheaper reasoner.
        escalation: The reasoner for questions the first one is unsure about.
        min_confidence: See :func:`~langchain_adaptive.escalation.needs_escalation`.
        name: The compiled graph's name.

    Returns:
        The compiled graph; invoke it with ``{"question": ...}`` or ``{"messages": [...]}``.

    Raises:
        ConfigurationError: ``min_confidence`` is given without ``escalation``, or is
            outside (0, 1).
    """
    if min_confidence is not None:
        if escalation is None:
            raise ConfigurationError("min_confidence needs an escalation reasoner")
        if not 0.0 < min_confidence < 1.0:
            raise ConfigurationError(f"min_confidence must be in (0, 1), got {min_confidence}")

    def respond(state: AdaptiveState) -> dict[str, Any]:
        return {"messages": [answer_message(state["adaptive_result"], name=name)]}

    graph = StateGraph(AdaptiveState)
    graph.add_node("reason", adaptive_node(reasoner, name="reason", add_message=False))
    graph.add_node("respond", respond)
    graph.add_edge(START, "reason")
    graph.add_edge("respond", END)
    if escalation is None:
        graph.add_edge("reason", "respond")
        return graph.compile(name=name)

    def route(state: AdaptiveState) -> str:
        unsure = needs_escalation(state["adaptive_result"], min_confidence)
        return "escalate" if unsure else "respond"

    graph.add_node("escalate", adaptive_node(escalation, name="escalate", add_message=False))
    graph.add_conditional_edges("reason", route, ["escalate", "respond"])
    graph.add_edge("escalate", "respond")
    return graph.compile(name=name)


__all__ = ["create_adaptive_graph", "needs_escalation"]
