"""How the replay harness's own time grows with the number of questions (10 to 1,000).

Questions are drawn (with replacement, renamed) from a pool file, every
standard policy is replayed on them with a fixed number of bootstrap
replicates, and the harness's wall time is reported per question, next to the
model time the same questions took to record (the pools' recorded latency), so
the overhead can be judged against what it replaces.

Run::

    pip install -e ".[bench]"
    langchain-adaptive bench import-game24 \\
        --samples ../shared/data/game24/gpt-4_cot_samples_puzzles900-999.json \\
        --puzzles ../shared/data/game24/24.csv --out bench-results/game24-pools.jsonl
    python examples/benchmarks/harness_scaling.py --pools bench-results/game24-pools.jsonl \\
        --out bench-results/harness_scaling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
from pathlib import Path

from langchain_adaptive.evaluation import (
    answer_equivalence,
    prepare_pools,
    read_pools,
    replay,
    standard_policies,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=Path, required=True)
    parser.add_argument("--sizes", default="10,30,100,300,1000")
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    pool_file = read_pools(args.pools)
    source = pool_file.pools
    size = min(len(p.samples) for p in source)
    policies = standard_policies(size, estimators=sorted(pool_file.header.prms))
    equivalent = answer_equivalence(pool_file.header.equivalence)
    rng = random.Random(args.seed)
    rows = []
    for count in (int(x) for x in args.sizes.split(",")):
        chosen = [
            rng.choice(source).model_copy(update={"id": f"q{i}"}) for i in range(count)
        ]  # fmt: skip
        prepared = prepare_pools(chosen, equivalent)
        outcomes = replay(prepared, policies, replicates=args.replicates, seed=args.seed)
        model_s = sum(s.latency_s for p in chosen for s in p.samples)
        rows.append(
            {
                "questions": count,
                "policies": len(policies),
                "replicates": args.replicates,
                "harness_s": outcomes.elapsed_s,
                "harness_ms_per_question_and_replicate": 1000
                * outcomes.elapsed_s
                / count
                / (args.replicates + 1),
                "recorded_model_s": model_s,
            }
        )
        print(json.dumps(rows[-1]))
    report = {
        "pools": str(args.pools),
        "model": pool_file.header.model,
        "samples_per_question": size,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _plot(rows, args.out.with_suffix(".png"))


def _plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["questions"] for r in rows]
    ax.loglog(xs, [r["harness_s"] for r in rows], marker="o", label="replay harness (all policies)")
    if any(r["recorded_model_s"] for r in rows):
        ax.loglog(
            xs, [r["recorded_model_s"] for r in rows], marker="s", label="recorded model time"
        )
    ax.set_xlabel("questions")
    ax.set_ylabel("seconds")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
