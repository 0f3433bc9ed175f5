"""Particle filtering over steps (Puri et al. 2025, arXiv 2502.01618), and its IAS variant.

Beam search keeps the ``K`` best partial solutions deterministically; a particle
filter keeps a population of ``N`` particles and *samples* which survive, so a
partial solution the PRM scores a little lower still gets continued now and
then. One round:

1. every unfinished particle is extended by one step (copies of one partial
   solution are extended together, one continuation each);
2. the PRM scores each new partial solution, ``r`` in (0, 1);
3. each particle's weight is ``r / (1 - r)`` (its log-weight is the logit of
   ``r``); a finished particle keeps the weight of its last step;
4. ``N`` particles are drawn multinomially in proportion to the weights, from
   the whole population, finished ones included: a likely partial solution is
   copied, an unlikely one dies out.

The search ends when every particle is finished (a step states a final answer,
the model stops, or ``max_steps``). The finished particles (copies counted)
become the candidates: ``selection="prm"`` returns the highest-weight particle
(the weight grows with ``r``), ``"weighted_vote"`` the answer whose particles'
scores sum highest, as in weighted best-of-N.

The resampling draws from a numpy ``Generator`` seeded by ``seed`` and a stable
hash of the question, so the same question with the same seed resamples the same
way in every process (the model's own sampling is the model's to seed).

:class:`AdaptiveParticleFiltering` sets ``N`` as IAS sets it for best-of-N, from
the calibrated lower bound ``p`` of the question's success estimate,
``N = ceil(log(1 - C) / log(1 - p))`` capped by ``max_samples``, and ends a
round early once the finished particles' answer holds the target share ``C`` of
the whole population's vote weight.

Each resampling is reported as an ``adaptive_beams_pruned`` event: ``kept`` has
one entry per particle after the draw (a beam drawn three times is listed three
times; finished ones are not extended again), ``dropped`` the beams no particle
drew, ``k`` the population ``N`` and ``m = 1``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from langchain_adaptive._selection import Aggregation, SelectionRule, aggregate
from langchain_adaptive.answers import (
    STEP_JOINER,
    AnswerEquivalence,
    AnswerExtractor,
    group_answers,
)
from langchain_adaptive.budget import clip_probability, ias_sample_count
from langchain_adaptive.results import Beam, StopReason, SuccessEstimate
from langchain_adaptive.strategies._base import (
    CollectBeams,
    Decision,
    EstimateQuestion,
    ExtendBeams,
    Plan,
    PruneBeams,
    RunState,
    ScoreBeams,
    Strategy,
)

Particle = Beam | None
"""A particle is the beam it stands on; ``None`` before its first step."""


def particle_log_weight(beam: Beam | None) -> float:
    """The logit of the PRM's last median estimate, ``log(r / (1 - r))``.

    ``r`` is clipped to [1e-4, 1 - 1e-4] so every weight stays finite and
    positive; a beam the PRM could not score (an empty first step) weighs as
    ``r = 1e-4``.

    Example:
        >>> from langchain_adaptive.results import SuccessEstimate
        >>> beam = Beam(id=0, steps=["s"], step_estimates=[SuccessEstimate.point(0.8)])
        >>> round(math.exp(particle_log_weight(beam)), 6)
        4.0
    """
    estimate = beam.estimate if beam is not None else None
    r = clip_probability(estimate.median if estimate is not None else 0.0)
    return math.log(r) - math.log1p(-r)


def resampling_probabilities(log_weights: Sequence[float]) -> np.ndarray:
    """Normalized weights, ``softmax(log_weights)``: each ``r / (1 - r)`` over their sum."""
    values = np.asarray(log_weights, dtype=float)
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def question_rng(seed: int, question: str) -> np.random.Generator:
    """A Generator for one question: the same ``seed`` and text give the same draws anywhere.

    Python's ``hash`` of a string changes between processes; a SHA-256 digest does not.
    """
    digest = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([seed, digest])


def resample(
    population: Sequence[Particle], rng: np.random.Generator
) -> tuple[list[Particle], list[int]]:
    """Draw ``len(population)`` particles multinomially by weight.

    Returns:
        The new population (copies next to each other, in the old order) and
        how many copies each old particle got.
    """
    probabilities = resampling_probabilities([particle_log_weight(p) for p in population])
    copies = [int(c) for c in rng.multinomial(len(population), probabilities)]
    drawn = [particle for particle, c in zip(population, copies, strict=True) for _ in range(c)]
    return drawn, copies


def finished_vote_share(
    population: Sequence[Particle],
    *,
    extract: AnswerExtractor,
    equivalent: AnswerEquivalence,
    aggregation: Aggregation = "last",
) -> tuple[str | None, float]:
    """The leading answer among the finished particles and its share of the population's vote.

    Each particle votes with its score (``aggregation`` over its step medians,
    the score weighted-vote selection sums; copies vote once each). The share
    is the leading answer's finished weight over the weight of *all* particles,
    unfinished ones included, so one particle that finishes first cannot hold
    the whole vote on its own.
    """
    scores = [_score(p, aggregation) for p in population]
    total = sum(scores)
    finished = [(p, s) for p, s in zip(population, scores, strict=True) if _finished(p)]
    answers = [extract(STEP_JOINER.join(p.steps)) if p is not None else None for p, _ in finished]
    labels = group_answers(answers, equivalent)
    weights: dict[int, float] = {}
    first: dict[int, str] = {}
    for (_, score), label, answer in zip(finished, labels, answers, strict=True):
        if label is None or answer is None:
            continue
        weights[label] = weights.get(label, 0.0) + score
        first.setdefault(label, answer)
    if not weights or total <= 0.0:
        return None, 0.0
    leader = max(weights, key=lambda label: (weights[label], -label))
    return first[leader], weights[leader] / total


class ParticleFiltering(Strategy):
    """Particle filtering over steps with a PRM (Puri et al. 2025): ``N`` particles, resampled.

    Each round extends every unfinished particle by one step, scores it, and
    draws ``N`` particles from the population in proportion to ``r / (1 - r)``
    (see the module docstring). Hard limits hold: ``N`` is capped by the
    runnable's ``max_samples``, each step by ``max_tokens_per_sample``, and a
    step is only started when it fits in ``max_total_tokens`` (a resampled copy
    is a separate continuation and pays its own tokens). The candidates are the
    final particles, copies included, so ``budget.samples_used`` counts
    particles.

    Example:
        .. code-block:: python

            strategy = ParticleFiltering(n_particles=8, max_steps=4, seed=0)
            result = AdaptiveReasoningRunnable(model=chat, prm=prm, strategy=strategy).invoke(q)
            [(b.id, b.parent_id, b.finished, b.pruned) for b in result.beams]
    """

    name: ClassVar[str] = "particle_filtering"
    requires_prm: ClassVar[bool] = True
    stepwise: ClassVar[bool] = True
    estimates_question: ClassVar[bool] = False
    """Whether the plan first asks for the question's estimate (to size the population)."""

    selection: SelectionRule = "prm"
    """Final pick: the highest-weight particle; ``"weighted_vote"`` votes over them."""
    aggregation: Aggregation = "last"
    """A particle's score is its last step's median estimate (its weight's ``r``)."""

    n_particles: int | None = Field(default=None, ge=1)
    """``N``: particles in the population; ``None`` uses the runnable's ``max_samples``."""
    max_steps: int = Field(default=8, ge=1)
    """Steps after which a particle counts as finished."""
    seed: int = Field(default=0, ge=0)
    """Seed of the resampling draws, combined with a stable hash of the question."""
    early_stop: bool = False
    """End the search once the finished particles' leading answer holds ``C`` of the vote."""
    step_stop: tuple[str, ...] = (STEP_JOINER,)
    """Stop strings that end one step (a blank line, matching the default step delimiter)."""

    def plan(self, state: RunState) -> Plan:
        estimate = (yield EstimateQuestion()) if self.estimates_question else None
        n, low_confidence = self.population_size(state, estimate)
        rng = question_rng(self.seed, state.question)
        population: list[Particle] = [None] * n
        reason: StopReason = "beams_finished"
        confidence: float | None = None
        step = 0
        while True:
            open_slots = [i for i, p in enumerate(population) if not _finished(p)]
            if not open_slots:  # the resampling drew finished particles only
                break
            allowed = state.tracker.step_allowance(len(open_slots))
            if allowed == 0:
                reason = "token_budget"
                break
            groups = _groups(population, open_slots[:allowed])
            new = yield ExtendBeams(
                tuple(parent for parent, _ in groups),
                tuple(len(slots) for _, slots in groups),
                self.step_stop,
            )
            stranded = _place(population, groups, new)
            if step + 1 >= self.max_steps:
                for beam in new:
                    beam.finished = True
            if new:
                yield ScoreBeams(tuple(new))
            if stranded or allowed < len(open_slots):
                reason = "token_budget"  # the cap cut this round short: no fair next round
                break
            if all(_finished(p) for p in population):
                reason = "max_steps" if step + 1 >= self.max_steps else "beams_finished"
                break
            if self.early_stop:
                confidence = self._share(state, population)
                if confidence >= state.target_confidence:
                    reason = "consensus"
                    open_beams = _distinct(p for p in population if not _finished(p))
                    yield PruneBeams(step, (), tuple(open_beams), 0, 0)
                    population = [p for p in population if _finished(p)]
                    break
            old = population
            population, _ = resample(old, rng)
            alive = {p.id for p in population if p is not None}
            dropped = _distinct(p for p in old if p is not None and p.id not in alive)
            kept = tuple(p for p in population if p is not None)
            yield PruneBeams(step, kept, tuple(dropped), n, 1)
            step += 1
        if self.early_stop and reason != "consensus":
            confidence = self._share(state, population)
        particles = tuple(p for p in population if p is not None)
        if particles:
            yield CollectBeams(particles)
        return Decision(
            stop_reason=reason,
            decided_samples=n,
            confidence=confidence,
            low_confidence=low_confidence or reason == "token_budget",
        )

    def population_size(
        self, state: RunState, estimate: SuccessEstimate | None
    ) -> tuple[int, bool]:
        """``N`` and whether the target is out of reach: here the fixed ``N`` within the cap."""
        return min(self.n_particles or state.max_samples, state.max_samples), False

    def _share(self, state: RunState, population: Sequence[Particle]) -> float:
        _, share = finished_vote_share(
            population,
            extract=state.extract_answer,
            equivalent=state.equivalent,
            aggregation=self.aggregation,
        )
        return share


