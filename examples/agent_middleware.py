"""An agent whose every model call is adaptive sampling: create_agent + AdaptiveSamplingMiddleware.

The agent runs on the bundled SmolLM2-135M-Instruct through ``ChatLlamaCpp.bind_tools``
(tool calls are grammar-constrained, so they are always well-formed). Each of its model
calls draws samples until they agree (or, with ``--prm probe``, as many as the bundled
calibrated probe's IAS budget asks), votes over the replies, and keeps the run within a
token budget; the script prints each turn with the middleware's report.

A 135M model does not decide to call a tool by itself, so the script chooses the turns
(``--no-force`` leaves the choice to the model): the first model call must call a tool
and the next one must answer, as a bigger model would.

    pip install -e ".[llamacpp,langgraph]"
    python examples/agent_middleware.py "Use the add tool to add 2 and 3."
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from langchain_adaptive.integrations.langgraph import (
    AdaptiveSamplingBudget,
    AdaptiveSamplingMiddleware,
)
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class CallThenAnswer(AgentMiddleware):
    """Make the first model call a tool call and the ones after it plain answers."""

    @staticmethod
    def _turn(request: ModelRequest) -> ModelRequest:
        called = any(isinstance(m, ToolMessage) for m in request.messages)
        return request.override(tool_choice="none" if called else "any")

    def wrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        return handler(self._turn(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        return await handler(self._turn(request))


def _report(message: AIMessage) -> str:
    report = message.response_metadata["adaptive"]
    note = ", fallback" if report["fallback"] else ""
    return (
        f"[{report['samples_used']} sample(s), {report['votes']} vote(s) for it, "
        f"stop: {report['stop_reason']}{note}]"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="Use the add tool to add 2 and 3.")
    parser.add_argument("--samples-per-call", type=int, default=3, help="cap per model call")
    parser.add_argument("--tokens-per-run", type=int, default=400, help="run token budget")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per sample")
    parser.add_argument("--prm", choices=["none", "probe"], default="none")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-force", action="store_true", help="let the model pick its turns")
    args = parser.parse_args(argv)

    budget = AdaptiveSamplingBudget(
        max_samples_per_call=args.samples_per_call,
        max_tokens_per_run=args.tokens_per_run,
        max_tokens_per_sample=args.max_tokens,
    )
    adaptive = AdaptiveSamplingMiddleware(
        prm=ProbePRM() if args.prm == "probe" else None,
        budget=budget,
        temperature=args.temperature,
    )
    middleware = [adaptive] if args.no_force else [CallThenAnswer(), adaptive]
    model = ChatLlamaCpp(max_tokens=args.max_tokens, seed=args.seed)
    agent = create_agent(model, tools=[add], middleware=middleware)
    state = agent.invoke({"messages": [("user", args.question)]})

    for message in state["messages"][1:]:
        if isinstance(message, AIMessage) and message.tool_calls:
            calls = ", ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
            print(f"agent -> {calls}  {_report(message)}")
        elif isinstance(message, AIMessage):
            print(f"agent: {' '.join(message.text.split())}  {_report(message)}")
        else:
            print(f"tool  -> {message.text}")
    run = state["messages"][-1].response_metadata["adaptive"]["run_usage"]
    print(
        f"Run: {run['model_calls']} model call(s), {run['samples']} sample(s), "
        f"{run['output_tokens']} generated tokens (budget {args.tokens_per_run}), "
        f"{run['fallbacks']} fallback(s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
