"""From replayed outcomes to the numbers we publish: accuracy, compute, and the headline ratio.

The headline ratio answers the library's one claim: to match the accuracy of
fixed best-of-N, how much of best-of-N's compute does an adaptive family need?
Each family (e.g. IAS at several target confidences) is a curve of compute
against accuracy; the compute at which its upper envelope first reaches the
baseline's accuracy (linearly interpolated between settings) over the
baseline's compute is the ratio, and the same computation on every bootstrap
replicate gives its 95% interval. The parity match is the looser reading a
benchmark's confidence interval allows: the cheapest setting from which on a
family's accuracy is not significantly below the baseline's, tested on the
paired difference (every policy of a replicate sees the same questions and
sample orders). The oracle gap compares a policy's samples with the fewest
that reach the same expected coverage knowing every question's true success
rate.

The oracle fraction says how much of the possible saving a family gets:
``(C_BoN - C_policy) / (C_BoN - C_oracle)``, where each ``C`` is compute at the
baseline's accuracy (or coverage): the baseline's own, the family's
interpolated envelope (as in the ratio), and the oracle's, the fewest samples
per question whose expected coverage equals the baseline's value when each
question's true success rate is known (:func:`oracle_allocation`; in
replay it draws without replacement from each question's pool, as replay
does, so it can reach any coverage the pools allow). In
samples that is the allocation's mean; in tokens each question's samples
cost its recorded mean tokens per sample (a live run, which has no pool,
prices them at the baseline's tokens per sample). 1 is the oracle's saving,
0 none, negative dearer than the baseline; the interval is the same
computation on every bootstrap replicate (the oracle on that replicate's
resampled questions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.replay import (
    SUCCESS_BINS,
    Outcomes,
    QuestionOutcome,
    interval,
    oracle_allocation,
    oracle_samples,
    success_bin,
)

Metric = Literal["accuracy", "coverage"]
Cost = Literal["tokens", "samples"]


class Interval(BaseModel):
    """A 95% bootstrap interval."""

    low: float
    high: float


class BinSummary(BaseModel):
    """A policy's behaviour on the questions of one difficulty bin (by true success rate)."""

    bin: str
    questions: int
    accuracy: float
    mean_samples: float
    mean_tokens: float


class PolicySummary(BaseModel):
    """One policy over all questions (recorded order), with bootstrap intervals."""

    name: str
    family: str
    estimator: str | None = None
    target_confidence: float | None = None
    max_samples: int
    accuracy: float
    accuracy_ci: Interval | None = None
    coverage: float
    mean_samples: float
    mean_samples_ci: Interval | None = None
    mean_tokens: float
    mean_tokens_ci: Interval | None = None
    mean_latency_s: float
    """Recorded wall time of the drawn samples per question (model time, not harness time)."""
    bins: list[BinSummary] = Field(default_factory=list)


class MatchRatio(BaseModel):
    """The compute a family needs to match a baseline's metric, over the baseline's compute."""

    baseline: str
    family: str
    metric: Metric
    cost: Cost
    target: float
    """The baseline's metric value that the family must reach."""
    baseline_cost: float
    family_cost: float | None
    """Interpolated compute at which the family first reaches ``target`` (``None``: never)."""
    ratio: float | None
    ratio_ci: Interval | None = None
    matched_fraction: float | None
    """Fraction of bootstrap replicates in which the family reached the baseline at all
    (``None`` without replicates)."""
    oracle_cost: float | None = None
    """The oracle's compute at the baseline's value (see the module docstring)."""
    oracle_fraction: float | None = None
    """``(baseline_cost - family_cost) / (baseline_cost - oracle_cost)``: the share of the
    oracle's saving the family gets (``None``: never matched, or no saving possible)."""
    oracle_fraction_ci: Interval | None = None