class AdaptiveParticleFiltering(ParticleFiltering):
    """Particle filtering with IAS's ``N`` and an early stop on the finished particles' vote.

    ``N = ceil(log(1 - C) / log(1 - p))`` from the lower bound ``p`` (at
    ``quantile``) of the question's calibrated success estimate, capped by
    ``n_particles`` and ``max_samples``: an easy question gets few particles.
    When the target is out of reach within the cap, ``unreachable`` decides as
    for :class:`~langchain_adaptive.strategies.AdaptiveBestOfN` (the cap, or
    ``floor_particles``), and the result is low confidence. A round ends the
    search early (``stop_reason="consensus"``) once the finished particles'
    leading answer holds ``C`` of the whole population's vote weight.

    Example:
        .. code-block:: python

            strategy = AdaptiveParticleFiltering(quantile=0.1, max_steps=4)
            AdaptiveReasoningRunnable(model=chat, prm=calibrated_prm, strategy=strategy)
    """

    name: ClassVar[str] = "adaptive_particle_filtering"
    estimates_question: ClassVar[bool] = True

    early_stop: bool = True
    quantile: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Quantile of the question's success estimate used as ``p``: lower is more conservative."""
    unreachable: Literal["spend_max", "floor"] = "spend_max"
    """When IAS's ``N`` exceeds the cap: run the cap (the paper's IAS) or ``floor_particles``."""
    floor_particles: int = Field(default=4, ge=1)
    """Particles run when the target is unreachable and ``unreachable="floor"``."""

    def population_size(
        self, state: RunState, estimate: SuccessEstimate | None
    ) -> tuple[int, bool]:
        """IAS's ``N`` from the lower bound ``p``, capped by ``n_particles``, ``max_samples``."""
        cap = super().population_size(state, estimate)[0]
        if estimate is None:
            raise ValueError("adaptive particle filtering needs the question's estimate")
        needed = ias_sample_count(estimate.at(self.quantile), state.target_confidence)
        if needed <= cap:
            return needed, False
        return (min(self.floor_particles, cap) if self.unreachable == "floor" else cap), True


