"""IAS when the scorer cannot score the question alone: budget on the first sample's score.

Most reward models and every self-confidence signal score a finished sample,
not a bare question, so one-shot IAS has no ``p`` to start from. This strategy
draws one sample, takes its (calibrated) final-step estimate as the estimate of
the question's success probability ``p`` (its ``quantile``, like IAS; the last
step whatever ``aggregation`` says, since a whole-solution score is one step),
and then draws the rest of the paper's ``N = ceil(log(1 - C) / log(1 - p))``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar, Literal

from pydantic import Field

from langchain_adaptive.budget import coverage_probability, ias_sample_count
from langchain_adaptive.results import StopReason
from langchain_adaptive.strategies._base import (
    Action,
    Decision,
    Draw,
    Plan,
    RunState,
    ScoreCandidates,
    Strategy,
)


class FirstSampleIAS(Strategy):
    """Draw one sample, read ``p`` off its calibrated score, then IAS's ``N`` in all.

    A first sample the scorer could not score counts as ``p = 0`` (the target is
    out of reach), and ``unreachable`` decides as in
    :class:`~langchain_adaptive.strategies.AdaptiveBestOfN`.

    Example:
        .. code-block:: python

            strategy = FirstSampleIAS(quantile=0.1, unreachable="floor", floor_samples=2)
            AdaptiveReasoningRunnable(model=chat, prm=calibrated_reward_model, strategy=strategy)
    """

    name: ClassVar[str] = "first_sample_ias"
    requires_prm: ClassVar[bool] = True

    quantile: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Quantile of the first sample's estimate used as ``p``: lower is more conservative."""
    unreachable: Literal["spend_max", "floor"] = "spend_max"
    floor_samples: int = Field(default=2, ge=1)
    """Samples drawn in all when the target is unreachable and ``unreachable="floor"``."""

    def plan(self, state: RunState) -> Plan:
        drawn = yield from self._draw_first(state)
        if not drawn:
            return Decision(stop_reason="token_budget", decided_samples=1, low_confidence=True)
        first = state.candidates[0]
        p = first.step_estimates[-1].at(self.quantile) if first.step_estimates else 0.0
        needed = ias_sample_count(p, state.target_confidence)
        reason: StopReason
        if needed <= state.max_samples:
            decided, reason, why = needed, "adaptive_budget", "ias"
        elif self.unreachable == "floor":
            decided = min(self.floor_samples, state.max_samples)
            reason, why = "low_confidence_floor", "floor"
        else:
            decided, reason, why = state.max_samples, "max_samples", "capped"
        more = 0
        if decided > 1:
            more = yield from self._draw_and_score(state, decided - 1, why)
        if more < decided - 1:
            reason = "token_budget"
        return Decision(
            stop_reason=reason,
            decided_samples=decided,
            confidence=coverage_probability(p, len(state.candidates)),
            low_confidence=needed > state.max_samples or reason == "token_budget",
        )

    def _draw_first(self, state: RunState) -> Generator[Action, Any, int]:
        if state.allowance(1) == 0:
            return 0
        yield Draw(1, reason="first_sample", planned=1)
        yield ScoreCandidates()
        return 1


__all__ = ["FirstSampleIAS"]