class ParityMatch(BaseModel):
    """Where a family stops being significantly below a baseline: its cheapest such setting.

    "Not significantly below" means the 95% bootstrap interval of the paired
    difference (setting minus baseline, per replicate) reaches 0; the setting
    and every dearer setting of the family must pass, so one lucky cheap
    setting does not count. The point difference may still be negative: read
    it beside the ratio.
    """

    baseline: str
    family: str
    metric: Metric
    cost: Cost
    policy: str | None
    """The cheapest such setting (``None``: every setting is significantly below)."""
    baseline_cost: float
    policy_cost: float | None = None
    ratio: float | None = None
    """The setting's compute over the baseline's."""
    difference: float | None = None
    """The setting's metric minus the baseline's, on every question in recorded order."""
    difference_ci: Interval | None = None


class PairedDifference(BaseModel):
    """Two policies compared directly: ``first`` minus ``second`` on the same questions.

    What a single-setting comparison needs (say calibrated against raw IAS at
    about the same compute), where the match ratio and parity, which walk a
    family's curve up to a baseline, say little. The interval is over the
    paired bootstrap replicates.
    """

    first: str
    second: str
    metric: Metric
    difference: float
    difference_ci: Interval | None = None
    cost: Cost
    cost_ratio: float | None
    """``first``'s compute over ``second``'s."""


class OracleGap(BaseModel):
    """A policy's samples over the oracle's fewest samples for the same expected coverage."""

    policy: str
    expected_coverage: float
    """The coverage the policy reached, averaged over every replicate's sample order and
    every question: an estimate of its expected coverage from what it drew."""
    mean_samples: float
    """Its samples per question, averaged the same way."""
    oracle_mean_samples: float | None
    ratio: float | None


class BenchReport(BaseModel):
    """Everything one benchmark run measured."""

    source: str
    """What was evaluated (a pool file and its model, or a live run's model)."""
    mode: Literal["replay", "live"]
    questions: int
    samples_per_question: int
    replicates: int
    seed: int
    policies: list[PolicySummary]
    ratios: list[MatchRatio] = Field(default_factory=list)
    parity: list[ParityMatch] = Field(default_factory=list)
    differences: list[PairedDifference] = Field(default_factory=list)
    oracle: list[OracleGap] = Field(default_factory=list)
    harness_s: float
    """Time the harness itself took (replay: all policies and replicates; no model time)."""
    wall_s: float | None = None
    """Live mode: the wall time of the whole run, model calls included."""
    notes: list[str] = Field(default_factory=list)
    question_ids: list[str] = Field(default_factory=list)
    """Live mode: the questions, in the order of ``per_question``'s lists."""
    per_question: dict[str, list[QuestionOutcome]] = Field(default_factory=dict)
    """Live mode: what each policy did on each question (a live run cannot be replayed,
    so its raw outcomes are kept for any later analysis)."""


