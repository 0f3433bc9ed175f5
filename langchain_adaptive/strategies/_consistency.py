"""Adaptive-Consistency (Aggarwal et al. 2023): sample until the majority is settled.

After each round the counts of the two most frequent answers, ``a`` and ``b``,
give a Beta(a + 1, b + 1) posterior on the leader's share of the two; sampling
stops when the posterior probability that the leader is ahead,
``P(X > 1/2)``, reaches ``threshold``. Needs no PRM.
"""

from __future__ import annotations

from collections import Counter
from math import comb
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


def leader_probability(leader: int, runner_up: int) -> float:
    """P(X > 1/2) for X ~ Beta(leader + 1, runner_up + 1).

    For integer parameters this is a binomial tail:
    ``sum_{j <= leader} C(n, j) / 2^n`` with ``n = leader + runner_up + 1``.

    Example:
        >>> round(leader_probability(4, 0), 4), round(leader_probability(3, 0), 4)
        (0.9688, 0.9375)
    """
    n = leader + runner_up + 1
    return sum(comb(n, j) for j in range(leader + 1)) / 2**n


class AdaptiveConsistency(Strategy):
    """Majority vote that stops as soon as more samples are unlikely to change the winner.

    Example:
        .. code-block:: python

            AdaptiveReasoningRunnable(model=chat, strategy="adaptive_consistency")
    """

    name: ClassVar[str] = "adaptive_consistency"

    selection: SelectionRule = "majority_vote"
    threshold: float = Field(default=0.95, gt=0.5, lt=1.0)
    """Posterior probability that the leading answer stays ahead, at which sampling stops."""
    round_size: int = Field(default=1, ge=1)
    """Samples per round; larger rounds suit concurrent remote models."""

    def plan(self, state: RunState) -> Plan:
        reason: StopReason
        while True:
            allowed = state.allowance(self.round_size)
            if allowed == 0:
                reason = (
                    "max_samples" if len(state.candidates) >= state.max_samples else "token_budget"
                )
                break
            yield Draw(allowed, reason="sequential_round", horizon=remaining_samples(state))
            leader, runner_up = self._top_counts(state)
            if leader and leader_probability(leader, runner_up) >= self.threshold:
                reason = "consensus"
                break
        if self.needs_scores and state.has_prm:
            yield ScoreCandidates()
        return Decision(
            stop_reason=reason,
            decided_samples=len(state.candidates),
            low_confidence=reason != "consensus",
        )

    @staticmethod
    def _top_counts(state: RunState) -> tuple[int, int]:
        labels = [
            label
            for label in group_answers([c.answer for c in state.candidates], state.equivalent)
            if label is not None
        ]
        counts = [count for _, count in Counter(labels).most_common(2)] + [0, 0]
        return counts[0], counts[1]


__all__ = ["AdaptiveConsistency", "leader_probability"]
