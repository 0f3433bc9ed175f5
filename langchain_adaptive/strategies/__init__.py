"""Sampling strategies: one protocol (:class:`Strategy`), one module each, and a registry.

==========================  ============================================  ============
name                        what it does                                  needs a PRM
==========================  ============================================  ============
``best_of_n``               fixed N samples, then selection               for ``prm``
``majority_vote``           fixed N samples, most frequent answer         no
``adaptive_best_of_n``      IAS: N from the calibrated success estimate   yes
``adaptive_consistency``    sample until the majority answer is settled   no
``esc``                     windows of 5 votes until one is unanimous     no
``sequential_ias``          IAS in rounds, stopping on the PRM's scores   yes
``sequential_ias_1``        sequential IAS one sample a round, no         yes (samples)
                            question estimate (reward models, logprobs)
``first_sample_ias``        IAS with ``p`` read off the first sample's    yes (samples)
                            calibrated score
``answer_stop``             stop when the returned answer is likely       yes (samples)
                            right, or give up when more cannot help
``beam_search``             step-level beam search, IAS-of-K / IAS-of-M   yes
``particle_filtering``      step-level particle filtering: N particles    yes
                            resampled by PRM weight r / (1 - r)
``revise``                  sequential revisions: C chains of a first     for ``prm``
                            answer and L revisions of it
``adaptive_revise``         revisions with C:L from the calibrated        yes
                            estimate, chains stopping early
``deepconf``                DeepConf online: warmup sets a confidence     no (token
                            threshold, later traces stop mid-generation   logprobs)
                            below it, weighted vote until consensus
==========================  ============================================  ============

``lookahead_search`` is beam search whose steps are ranked after a greedy rollout of one
more step (``BeamSearch(lookahead=1)``; needs a PRM).

``deepconf_high`` keeps the warmup's 90% most confident traces instead of 10%; a
``DeepConf(calibrator=...)`` weighs traces by calibrated probabilities.

``adaptive_particle_filtering`` is particle filtering with IAS's N, stopping once the
finished particles' vote reaches C (needs a PRM).

Two strategies are built from data rather than from their name alone:
``fixed_allocation`` (:class:`FixedAllocation`) draws the samples a batch allocation
(:func:`~langchain_adaptive.strategies._allocation.allocate_budget`) gave each question, and
``compute_optimal`` (:class:`ComputeOptimalStrategy`) runs the strategy a policy file
(:class:`ComputeOptimalPolicy`) chose for the question's difficulty bin.
"""

from __future__ import annotations

from typing import Any

from langchain_adaptive.errors import ConfigurationError, UnknownStrategyError
from langchain_adaptive.strategies._adaptive import AdaptiveBestOfN
from langchain_adaptive.strategies._allocation import FixedAllocation, allocate_budget
from langchain_adaptive.strategies._answer_stop import AnswerConfidenceStop
from langchain_adaptive.strategies._base import (
    BEAM_ACTIONS,
    Action,
    CollectBeams,
    Decision,
    Draw,
    EstimateQuestion,
    ExtendBeams,
    Plan,
    PruneBeams,
    Revise,
    RunState,
    ScoreBeams,
    ScoreCandidates,
    Strategy,
)
from langchain_adaptive.strategies._beam_search import (
    BeamSearch,
    first_steps_confidence,
    ias_beams_kept,
    ias_samples_per_beam,
)
from langchain_adaptive.strategies._best_of_n import BestOfN
from langchain_adaptive.strategies._compute_optimal import (
    ComputeOptimalPolicy,
    ComputeOptimalStrategy,
)
from langchain_adaptive.strategies._consistency import AdaptiveConsistency, leader_probability
from langchain_adaptive.strategies._deepconf import DeepConf
from langchain_adaptive.strategies._early_stopping import EarlyStoppingConsistency
from langchain_adaptive.strategies._first_sample import FirstSampleIAS
from langchain_adaptive.strategies._particle_filtering import (
    AdaptiveParticleFiltering,
    ParticleFiltering,
)
from langchain_adaptive.strategies._revise import AdaptiveRevisions, SequentialRevisions
from langchain_adaptive.strategies._sequential import SequentialAdaptiveBestOfN

