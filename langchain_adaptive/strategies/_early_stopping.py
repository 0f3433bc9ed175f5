"""Early-Stopping Self-Consistency (ESC, Li et al. 2024): vote in windows, stop on unanimity.

Samples are drawn in windows of ``window``; as soon as every answer in one
window agrees, more samples are very unlikely to change the majority and
sampling stops. Otherwise windows continue up to the sample cap (the paper's
maximum is 40). Needs no PRM.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.answers import group_answers
from langchain_adaptive.results import StopReason
from langchain_adaptive.strategies._base import (
    Decision,
    Draw,
    Plan,
    RunState,
    ScoreCandidates,
    Strategy,
    remaining_samples,
)


class EarlyStoppingConsistency(Strategy):
    """Majority vote over windows of samples that stops at the first unanimous window.

    Example:
        .. code-block:: python

            AdaptiveReasoningRunnable(model=chat, strategy="esc", max_samples=40)
    """

    name: ClassVar[str] = "early_stopping_consistency"

    selection: SelectionRule = "majority_vote"
    window: int = Field(default=5, ge=1)
    """Samples per window; a window whose answers all agree stops sampling."""

    def plan(self, state: RunState) -> Plan:
        reason: StopReason = "max_samples"
        while True:
            allowed = state.allowance(self.window)
            if allowed == 0:
                if len(state.candidates) < state.max_samples:
                    reason = "token_budget"
                break
            new = yield Draw(allowed, reason="sequential_round", horizon=remaining_samples(state))
            if allowed == self.window and _unanimous([c.answer for c in new], state):
                reason = "consensus"
                break
        if self.needs_scores and state.has_prm:
            yield ScoreCandidates()
        return Decision(
            stop_reason=reason,
            decided_samples=len(state.candidates),
            low_confidence=reason != "consensus",
        )


def _unanimous(answers: list[str | None], state: RunState) -> bool:
    """Every answer present and equivalent to the first."""
    if any(answer is None for answer in answers):
        return False
    return len(set(group_answers(answers, state.equivalent))) == 1


__all__ = ["EarlyStoppingConsistency"]
