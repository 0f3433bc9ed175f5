"""An LCEL chain: prompt -> adaptive reasoner -> answer parser, batched over questions.

The reasoner is a runnable like any other: a prompt template feeds it, a parser
turns its result into the answer string, and ``batch`` runs several inputs.

    pip install -e ".[llamacpp]"
    python examples/lcel_chain.py --pairs 2+3 12+30
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from langchain_core.prompts import ChatPromptTemplate

from langchain_adaptive import AdaptiveAnswerParser
from langchain_adaptive.integrations.llamacpp import default_reasoner


def parse_pair(text: str) -> dict[str, int]:
    """``"2+3"`` -> ``{"a": 2, "b": 3}``."""
    try:
        a, b = (int(part) for part in text.split("+"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A+B with integers, got {text!r}") from None
    return {"a": a, "b": b}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", type=parse_pair, default=["2+3", "12+30"])
    parser.add_argument("--max-samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pairs = [parse_pair(p) if isinstance(p, str) else p for p in args.pairs]

    reasoner = default_reasoner(
        max_samples=args.max_samples, max_tokens_per_sample=args.max_tokens, seed=args.seed
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a careful calculator."), ("human", "What is {a} + {b}?")]
    )
    chain = prompt | reasoner | AdaptiveAnswerParser(default="(no answer)")
    answers = chain.batch(pairs, config={"max_concurrency": 1})
    for pair, answer in zip(pairs, answers, strict=True):
        print(f"{pair['a']} + {pair['b']} = {answer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
