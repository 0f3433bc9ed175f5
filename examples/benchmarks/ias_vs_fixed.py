"""IAS versus fixed best-of-N on the bundled SmolLM2, side by side in one run.

A seeded arithmetic suite of graded difficulty (one-digit sums, two-digit sums,
two-digit products) is answered twice with the same model and the same seeds:

- fixed: ``majority_vote`` with N = ``--max-samples`` samples per question;
- IAS: ``default_reasoner()``: the on-device judge estimates each question, and
  ``N = ceil(log(1 - C) / log(1 - p))`` samples (capped) vote.

It reports accuracy, samples and generated tokens per question (IAS's judge
tokens counted separately), and wall time, per difficulty and overall, as JSON
and a PNG plot.

Run::

    pip install -e ".[llamacpp,bench]"
    python examples/benchmarks/ias_vs_fixed.py --per-level 8 --max-samples 8 \\
        --target-confidence 0.9 --out bench-results/ias_vs_fixed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_adaptive import AdaptiveReasoningRunnable, AdaptiveResult
from langchain_adaptive.integrations.llamacpp import default_reasoner

LEVELS = ("1-digit sum", "2-digit sum", "2-digit product")


def arithmetic_suite(per_level: int, seed: int) -> list[dict[str, str]]:
    """Questions of three difficulties with their gold answers, reproducible from ``seed``."""
    rng = random.Random(seed)
    suite = []
    for level in LEVELS:
        for _ in range(per_level):
            if level == "1-digit sum":
                a, b = rng.randint(1, 9), rng.randint(1, 9)
                question, gold = f"What is {a} + {b}?", a + b
            elif level == "2-digit sum":
                a, b = rng.randint(10, 99), rng.randint(10, 99)
                question, gold = f"What is {a} + {b}?", a + b
            else:
                a, b = rng.randint(10, 99), rng.randint(10, 99)
                question, gold = f"What is {a} * {b}?", a * b
            suite.append({"question": question, "gold": str(gold), "level": level})
    return suite


def run_policy(
    name: str, reasoner: AdaptiveReasoningRunnable, suite: list[dict[str, str]]
) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(suite):
        started = time.perf_counter()
        result: AdaptiveResult = reasoner.invoke(
            {"question": item["question"], "gold": item["gold"]}
        )
        rows.append(
            {
                "policy": name,
                "level": item["level"],
                "question": item["question"],
                "gold": item["gold"],
                "answer": result.answer,
                "correct": bool(result.correct),
                "covered": any(c.correct for c in result.candidates),
                "samples": result.budget.samples_used,
                "generated_tokens": result.budget.generated_tokens,
                "judge_prompt_tokens": result.budget.prm_input_tokens,
                "estimate": result.question_estimate.lower if result.question_estimate else None,
                "seconds": time.perf_counter() - started,
            }
        )
        print(
            f"[{name} {i + 1}/{len(suite)}] {item['question']} -> {result.answer} "
            f"({'ok' if result.correct else 'wrong'}, {result.budget.samples_used} samples)",
            flush=True,
        )
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def block(subset: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "questions": len(subset),
            "accuracy": statistics.mean(r["correct"] for r in subset),
            "coverage": statistics.mean(r["covered"] for r in subset),
            "mean_samples": statistics.mean(r["samples"] for r in subset),
            "mean_generated_tokens": statistics.mean(r["generated_tokens"] for r in subset),
            "mean_judge_prompt_tokens": statistics.mean(r["judge_prompt_tokens"] for r in subset),
            "mean_seconds": statistics.mean(r["seconds"] for r in subset),
        }

    return {
        "overall": block(rows),
        "by_level": {level: block([r for r in rows if r["level"] == level]) for level in LEVELS},
    }


def plot(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    width = 0.38
    for offset, policy in ((-width / 2, "fixed"), (width / 2, "ias")):
        levels = report["summary"][policy]["by_level"]
        xs = [i + offset for i in range(len(LEVELS))]
        left.bar(xs, [levels[lv]["mean_samples"] for lv in LEVELS], width, label=policy)
        right.bar(xs, [levels[lv]["accuracy"] for lv in LEVELS], width, label=policy)
    for ax, label in ((left, "mean samples per question"), (right, "accuracy")):
        ax.set_xticks(range(len(LEVELS)), LEVELS, fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    overall = {p: report["summary"][p]["overall"] for p in ("fixed", "ias")}
    fig.suptitle(
        f"SmolLM2-135M, fixed N={report['settings']['max_samples']} vs IAS "
        f"(C={report['settings']['target_confidence']}): samples "
        f"{overall['ias']['mean_samples']:.2f} vs {overall['fixed']['mean_samples']:.2f}, "
        f"accuracy {overall['ias']['accuracy']:.2f} vs {overall['fixed']['accuracy']:.2f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-level", type=int, default=8, help="questions per difficulty")
    parser.add_argument("--max-samples", type=int, default=8, help="fixed N and IAS cap")
    parser.add_argument("--target-confidence", type=float, default=0.9)
    parser.add_argument("--max-tokens", type=int, default=96, help="tokens per sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-results/ias_vs_fixed.json"))
    args = parser.parse_args()

    suite = arithmetic_suite(args.per_level, args.seed)
    common = {"seed": args.seed, "max_samples": args.max_samples}
    fixed = default_reasoner(
        strategy="majority_vote", max_tokens_per_sample=args.max_tokens, **common
    )
    ias = default_reasoner(
        target_confidence=args.target_confidence, max_tokens_per_sample=args.max_tokens, **common
    )
    rows = run_policy("fixed", fixed, suite) + run_policy("ias", ias, suite)
    summary = {p: summarize([r for r in rows if r["policy"] == p]) for p in ("fixed", "ias")}
    fixed_all, ias_all = summary["fixed"]["overall"], summary["ias"]["overall"]
    report = {
        "settings": vars(args) | {"out": str(args.out)},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "summary": summary,
        "ratios_ias_over_fixed": {
            "samples": ias_all["mean_samples"] / fixed_all["mean_samples"],
            "generated_tokens": ias_all["mean_generated_tokens"]
            / fixed_all["mean_generated_tokens"],
            "wall_time": ias_all["mean_seconds"] / fixed_all["mean_seconds"],
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    plot(report, args.out.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("summary", "ratios_ias_over_fixed")}, indent=2))
    return report


if __name__ == "__main__":
    main()