def _finished(particle: Particle) -> bool:
    return particle is not None and particle.finished


def _score(particle: Particle, aggregation: Aggregation) -> float:
    if particle is None or not particle.step_estimates:
        return 0.0
    return aggregate(particle.step_estimates, aggregation)


def _distinct(particles: Iterable[Particle]) -> list[Beam]:
    """Each beam once, in order of first appearance."""
    seen: set[int] = set()
    out = []
    for beam in particles:
        if beam is not None and beam.id not in seen:
            seen.add(beam.id)
            out.append(beam)
    return out


def _groups(
    population: Sequence[Particle], slots: Sequence[int]
) -> list[tuple[Particle, list[int]]]:
    """The slots to extend, grouped by the beam they stand on (copies go together)."""
    groups: list[tuple[Particle, list[int]]] = []
    index: dict[int | None, int] = {}
    for slot in slots:
        particle = population[slot]
        key = particle.id if particle is not None else None
        if key not in index:
            index[key] = len(groups)
            groups.append((particle, []))
        groups[index[key]][1].append(slot)
    return groups


def _place(
    population: list[Particle], groups: Sequence[tuple[Particle, list[int]]], new: Sequence[Beam]
) -> int:
    """Put each new child on a slot of its parent's group; how many slots got none.

    The driver generates fewer children than asked only when the token cap
    stops it part-way; those slots keep the beam they stood on.
    """
    children: dict[int | None, list[Beam]] = {}
    for beam in new:
        children.setdefault(beam.parent_id, []).append(beam)
    stranded = 0
    for parent, slots in groups:
        mine = children.get(parent.id if parent is not None else None, [])
        for slot, child in zip(slots, mine, strict=False):
            population[slot] = child
        stranded += max(0, len(slots) - len(mine))
    return stranded


__all__ = [
    "AdaptiveParticleFiltering",
    "ParticleFiltering",
    "finished_vote_share",
    "particle_log_weight",
    "question_rng",
    "resample",
    "resampling_probabilities",
]
