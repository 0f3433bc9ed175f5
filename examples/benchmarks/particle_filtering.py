"""Particle filtering against beam search and weighted best-of-N, live, on multi-step arithmetic.

Every policy answers the same questions of the seeded arithmetic suite
(``--levels``, default the two-step level ``steps2``, with ``--few-shot`` worked
examples, which put it within the bundled model's reach) with the bundled
SmolLM2-135M-Instruct and the bundled probe PRM, interleaved question by question
so every policy sees the same machine load:

- particle filtering at each ``--particles`` N (Puri et al. 2025, seeded resampling);
- adaptive particle filtering (IAS's N from the probe's question estimate, capped
  at the largest N, and an early stop on the finished particles' vote share);
- beam search with N paths (``--beams`` K kept, N / K next steps each) and
  weighted best-of-N (whole samples, PRM-weighted vote), at the largest N.

The step-level policies share the per-step token cap and ``--max-steps``; best-of-N
samples get ``--sample-tokens``. Per policy the JSON records accuracy (a
bootstrap interval over questions), generated tokens per question, the paired
accuracy difference against beam search and against weighted best-of-N, and what
the particles did (resampling rounds, distinct partial solutions kept per round,
copies, final particles and their distinct answers, stop reasons). The tokens
ratio the paper reports (4-16x fewer rollouts at equal accuracy) is read off as
baseline tokens over the tokens of the cheapest particle filter at least as
accurate as the baseline, when one is. The JSON and the PNG (accuracy against
generated tokens) are rewritten after every question, so an interrupted run
keeps what it measured.

Run::

    pip install "langchain-adaptive[llamacpp,bench]"
    python examples/benchmarks/particle_filtering.py --questions 30 \\
        --out bench-results/particle_filtering.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

from _live_stats import (
    bootstrap_ci,
    paired_difference_ci,
    plot_accuracy_tokens,
    suite_questions,
)

from langchain_adaptive import (
    AdaptiveCallbackHandler,
    AdaptiveReasoningRunnable,
    BeamSearch,
    BestOfN,
    Strategy,
)
from langchain_adaptive.callbacks import BeamsPruned
from langchain_adaptive.evaluation.calibrate_cli import few_shot_arguments, few_shot_examples
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
from langchain_adaptive.strategies import AdaptiveParticleFiltering, ParticleFiltering

BEAM = "beam search"
BON = "weighted best-of-N"


class ResamplingRecorder(AdaptiveCallbackHandler):
    """Keeps every resampling (or pruning) round, to show what the particles did."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[BeamsPruned] = []

    def on_beams_pruned(self, event: BeamsPruned, *, run_id: UUID, **kwargs: Any) -> None:
        self.rounds.append(event)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=30, help="questions in all")
    parser.add_argument("--levels", default="steps2", help="comma-separated suite levels")
    parser.add_argument("--suite-seed", type=int, default=0, help="seed of the question suite")
    parser.add_argument(
        "--skip-first", type=int, default=40, help="leave out each level's first N questions"
    )
    parser.add_argument(
        "--particles", default="2,4", help="comma-separated N for particle filtering"
    )
    parser.add_argument("--beams", type=int, default=2, help="K: beams kept by beam search")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--step-tokens", type=int, default=40, help="token cap per step")
    parser.add_argument("--sample-tokens", type=int, default=120, help="token cap per sample")
    parser.add_argument("--target-confidence", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="sampling and resampling seed")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=Path("bench-results/particle_filtering.json"))
    few_shot_arguments(parser)
    parser.set_defaults(few_shot=4)
    args = parser.parse_args(argv)
    try:
        args.particles = sorted({int(n) for n in args.particles.split(",") if n})
    except ValueError:
        parser.error(f"--particles takes comma-separated integers, got {args.particles!r}")
    if not args.particles or min(args.particles) < 1:
        parser.error("--particles needs at least one N >= 1")
    if args.beams < 1 or max(args.particles) % args.beams:
        parser.error(f"--beams must divide the largest N ({max(args.particles)})")
    return args


