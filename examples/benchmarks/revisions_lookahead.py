"""Sequential revisions and lookahead search against their parallel baselines, live, bounded.

Every policy answers the same questions of the seeded arithmetic suite (``--levels``,
default the two-step level ``steps2``, with ``--few-shot`` worked examples) with the
bundled SmolLM2-135M-Instruct and the bundled probe PRM, interleaved question by
question so every policy sees the same machine load:

- weighted best-of-N (``N`` whole samples, PRM-weighted vote): the parallel baseline;
- ``revise`` at each ``--ratios`` C:L (``C`` chains of a first answer and ``L``
  revisions, ``C * (1 + L) = N``), weighted vote over every attempt;
- beam search (``N`` paths, ``--beams`` K kept) and the same search with
  ``lookahead=1`` (each candidate step rolled out one greedy step before the PRM
  ranks it).

Per policy the JSON records accuracy (a bootstrap interval over questions),
generated and prompt tokens per question, and the paired accuracy difference
against its baseline (revisions against best-of-N, lookahead against beam search).
It also records what the chains did (how often a revision changed the answer,
turned a wrong answer right or a right one wrong) and what the rollouts cost.
The run starts no question that, as slow as the slowest so far, would end past
``--time-limit`` seconds (model loading comes on top), and rewrites
the JSON after every question, so it stays bounded on a small machine; the PNG
plots accuracy against generated tokens.

Run::

    pip install "langchain-adaptive[llamacpp,bench]"
    python examples/benchmarks/revisions_lookahead.py --questions 12 --time-limit 420 \\
        --out bench-results/revisions_lookahead.json
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

from _live_stats import Recorder, bootstrap_ci, plot_accuracy_tokens, suite_questions

from langchain_adaptive import (
    AdaptiveReasoningRunnable,
    BeamSearch,
    BestOfN,
    Strategy,
)
from langchain_adaptive.evaluation.calibrate_cli import few_shot_arguments, few_shot_examples
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
from langchain_adaptive.strategies import SequentialRevisions

BON = "weighted best-of-N"
BEAM = "beam search"
LOOKAHEAD = "lookahead 1"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=12, help="questions at most")
    parser.add_argument("--levels", default="steps2", help="comma-separated suite levels")
    parser.add_argument("--suite-seed", type=int, default=0, help="seed of the question suite")
    parser.add_argument(
        "--skip-first", type=int, default=40, help="leave out each level's first N questions"
    )
    parser.add_argument("--n", type=int, default=4, help="N: samples, attempts or paths")
    parser.add_argument(
        "--ratios", default="1:3,2:1", help="comma-separated C:L for revise (C * (1 + L) = N)"
    )
    parser.add_argument("--beams", type=int, default=2, help="K: beams kept by beam search")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--step-tokens", type=int, default=32, help="token cap per step")
    parser.add_argument("--sample-tokens", type=int, default=80, help="token cap per sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=420.0,
        help="seconds of questions: none starts that the slowest so far would carry past it",
    )
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=Path("bench-results/revisions_lookahead.json"))
    few_shot_arguments(parser)
    parser.set_defaults(few_shot=4)
    args = parser.parse_args(argv)
    try:
        args.ratios = [tuple(int(x) for x in r.split(":")) for r in args.ratios.split(",") if r]
    except ValueError:
        parser.error(f"--ratios takes C:L pairs, got {args.ratios!r}")
    bad = [f"{c}:{r}" for c, r in args.ratios if c < 1 or r < 0 or c * (1 + r) != args.n]
    if bad:
        parser.error(f"each C:L needs C * (1 + L) = --n ({args.n}); not {', '.join(bad)}")
    if args.beams < 1 or args.n % args.beams:
        parser.error(f"--beams must divide --n ({args.n})")
    return args


def _problems(args: argparse.Namespace) -> list[Problem]:
    return suite_questions(args.levels, args.questions, args.skip_first, args.suite_seed)


def _policies(args: argparse.Namespace) -> dict[str, tuple[Strategy, int, str]]:
    """Name -> (strategy, token cap per generation, baseline name)."""
    n = args.n
    beam = {"n_paths": n, "beams_kept": args.beams, "samples_per_beam": n // args.beams}
    policies: dict[str, tuple[Strategy, int, str]] = {
        BON: (BestOfN(n=n, selection="weighted_vote"), args.sample_tokens, BON)
    }
    for c, length in args.ratios:
        policies[f"revise {c}x(1+{length})"] = (
            SequentialRevisions(chains=c, revisions=length),
            args.sample_tokens,
            BON,
        )
    policies[BEAM] = (BeamSearch(**beam, max_steps=args.max_steps), args.step_tokens, BEAM)
    policies[LOOKAHEAD] = (
        BeamSearch(**beam, max_steps=args.max_steps, lookahead=1),
        args.step_tokens,
        BEAM,
    )
    return policies


def _row(problem: Problem, result: Any, recorder: Recorder, seconds: float) -> dict[str, Any]:
    candidates = result.candidates
    changes = []
    for event in recorder.revisions:
        before = candidates[event.shown[-1]]
        after = candidates[event.index]
        changes.append(
            {
                "changed": before.answer != after.answer,
                "fixed": not before.correct and bool(after.correct),
                "broke": bool(before.correct) and not after.correct,
            }
        )
    beams = result.beams or []
    rollout_tokens = sum(b.usage.output_tokens for b in beams if b.rollout_of is not None)
    return {
        "id": problem.id,
        "correct": bool(result.correct),
        "answer": result.answer,
        "gold": problem.gold,
        "generated_tokens": result.budget.generated_tokens,
        "prompt_tokens": result.budget.prompt_tokens,
        "samples": result.budget.samples_used,
        "stop_reason": result.stop_reason,
        "seconds": seconds,
        "attempts": [c.answer for c in candidates] if recorder.revisions else None,
        "revisions": changes,
        "rollouts": len(recorder.rollouts),
        "rollout_tokens": rollout_tokens,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every policy on every question until the time limit; write the JSON and plot."""
    args = _parse_args(argv)
    examples, problems = few_shot_examples(args, _problems(args))
    started = time.perf_counter()
    chat = ChatLlamaCpp(seed=args.seed, n_threads=args.threads)
    prm = ProbePRM(n_threads=args.threads)
    policies = _policies(args)
    load_start = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in policies}
    results: dict[str, Any] = {}
    slowest = 0.0  # the longest question so far: the next one may take as long
    for index, problem in enumerate(problems):
        begun = time.perf_counter()
        if begun - started + slowest > args.time_limit:
            print(f"time limit: stopping after {index} question(s)", flush=True)
            break
        for name, (strategy, tokens, _) in policies.items():
            reasoner = AdaptiveReasoningRunnable(
                model=chat,
                prm=prm,
                strategy=strategy,
                max_samples=args.n,
                max_tokens_per_sample=tokens,
                examples=examples,
            )
            recorder = Recorder()
            start = time.perf_counter()
            result = reasoner.invoke(
                {"question": problem.question, "gold": problem.gold},
                config={"callbacks": [recorder]},
            )
            rows[name].append(_row(problem, result, recorder, time.perf_counter() - start))
        results = _report(args, chat.model_name, problems[: index + 1], rows, policies)
        results["machine"] = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "load_average_start": load_start,
            "load_average_now": os.getloadavg(),
            "wall_seconds": time.perf_counter() - started,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        slowest = max(slowest, time.perf_counter() - begun)
        print(f"question {index + 1}/{len(problems)} done", flush=True)
    if results:
        plot_accuracy_tokens(
            results,
            args.out.with_suffix(".png"),
            questions="multi-step",
            marker=lambda name: (
                "o" if name.startswith("revise") else "^" if name == LOOKAHEAD else "s"
            ),
        )
    _print_table(results)
    return results


