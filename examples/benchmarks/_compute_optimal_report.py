"""The report of ``compute_optimal_all.py``: replay, 2-fold compute-optimal fits, intervals, plot.

Imported after the live run (so editing it never disturbs a run in progress), and
alone by ``--report-only``.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from _live_stats import bootstrap_ci

from langchain_adaptive.evaluation import (
    Policy,
    QuestionPool,
    RecordedSample,
    prepare_pools,
    replay,
)
from langchain_adaptive.evaluation.compute_optimal_fit import (
    PolicyOutcome,
    cross_validate,
    outcomes_from_replay,
)
from langchain_adaptive.evaluation.pools import answer_equivalence
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies import AdaptiveBestOfN, BestOfN, Strategy

ESTIMATOR = "probe"
PARALLEL = ("best-of-N (majority)", "best-of-N (weighted)", "IAS")
CO_ALL = "compute-optimal, all families"
CO_PARALLEL = "compute-optimal, parallel only"
SINGLE_CV = "one policy for all questions (2-fold)"


def _grid(costs: list[float], levels: int = 7) -> list[float]:
    """``levels`` token budgets, geometric from the cheapest policy's mean to the costliest's."""
    low, high = min(costs), max(costs)
    ratio = (high / low) ** (1 / (levels - 1))
    return sorted({float(math.ceil(low * ratio**k)) for k in range(levels)})


def parallel_policies(pool: int, targets: tuple[float, ...] = (0.5, 0.7, 0.9)) -> list[Policy]:
    """Best-of-N (majority, PRM-weighted) at every power of two up to the pool, and IAS."""
    sizes = sorted({*(2**k for k in range(int(math.log2(pool)) + 1)), pool})
    policies = [
        Policy(
            name=f"majority best-of-{n}",
            family=PARALLEL[0],
            strategy=BestOfN(n=n, selection="majority_vote"),
            max_samples=n,
        )
        for n in sizes
    ]
    policies += [
        Policy(
            name=f"weighted best-of-{n}",
            family=PARALLEL[1],
            strategy=BestOfN(n=n, selection="weighted_vote"),
            scorer=ESTIMATOR,
            max_samples=n,
        )
        for n in sizes
        if n > 1
    ]
    policies += [
        Policy(
            name=f"IAS C={target}",
            family=PARALLEL[2],
            strategy=AdaptiveBestOfN(selection="weighted_vote", quantile=0.1),
            estimator=ESTIMATOR,
            scorer=ESTIMATOR,
            target_confidence=target,
            max_samples=pool,
        )
        for target in targets
    ]
    return policies


def _pool_of(row: dict[str, Any]) -> QuestionPool:
    """A live pool record as a replayable question pool (samples in the order drawn)."""
    estimate = SuccessEstimate.model_validate(row["question_estimate"])
    return QuestionPool(
        id=row["question_id"],
        question=row["question"],
        gold=row["gold"],
        question_estimates={ESTIMATOR: estimate},
        samples=[
            RecordedSample(
                text=c["text"],
                steps=c["steps"],
                answer=c["answer"],
                correct=bool(c["correct"]),
                output_tokens=c["output_tokens"],
                input_tokens=c["input_tokens"],
                finish_reason=c["finish_reason"],
                step_estimates={
                    ESTIMATOR: [SuccessEstimate.model_validate(e) for e in c["step_estimates"]]
                },
            )
            for c in row["trace"]["candidates"]
        ],
    )


def report(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    live: dict[str, tuple[str, Strategy, int, int]],
) -> dict[str, Any]:
    """Everything the page shows, from the records of every complete question."""
    by_question: dict[str, dict[str, dict[str, Any]]] = {}
    for row in records:
        by_question.setdefault(row["question_id"], {})[row["policy"]] = row
    complete = [q for q, rows in by_question.items() if all(name in rows for name in live)]
    if len(complete) < 2:
        print(f"{len(complete)} complete question(s): nothing to report yet")
        return {"questions": len(complete)}
    pools = [_pool_of(by_question[q]["pool"]) for q in complete]
    replayed = parallel_policies(args.pool)
    run = replay(prepare_pools(pools, answer_equivalence("math")), replayed, replicates=0)
    outcomes = outcomes_from_replay(run, pools, estimator=ESTIMATOR)
    whole = f"weighted best-of-{args.pool}"
    replayed_whole = {o.question_id: o.correct for o in outcomes if o.policy == whole}
    agree = sum(replayed_whole[q] == by_question[q]["pool"]["correct"] for q in complete)
    family = {p.name: p.family for p in replayed}
    for name, (fam, strategy, *_rest) in live.items():
        if name == "pool":  # replayed above as weighted best-of-<pool>
            continue
        family[name] = fam
        settings = strategy.model_dump(mode="json", exclude_defaults=True)
        outcomes += [
            PolicyOutcome.model_validate({**by_question[q][name], "settings": settings})
            for q in complete
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    outcome_path = args.out.with_suffix(".outcomes.jsonl")
    outcome_path.write_text("".join(o.model_dump_json() + "\n" for o in outcomes))

    rows: dict[str, list[PolicyOutcome]] = {}
    for o in outcomes:
        rows.setdefault(o.policy, []).append(o)
    summary = {
        name: {
            "family": family[name],
            "accuracy": statistics.fmean(o.correct for o in done),
            "accuracy_ci95": bootstrap_ci([float(o.correct) for o in done], args.replicates, 0),
            "mean_generated_tokens": statistics.fmean(o.generated_tokens for o in done),
            "mean_samples": statistics.fmean(o.samples for o in done),
            "source": "replayed from the pool" if family[name] in PARALLEL else "live",
        }
        for name, done in rows.items()
    }
    for name, (_, _, _, _) in live.items():
        if name in summary:
            summary[name]["mean_seconds"] = statistics.fmean(
                by_question[q][name]["seconds"] for q in complete
            )
    budgets = args.budgets or _grid([e["mean_generated_tokens"] for e in summary.values()])
    parallel = [o for o in outcomes if family[o.policy] in PARALLEL]
    fit = {"estimator": ESTIMATOR, "budgets": budgets, "bins": args.bins, "seed": args.seed}
    curves = {
        CO_ALL: cross_validate(outcomes, **fit),
        CO_PARALLEL: cross_validate(parallel, **fit),
        # one strategy for every question, chosen on the other fold: the held-out twin of
        # "the best single policy", which is chosen on all questions (in-sample)
        SINGLE_CV: cross_validate(outcomes, **{**fit, "bins": 1}),
    }
    comparison = []
    for index, budget in enumerate(budgets):
        within = [n for n, e in summary.items() if e["mean_generated_tokens"] <= budget + 1e-9]
        best = min(
            within,
            key=lambda n: (-summary[n]["accuracy"], summary[n]["mean_generated_tokens"]),
        )
        best_rows = {o.question_id: o for o in rows[best]}
        entry: dict[str, Any] = {
            "budget_tokens": budget,
            "best_single": best,
            "best_single_accuracy": summary[best]["accuracy"],
            "best_single_tokens": summary[best]["mean_generated_tokens"],
        }
        held = {}
        for label, cv in curves.items():
            level = cv[index]
            held[label] = {h.question_id: h for h in level.questions}
            entry[label] = {
                "accuracy": level.accuracy,
                "accuracy_ci95": bootstrap_ci(
                    [float(h.correct) for h in level.questions], args.replicates, 0
                ),
                "mean_tokens": level.mean_tokens,
                "chosen": dict(Counter(h.policy for h in level.questions)),
            }
        pairs = {
            "all_minus_best_single": (held[CO_ALL], best_rows),
            "all_minus_parallel": (held[CO_ALL], held[CO_PARALLEL]),
            "all_minus_single_cv": (held[CO_ALL], held[SINGLE_CV]),
            "parallel_minus_best_single": (held[CO_PARALLEL], best_rows),
        }
        for key, (a, b) in pairs.items():
            diffs = [float(a[q].correct) - float(b[q].correct) for q in complete]
            entry[key] = {
                "difference": statistics.fmean(diffs),
                "ci95": bootstrap_ci(diffs, args.replicates, 1),
                "tokens_ratio": statistics.fmean(a[q].generated_tokens for q in complete)
                / max(1e-9, statistics.fmean(b[q].generated_tokens for q in complete)),
            }
        comparison.append(entry)
    results = {
        "model": "SmolLM2-135M-Instruct (bundled)",
        "prm": "bundled probe",
        "questions": len(complete),
        "question_ids": complete,
        "settings": {k: str(v) for k, v in vars(args).items() if k != "out"},
        "summary": summary,
        "compute_optimal": comparison,
        "folds": {
            label: [fit.model_dump(mode="json") for fit in cv[-1].fits]
            for label, cv in curves.items()
        },
        "outcomes_file": outcome_path.name,
        "replay_check": f"replayed {whole} agrees with the live pool's own answer on {agree} "
        f"of {len(complete)} questions",
    }
    _plot(results, args.out.with_suffix(".png"))
    args.out.with_suffix(".md").write_text(_markdown(results))
    print(_markdown(results))
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    families: dict[str, list[tuple[float, float, str]]] = {}
    for name, e in results["summary"].items():
        families.setdefault(e["family"], []).append(
            (e["mean_generated_tokens"], e["accuracy"], name)
        )
    markers = iter("osD^v<>pPX*h")
    for fam, points in families.items():
        points.sort()
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], marker=next(markers), ls=":",
            lw=1, label=fam, alpha=0.8,
        )  # fmt: skip
    styles = ((CO_ALL, "-", "black", 2.4), (CO_PARALLEL, "--", "dimgray", 2.0),
              (SINGLE_CV, "-.", "teal", 1.2))  # fmt: skip
    for label, style, color, width in styles:
        xs = [c[label]["mean_tokens"] for c in results["compute_optimal"]]
        ys = [c[label]["accuracy"] for c in results["compute_optimal"]]
        name = label if "2-fold" in label else f"{label} (2-fold)"
        ax.plot(xs, ys, ls=style, color=color, lw=width, marker=".", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per question (log)")
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"{results['model']}, probe PRM, {results['questions']} two-step arithmetic questions",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        "| policy | family | source | accuracy [95% CI] | generated tokens / q | samples / q |",
        "|---|---|---|---|---|---|",
    ]
    ordered = sorted(results["summary"].items(), key=lambda kv: kv[1]["mean_generated_tokens"])
    for name, e in ordered:
        low, high = e["accuracy_ci95"]
        lines.append(
            f"| {name} | {e['family']} | {e['source']} | {e['accuracy']:.2f} "
            f"[{low:.2f}, {high:.2f}] | {e['mean_generated_tokens']:.0f} | "
            f"{e['mean_samples']:.1f} |"
        )
    lines += [
        "",
        "| budget (tokens / q) | best single policy within it | CO all: accuracy, tokens | "
        "CO parallel: accuracy, tokens | CO all - best single [95% CI] | "
        "CO all - CO parallel [95% CI] | one policy (2-fold): accuracy, tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in results["compute_optimal"]:
        a, p, one = c[CO_ALL], c[CO_PARALLEL], c[SINGLE_CV]
        d1, d2 = c["all_minus_best_single"], c["all_minus_parallel"]
        lines.append(
            f"| {c['budget_tokens']:.0f} | {c['best_single']} ({c['best_single_accuracy']:.2f}, "
            f"{c['best_single_tokens']:.0f}) | {a['accuracy']:.2f}, {a['mean_tokens']:.0f} | "
            f"{p['accuracy']:.2f}, {p['mean_tokens']:.0f} | {d1['difference']:+.2f} "
            f"[{d1['ci95'][0]:+.2f}, {d1['ci95'][1]:+.2f}] | {d2['difference']:+.2f} "
            f"[{d2['ci95'][0]:+.2f}, {d2['ci95'][1]:+.2f}] | {one['accuracy']:.2f}, "
            f"{one['mean_tokens']:.0f} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["parallel_policies", "report"]