def summarize(
    run: Outcomes,
    *,
    source: str,
    mode: Literal["replay", "live"] = "replay",
    seed: int = 0,
    baselines: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    notes: Sequence[str] = (),
    wall_s: float | None = None,
    costs: Sequence[Cost] = ("tokens",),
    pairs: Sequence[tuple[str, str]] = (),
) -> BenchReport:
    """Summaries of every policy, match ratios of adaptive families, and oracle gaps.

    Args:
        baselines: Policy names to match (default: every fixed best-of-N).
        families: Families whose ratios are computed (default: every family
            with more than one policy that is not best-of-N).
        costs: Compute measures of the ratios: generated ``tokens`` (what a
            model pays for) and/or ``samples``.
        pairs: ``(first, second)`` policy names to compare directly
            (:class:`PairedDifference`).

    Raises:
        ConfigurationError: A pair names a policy the run does not have.
    """
    policies = run.policies
    accuracy, coverage = run.metric("correct"), run.metric("covered")
    samples, tokens = run.metric("samples"), run.metric("tokens")
    latency = run.metric("latency")
    rates = run.success_rates
    bins = [success_bin(p) for p in rates]
    summaries = []
    for p, policy in enumerate(policies):
        summaries.append(
            PolicySummary(
                name=policy.name,
                family=policy.family,
                estimator=policy.estimator,
                target_confidence=policy.target_confidence if policy.estimator else None,
                max_samples=policy.max_samples,
                accuracy=float(accuracy[0, p]),
                accuracy_ci=_ci(accuracy[1:, p]),
                coverage=float(coverage[0, p]),
                mean_samples=float(samples[0, p]),
                mean_samples_ci=_ci(samples[1:, p]),
                mean_tokens=float(tokens[0, p]),
                mean_tokens_ci=_ci(tokens[1:, p]),
                mean_latency_s=float(latency[0, p]),
                bins=_bins(run, p, bins),
            )
        )
    names = [policy.name for policy in policies]
    if baselines is None:
        baselines = [s.name for s in summaries if s.family.startswith("best-of-n")]
    by_family: dict[str, list[int]] = {}
    for p, policy in enumerate(policies):
        by_family.setdefault(policy.family, []).append(p)
    if families is None:
        families = [
            family
            for family, members in by_family.items()
            if len(members) > 1 and not family.startswith("best-of-n")
        ]
    cost_values = {"tokens": tokens, "samples": samples}
    oracle_costs = _OracleCosts(run, cost_values)
    metrics: tuple[tuple[Metric, np.ndarray], ...] = (
        ("accuracy", accuracy),
        ("coverage", coverage),
    )
    ratios = [
        _match(baseline, names.index(baseline), family, by_family[family], metric, values,
               cost_values[cost], cost, oracle_costs.get(names.index(baseline), metric,
                                                        values, cost))
        for cost in costs
        for baseline in baselines
        for family in families
        for metric, values in metrics
    ]  # fmt: skip
    parity = [
        _parity(baseline, names.index(baseline), family, by_family[family], names, metric,
                values, cost_values[cost], cost)
        for cost in costs
        for baseline in baselines
        for family in families
        for metric, values in metrics
    ] if run.replicates else []  # fmt: skip
    check_pairs(pairs, names)
    differences = [
        _difference(names.index(first), names.index(second), names, metric, values,
                    cost_values[cost], cost)
        for cost in costs
        for first, second in pairs
        for metric, values in metrics
    ]  # fmt: skip
    oracle = [
        _oracle_gap(run, p, rates)
        for p, policy in enumerate(policies)
        # best-of-N by scores draws what majority best-of-N draws: one row says it
        if not policy.family.startswith("best-of-n") or policy.family == "best-of-n (majority)"
    ]
    return BenchReport(
        source=source,
        mode=mode,
        questions=run.questions,
        samples_per_question=run.pool_size,
        replicates=run.replicates,
        seed=seed,
        policies=summaries,
        ratios=ratios,
        parity=parity,
        differences=differences,
        oracle=oracle,
        harness_s=run.elapsed_s,
        wall_s=wall_s,
        notes=[*notes, *_failure_notes(run)],
    )


def _failure_notes(run: Outcomes) -> list[str]:
    if not run.failures:
        return []
    return [
        f"{len(run.failures)} answer(s) failed and count as wrong with no compute, "
        f"e.g. {run.failures[0]}"
    ]


def _ci(values: np.ndarray) -> Interval | None:
    bounds = interval(values)
    return Interval(low=bounds[0], high=bounds[1]) if bounds else None


def _bins(run: Outcomes, p: int, bins: list[str]) -> list[BinSummary]:
    out = []
    for name in SUCCESS_BINS:
        members = [q for q, b in enumerate(bins) if b == name]
        if not members:
            continue
        out.append(
            BinSummary(
                bin=name,
                questions=len(members),
                accuracy=float(run.correct[0, p, members].mean()),
                mean_samples=float(run.samples[0, p, members].mean()),
                mean_tokens=float(run.tokens[0, p, members].mean()),
            )
        )
    return out


