"""An agent that thinks hard on demand: LangChain's ``create_agent`` with the adaptive tool.

The agent's own chat model decides *when* a sub-question deserves careful
thought and calls ``think_hard``; the tool (the bundled SmolLM2 with its
calibrated probe, on this machine) decides *how many* samples that takes and
reports the answer with its confidence, which the agent reads before it replies.

The agent's model must call tools, which SmolLM2-135M cannot do reliably, so
point it at any OpenAI-compatible chat model that can: OpenAI
(``OPENAI_API_KEY``), or a local server such as vLLM, Ollama
(``--base-url http://127.0.0.1:11434/v1``) or ``python -m llama_cpp.server``.

    pip install -e ".[llamacpp,langgraph,remote]"
    OPENAI_API_KEY=... python examples/agent_with_tool.py --model gpt-4o-mini
    python examples/agent_with_tool.py --base-url http://127.0.0.1:11434/v1 --model qwen2.5:7b
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage

from langchain_adaptive import AdaptiveReasoningRunnable, AdaptiveResult
from langchain_adaptive.integrations.llamacpp import default_reasoner

SYSTEM_PROMPT = (
    "You are a helpful assistant. For any arithmetic, call the think_hard tool with one "
    "self-contained question, then answer the user in one sentence that gives the tool's "
    "answer and its confidence."
)
DEFAULT_QUESTION = "I bought 7 apples and then 8 more. How many apples do I have?"


def build_agent(model: BaseChatModel, reasoner: AdaptiveReasoningRunnable) -> Any:
    """LangChain's agent (a compiled LangGraph graph) with ``reasoner`` as ``think_hard``."""
    from langchain.agents import create_agent

    return create_agent(model, [reasoner.as_tool()], system_prompt=SYSTEM_PROMPT)


def run(agent: Any, question: str, *, max_tool_calls: int = 3) -> list[Any]:
    """The agent's messages for ``question``, printing each tool call and the reply."""
    # each tool round trip is two graph steps (model, tools); one more for the last reply
    config = {"recursion_limit": 2 * max_tool_calls + 1}
    messages = agent.invoke({"messages": [("human", question)]}, config)["messages"]
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print(f"agent -> {call['name']}({call['args']})")
        elif isinstance(message, ToolMessage):
            result = message.artifact
            spend = (
                f" [{result.budget.samples_used} sample(s)]"
                if isinstance(result, AdaptiveResult)
                else ""
            )
            print(f"tool  -> {message.content!s}{spend}".replace("\n", "; "))
    print(f"agent: {messages[-1].content}")
    return messages


def chat_model(args: argparse.Namespace) -> BaseChatModel | None:
    """The agent's model, or ``None`` (with a message) when none is configured."""
    api_key = os.environ.get(args.api_key_env)
    if not args.base_url and not api_key:
        print(
            f"The agent needs a tool-calling chat model: set {args.api_key_env} for OpenAI, or "
            "pass --base-url of an OpenAI-compatible server (vLLM, Ollama, llama_cpp.server) "
            "and --model.",
            file=sys.stderr,
        )
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=args.model, base_url=args.base_url, api_key=api_key or "none", temperature=0
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument("--model", default="gpt-4o-mini", help="the agent's chat model")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--max-samples", type=int, default=8, help="the tool's sample cap")
    parser.add_argument("--max-tokens", type=int, default=128, help="the tool's tokens/sample")
    parser.add_argument("--max-tool-calls", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = chat_model(args)
    if model is None:
        return 2
    reasoner = default_reasoner(
        max_samples=args.max_samples, max_tokens_per_sample=args.max_tokens, seed=args.seed
    )
    run(build_agent(model, reasoner), args.question, max_tool_calls=args.max_tool_calls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
