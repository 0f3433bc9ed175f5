"""PNG plots of a benchmark report (matplotlib, from the ``bench`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.replay import SUCCESS_BINS
from langchain_adaptive.evaluation.report import BenchReport, PolicySummary


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ConfigurationError(
            'plots need matplotlib: pip install "langchain-adaptive[bench]"'
        ) from error
    return plt


def plot_tradeoff(
    report: BenchReport, out: str | os.PathLike[str], *, metric: str = "accuracy"
) -> Path:
    """Accuracy (or coverage) against mean samples and against mean tokens, one curve per family."""
    plt = _pyplot()
    families: dict[str, list[PolicySummary]] = {}
    for summary in report.policies:
        families.setdefault(summary.family, []).append(summary)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, (attribute, label) in zip(
        axes,
        (
            ("mean_samples", "mean samples per question"),
            ("mean_tokens", "mean generated tokens per question"),
        ),
        strict=True,
    ):
        for family, members in families.items():
            members = sorted(members, key=lambda s: getattr(s, attribute))
            xs = [getattr(s, attribute) for s in members]
            ys = [getattr(s, metric) for s in members]
            style = "--" if family.startswith("ias[oracle]") else "-"
            line = ax.plot(xs, ys, style, marker="o", markersize=3.5, label=family)
            if metric == "accuracy":
                lows = [
                    max(0.0, s.accuracy - s.accuracy_ci.low) if s.accuracy_ci else 0.0
                    for s in members
                ]
                highs = [
                    max(0.0, s.accuracy_ci.high - s.accuracy) if s.accuracy_ci else 0.0
                    for s in members
                ]
                ax.errorbar(
                    xs, ys, yerr=[lows, highs], fmt="none", alpha=0.35, color=line[0].get_color()
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report.source}: {report.questions} questions ({report.mode})", fontsize=10)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_allocation(
    report: BenchReport, out: str | os.PathLike[str], *, policies: list[str] | None = None
) -> Path:
    """Mean samples per question in each difficulty bin (true success rate), per policy."""
    plt = _pyplot()
    chosen = [s for s in report.policies if policies is None or s.name in policies]
    if not chosen:
        raise ConfigurationError(f"none of the policies {policies} is in the report")
    bins = [b for b in SUCCESS_BINS if any(x.bin == b for s in chosen for x in s.bins)]
    width = 0.8 / len(chosen)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(bins) + 2), 4.5))
    for i, summary in enumerate(chosen):
        by_bin = {x.bin: x for x in summary.bins}
        xs = [j + i * width for j in range(len(bins))]
        ax.bar(
            xs,
            [by_bin[b].mean_samples if b in by_bin else 0.0 for b in bins],
            width,
            label=summary.name,
        )
    counts = {x.bin: x.questions for s in chosen for x in s.bins}
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(bins))])
    ax.set_xticklabels([f"{b}\n({counts[b]} q)" for b in bins])
    ax.set_xlabel("true success rate of one sample (bin)")
    ax.set_ylabel("mean samples per question")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["plot_allocation", "plot_tradeoff"]