def envelope_cost(costs: np.ndarray, values: np.ndarray, target: float) -> float | None:
    """The least cost at which a family's best-so-far value reaches ``target``.

    Settings are sorted by cost; the running maximum of value is the family's
    envelope (spending more never has to do worse); between two settings the
    cost is interpolated linearly. ``None`` when no setting reaches ``target``.
    """
    order = np.argsort(costs, kind="stable")
    xs, ys = costs[order], np.maximum.accumulate(values[order])
    hits = np.nonzero(ys >= target - 1e-12)[0]
    if hits.size == 0:
        return None
    i = int(hits[0])
    if i == 0 or ys[i] == ys[i - 1]:
        return float(xs[i])
    fraction = (target - ys[i - 1]) / (ys[i] - ys[i - 1])
    return float(xs[i - 1] + fraction * (xs[i] - xs[i - 1]))


class _OracleCosts:
    """The oracle's compute at a baseline's value, per replicate, computed once per baseline.

    See the module docstring for the conversion to tokens.
    """

    def __init__(self, run: Outcomes, cost_values: dict[str, np.ndarray]) -> None:
        self.run = run
        self.cost_values = cost_values
        self._cache: dict[tuple[int, str, str], np.ndarray] = {}

    def get(self, b: int, metric: Metric, values: np.ndarray, cost: Cost) -> np.ndarray:
        """Shape ``(replicates + 1,)``; NaN where even the cap misses the baseline."""
        key = (b, metric, cost)
        if key not in self._cache:
            run = self.run
            out = np.full(values.shape[0], np.nan)
            for r in range(values.shape[0]):
                picked = run.question_index[r]
                counts = oracle_allocation(
                    run.success_rates[picked],
                    float(values[r, b]),
                    cap=run.pool_size,
                    recorded=None if run.recorded is None else run.recorded[picked],
                )
                if counts is None:
                    continue
                if cost == "samples":
                    out[r] = counts.mean()
                elif run.sample_tokens is not None:
                    out[r] = float(np.mean(counts * run.sample_tokens[picked]))
                else:  # live: price a sample at the baseline's tokens per sample
                    used = self.cost_values["samples"][r, b]
                    per_sample = self.cost_values["tokens"][r, b] / used if used > 0 else 0.0
                    out[r] = counts.mean() * per_sample
            self._cache[key] = out
        return self._cache[key]


def _fraction(base: float, reached: float | None, oracle: float) -> float | None:
    """The share of the oracle's saving over the baseline that ``reached`` gets."""
    if reached is None or not np.isfinite(oracle) or base - oracle <= 1e-12:
        return None
    return (base - reached) / (base - oracle)


def _match(
    baseline: str,
    b: int,
    family: str,
    members: list[int],
    metric: Metric,
    values: np.ndarray,
    costs: np.ndarray,
    cost: Cost,
    oracle: np.ndarray,
) -> MatchRatio:
    reached = [
        envelope_cost(costs[r, members], values[r, members], values[r, b])
        for r in range(values.shape[0])
    ]

    def ratio_at(r: int) -> float | None:
        base = costs[r, b]
        return None if reached[r] is None or base <= 0 else reached[r] / base

    point = reached[0]
    replicate_ratios = [ratio_at(r) for r in range(1, values.shape[0])]
    found = np.array([x for x in replicate_ratios if x is not None], dtype=np.float64)
    fractions = [
        _fraction(float(costs[r, b]), reached[r], oracle[r]) for r in range(1, len(reached))
    ]
    found_fractions = np.array([x for x in fractions if x is not None], dtype=np.float64)
    base = float(costs[0, b])
    return MatchRatio(
        baseline=baseline,
        family=family,
        metric=metric,
        cost=cost,
        target=float(values[0, b]),
        baseline_cost=base,
        family_cost=point,
        ratio=None if point is None or base <= 0 else point / base,
        ratio_ci=_ci(found) if found.size else None,
        matched_fraction=(found.size / len(replicate_ratios)) if replicate_ratios else None,
        oracle_cost=float(oracle[0]) if np.isfinite(oracle[0]) else None,
        oracle_fraction=_fraction(base, point, oracle[0]),
        oracle_fraction_ci=_ci(found_fractions) if found_fractions.size else None,
    )