STRATEGIES: dict[str, tuple[type[Strategy], dict[str, Any]]] = {
    "best_of_n": (BestOfN, {}),
    "majority_vote": (BestOfN, {"selection": "majority_vote"}),
    "adaptive_best_of_n": (AdaptiveBestOfN, {}),
    "ias": (AdaptiveBestOfN, {}),
    "adaptive_consistency": (AdaptiveConsistency, {}),
    "early_stopping_consistency": (EarlyStoppingConsistency, {}),
    "esc": (EarlyStoppingConsistency, {}),
    "sequential_ias": (SequentialAdaptiveBestOfN, {}),
    "sequential_ias_1": (SequentialAdaptiveBestOfN, {"round_size": 1, "question_prior": 0.5}),
    "first_sample_ias": (FirstSampleIAS, {}),
    "answer_stop": (AnswerConfidenceStop, {}),
    "beam_search": (BeamSearch, {}),
    "ias_of_k": (BeamSearch, {"adaptive_k": True}),
    "ias_of_m": (BeamSearch, {"adaptive_m": True}),
    "particle_filtering": (ParticleFiltering, {}),
    "adaptive_particle_filtering": (AdaptiveParticleFiltering, {}),
    "lookahead_search": (BeamSearch, {"lookahead": 1}),
    "revise": (SequentialRevisions, {}),
    "adaptive_revise": (AdaptiveRevisions, {}),
    "deepconf": (DeepConf, {}),
    "deepconf_low": (DeepConf, {"mode": "low"}),
    "deepconf_high": (DeepConf, {"mode": "high"}),
    "fixed_allocation": (FixedAllocation, {}),
    "compute_optimal": (ComputeOptimalStrategy, {}),
}
"""Registry name -> (class, default settings)."""


def build_strategy(spec: str | Strategy, **settings: Any) -> Strategy:
    """A strategy instance from a registry name, or an instance with ``settings`` applied.

    Settings are validated either way (an instance is rebuilt, not copied, so its
    validators see the new values).

    Raises:
        UnknownStrategyError: No strategy has that name.
        ConfigurationError: The settings do not fit the strategy.
    """
    if isinstance(spec, Strategy):
        if not settings:
            return spec
        cls, defaults = type(spec), {name: getattr(spec, name) for name in type(spec).model_fields}
    else:
        try:
            cls, defaults = STRATEGIES[spec]
        except (KeyError, TypeError):
            raise UnknownStrategyError(
                f"unknown strategy {spec!r}; choose one of {sorted(STRATEGIES)} or pass a Strategy"
            ) from None
    try:
        return cls(**{**defaults, **settings})
    except ValueError as error:
        raise ConfigurationError(f"invalid settings for strategy {spec!r}: {error}") from error


__all__ = [
    "BEAM_ACTIONS",
    "STRATEGIES",
    "Action",
    "AdaptiveBestOfN",
    "AdaptiveConsistency",
    "AdaptiveParticleFiltering",
    "AdaptiveRevisions",
    "AnswerConfidenceStop",
    "BeamSearch",
    "BestOfN",
    "CollectBeams",
    "ComputeOptimalPolicy",
    "ComputeOptimalStrategy",
    "Decision",
    "DeepConf",
    "Draw",
    "EarlyStoppingConsistency",
    "EstimateQuestion",
    "ExtendBeams",
    "FirstSampleIAS",
    "FixedAllocation",
    "ParticleFiltering",
    "Plan",
    "PruneBeams",
    "Revise",
    "RunState",
    "ScoreBeams",
    "ScoreCandidates",
    "SequentialAdaptiveBestOfN",
    "SequentialRevisions",
    "Strategy",
    "allocate_budget",
    "build_strategy",
    "first_steps_confidence",
    "ias_beams_kept",
    "ias_samples_per_beam",
    "leader_probability",
]
