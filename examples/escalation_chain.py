"""The confidence feeds back into the chain: answer cheaply, escalate only when unsure.

A cheap reasoner (a small sample cap) answers first. When its calibrated
confidence falls short (the target was out of reach within its cap, or below
``--min-confidence``), the question goes to a stronger reasoner: a bigger
budget, or with ``--escalate-model`` a bigger model.

    pip install -e ".[llamacpp]"
    python examples/escalation_chain.py "What is 7 + 8?" "What is 123 * 45?"
    python examples/escalation_chain.py --escalate-model PATH_TO.gguf "What is 123 * 45?"
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from langchain_adaptive import escalate_when_unsure
from langchain_adaptive.integrations.llamacpp import default_reasoner


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="*", default=["What is 7 + 8?", "What is 123 * 45?"])
    parser.add_argument("--cheap-samples", type=int, default=2, help="cap of the cheap reasoner")
    parser.add_argument("--strong-samples", type=int, default=8, help="cap after escalation")
    parser.add_argument("--max-tokens", type=int, default=96, help="tokens per sample")
    parser.add_argument("--min-confidence", type=float, default=None)
    parser.add_argument("--escalate-model", default=None, help="GGUF path or repo id")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cheap = default_reasoner(
        max_samples=args.cheap_samples, max_tokens_per_sample=args.max_tokens, seed=args.seed
    )
    if args.escalate_model:
        strong = default_reasoner(
            args.escalate_model,
            max_samples=args.strong_samples,
            max_tokens_per_sample=args.max_tokens,
            seed=args.seed,
        )
    else:  # the same model, a bigger budget (and twice the tokens per sample)
        strong = cheap.model_copy(
            update={
                "max_samples": args.strong_samples,
                "max_tokens_per_sample": 2 * args.max_tokens,
            }
        )
    chain = escalate_when_unsure(cheap, strong, min_confidence=args.min_confidence)

    for question in args.questions:
        result = chain.invoke(question)
        escalated = any(w.startswith("escalated:") for w in result.warnings)
        route = "escalated" if escalated else "answered directly"
        confidence = "n/a" if result.confidence is None else f"{result.confidence:.3f}"
        print(
            f"{question} -> {result.answer} ({route}; {result.budget.samples_used} sample(s), "
            f"confidence {confidence})"
        )
        if escalated:
            print(f"  {result.warnings[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
