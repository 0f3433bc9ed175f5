"""DeepConf online against majority vote and calibrated IAS, live, on the arithmetic suite.

Every policy answers the same questions of the seeded arithmetic suite with the
bundled SmolLM2-135M-Instruct on llama.cpp, at the same sample cap (``--cap``) and
token cap per sample, interleaved question by question so all see the same load.
The draws are paired: for each question every policy gets a ``ChatLlamaCpp`` seeded
by the question, so its k-th sample has the same seed under every policy, and the
policies differ only in which samples they draw, stop and keep:

- ``majority vote N``: N = cap samples, most frequent answer;
- ``deepconf-low`` / ``deepconf-high``: DeepConf online (Fu et al. 2025,
  arXiv 2508.15260): ``--warmup`` whole traces set the threshold (the warmup's
  90th / 10th percentile of lowest group confidence), later traces are stopped
  in the decode loop when a ``--window``-token group falls below it, and drawing
  stops once the confidence-weighted vote share reaches ``--tau`` or at the cap;
- ``calibrated IAS``: N from the bundled calibrated probe's lower bound at
  ``--target-confidence``, majority vote.

Per policy the JSON records accuracy (bootstrap interval over questions),
generated tokens per question, how many traces DeepConf stopped early, and,
paired by question against majority vote and against IAS, the accuracy
difference and the token ratio (both with 95% paired bootstrap intervals). The
JSON is rewritten after every question; the PNG plots accuracy against tokens.

Run::

    pip install "langchain-adaptive[llamacpp,bench]"
    python examples/benchmarks/deepconf.py --questions 12 --out bench-results/deepconf.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _live_stats import bootstrap_ci, plot_accuracy_tokens

from langchain_adaptive import AdaptiveReasoningRunnable, Strategy
from langchain_adaptive.evaluation.cli import interleave_levels
from langchain_adaptive.evaluation.datasets import Problem, arithmetic_suite
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
from langchain_adaptive.strategies import AdaptiveBestOfN, BestOfN, DeepConf

MAJORITY = "majority vote"
IAS = "calibrated IAS"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--levels", default="add1,add2,sub2,mul1")
    parser.add_argument("--suite-seed", type=int, default=0)
    parser.add_argument("--skip-first", type=int, default=40, help="skip each level's first N")
    parser.add_argument("--cap", type=int, default=8, help="sample cap of every policy")
    parser.add_argument("--sample-tokens", type=int, default=96, help="token cap per sample")
    parser.add_argument("--warmup", type=int, default=4, help="DeepConf's N_init")
    parser.add_argument("--window", type=int, default=16, help="tokens per group")
    parser.add_argument("--tau", type=float, default=0.95, help="consensus share that stops")
    parser.add_argument("--target-confidence", type=float, default=0.9, help="IAS's C")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench-results/deepconf.json"))
    return parser.parse_args(argv)


def _problems(args: argparse.Namespace) -> list[Problem]:
    levels = tuple(level for level in args.levels.split(",") if level)
    per_level = -(-args.questions // len(levels))
    suite = arithmetic_suite(args.skip_first + per_level, seed=args.suite_seed, levels=levels)
    kept = [p for p in suite if int(p.id.rsplit("-", 1)[1]) >= args.skip_first]
    return interleave_levels(kept)[: args.questions]


def _policies(args: argparse.Namespace) -> dict[str, Strategy]:
    deepconf = {"warmup": args.warmup, "window": args.window, "consensus": args.tau}
    return {
        f"{MAJORITY} N={args.cap}": BestOfN(n=args.cap, selection="majority_vote"),
        "deepconf-low": DeepConf(mode="low", **deepconf),
        "deepconf-high": DeepConf(mode="high", **deepconf),
        IAS: AdaptiveBestOfN(selection="majority_vote"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every policy on every question; write the JSON (after each question) and the plot."""
    args = _parse_args(argv)
    problems = _problems(args)
    started = time.perf_counter()
    prm = ProbePRM(n_threads=args.threads)
    policies = _policies(args)
    load_start = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in policies}
    results: dict[str, Any] = {}
    for index, problem in enumerate(problems):
        for name, strategy in policies.items():
            # paired draws: every policy's k-th sample of this question has the same seed
            # (a new instance per policy; the loaded model is shared)
            chat = ChatLlamaCpp(
                seed=args.seed * 1_000_003 + index,
                n_threads=args.threads,
                temperature=args.temperature,
            )
            reasoner = AdaptiveReasoningRunnable(
                model=chat,
                prm=prm if strategy.requires_prm else None,
                strategy=strategy,
                max_samples=args.cap,
                max_tokens_per_sample=args.sample_tokens,
                target_confidence=args.target_confidence,
            )
            start = time.perf_counter()
            result = reasoner.invoke({"question": problem.question, "gold": problem.gold})
            rows[name].append(
                {
                    "id": problem.id,
                    "correct": bool(result.correct),
                    "answer": result.answer,
                    "gold": problem.gold,
                    "generated_tokens": result.budget.generated_tokens,
                    "samples": result.budget.samples_used,
                    "stopped_early": sum(
                        c.finish_reason == "confidence_stop" for c in result.candidates
                    ),
                    "stop_reason": result.stop_reason,
                    "seconds": time.perf_counter() - start,
                    "warnings": result.warnings,
                }
            )
        results = _report(args, chat.model_name, problems[: index + 1], rows, load_start, started)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"question {index + 1}/{len(problems)} done", flush=True)
    plot_accuracy_tokens(results, args.out.with_suffix(".png"), questions="arithmetic")
    _print_table(results)
    return results


