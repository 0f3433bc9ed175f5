"""Compute across a batch: split one total sample budget over many questions.

Per-question IAS spends on each question what that question needs to reach the
target on its own. When a batch has a fixed total instead, the question is
where one more sample helps most. With calibrated success estimates ``p_i``,
the expected number of questions that some drawn sample solves (coverage) is

    sum_i 1 - (1 - p_i) ^ n_i

and the ``n``-th extra sample of question ``i`` adds ``p_i (1 - p_i) ^ n``.
That gain shrinks with every sample (each term is concave in ``n_i``) and the
terms are independent, so the objective is separable and concave: greedily
giving each next sample to the question with the largest gain is optimal for
every total (the classic result for separable concave resource allocation,
Gross 1956; used for LLM compute by Damani et al. 2024). A heap makes each
step ``O(log questions)``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from langchain_adaptive.budget import clip_probability, coverage_probability
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies._base import Decision, Plan, RunState, Strategy


def allocate_budget(
    estimates: Sequence[float],
    total_samples: int,
    max_per_question: int,
    *,
    min_per_question: int = 1,
) -> list[int]:
    """Samples per question that maximise expected coverage within ``total_samples``.

    Every question first gets ``min_per_question`` (it must be answered); the
    rest goes, one sample at a time, to the question whose next sample has the
    largest marginal gain ``p (1 - p) ^ n``, never past ``max_per_question``.
    Probabilities are clipped to ``[1e-4, 1 - 1e-4]`` (no estimate is certain),
    so the whole budget is spent unless every question reaches the cap. Ties go
    to the earlier question, which makes the result deterministic.

    Args:
        estimates: Each question's calibrated success probability of one sample.
        total_samples: The hard total for the batch; the allocation sums to it
            (or to ``max_per_question`` times the questions, when that is less).
        max_per_question: Cap per question.
        min_per_question: Floor per question.

    Returns:
        Samples per question, in the order of ``estimates``.

    Raises:
        ConfigurationError: The floor does not fit the total, the floor exceeds
            the cap, or an estimate is not a finite probability.

    Example:
        >>> allocate_budget([0.9, 0.3, 0.05], total_samples=7, max_per_question=4)
        [2, 4, 1]
    """
    if max_per_question < 1 or min_per_question < 0 or min_per_question > max_per_question:
        raise ConfigurationError(
            f"need 0 <= min_per_question ({min_per_question}) <= max_per_question "
            f"({max_per_question}) and max_per_question >= 1"
        )
    floor_total = min_per_question * len(estimates)
    if total_samples < floor_total:
        raise ConfigurationError(
            f"total_samples={total_samples} cannot give {len(estimates)} question(s) "
            f"{min_per_question} sample(s) each; raise it to at least {floor_total}"
        )
    try:
        rates = [clip_probability(float(p)) for p in estimates]
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"estimates must be finite probabilities: {error}") from error
    counts = [min_per_question] * len(rates)
    heap = [
        (-_gain(p, min_per_question), i)
        for i, p in enumerate(rates)
        if min_per_question < max_per_question
    ]
    heapq.heapify(heap)
    left = total_samples - floor_total
    while left > 0 and heap:
        _, i = heapq.heappop(heap)
        counts[i] += 1
        left -= 1
        if counts[i] < max_per_question:
            heapq.heappush(heap, (-_gain(rates[i], counts[i]), i))
    return counts


def _gain(p: float, n: int) -> float:
    """Expected coverage added by the ``n + 1``-th sample of a question with rate ``p``."""
    return p * (1.0 - p) ** n


def expected_coverage(estimates: Sequence[float], allocation: Sequence[int]) -> float:
    """Expected number of questions some drawn sample solves: sum of 1 - (1 - p)^n."""
    return sum(coverage_probability(p, n) for p, n in zip(estimates, allocation, strict=True))


class FixedAllocation(Strategy):
    """Draw the samples a batch allocation gave this question, then select.

    The allocation is decided for the whole batch before any question runs
    (see :func:`allocate_budget`), so this strategy asks the PRM nothing: it
    looks the question up in ``samples``, and records the estimate the
    allocation used (``estimates``) as the result's question estimate.

    Example:
        .. code-block:: python

            FixedAllocation(samples={"What is 7 + 8?": 3})
    """

    name: ClassVar[str] = "fixed_allocation"

    samples: dict[str, int]
    """Question text -> samples allocated to it."""
    estimates: dict[str, SuccessEstimate] = Field(default_factory=dict)
    """Question text -> the estimate the allocation was made from."""
    quantile: float | None = Field(default=None, gt=0.0, lt=1.0)
    """The level of ``estimates`` the allocation used (``None``: their expected value)."""

    def plan(self, state: RunState) -> Plan:
        try:
            allocated = self.samples[state.question]
        except KeyError:
            raise ConfigurationError(
                f"no samples were allocated to question {state.question[:80]!r}"
            ) from None
        estimate = self.estimates.get(state.question)
        if estimate is not None:
            state.question_estimate = estimate
        wanted = min(allocated, state.max_samples)
        drawn = yield from self._draw_and_score(state, wanted)
        p = None if estimate is None else estimate_value(estimate, self.quantile)
        return Decision(
            stop_reason="fixed_budget" if drawn == wanted else "token_budget",
            decided_samples=wanted,
            confidence=None if p is None else coverage_probability(p, len(state.candidates)),
        )


def estimate_value(estimate: SuccessEstimate, quantile: float | None = None) -> float:
    """The probability an allocation uses: ``estimate`` at ``quantile``, or its expected value.

    The expected value (the calibrator's mean, else the median) is the default
    because expected coverage is what the allocation maximises; a low quantile
    spreads samples as if every question were harder.
    """
    return estimate.expected if quantile is None else estimate.at(quantile)


__all__ = ["FixedAllocation", "allocate_budget", "estimate_value", "expected_coverage"]
