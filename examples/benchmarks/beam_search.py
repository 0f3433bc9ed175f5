"""Step-level search on multi-step arithmetic: fixed beam search, IAS-of-K, IAS-of-M, best-of-N.

Every policy answers the same questions of the two- and three-step levels of
the seeded arithmetic suite (``steps2``, ``steps3``; ``--levels`` picks others) with the bundled
SmolLM2-135M-Instruct and a PRM (``--prm``: a probe, the bundled head or ``--probe-head``;
or the policy's token confidence through a ``--calibrator`` fitted on ``calibrate rescore``
records), interleaved
question by question so every policy sees the same machine load. ``--few-shot K``
shows K worked examples a level before each question, which puts two-step
questions within the bundled model's reach; ``--skip-first N`` leaves out the
questions a head was trained on. Per policy the JSON records accuracy (with a
bootstrap interval over questions), generated tokens, reasoning steps and wall
time per question, every selection round's K and M and whether IAS floored
it, and the tokens ratio against fixed beam search; the PNG
plots accuracy against generated tokens.

Run::

    pip install "langchain-adaptive[llamacpp,bench]"
    python examples/benchmarks/beam_search.py --per-level 6 \\
        --out bench-results/beam_search.json
    # few-shot, with a head trained on the first 40 questions of the level:
    python examples/benchmarks/beam_search.py --levels steps2 --suite-seed 0 \\
        --skip-first 40 --per-level 30 --few-shot 4 \\
        --probe-head bench-results/calibration/steps2-fewshot/probe \\
        --out bench-results/beam_search_steps2_fewshot.json
    # the same questions, scored by the policy's token confidence:
    python examples/benchmarks/beam_search.py --levels steps2 --suite-seed 0 \\
        --skip-first 40 --per-level 30 --few-shot 4 --prm confidence \\
        --calibrator bench-results/calibration/steps2-fewshot-confidence/quantile \\
        --out bench-results/beam_search_steps2_fewshot_confidence.json
    # add the IAS variants that drop to a floor where no beams can reach C:
    python examples/benchmarks/beam_search.py ... --floor --floor-beams 1 --floor-samples 2
    # only some policies (fixed beam search always runs: every ratio is against it):
    python examples/benchmarks/beam_search.py ... --policies ias-km-floor --floor-samples 1
    # IAS variants that also draw the first steps in scored rounds (first_round="sequential"):
    python examples/benchmarks/beam_search.py ... --policies ias-m-seq,ias-km-seq
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from _live_stats import bootstrap_ci, paired_difference_ci, plot_accuracy_tokens

from langchain_adaptive import (
    AdaptiveCallbackHandler,
    AdaptiveReasoningRunnable,
    BeamSearch,
    BestOfN,
    CalibratedPRM,
    ProcessRewardModel,
    Strategy,
)
from langchain_adaptive.calibration import Calibrator
from langchain_adaptive.callbacks import BeamsPruned
from langchain_adaptive.evaluation.calibrate_cli import few_shot_arguments, few_shot_examples
from langchain_adaptive.evaluation.datasets import MULTI_STEP_LEVELS, Problem, arithmetic_suite
from langchain_adaptive.inputs import FewShotExample
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM, TokenConfidencePRM

POLICY_KEYS = (
    "bon-majority",
    "bon-prm",
    "beam",
    "ias-k",
    "ias-m",
    "ias-km",
    "ias-k-floor",
    "ias-m-floor",
    "ias-km-floor",
    "beam-seq",
    "ias-k-seq",
    "ias-m-seq",
    "ias-km-seq",
)
"""``--policies`` keys, in the order of the policies' table rows."""


