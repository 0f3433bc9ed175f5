"""Sequential IAS: draw in rounds and let the PRM's scores of drawn samples decide when to stop.

One-shot IAS fixes ``N`` from the question estimate before any sample exists.
Sequential IAS starts from the same estimate but, after every round, replaces
the prior for each drawn sample by what the PRM says about that very sample,
so a round of convincing solutions stops early and a round of doubtful ones
asks for more.

The update rule treats every drawn sample's calibrated lower bound ``p_i``
(its final-step estimate at ``quantile``) as an independent chance of being
correct, and every sample not yet drawn as the question's own lower bound
``p``::

    P(some drawn sample is correct) = 1 - prod_i (1 - p_i)

Sampling stops as soon as that reaches the target ``C``. Otherwise the next
round draws ``min(round_size, k)`` samples, where ``k`` is the fewest further
samples at ``p`` that would lift it to ``C``:
``k = ceil(log((1 - C) / prod_i (1 - p_i)) / log(1 - p))``. Before any
sample exists this is one-shot IAS's ``N``, so sequential IAS never draws more
in its first round than one-shot IAS would in total. A sample the PRM could
not score (no steps) counts as ``p_i = 0``; one left unscored (a recorded pool
without step scores) keeps the question's ``p``, which makes the rule one-shot
IAS drawn in rounds.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from langchain_adaptive.budget import clip_probability, ias_sample_count
from langchain_adaptive.results import Candidate, StopReason
from langchain_adaptive.strategies._base import (
    Decision,
    Draw,
    EstimateQuestion,
    Plan,
    RunState,
    ScoreCandidates,
    Strategy,
    remaining_samples,
)


class SequentialAdaptiveBestOfN(Strategy):
    """IAS in rounds: stop once the drawn samples' own estimates reach the target.

    Needs a PRM for the question estimate and for scoring every round (whatever
    the selection rule). Stops with ``adaptive_budget`` when the target is
    reached, ``max_samples`` at the cap, ``token_budget`` when the token limit
    stops it; the last two set ``low_confidence``.

    Example:
        .. code-block:: python

            strategy = SequentialAdaptiveBestOfN(round_size=2, quantile=0.1)
            AdaptiveReasoningRunnable(model=chat, prm=prm, strategy=strategy)
    """

    name: ClassVar[str] = "sequential_ias"
    requires_prm: ClassVar[bool] = True

    round_size: int = Field(default=2, ge=1)
    """Most samples drawn between two looks at the scores."""
    quantile: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Quantile of every estimate used as its success chance: lower is more conservative."""
    question_prior: float | None = Field(default=None, gt=0.0, lt=1.0)
    """The question's ``p`` when the scorer cannot score a question alone (a reward model
    or a self-confidence signal): the PRM is then never asked for a question estimate.
    At ``round_size=1`` it only sets the planned count that events report. ``None``:
    ask the PRM."""

    def plan(self, state: RunState) -> Plan:
        if self.question_prior is None:
            estimate = yield EstimateQuestion()
            prior = clip_probability(estimate.at(self.quantile))
        else:
            prior = self.question_prior
        target = state.target_confidence
        wanted_total = 0
        reason: StopReason = "adaptive_budget"
        while True:
            miss = math.prod(1.0 - self._chance(c, prior) for c in state.candidates)
            if state.candidates and 1.0 - miss >= target:
                break
            # 1 - miss < C here, so (1 - C) / miss < 1 and the adjusted target is in (0, 1).
            needed = ias_sample_count(prior, 1.0 - (1.0 - target) / miss)
            wanted = min(self.round_size, needed)
            allowed = state.allowance(wanted)
            wanted_total = len(state.candidates) + wanted
            if allowed == 0:
                at_cap = len(state.candidates) >= state.max_samples
                reason = "max_samples" if at_cap else "token_budget"
                wanted_total = len(state.candidates) if at_cap else wanted_total
                break
            yield Draw(allowed, horizon=remaining_samples(state))
            yield ScoreCandidates()
        confidence = 1.0 - miss
        return Decision(
            stop_reason=reason,
            decided_samples=wanted_total,
            confidence=confidence,
            low_confidence=confidence < target,
        )

    def _chance(self, candidate: Candidate, prior: float) -> float:
        """The candidate's calibrated lower bound, or the prior when it was not scored."""
        if candidate.step_estimates is None:
            return prior
        if not candidate.step_estimates:
            return 0.0
        return clip_probability(candidate.step_estimates[-1].at(self.quantile))


__all__ = ["SequentialAdaptiveBestOfN"]