def _report(
    args: argparse.Namespace,
    model: str,
    problems: list[Problem],
    rows: dict[str, list[dict[str, Any]]],
    load_start: tuple[float, float, float],
    started: float,
) -> dict[str, Any]:
    majority = f"{MAJORITY} N={args.cap}"
    summary: dict[str, dict[str, Any]] = {}
    for name, done in rows.items():
        correct = [float(r["correct"]) for r in done]
        entry: dict[str, Any] = {
            "accuracy": statistics.fmean(correct),
            "accuracy_ci95": bootstrap_ci(correct, args.replicates, seed=0),
            "mean_generated_tokens": statistics.fmean(r["generated_tokens"] for r in done),
            "mean_samples": statistics.fmean(r["samples"] for r in done),
            "stopped_early": sum(r["stopped_early"] for r in done),
            "mean_seconds": statistics.fmean(r["seconds"] for r in done),
            "stop_reasons": dict(Counter(r["stop_reason"] for r in done)),
        }
        for baseline, key in ((majority, "majority_vote"), (IAS, "calibrated_ias")):
            entry[f"vs_{key}"] = _paired(done, rows[baseline], args.replicates)
        summary[name] = entry
    return {
        "model": model,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(problems),
        "question_ids": [p.id for p in problems],
        "paired_draws": True,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_now": os.getloadavg(),
            "wall_seconds": time.perf_counter() - started,
        },
        "summary": summary,
        "per_question": rows,
    }


def _paired(
    rows: list[dict[str, Any]], baseline: list[dict[str, Any]], replicates: int
) -> dict[str, Any]:
    """Accuracy difference and token ratio against ``baseline``, resampling questions in pairs."""
    pairs = list(zip(rows, baseline, strict=True))
    rng = random.Random(1)
    diffs, ratios = [], []
    for _ in range(replicates):
        picked = rng.choices(pairs, k=len(pairs))
        diffs.append(statistics.fmean(float(a["correct"]) - float(b["correct"]) for a, b in picked))
        base = sum(b["generated_tokens"] for _, b in picked)
        ratios.append(sum(a["generated_tokens"] for a, _ in picked) / base if base else 1.0)
    tokens = sum(a["generated_tokens"] for a, _ in pairs)
    base_tokens = sum(b["generated_tokens"] for _, b in pairs)
    return {
        "accuracy_difference": statistics.fmean(
            float(a["correct"]) - float(b["correct"]) for a, b in pairs
        ),
        "accuracy_difference_ci95": _interval(diffs),
        "token_ratio": tokens / base_tokens if base_tokens else None,
        "token_ratio_ci95": _interval(ratios),
    }


def _interval(values: list[float]) -> list[float]:
    ordered = sorted(values)
    return [ordered[int(0.025 * len(ordered))], ordered[int(0.975 * len(ordered)) - 1]]


def _print_table(results: dict[str, Any]) -> None:
    print(f"{'policy':<20}{'acc':>6}{'95% CI':>15}{'tokens':>8}{'stopped':>8}"
          f"{'tokens / MV':>20}{'acc - MV':>22}{'tokens / IAS':>20}")  # fmt: skip
    for name, e in results["summary"].items():
        low, high = e["accuracy_ci95"]
        mv, ias = e["vs_majority_vote"], e["vs_calibrated_ias"]
        print(
            f"{name:<20}{e['accuracy']:>6.2f}{f'[{low:.2f}, {high:.2f}]':>15}"
            f"{e['mean_generated_tokens']:>8.0f}{e['stopped_early']:>8}"
            f"{_ratio(mv):>20}{_diff(mv):>22}{_ratio(ias):>20}"
        )


def _ratio(entry: dict[str, Any]) -> str:
    low, high = entry["token_ratio_ci95"]
    return f"{entry['token_ratio']:.2f} [{low:.2f},{high:.2f}]"


def _diff(entry: dict[str, Any]) -> str:
    low, high = entry["accuracy_difference_ci95"]
    return f"{entry['accuracy_difference']:+.2f} [{low:+.2f},{high:+.2f}]"


if __name__ == "__main__":
    main()