class SelectionRecorder(AdaptiveCallbackHandler):
    """Keeps every selection round's widths, to show what each IAS variant decided."""

    def __init__(self) -> None:
        super().__init__()
        self.selections: list[BeamsPruned] = []

    def on_beams_pruned(self, event: BeamsPruned, *, run_id: UUID, **kwargs: Any) -> None:
        self.selections.append(event)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-level", type=int, default=6, help="questions per level")
    parser.add_argument(
        "--levels",
        default=",".join(MULTI_STEP_LEVELS),
        help="comma-separated levels of the seeded arithmetic suite",
    )
    parser.add_argument("--suite-seed", type=int, default=7, help="seed of the question suite")
    parser.add_argument(
        "--skip-first",
        type=int,
        default=0,
        metavar="N",
        help="leave out each level's first N questions (those a probe head was trained on "
        "with calibrate collect --per-level N at the same seed)",
    )
    parser.add_argument(
        "--prm",
        choices=["probe", "confidence"],
        default="probe",
        help="probe: ProbePRM; confidence: TokenConfidencePRM on the policy",
    )
    parser.add_argument(
        "--probe-head", default=None, help="probe head directory (default: the bundled one)"
    )
    parser.add_argument(
        "--calibrator",
        default=None,
        help="saved calibrator the confidence PRM's scores pass through (calibrate fit)",
    )
    parser.add_argument("--paths", type=int, default=8, help="N: paths (and best-of-N samples)")
    parser.add_argument("--beams", type=int, default=2, help="K: beams kept at most")
    parser.add_argument("--per-beam", type=int, default=4, help="M: next steps per beam at most")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--step-tokens", type=int, default=48, help="token cap per step")
    parser.add_argument("--sample-tokens", type=int, default=160, help="token cap per BoN sample")
    parser.add_argument("--target-confidence", type=float, default=0.9)
    parser.add_argument(
        "--floor",
        action="store_true",
        help='also run the IAS variants with unreachable="floor": where no beams reach C, '
        "each adaptive width drops to its floor",
    )
    parser.add_argument("--floor-beams", type=int, default=1, help="K at a floored selection")
    parser.add_argument(
        "--floor-samples", type=int, default=2, help="M per beam at a floored selection"
    )
    parser.add_argument(
        "--sequential-first",
        action="store_true",
        help='also run fixed beam search and the IAS variants with first_round="sequential": '
        "the first steps drawn in scored rounds until they reach C",
    )
    parser.add_argument(
        "--first-round-size", type=int, default=2, help="first steps a sequential round draws"
    )
    parser.add_argument(
        "--policies",
        default=None,
        help="comma-separated policy keys to run (default: all; fixed beam search always runs, "
        f"every ratio is against it): {', '.join(POLICY_KEYS)}",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=Path("bench-results/beam_search.json"))
    few_shot_arguments(parser)
    args = parser.parse_args(argv)
    if args.calibrator is not None and args.prm != "confidence":
        parser.error("--calibrator calibrates the confidence PRM: pass --prm confidence")
    if args.policies is not None:
        keys = {key for key in args.policies.split(",") if key}
        unknown = sorted(keys - set(POLICY_KEYS))
        if unknown:
            parser.error(f"unknown --policies {unknown}: choose from {', '.join(POLICY_KEYS)}")
        if any(key.endswith("-floor") for key in keys):
            args.floor = True
        if any(key.endswith("-seq") for key in keys):
            args.sequential_first = True
        args.policies = sorted(keys | {"beam"})  # a list, for the JSON settings
    return args


