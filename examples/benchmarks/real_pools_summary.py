"""Summarise the real-pool replays: one table per pool and the headline figure.

Reads the reports that ``examples/benchmarks/real_pools.sh replay`` wrote and
prints, per pool, every adaptive family's tokens at the baseline's accuracy
(match ratio with its bootstrap interval), the share of the oracle's saving it
gets, and its parity setting; writes a JSON of those rows and the headline PNG
(accuracy against tokens relative to the baseline, one panel per pool).

    python examples/benchmarks/real_pools_summary.py runs/real-pools/results \
        --out docs/results/real-pools
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langchain_adaptive.evaluation import BenchReport

POOLS = {
    "gsm8k": "GSM8K, Qwen2.5-0.5B-Instruct, self-confidence (mean logprob)",
    "math500": "MATH500, Qwen2.5-1.5B-Instruct, Skywork PRM",
    "game24": "Game of 24, GPT-4 chain of thought, no scorer",
}
"""Pool -> title. Best-of-N at the pool size is the baseline: majority vote in the figure,
and majority and the weighted vote in the tables."""


def full_pool_baselines(report: BenchReport) -> list[str]:
    """Best-of-N at the pool size: majority first, then each scorer's weighted vote."""
    size = f"bon{report.samples_per_question}-"
    names = [p.name for p in report.policies if p.name.startswith(size)]
    return [n for n in names if n.endswith("majority")] + [n for n in names if "weighted" in n]


PLOTTED = (
    "best-of-n (majority)",
    "best-of-n (weighted,",
    "adaptive-consistency",
    "early-stopping sc",
    "sequential-ias-1[",
    "first-sample-ias[",
    "answer-stop[",
    "answer-stop-futile[",
    "ias[oracle]",
)


def rows(report: BenchReport, baseline: str) -> list[dict[str, object]]:
    """Each family's match against ``baseline`` on accuracy, with its parity setting."""
    parity = {(p.family, p.baseline): p for p in report.parity if p.metric == "accuracy"}
    out = []
    for match in report.ratios:
        if match.baseline != baseline or match.metric != "accuracy":
            continue
        par = parity.get((match.family, baseline))
        out.append(
            {
                "family": match.family,
                "baseline_accuracy": match.target,
                "ratio": match.ratio,
                "ratio_ci": None
                if match.ratio_ci is None
                else [match.ratio_ci.low, match.ratio_ci.high],
                "matched_fraction": match.matched_fraction,
                "oracle_fraction": match.oracle_fraction,
                "oracle_fraction_ci": None
                if match.oracle_fraction_ci is None
                else [match.oracle_fraction_ci.low, match.oracle_fraction_ci.high],
                "parity_policy": None if par is None else par.policy,
                "parity_ratio": None if par is None else par.ratio,
                "parity_difference": None if par is None else par.difference,
                "parity_difference_ci": None
                if par is None or par.difference_ci is None
                else [par.difference_ci.low, par.difference_ci.high],
            }
        )
    return out


def _fmt(value: object, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(name: str, report: BenchReport, table: list[dict[str, object]], baseline: str) -> str:
    base = next(p for p in report.policies if p.name == baseline)
    lines = [
        f"### {POOLS.get(name, name)}",
        "",
        f"{report.questions} questions x {report.samples_per_question} samples, "
        f"{report.replicates} bootstrap replicates. Baseline `{baseline}`: accuracy "
        f"{base.accuracy:.3f}, {base.mean_tokens:.0f} tokens a question.",
        "",
        "| family | tokens at baseline accuracy | 95% interval | oracle fraction | parity setting "
        "(tokens, accuracy difference [95%]) |",
        "|---|---|---|---|---|",
    ]
    for row in table:
        ci = row["ratio_ci"]
        interval = "n/a" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"  # type: ignore[index]
        ofr, oci = row["oracle_fraction"], row["oracle_fraction_ci"]
        oracle = _fmt(ofr) + ("" if oci is None else f" [{oci[0]:.2f}, {oci[1]:.2f}]")  # type: ignore[index]
        dci = row["parity_difference_ci"]
        parity = (
            "none"
            if row["parity_policy"] is None
            else f"`{row['parity_policy']}` ({_fmt(row['parity_ratio'])}x, "
            f"{_fmt(row['parity_difference'], '+.3f')} [{dci[0]:+.3f}, {dci[1]:+.3f}])"  # type: ignore[index]
        )
        ratio = "not reached" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(f"| {row['family']} | {ratio} | {interval} | {oracle} | {parity} |")
    return "\n".join(lines) + "\n"


def plot(reports: dict[str, BenchReport], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in reports if n != "game24"]
    fig, axes = plt.subplots(1, len(names), figsize=(6.2 * len(names), 4.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        report = reports[name]
        baseline = full_pool_baselines(report)[0]
        base = next(p for p in report.policies if p.name == baseline)
        families: dict[str, list] = {}
        for p in report.policies:
            if p.family.startswith(PLOTTED) and not p.family.startswith("best-of-n (top"):
                families.setdefault(p.family, []).append(p)
        for family, members in families.items():
            members.sort(key=lambda p: p.mean_tokens)
            style = "--" if family.startswith("ias[oracle]") else "-"
            ax.plot(
                [p.mean_tokens / base.mean_tokens for p in members],
                [p.accuracy for p in members],
                style,
                marker="o",
                markersize=3,
                label=family,
            )
        ax.axhline(base.accuracy, color="grey", linewidth=0.8, linestyle=":")
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(POOLS.get(name, name), fontsize=10)
        ax.set_xlabel(f"generated tokens / {baseline}'s")
        ax.set_ylabel("accuracy (held-out, cross-fitted)")
        ax.set_xlim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "real-pools.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="folder of the replay reports")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reports = {
        name: BenchReport.model_validate_json((args.results / f"{name}.json").read_text())
        for name in POOLS
        if (args.results / f"{name}.json").is_file()
    }
    if not reports:
        raise SystemExit(f"no replay reports in {args.results}; run real_pools.sh replay first")
    summary = {}
    text = []
    for name, report in reports.items():
        summary[name] = {"questions": report.questions, "baselines": {}}
        for baseline in full_pool_baselines(report):
            table = rows(report, baseline)
            summary[name]["baselines"][baseline] = table
            text.append(markdown(name, report, table, baseline))
    (args.out / "real-pools.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (args.out / "real-pools-tables.md").write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))
    print(f"wrote {plot(reports, args.out)}")


if __name__ == "__main__":
    main()
