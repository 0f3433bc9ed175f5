"""LangGraph binding: the adaptive reasoner as a graph node, a subgraph, and an agent tool.

Needs the ``langgraph`` extra: ``pip install "langchain-adaptive[langgraph]"``.

- :func:`adaptive_node`: a node that answers the state's question (or its last
  human message) and writes the :class:`~langchain_adaptive.AdaptiveResult` and an
  answer message back to the state (``nodes.py``).
- :func:`create_adaptive_graph`: a compiled subgraph that answers with a cheap
  reasoner and escalates to a stronger one (more budget, or a bigger model) only
  when the calibrated confidence is low (``graph.py``).
- :class:`AdaptiveSamplingMiddleware`: agent middleware for
  ``langchain.agents.create_agent`` that turns each of the agent's model calls
  into calibrated adaptive sampling, with a vote over answers and tool calls
  and budgets per call and per run (``middleware.py``).
- For an agent that should call the reasoner as a tool, give it
  ``reasoner.as_tool()`` (:class:`~langchain_adaptive.tools.AdaptiveReasoningTool`).

Names are imported lazily, so importing this package does not import langgraph
or langchain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports

if TYPE_CHECKING:
    from ._graph import create_adaptive_graph, needs_escalation
    from ._middleware import (
        AdaptiveRunUsage,
        AdaptiveSamplingBudget,
        AdaptiveSamplingMiddleware,
        AdaptiveSamplingState,
    )
    from ._nodes import AdaptiveState, adaptive_node, answer_message

__all__ = (
    "AdaptiveRunUsage",
    "AdaptiveSamplingBudget",
    "AdaptiveSamplingMiddleware",
    "AdaptiveSamplingState",
    "AdaptiveState",
    "adaptive_node",
    "answer_message",
    "create_adaptive_graph",
    "needs_escalation",
)

_MODULE_OF: dict[str, str] = {
    "AdaptiveRunUsage": "_middleware",
    "AdaptiveSamplingBudget": "_middleware",
    "AdaptiveSamplingMiddleware": "_middleware",
    "AdaptiveSamplingState": "_middleware",
    "AdaptiveState": "_nodes",
    "adaptive_node": "_nodes",
    "answer_message": "_nodes",
    "create_adaptive_graph": "_graph",
    "needs_escalation": "_graph",
}


__getattr__, __dir__ = lazy_exports(
    __name__, _MODULE_OF, __all__, install_hint='pip install "langchain-adaptive[langgraph]"'
)