def _parity(
    baseline: str,
    b: int,
    family: str,
    members: list[int],
    names: list[str],
    metric: Metric,
    values: np.ndarray,
    costs: np.ndarray,
    cost: Cost,
) -> ParityMatch:
    base = float(costs[0, b])
    found: tuple[int, tuple[float, float]] | None = None
    # from the dearest setting down, while every setting stays within noise of the baseline
    for m in sorted(members, key=lambda m: (costs[0, m], m), reverse=True):
        bounds = interval(values[1:, m] - values[1:, b])
        if bounds is None or bounds[1] < 0.0:
            break
        found = (m, bounds)
    if found is None:
        return ParityMatch(
            baseline=baseline, family=family, metric=metric, cost=cost, policy=None,
            baseline_cost=base,
        )  # fmt: skip
    m, (low, high) = found
    return ParityMatch(
        baseline=baseline,
        family=family,
        metric=metric,
        cost=cost,
        policy=names[m],
        baseline_cost=base,
        policy_cost=float(costs[0, m]),
        ratio=float(costs[0, m]) / base if base > 0 else None,
        difference=float(values[0, m] - values[0, b]),
        difference_ci=Interval(low=low, high=high),
    )


def check_pairs(pairs: Sequence[tuple[str, str]], names: Sequence[str]) -> None:
    """Refuse a pair naming a policy the run does not have (callers check before a long run).

    Raises:
        ConfigurationError: Naming the unknown policies.
    """
    unknown = sorted({name for pair in pairs for name in pair} - set(names))
    if unknown:
        raise ConfigurationError(f"cannot compare {unknown}: the run's policies are {list(names)}")


def _difference(
    a: int,
    b: int,
    names: list[str],
    metric: Metric,
    values: np.ndarray,
    costs: np.ndarray,
    cost: Cost,
) -> PairedDifference:
    bounds = interval(values[1:, a] - values[1:, b]) if values.shape[0] > 1 else None
    return PairedDifference(
        first=names[a],
        second=names[b],
        metric=metric,
        difference=float(values[0, a] - values[0, b]),
        difference_ci=Interval(low=bounds[0], high=bounds[1]) if bounds else None,
        cost=cost,
        cost_ratio=float(costs[0, a] / costs[0, b]) if costs[0, b] > 0 else None,
    )


def _oracle_gap(run: Outcomes, p: int, rates: np.ndarray) -> OracleGap:
    """The policy's samples over the oracle's fewest for the coverage the policy reached.

    The coverage is what the policy realised, averaged over every replicate's
    sample order (each replicate runs every question afresh) and every
    question, and its samples likewise. It is not ``1 - (1 - p)^n`` of the
    samples ``n`` it drew: that is the coverage of ``n`` draws fixed in
    advance, which a rule that stops on what it drew is not. Such a rule
    stops when its draws look good (a vote settled, a confident score), so its
    count is correlated with its success: agreement on a wrong answer stops
    it short, a lucky early right sample too. Pricing its realised ``n`` as if
    fixed misstates its coverage in either direction; its realised coverage
    does not. For a rule fixed in advance both agree in expectation.
    """
    target = float(run.covered[:, p].mean())
    recorded = None if run.recorded is None else run.recorded.tolist()
    best = oracle_samples(rates.tolist(), target, cap=run.pool_size, recorded=recorded)
    mean = float(run.samples[:, p].mean())
    return OracleGap(
        policy=run.policies[p].name,
        expected_coverage=target,
        mean_samples=mean,
        oracle_mean_samples=best,
        ratio=None if best is None or best <= 0 else mean / best,
    )


# -- Markdown ---------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _measure(cost: Cost) -> str:
    return "generated tokens" if cost == "tokens" else "samples"


def _table(title: str, columns: Sequence[str], rows: Iterable[str]) -> list[str]:
    """A titled Markdown table (a blank line before the title and the header)."""
    return ["", title, "", f"| {' | '.join(columns)} |", "|" + "---|" * len(columns), *rows]


