"""Instance-adaptive best-of-N (IAS, Park et al. 2025): as many samples as the question needs.

The calibrated lower bound ``p`` on the question's success probability sets the
budget ``N = ceil(log(1 - C) / log(1 - p))``: the fewest samples for which some
sample is correct with probability at least ``C``. Easy questions get one or two
samples; hard ones get more, up to the cap.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from langchain_adaptive.budget import coverage_probability, ias_sample_count
from langchain_adaptive.results import StopReason
from langchain_adaptive.strategies._base import Decision, EstimateQuestion, Plan, RunState, Strategy


class AdaptiveBestOfN(Strategy):
    """IAS-of-N: budget each question from its success estimate, then best-of-N.

    When the target is out of reach within ``max_samples`` (the estimate is too
    low), ``unreachable`` decides: ``"spend_max"`` draws the cap anyway (the
    paper's behaviour), ``"floor"`` draws only ``floor_samples`` and flags the
    result as low confidence, which saves compute on questions the model will
    almost surely miss. Either way the result's ``low_confidence`` is set.

    Example:
        .. code-block:: python

            strategy = AdaptiveBestOfN(quantile=0.1, unreachable="floor", floor_samples=4)
            AdaptiveReasoningRunnable(model=chat, prm=prm, strategy=strategy)
    """

    name: ClassVar[str] = "adaptive_best_of_n"
    requires_prm: ClassVar[bool] = True

    quantile: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Quantile of the success estimate used as ``p``: lower is more conservative."""
    unreachable: Literal["spend_max", "floor"] = "spend_max"
    floor_samples: int = Field(default=4, ge=1)
    """Samples drawn when the target is unreachable and ``unreachable="floor"``."""

    def plan(self, state: RunState) -> Plan:
        estimate = yield EstimateQuestion()
        p = estimate.at(self.quantile)
        needed = ias_sample_count(p, state.target_confidence)
        low_confidence = needed > state.max_samples
        reason: StopReason
        if not low_confidence:
            decided, reason, why = needed, "adaptive_budget", "ias"
        elif self.unreachable == "floor":
            decided = min(self.floor_samples, state.max_samples)
            reason, why = "low_confidence_floor", "floor"
        else:
            decided, reason, why = state.max_samples, "max_samples", "capped"
        drawn = yield from self._draw_and_score(state, decided, why)
        if drawn < decided:
            reason = "token_budget"
        return Decision(
            stop_reason=reason,
            decided_samples=decided,
            confidence=coverage_probability(p, len(state.candidates)),
            low_confidence=low_confidence or drawn < needed,
        )


__all__ = ["AdaptiveBestOfN"]
