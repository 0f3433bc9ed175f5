"""Compute-optimal choice over every family against parallel families only, live, bounded.

Every policy answers the same questions of the seeded arithmetic suite (``--levels``,
default the two-step level ``steps2``, with ``--few-shot`` worked examples) with the
bundled SmolLM2-135M-Instruct and the bundled probe PRM, interleaved question by
question so every policy sees the same machine load. Live, per question:

- a pool of ``--pool`` whole samples (PRM-scored); parallel best-of-N (majority and
  weighted, ``N`` up to the pool) and IAS at several targets are *replayed* from it
  (the library's replay, recorded sample order), as ``bench replay`` does;
- ``revise`` at each ``--ratios`` C:L (``C`` chains of a first answer and ``L`` revisions,
  ``N = C * (1 + L)`` attempts);
- beam search (``--n`` paths, ``--beams`` kept) with lookahead 0 and 1, and with
  ``--wide-beams`` kept (``2 * --n`` paths) when given;
- particle filtering at each ``--particles`` N.

Per question and policy one record (correct, generated tokens, the probe's question
estimate, and the trace: every sample, step with its score, revision and rollout) is
appended to ``<out>.records.jsonl`` as soon as it exists, so a crash or the
``--max-minutes`` cap loses nothing and a rerun resumes where it stopped. The report
(``--report-only`` redoes it from the records) fits compute-optimal policies over
token budgets with 2-fold cross-validation (bins of the question estimate x budget
levels fitted on one half of the questions, evaluated on the other, then swapped):
one over every family, one over the parallel families only, and compares both with
the best single policy within each budget (chosen on all questions, which favours it)
by paired bootstrap. It writes the JSON, the PNG (accuracy against generated tokens
per question, every family a series and both compute-optimal curves) and a markdown
table.

Run::

    pip install "langchain-adaptive[llamacpp,bench]"
    python examples/benchmarks/compute_optimal_all.py --questions 24 --max-minutes 60 \\
        --out bench-results/compute_optimal_all.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from _live_stats import Recorder, suite_questions

from langchain_adaptive import (
    AdaptiveReasoningRunnable,
    BeamSearch,
    BestOfN,
    Strategy,
)
from langchain_adaptive.evaluation.calibrate_cli import few_shot_arguments, few_shot_examples
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.strategies import ParticleFiltering, SequentialRevisions

ESTIMATOR = "probe"
POOL = "pool"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=24, help="questions at most")
    parser.add_argument("--levels", default="steps2", help="comma-separated suite levels")
    parser.add_argument("--suite-seed", type=int, default=0, help="seed of the question suite")
    parser.add_argument(
        "--skip-first", type=int, default=40, help="leave out each level's first N questions"
    )
    parser.add_argument("--pool", type=int, default=8, help="whole samples drawn per question")
    parser.add_argument("--n", type=int, default=4, help="N: paths of beam search")
    parser.add_argument(
        "--ratios",
        default="1:1,2:1",
        help="comma-separated C:L for revise: C chains of 1 + L attempts (N = C * (1 + L))",
    )
    parser.add_argument("--beams", type=int, default=2, help="K: beams kept by beam search")
    parser.add_argument(
        "--wide-beams", type=int, default=0, help="also beam search with 2N paths, K kept (0: no)"
    )
    parser.add_argument("--lookaheads", default="0,1", help="comma-separated beam lookaheads")
    parser.add_argument("--particles", default="2,4", help="comma-separated particle counts")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--step-tokens", type=int, default=32, help="token cap per step")
    parser.add_argument("--sample-tokens", type=int, default=80, help="token cap per sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="sampling and resampling seed")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=60.0,
        help="wall-clock cap: no policy run starts after it (model loading included)",
    )
    parser.add_argument("--bins", type=int, default=2, help="difficulty bins of the fit")
    parser.add_argument(
        "--budgets", default="", help="token budgets (comma-separated; default: a grid)"
    )
    parser.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--report-only", action="store_true", help="no model: redo the report")
    parser.add_argument("--out", type=Path, default=Path("bench-results/compute_optimal_all.json"))
    few_shot_arguments(parser)
    parser.set_defaults(few_shot=4)
    args = parser.parse_args(argv)
    try:
        args.ratios = [tuple(int(x) for x in r.split(":")) for r in args.ratios.split(",") if r]
        args.lookaheads = [int(x) for x in args.lookaheads.split(",") if x]
        args.particles = [int(x) for x in args.particles.split(",") if x]
        args.budgets = [float(x) for x in args.budgets.split(",") if x]
    except ValueError as error:
        parser.error(f"bad list: {error}")
    bad = [f"{c}:{r}" for c, r in args.ratios if c < 1 or r < 0]
    if bad:
        parser.error(f"each C:L needs C >= 1 and L >= 0; not {', '.join(bad)}")
    if args.beams < 1 or args.n % args.beams:
        parser.error(f"--beams must divide --n ({args.n})")
    if args.wide_beams and (2 * args.n) % args.wide_beams:
        parser.error(f"--wide-beams must divide 2 * --n ({2 * args.n})")
    return args


def _problems(args: argparse.Namespace) -> list[Problem]:
    return suite_questions(args.levels, args.questions, args.skip_first, args.suite_seed)


def live_policies(args: argparse.Namespace) -> dict[str, tuple[str, Strategy, int, int]]:
    """Name -> (family, strategy, token cap per generation, sample cap), run live."""
    n = args.n
    policies: dict[str, tuple[str, Strategy, int, int]] = {
        POOL: (
            "pool",
            BestOfN(n=args.pool, selection="weighted_vote"),
            args.sample_tokens,
            args.pool,
        )
    }
    for c, length in args.ratios:
        policies[f"revise {c}x(1+{length})"] = (
            "revise",
            SequentialRevisions(chains=c, revisions=length),
            args.sample_tokens,
            c * (1 + length),
        )
    widths = [(n, args.beams)] + ([(2 * n, args.wide_beams)] if args.wide_beams else [])
    for paths, kept in widths:
        for lookahead in args.lookaheads:
            policies[f"beam N={paths} K={kept} la={lookahead}"] = (
                "beam search" if lookahead == 0 else "lookahead",
                BeamSearch(
                    n_paths=paths,
                    beams_kept=kept,
                    samples_per_beam=paths // kept,
                    max_steps=args.max_steps,
                    lookahead=lookahead,
                ),
                args.step_tokens,
                paths,
            )
    for k in args.particles:
        policies[f"particle filtering N={k}"] = (
            "particle filtering",
            ParticleFiltering(n_particles=k, seed=args.seed, max_steps=args.max_steps),
            args.step_tokens,
            k,
        )
    return policies


def _estimate(estimate: Any) -> dict[str, Any]:
    return estimate.model_dump(mode="json")


def _trace(result: Any, recorder: Recorder) -> dict[str, Any]:
    """Everything a later run needs to replay what this run did without the model."""
    return {
        "candidates": [
            {
                "text": c.text,
                "steps": c.steps,
                "answer": c.answer,
                "correct": c.correct,
                "score": c.score,
                "output_tokens": c.usage.output_tokens,
                "input_tokens": c.usage.input_tokens,
                "finish_reason": c.finish_reason,
                "step_estimates": [_estimate(e) for e in c.step_estimates or []],
            }
            for c in result.candidates
        ],
        "beams": [
            {
                "id": b.id,
                "parent_id": b.parent_id,
                "steps": b.steps,
                "step_estimates": [_estimate(e) for e in b.step_estimates or []],
                "finished": b.finished,
                "pruned": b.pruned,
                "answer": b.answer,
                "output_tokens": b.usage.output_tokens,
                "rollout_of": b.rollout_of,
                "lookahead": _estimate(b.lookahead) if b.lookahead is not None else None,
            }
            for b in result.beams or []
        ],
        "revisions": [{"index": e.index, "shown": list(e.shown)} for e in recorder.revisions],
        "rollouts": len(recorder.rollouts),
    }


def _record(
    problem: Problem,
    name: str,
    family: str,
    strategy: Strategy,
    caps: tuple[int, int],
    estimate: Any,
    result: Any,
    recorder: Recorder,
    seconds: float,
) -> dict[str, Any]:
    return {
        "question_id": problem.id,
        "policy": name,
        "family": family,
        "strategy": strategy.name,
        "settings": strategy.model_dump(mode="json", exclude_defaults=True),
        "target_confidence": 0.9,
        "max_tokens_per_sample": caps[0],
        "max_samples": caps[1],
        "correct": bool(result.correct),
        "generated_tokens": result.budget.generated_tokens,
        "prompt_tokens": result.budget.prompt_tokens,
        "samples": result.budget.samples_used,
        "question_estimate": _estimate(estimate),
        "answer": result.answer,
        "gold": problem.gold,
        "question": problem.question,
        "stop_reason": result.stop_reason,
        "seconds": seconds,
        "source": "live",
        "trace": _trace(result, recorder),
    }


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash: the run redoes it
            continue
    return rows


def run_live(args: argparse.Namespace, records: Path, started: float) -> dict[str, Any]:
    """Run every live policy on every question not yet recorded, until the cap."""
    from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM

    examples, problems = few_shot_examples(args, _problems(args))
    done = {(r["question_id"], r["policy"]) for r in _read_records(records)}
    policies = live_policies(args)
    deadline = started + 60.0 * args.max_minutes
    chat = ChatLlamaCpp(seed=args.seed, n_threads=args.threads)
    prm = ProbePRM(n_threads=args.threads)
    load = {"load_average_start": os.getloadavg()}
    records.parent.mkdir(parents=True, exist_ok=True)
    stopped = None
    with records.open("a", encoding="utf-8") as sink:
        for index, problem in enumerate(problems):
            todo = [name for name in policies if (problem.id, name) not in done]
            if not todo:
                continue
            estimate = prm.estimate_question(problem.question)
            for name in todo:
                if time.perf_counter() > deadline:
                    stopped = f"--max-minutes {args.max_minutes} reached at question {index + 1}"
                    break
                family, strategy, tokens, samples = policies[name]
                reasoner = AdaptiveReasoningRunnable(
                    model=chat,
                    prm=prm,
                    strategy=strategy,
                    max_samples=samples,
                    max_tokens_per_sample=tokens,
                    examples=examples,
                )
                recorder = Recorder()
                start = time.perf_counter()
                result = reasoner.invoke(
                    {"question": problem.question, "gold": problem.gold},
                    config={"callbacks": [recorder]},
                )
                row = _record(
                    problem,
                    name,
                    family,
                    strategy,
                    (tokens, samples),
                    estimate,
                    result,
                    recorder,
                    time.perf_counter() - start,
                )
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                print(
                    f"q{index + 1} {name}: {'right' if row['correct'] else 'wrong'}, "
                    f"{row['generated_tokens']} tokens, {row['seconds']:.1f} s",
                    flush=True,
                )
            if stopped:
                print(stopped, flush=True)
                break
    load["load_average_end"] = os.getloadavg()
    return {"stopped": stopped, "model": chat.model_name, **load}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the live policies, then write the report."""
    args = _parse_args(argv)
    started = time.perf_counter()
    records = args.out.with_suffix(".records.jsonl")
    live: dict[str, Any] = {}
    if not args.report_only:
        live = run_live(args, records, started)
    from _compute_optimal_report import report

    results = report(args, _read_records(records), live_policies(args))
    results["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "wall_seconds_this_call": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **live,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
