"""Shared by the live benchmarks on the bundled model: their questions, the recorder of
revisions and rollouts, bootstrap intervals and the figure.

Each benchmark script runs as ``python examples/benchmarks/NAME.py``, so this module is
imported from the script's own folder.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_adaptive import AdaptiveCallbackHandler
from langchain_adaptive.callbacks import Revised, RolloutScored
from langchain_adaptive.evaluation.datasets import Problem, arithmetic_suite


def suite_questions(levels: str, questions: int, skip_first: int, suite_seed: int) -> list[Problem]:
    """``questions`` questions over the comma-separated ``levels``, past each level's first
    ``skip_first`` (the bundled probe's training questions)."""
    names = tuple(level for level in levels.split(",") if level)
    per_level = -(-questions // len(names))
    suite = arithmetic_suite(skip_first + per_level, seed=suite_seed, levels=names)
    kept = [p for p in suite if int(p.id.rsplit("-", 1)[1]) >= skip_first]
    return kept[:questions]


class Recorder(AdaptiveCallbackHandler):
    """Keeps every revision and scored rollout of one run."""

    def __init__(self) -> None:
        super().__init__()
        self.revisions: list[Revised] = []
        self.rollouts: list[RolloutScored] = []

    def on_revision(self, event: Revised, *, run_id: UUID, **kwargs: Any) -> None:
        self.revisions.append(event)

    def on_rollout_scored(self, event: RolloutScored, *, run_id: UUID, **kwargs: Any) -> None:
        self.rollouts.append(event)


def bootstrap_ci(values: list[float], replicates: int, seed: int) -> list[float]:
    """95% percentile interval of the mean over ``replicates`` resamples of ``values``."""
    rng = random.Random(seed)
    boots = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(replicates))
    return [boots[int(0.025 * replicates)], boots[int(0.975 * replicates) - 1]]


def paired_difference_ci(
    rows: list[dict[str, Any]], baseline: list[dict[str, Any]], replicates: int
) -> list[float]:
    """95% bootstrap interval of the accuracy difference, resampling questions in pairs."""
    diffs = [float(a["correct"]) - float(b["correct"]) for a, b in zip(rows, baseline, strict=True)]
    return bootstrap_ci(diffs, replicates, seed=1)


def plot_accuracy_tokens(
    results: dict[str, Any],
    path: Path,
    *,
    questions: str,
    marker: Callable[[str], str] = lambda name: "o",
) -> None:
    """Accuracy (with its interval) against generated tokens, one point per policy."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in results["summary"].items():
        low, high = entry["accuracy_ci95"]
        x, y = entry["mean_generated_tokens"], entry["accuracy"]
        ax.errorbar(x, y, yerr=[[y - low], [high - y]], marker=marker(name), capsize=3, label=name)
    ax.set_xlabel("generated tokens per question")
    ax.set_ylabel("accuracy (95% bootstrap CI)")
    ax.set_title(f"{results['model']}, {results['questions']} {questions} questions", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
