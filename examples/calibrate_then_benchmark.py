"""Calibrate a PRM, then benchmark IAS with it: end to end on the arithmetic suite.

1. Collect Monte-Carlo success rates of the bundled SmolLM2 on calibration
   questions, with its LLM judge as the PRM (``collect_calibration_data``).
2. Fit a Platt calibrator on the judge's raw scores against those rates.
3. Record a pool of samples on other questions (``record_pools``), with the
   judge's question estimates.
4. Replay fixed best-of-N, voting baselines and IAS with the raw and the
   calibrated judge on the pool, and print the report.

``--quick`` shrinks every step (2 levels, 4 questions, 24 tokens a sample) to
a smoke run of a minute or two on 2 cores; the defaults take tens of minutes. Outputs (records, the
calibrator, the pool, report JSON and Markdown) go to ``--out``, and a rerun
resumes the collection and the recording.

    pip install -e ".[llamacpp,bench]"
    python examples/calibrate_then_benchmark.py --quick
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from langchain_adaptive.calibration import PlattCalibrator
from langchain_adaptive.evaluation.collect import collect_calibration_data
from langchain_adaptive.evaluation.datasets import ARITHMETIC_LEVELS, Problem, arithmetic_suite
from langchain_adaptive.evaluation.policies import standard_policies
from langchain_adaptive.evaluation.pools import (
    add_calibrated_estimates,
    answer_equivalence,
    read_pools,
)
from langchain_adaptive.evaluation.record import record_pools
from langchain_adaptive.evaluation.replay import prepare_pools, replay
from langchain_adaptive.evaluation.report import report_markdown, summarize
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, default_threads
from langchain_adaptive.prm import LLMJudgePRM

QUICK = {
    "levels": "add1,add2",
    "calibration_per_level": 1,
    "test_per_level": 1,
    "n_val": 2,
    "n_mc": 2,
    "max_tokens": 24,
    "samples": 4,
    "replicates": 20,
    # A smoke run: a Platt fit on a handful of prefixes shows the pipeline, not a calibration.
    "min_examples": 4,
}


def split_suite(
    levels: Sequence[str], calibration_per_level: int, test_per_level: int, seed: int
) -> tuple[list[Problem], list[Problem]]:
    """Disjoint calibration and test questions: the first ones of every level calibrate."""
    suite = arithmetic_suite(calibration_per_level + test_per_level, seed=seed, levels=levels)
    calibration: list[Problem] = []
    test: list[Problem] = []
    for level in levels:
        questions = [p for p in suite if p.level == level]
        calibration += questions[:calibration_per_level]
        test += questions[calibration_per_level:]
    return calibration, test


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, about a minute")
    parser.add_argument("--out", type=Path, default=Path("bench-results/calibrate-then-benchmark"))
    parser.add_argument("--levels", default=",".join(ARITHMETIC_LEVELS))
    parser.add_argument("--calibration-per-level", type=int, default=4)
    parser.add_argument("--test-per-level", type=int, default=4)
    parser.add_argument("--n-val", type=int, default=4, help="trajectories per question")
    parser.add_argument("--n-mc", type=int, default=4, help="rollouts per prefix")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--samples", type=int, default=16, help="pool size (IAS cap)")
    parser.add_argument("--replicates", type=int, default=200, help="bootstrap replicates")
    parser.add_argument(
        "--min-examples", type=int, default=20, help="fewest prefix records to fit on"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    args.out.mkdir(parents=True, exist_ok=True)

    levels = args.levels.split(",")
    calibration, test = split_suite(
        levels, args.calibration_per_level, args.test_per_level, args.seed
    )
    chat = ChatLlamaCpp(seed=args.seed, n_threads=default_threads())
    judge = LLMJudgePRM(model=chat)

    print(f"1. collecting calibration data on {len(calibration)} questions")
    records = collect_calibration_data(
        chat,
        judge,
        calibration,
        out=args.out / "calibration.jsonl",
        n_val=args.n_val,
        n_mc=args.n_mc,
        max_tokens=args.max_tokens,
        progress=False,
    )
    print(f"   {len(records)} prefix records")

    print("2. fitting a Platt calibrator on the judge's raw scores")
    calibrator = PlattCalibrator(min_examples=args.min_examples).fit_records(records)
    calibrator.save(args.out / "judge-platt")

    print(f"3. recording {args.samples} samples on each of {len(test)} test questions")
    summary = record_pools(
        chat,
        test,
        args.out / "pools.jsonl",
        samples=args.samples,
        prms={"judge": judge},
        max_tokens_per_sample=args.max_tokens,
        settings={"dataset": "arithmetic", "seed": args.seed},
        progress=False,
    )
    if summary.failed:
        print(f"   {len(summary.failed)} question(s) failed and are left out: {summary.failed}")

    print("4. replaying every policy on the pool")
    pool_file = read_pools(args.out / "pools.jsonl")
    pools = add_calibrated_estimates(pool_file.pools, "judge", calibrator, "judge-platt")
    policies = standard_policies(args.samples, estimators=["judge", "judge-platt"])
    prepared = prepare_pools(pools, answer_equivalence(pool_file.header.equivalence))
    run = replay(prepared, policies, replicates=args.replicates, seed=args.seed)
    report = summarize(run, source=f"pools.jsonl ({pool_file.header.model})", seed=args.seed)
    (args.out / "report.json").write_text(report.model_dump_json(indent=2))
    markdown = report_markdown(report)
    (args.out / "report.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