def _levels(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(level for level in args.levels.split(",") if level)


def _problems(args: argparse.Namespace) -> list[Problem]:
    """Each level's questions after the first ``--skip-first`` (the suite extends a level
    without changing its first questions, so the two sets never share one)."""
    suite = arithmetic_suite(
        args.skip_first + args.per_level, seed=args.suite_seed, levels=_levels(args)
    )
    return [p for p in suite if int(p.id.rsplit("-", 1)[1]) >= args.skip_first]


def _prm(
    args: argparse.Namespace, chat: ChatLlamaCpp, examples: list[FewShotExample]
) -> ProcessRewardModel:
    if args.prm == "probe":
        return ProbePRM(n_threads=args.threads, head_path=args.probe_head)
    confidence = TokenConfidencePRM(policy=chat, examples=examples)
    if args.calibrator is None:
        return confidence
    return CalibratedPRM(prm=confidence, calibrator=Calibrator.load(args.calibrator))


def _policies(args: argparse.Namespace) -> dict[str, tuple[Strategy, int]]:
    """Name -> (strategy, token cap per generation), for the ``--policies`` chosen."""
    beam = {
        "n_paths": args.paths,
        "beams_kept": args.beams,
        "samples_per_beam": args.per_beam,
        "max_steps": args.max_steps,
    }
    adaptive = {
        "k": ("IAS-of-K", {"adaptive_k": True}),
        "m": ("IAS-of-M", {"adaptive_m": True}),
        "km": ("IAS-of-K+M", {"adaptive_k": True, "adaptive_m": True}),
    }
    floor = {
        "unreachable": "floor",
        "floor_beams": args.floor_beams,
        "floor_samples_per_beam": args.floor_samples,
    }
    policies: dict[str, tuple[str, Strategy, int]] = {
        "bon-majority": (
            f"best-of-{args.paths} (majority)",
            BestOfN(n=args.paths, selection="majority_vote"),
            args.sample_tokens,
        ),
        "bon-prm": (
            f"best-of-{args.paths} ({args.prm})",
            BestOfN(n=args.paths, selection="prm"),
            args.sample_tokens,
        ),
        "beam": ("beam search", BeamSearch(**beam), args.step_tokens),
    }
    for key, (name, widths) in adaptive.items():
        policies[f"ias-{key}"] = (name, BeamSearch(**beam, **widths), args.step_tokens)
    if args.floor:
        for key, (name, widths) in adaptive.items():
            strategy = BeamSearch(**beam, **widths, **floor)
            policies[f"ias-{key}-floor"] = (f"{name}, floor", strategy, args.step_tokens)
    if args.sequential_first:
        rounds = {"first_round": "sequential", "first_round_size": args.first_round_size}
        policies["beam-seq"] = (
            "beam search, seq. 1st",
            BeamSearch(**beam, **rounds),
            args.step_tokens,
        )
        for key, (name, widths) in adaptive.items():
            strategy = BeamSearch(**beam, **widths, **rounds)
            policies[f"ias-{key}-seq"] = (f"{name}, seq. 1st", strategy, args.step_tokens)
    chosen = set(policies if args.policies is None else args.policies)
    return {
        name: (strategy, tokens)
        for key, (name, strategy, tokens) in policies.items()
        if key in chosen
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every policy on every question; write the JSON and the plot; print a table."""
    args = _parse_args(argv)
    examples, problems = few_shot_examples(args, _problems(args))
    chat = ChatLlamaCpp(seed=args.seed, n_threads=args.threads)
    prm = _prm(args, chat, examples)
    policies = _policies(args)
    load_start = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in policies}
    for index, problem in enumerate(problems):
        for name, (strategy, tokens) in policies.items():
            reasoner = AdaptiveReasoningRunnable(
                model=chat,
                prm=prm,
                strategy=strategy,
                max_samples=args.paths,
                max_tokens_per_sample=tokens,
                target_confidence=args.target_confidence,
                examples=examples,
            )
            recorder = SelectionRecorder()
            start = time.perf_counter()
            result = reasoner.invoke(
                {"question": problem.question, "gold": problem.gold},
                config={"callbacks": [recorder]},
            )
            seconds = time.perf_counter() - start
            beams = result.beams or []
            rows[name].append(
                {
                    "id": problem.id,
                    "correct": bool(result.correct),
                    "answer": result.answer,
                    "gold": problem.gold,
                    "generated_tokens": result.budget.generated_tokens,
                    "steps": sum(len(b.steps) for b in beams) if beams else None,
                    "paths": result.budget.samples_used,
                    "first_steps": sum(b.parent_id is None for b in beams) if beams else None,
                    "seconds": seconds,
                    "stop_reason": result.stop_reason,
                    "selections": [
                        {"k": e.k, "m": e.m, "floored": e.floored} for e in recorder.selections
                    ],
                }
            )
        print(f"question {index + 1}/{len(problems)} done", flush=True)

    summary = {name: _summarize(rows[name], args.replicates) for name in policies}
    fixed = summary["beam search"]["mean_generated_tokens"]
    for name, entry in summary.items():
        entry["tokens_over_fixed_beam_search"] = entry["mean_generated_tokens"] / fixed
        entry["accuracy_minus_fixed_beam_search_ci95"] = paired_difference_ci(
            rows[name], rows["beam search"], args.replicates
        )
    results: dict[str, Any] = {
        "model": chat.model_name,
        "prm": _prm_name(args),
        "questions": len(problems),
        "few_shot_examples": [e.question for e in examples],
        "levels": list(_levels(args)),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
        },
        "summary": summary,
        "per_question": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    plot_accuracy_tokens(results, args.out.with_suffix(".png"), questions="multi-step")
    _print_table(results)
    return results


def _prm_name(args: argparse.Namespace) -> str:
    if args.prm == "probe":
        return args.probe_head or "bundled probe"
    return f"token confidence, calibrator {args.calibrator or 'none (raw)'}"


def _summarize(rows: list[dict[str, Any]], replicates: int) -> dict[str, Any]:
    correct = [float(r["correct"]) for r in rows]
    steps = [r["steps"] for r in rows if r["steps"] is not None]
    first = [r["first_steps"] for r in rows if r["first_steps"] is not None]
    # a round with no paths left keeps nothing (k = 0): not a width decision
    selections = [s for r in rows for s in r["selections"] if s["k"] > 0]
    return {
        "accuracy": statistics.fmean(correct),
        "accuracy_ci95": bootstrap_ci(correct, replicates, seed=0),
        "mean_generated_tokens": statistics.fmean(r["generated_tokens"] for r in rows),
        "mean_steps": statistics.fmean(steps) if steps else None,
        "mean_paths": statistics.fmean(r["paths"] for r in rows),
        "mean_first_steps": statistics.fmean(first) if first else None,
        "mean_seconds": statistics.fmean(r["seconds"] for r in rows),
        "selections": len(selections),
        "floored_share": (
            sum(s["floored"] for s in selections) / len(selections) if selections else None
        ),
        "mean_beams_kept": statistics.fmean(s["k"] for s in selections) if selections else None,
        "mean_samples_per_beam": (
            statistics.fmean(s["m"] for s in selections) if selections else None
        ),
    }


def _print_table(results: dict[str, Any]) -> None:
    print(f"{'policy':<24}{'accuracy':>9}{'95% CI':>16}{'vs beam [95% CI]':>20}{'tokens':>8}"
          f"{'ratio':>7}{'steps':>7}{'1st':>5}{'paths':>7}{'K':>5}{'M':>5}{'floored':>8}"
          f"{'s/q':>7}")  # fmt: skip
    for name, e in results["summary"].items():
        low, high = e["accuracy_ci95"]
        d_low, d_high = e["accuracy_minus_fixed_beam_search_ci95"]
        steps = f"{e['mean_steps']:.1f}" if e["mean_steps"] is not None else "-"
        first = f"{e['mean_first_steps']:.1f}" if e["mean_first_steps"] is not None else "-"
        k, m, floored = (
            (f"{e['mean_beams_kept']:.1f}", f"{e['mean_samples_per_beam']:.1f}",
             f"{e['floored_share']:.0%}")
            if e["selections"] else ("-", "-", "-")
        )  # fmt: skip
        print(
            f"{name:<24}{e['accuracy']:>9.3f}{f'[{low:.2f}, {high:.2f}]':>16}"
            f"{f'[{d_low:+.2f}, {d_high:+.2f}]':>20}"
            f"{e['mean_generated_tokens']:>8.0f}{e['tokens_over_fixed_beam_search']:>7.2f}"
            f"{steps:>7}{first:>5}{e['mean_paths']:>7.1f}{k:>5}{m:>5}{floored:>8}{e['mean_seconds']:>7.1f}"
        )


if __name__ == "__main__":
    main()