def _problems(args: argparse.Namespace) -> list[Problem]:
    return suite_questions(args.levels, args.questions, args.skip_first, args.suite_seed)


def _policies(args: argparse.Namespace) -> dict[str, tuple[Strategy, int]]:
    """Name -> (strategy, token cap per generation)."""
    n = max(args.particles)
    steps = {"max_steps": args.max_steps}
    policies: dict[str, tuple[Strategy, int]] = {
        f"particle filtering N={k}": (
            ParticleFiltering(n_particles=k, seed=args.seed, **steps),
            args.step_tokens,
        )
        for k in args.particles
    }
    policies[f"adaptive particle filtering N<={n}"] = (
        AdaptiveParticleFiltering(n_particles=n, seed=args.seed, **steps),
        args.step_tokens,
    )
    policies[BEAM] = (
        BeamSearch(n_paths=n, beams_kept=args.beams, samples_per_beam=n // args.beams, **steps),
        args.step_tokens,
    )
    policies[BON] = (BestOfN(n=n, selection="weighted_vote"), args.sample_tokens)
    return policies


def _row(problem: Problem, result: Any, rounds: list[BeamsPruned], seconds: float) -> dict:
    beams = result.beams or []
    resamplings = [r for r in rounds if r.m == 1 and r.kept]  # particle rounds, not the stop
    final = [c.answer for c in result.candidates]
    return {
        "id": problem.id,
        "correct": bool(result.correct),
        "answer": result.answer,
        "gold": problem.gold,
        "generated_tokens": result.budget.generated_tokens,
        "decided": result.budget.decided_samples,
        "paths": result.budget.samples_used,
        "steps": len(beams) if beams else None,
        "stop_reason": result.stop_reason,
        "confidence": result.confidence,
        "seconds": seconds,
        "resamplings": [
            {
                "particles": len(r.kept),
                "distinct": len(set(r.kept)),
                "most_copies": max(Counter(r.kept).values()),
                "dropped": len(r.dropped),
            }
            for r in resamplings
        ],
        "final_distinct_answers": len({a for a in final if a is not None}),
        "final_leader_share": (
            max(Counter(a for a in final if a is not None).values()) / len(final)
            if any(a is not None for a in final)
            else 0.0
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every policy on every question; write the JSON (after each question) and the plot."""
    args = _parse_args(argv)
    examples, problems = few_shot_examples(args, _problems(args))
    started = time.perf_counter()
    chat = ChatLlamaCpp(seed=args.seed, n_threads=args.threads)
    prm = ProbePRM(n_threads=args.threads)
    policies = _policies(args)
    load_start = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in policies}
    results: dict[str, Any] = {}
    for index, problem in enumerate(problems):
        for name, (strategy, tokens) in policies.items():
            reasoner = AdaptiveReasoningRunnable(
                model=chat,
                prm=prm,
                strategy=strategy,
                max_samples=max(args.particles),
                max_tokens_per_sample=tokens,
                target_confidence=args.target_confidence,
                examples=examples,
            )
            recorder = ResamplingRecorder()
            start = time.perf_counter()
            result = reasoner.invoke(
                {"question": problem.question, "gold": problem.gold},
                config={"callbacks": [recorder]},
            )
            rows[name].append(_row(problem, result, recorder.rounds, time.perf_counter() - start))
        results = _report(args, chat.model_name, problems[: index + 1], rows, load_start, started)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        plot_accuracy_tokens(
            results,
            args.out.with_suffix(".png"),
            questions="multi-step",
            marker=lambda name: "o" if "particle" in name else "s",
        )
        print(f"question {index + 1}/{len(problems)} done", flush=True)
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
    done = {name: r[: len(problems)] for name, r in rows.items()}
    summary = {name: _summarize(r, args.replicates) for name, r in done.items()}
    for name, entry in summary.items():
        for baseline in (BEAM, BON):
            key = "beam_search" if baseline == BEAM else "weighted_best_of_n"
            entry[f"accuracy_minus_{key}_ci95"] = paired_difference_ci(
                done[name], done[baseline], args.replicates
            )
            entry[f"tokens_over_{key}"] = (
                entry["mean_generated_tokens"] / summary[baseline]["mean_generated_tokens"]
            )
    return {
        "model": model,
        "prm": "bundled probe",
        "questions": len(problems),
        "question_ids": [p.id for p in problems],
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_now": os.getloadavg(),
            "wall_seconds": time.perf_counter() - started,
        },
        "summary": summary,
        "token_ratio_at_equal_accuracy": _ratios(summary),
        "per_question": done,
    }


def _ratios(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Baseline tokens over those of the cheapest particle filter at least as accurate."""
    filters = [
        (entry["mean_generated_tokens"], entry["accuracy"], name)
        for name, entry in summary.items()
        if name.startswith("particle filtering")
    ]
    out: dict[str, Any] = {}
    for baseline in (BEAM, BON):
        target = summary[baseline]["accuracy"]
        matching = sorted(f for f in filters if f[1] >= target)
        if not matching:
            out[baseline] = {"ratio": None, "note": "no particle filter reached its accuracy"}
            continue
        tokens, accuracy, name = matching[0]
        out[baseline] = {
            "ratio": summary[baseline]["mean_generated_tokens"] / tokens,
            "particle_filter": name,
            "accuracy": accuracy,
            "baseline_accuracy": target,
        }
    return out


def _summarize(rows: list[dict[str, Any]], replicates: int) -> dict[str, Any]:
    correct = [float(r["correct"]) for r in rows]
    rounds = [s for r in rows for s in r["resamplings"]]
    return {
        "accuracy": statistics.fmean(correct),
        "accuracy_ci95": bootstrap_ci(correct, replicates, seed=0),
        "mean_generated_tokens": statistics.fmean(r["generated_tokens"] for r in rows),
        "mean_decided": statistics.fmean(r["decided"] for r in rows),
        "mean_paths": statistics.fmean(r["paths"] for r in rows),
        "mean_seconds": statistics.fmean(r["seconds"] for r in rows),
        "stop_reasons": dict(Counter(r["stop_reason"] for r in rows)),
        "rounds": len(rounds),
        "mean_distinct_share": (
            statistics.fmean(s["distinct"] / s["particles"] for s in rounds) if rounds else None
        ),
        "mean_most_copies": statistics.fmean(s["most_copies"] for s in rounds) if rounds else None,
        "mean_final_distinct_answers": statistics.fmean(r["final_distinct_answers"] for r in rows),
        "mean_final_leader_share": statistics.fmean(r["final_leader_share"] for r in rows),
    }


def _print_table(results: dict[str, Any]) -> None:
    print(f"{'policy':<38}{'accuracy':>9}{'95% CI':>16}{'vs beam':>18}{'vs BoN':>18}"
          f"{'tokens':>8}{'paths':>7}{'s/q':>7}")  # fmt: skip
    for name, e in results["summary"].items():
        low, high = e["accuracy_ci95"]
        b_low, b_high = e["accuracy_minus_beam_search_ci95"]
        w_low, w_high = e["accuracy_minus_weighted_best_of_n_ci95"]
        print(
            f"{name:<38}{e['accuracy']:>9.3f}{f'[{low:.2f}, {high:.2f}]':>16}"
            f"{f'[{b_low:+.2f}, {b_high:+.2f}]':>18}{f'[{w_low:+.2f}, {w_high:+.2f}]':>18}"
            f"{e['mean_generated_tokens']:>8.0f}{e['mean_paths']:>7.1f}{e['mean_seconds']:>7.1f}"
        )
    print("tokens ratio at equal accuracy:", json.dumps(results["token_ratio_at_equal_accuracy"]))


if __name__ == "__main__":
    main()