def _report(
    args: argparse.Namespace,
    model: str,
    problems: list[Problem],
    rows: dict[str, list[dict[str, Any]]],
    policies: dict[str, tuple[Strategy, int, str]],
) -> dict[str, Any]:
    summary = {}
    for name, done in rows.items():
        baseline = policies[name][2]
        summary[name] = {
            **_summarize(done, args.replicates),
            "baseline": baseline,
            "accuracy_minus_baseline_ci95": bootstrap_ci(
                [
                    float(a["correct"]) - float(b["correct"])
                    for a, b in zip(done, rows[baseline], strict=True)
                ],
                args.replicates,
                seed=1,
            ),
        }
        summary[name]["tokens_over_baseline"] = summary[name]["mean_generated_tokens"] / max(
            1e-9, statistics.fmean(r["generated_tokens"] for r in rows[baseline])
        )
    return {
        "model": model,
        "prm": "bundled probe",
        "questions": len(problems),
        "question_ids": [p.id for p in problems],
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "summary": summary,
        "per_question": rows,
    }


def _summarize(rows: list[dict[str, Any]], replicates: int) -> dict[str, Any]:
    correct = [float(r["correct"]) for r in rows]
    revisions = [c for r in rows for c in r["revisions"]]
    return {
        "accuracy": statistics.fmean(correct),
        "accuracy_ci95": bootstrap_ci(correct, replicates, seed=0),
        "mean_generated_tokens": statistics.fmean(r["generated_tokens"] for r in rows),
        "mean_prompt_tokens": statistics.fmean(r["prompt_tokens"] for r in rows),
        "mean_samples": statistics.fmean(r["samples"] for r in rows),
        "mean_seconds": statistics.fmean(r["seconds"] for r in rows),
        "stop_reasons": dict(Counter(r["stop_reason"] for r in rows)),
        "revisions": len(revisions),
        "revisions_changed_answer": sum(c["changed"] for c in revisions),
        "revisions_wrong_to_right": sum(c["fixed"] for c in revisions),
        "revisions_right_to_wrong": sum(c["broke"] for c in revisions),
        "mean_rollouts": statistics.fmean(r["rollouts"] for r in rows),
        "mean_rollout_tokens": statistics.fmean(r["rollout_tokens"] for r in rows),
    }


def _print_table(results: dict[str, Any]) -> None:
    if not results:
        print("no question finished within the time limit")
        return
    print(f"{'policy':<24}{'accuracy':>9}{'95% CI':>16}{'vs baseline':>18}{'tokens':>8}"
          f"{'prompt':>8}{'s/q':>7}")  # fmt: skip
    for name, e in results["summary"].items():
        low, high = e["accuracy_ci95"]
        d_low, d_high = e["accuracy_minus_baseline_ci95"]
        print(
            f"{name:<24}{e['accuracy']:>9.3f}{f'[{low:.2f}, {high:.2f}]':>16}"
            f"{f'[{d_low:+.2f}, {d_high:+.2f}]':>18}{e['mean_generated_tokens']:>8.0f}"
            f"{e['mean_prompt_tokens']:>8.0f}{e['mean_seconds']:>7.1f}"
        )


if __name__ == "__main__":
    main()