def _fmt_ci(ci: Interval | None, digits: int = 3) -> str:
    return "" if ci is None else f" [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def report_markdown(
    report: BenchReport, *, ratio_metrics: Sequence[Metric] = ("accuracy", "coverage")
) -> str:
    """The report as Markdown tables: policies, match ratios, parity matches, oracle gaps."""
    lines = [
        f"**{report.source}** ({report.mode}): {report.questions} questions, "
        f"{report.samples_per_question} samples each, {report.replicates} bootstrap replicates.",
        "",
        "| policy | accuracy [95% CI] | coverage | samples/q | tokens/q | model s/q |",
        "|---|---|---|---|---|---|",
    ]
    for s in report.policies:
        lines.append(
            f"| {s.name} | {s.accuracy:.3f}{_fmt_ci(s.accuracy_ci)} | {s.coverage:.3f} | "
            f"{s.mean_samples:.2f} | {s.mean_tokens:.1f} | {s.mean_latency_s:.2f} |"
        )
    for metric in ratio_metrics:
        ratios = [r for r in report.ratios if r.metric == metric]
        if ratios:
            reached = (
                "reached in" if report.replicates else "reached in (needs bootstrap replicates)"
            )
            lines += _table(
                f"Compute ({_measure(ratios[0].cost)}) to match each baseline's {metric}, "
                "over the baseline's, and the oracle fraction: the share of the saving an "
                "oracle that knows every question's success rate would make, "
                "(C_baseline - C_family) / (C_baseline - C_oracle) (1: the oracle's saving, "
                "0: none):",
                ["baseline", metric, "family", "ratio [95% CI]", "oracle fraction [95% CI]",
                 reached],
                (
                    f"| {r.baseline} | {r.target:.3f} | {r.family} | "
                    f"{_fmt(r.ratio, 2)}{_fmt_ci(r.ratio_ci, 2)} | "
                    f"{_fmt(r.oracle_fraction, 2)}{_fmt_ci(r.oracle_fraction_ci, 2)} | "
                    f"{'n/a' if r.matched_fraction is None else f'{r.matched_fraction:.0%}'} |"
                    for r in ratios
                ),
            )  # fmt: skip
    for metric in ratio_metrics:
        parity = [m for m in report.parity if m.metric == metric]
        if parity:
            lines += _table(
                f"Cheapest setting of each family from which on its {metric} is not "
                "significantly below the baseline's (the paired 95% bootstrap interval of the "
                "difference reaches 0 at that setting and every dearer one), and its compute "
                f"({_measure(parity[0].cost)}) over the baseline's:",
                ["baseline", "family", "setting", f"{metric} difference [95% CI]", "ratio"],
                (
                    f"| {m.baseline} | {m.family} | {m.policy or 'none'} | "
                    f"{_fmt_signed(m.difference)}{_fmt_ci(m.difference_ci)} | {_fmt(m.ratio, 2)} |"
                    for m in parity
                ),
            )
    if report.differences:
        lines += _table(
            "Policies compared directly (first minus second on the same questions, paired "
            f"95% bootstrap interval; compute: {_measure(report.differences[0].cost)}):",
            ["first", "second", "metric", "difference [95% CI]", "compute ratio"],
            (
                f"| {d.first} | {d.second} | {d.metric} | "
                f"{_fmt_signed(d.difference)}{_fmt_ci(d.difference_ci)} | "
                f"{_fmt(d.cost_ratio, 2)} |"
                for d in report.differences
            ),
        )
    if report.oracle:
        lines += _table(
            "Samples over the oracle's fewest for the same expected coverage (the coverage "
            "each policy reached, averaged over every replicate's sample order):",
            ["policy", "expected coverage", "samples/q", "oracle samples/q", "ratio"],
            (
                f"| {g.policy} | {g.expected_coverage:.3f} | {g.mean_samples:.2f} | "
                f"{_fmt(g.oracle_mean_samples, 2)} | {_fmt(g.ratio, 2)} |"
                for g in report.oracle
            ),
        )
    for note in report.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


__all__ = [
    "BenchReport",
    "BinSummary",
    "Interval",
    "MatchRatio",
    "OracleGap",
    "PairedDifference",
    "ParityMatch",
    "PolicySummary",
    "check_pairs",
    "envelope_cost",
    "report_markdown",
    "summarize",
]
