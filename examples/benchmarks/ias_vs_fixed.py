"""IAS versus fixed best-of-N on the bundled SmolLM2, side by side in one run.

Arithmetic questions of graded difficulty from the seeded suite (by default
one-digit sums, two-digit sums, two-digit products; questions used to train
the bundled probe head are excluded) are answered by each policy with the same
model and the same sampling seed:

- ``fixed``: ``majority_vote`` with N = ``--max-samples`` samples per question;
- ``ias``: ``default_reasoner()``: the calibrated on-device probe estimates
  each question, ``N = ceil(log(1 - C) / log(1 - p))`` samples (capped) vote,
  and an unreachable target spends the cap (the paper's rule);
- ``ias_median_floor``: budgets on the probe's median instead of its 10%
  quantile, and an unreachable target draws only ``--floor-samples`` (flagged
  low-confidence) instead of the cap;
- ``ias_judge``: IAS budgeted by the uncalibrated LLM judge instead.

It reports accuracy, coverage, samples and generated tokens per question and
wall time, per level and overall, as JSON and a PNG plot.

Run::

    pip install -e ".[llamacpp,bench]"
    python examples/benchmarks/ias_vs_fixed.py --per-level 8 --max-samples 8 \\
        --target-confidence 0.9 --out bench-results/ias_vs_fixed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_adaptive import AdaptiveBestOfN, AdaptiveReasoningRunnable, AdaptiveResult
from langchain_adaptive.evaluation.datasets import Problem, arithmetic_suite
from langchain_adaptive.integrations.llamacpp import default_reasoner

CALIBRATION_SUITE = {"per_level": 5, "seed": 0}
"""The suite the bundled probe head was trained on (docs/guides/calibration.md: collect)."""


def benchmark_problems(levels: list[str], per_level: int, seed: int) -> list[Problem]:
    """``per_level`` questions per level, none of which the probe head was trained on."""
    seen = {p.question for p in arithmetic_suite(CALIBRATION_SUITE["per_level"], seed=0)}
    chosen: list[Problem] = []
    for level in levels:
        fresh = [
            p for p in arithmetic_suite(per_level + 10, seed=seed, levels=(level,))
            if p.question not in seen
        ]  # fmt: skip
        chosen.extend(fresh[:per_level])
    return chosen


def build_policies(args: argparse.Namespace) -> dict[str, AdaptiveReasoningRunnable]:
    common: dict[str, Any] = {
        "seed": args.seed,
        "max_samples": args.max_samples,
        "max_tokens_per_sample": args.max_tokens,
        "target_confidence": args.target_confidence,
    }
    median_floor = AdaptiveBestOfN(
        selection="majority_vote",
        quantile=0.5,
        unreachable="floor",
        floor_samples=args.floor_samples,
    )
    return {
        "fixed": default_reasoner(strategy="majority_vote", **common),
        "ias": default_reasoner(prm="probe", **common),
        "ias_median_floor": default_reasoner(prm="probe", strategy=median_floor, **common),
        "ias_judge": default_reasoner(prm="judge", **common),
    }


def run_policy(
    name: str, reasoner: AdaptiveReasoningRunnable, problems: list[Problem]
) -> list[dict[str, Any]]:
    rows = []
    for i, problem in enumerate(problems):
        started = time.perf_counter()
        result: AdaptiveResult = reasoner.invoke(
            {"question": problem.question, "gold": problem.gold}
        )
        rows.append(
            {
                "policy": name,
                "level": problem.level,
                "question": problem.question,
                "gold": problem.gold,
                "answer": result.answer,
                "correct": bool(result.correct),
                "covered": any(c.correct for c in result.candidates),
                "samples": result.budget.samples_used,
                "generated_tokens": result.budget.generated_tokens,
                "prm_prompt_tokens": result.budget.prm_input_tokens,
                "estimate": result.question_estimate.lower if result.question_estimate else None,
                "seconds": time.perf_counter() - started,
            }
        )
        print(
            f"[{name} {i + 1}/{len(problems)}] {problem.question} -> {result.answer} "
            f"({'ok' if result.correct else 'wrong'}, {result.budget.samples_used} samples)",
            flush=True,
        )
    return rows


def summarize(rows: list[dict[str, Any]], levels: list[str]) -> dict[str, Any]:
    def block(subset: list[dict[str, Any]]) -> dict[str, Any]:
        estimates = [r["estimate"] for r in subset if r["estimate"] is not None]
        return {
            "questions": len(subset),
            "accuracy": statistics.mean(r["correct"] for r in subset),
            "coverage": statistics.mean(r["covered"] for r in subset),
            "mean_samples": statistics.mean(r["samples"] for r in subset),
            "mean_generated_tokens": statistics.mean(r["generated_tokens"] for r in subset),
            "mean_prm_prompt_tokens": statistics.mean(r["prm_prompt_tokens"] for r in subset),
            "mean_estimate": statistics.mean(estimates) if estimates else None,
            "mean_seconds": statistics.mean(r["seconds"] for r in subset),
        }

    return {
        "overall": block(rows),
        "by_level": {level: block([r for r in rows if r["level"] == level]) for level in levels},
    }


def plot(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    levels = report["settings"]["levels"]
    policies = list(report["summary"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(policies)
    for j, policy in enumerate(policies):
        by_level = report["summary"][policy]["by_level"]
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(levels))]
        left.bar(xs, [by_level[lv]["mean_samples"] for lv in levels], width, label=policy)
        right.bar(xs, [by_level[lv]["accuracy"] for lv in levels], width, label=policy)
    for ax, label in ((left, "mean samples per question"), (right, "accuracy")):
        ax.set_xticks(range(len(levels)), levels, fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    overall = {p: report["summary"][p]["overall"] for p in policies}
    fig.suptitle(
        "SmolLM2-135M, C="
        + str(report["settings"]["target_confidence"])
        + ": "
        + ", ".join(
            f"{p} {o['mean_samples']:.1f} samples / acc {o['accuracy']:.2f}"
            for p, o in overall.items()
        ),
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="add1,add2,mul2", help="suite levels, comma-separated")
    parser.add_argument("--per-level", type=int, default=8, help="questions per level")
    parser.add_argument("--max-samples", type=int, default=8, help="fixed N and IAS cap")
    parser.add_argument("--target-confidence", type=float, default=0.9)
    parser.add_argument("--floor-samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96, help="tokens per sample")
    parser.add_argument("--policies", default="fixed,ias,ias_median_floor,ias_judge")
    parser.add_argument("--seed", type=int, default=1, help="question and sampling seed")
    parser.add_argument("--out", type=Path, default=Path("bench-results/ias_vs_fixed.json"))
    args = parser.parse_args()

    levels = args.levels.split(",")
    problems = benchmark_problems(levels, args.per_level, args.seed)
    policies = build_policies(args)
    chosen = args.policies.split(",")
    rows = [row for name in chosen for row in run_policy(name, policies[name], problems)]
    summary = {name: summarize([r for r in rows if r["policy"] == name], levels) for name in chosen}
    fixed = summary.get("fixed", {}).get("overall")
    ratios = {
        name: {
            "samples": block["overall"]["mean_samples"] / fixed["mean_samples"],
            "generated_tokens": block["overall"]["mean_generated_tokens"]
            / fixed["mean_generated_tokens"],
            "wall_time": block["overall"]["mean_seconds"] / fixed["mean_seconds"],
            "accuracy_difference": block["overall"]["accuracy"] - fixed["accuracy"],
        }
        for name, block in summary.items()
        if fixed and name != "fixed"
    }
    report = {
        "settings": vars(args) | {"out": str(args.out), "levels": levels},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "summary": summary,
        "ratios_over_fixed": ratios,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    plot(report, args.out.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("summary", "ratios_over_fixed")}, indent=2))
    return report


if __name__ == "__main__":
    main()
