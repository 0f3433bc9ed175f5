"""Step-level beam search with a PRM, and its instance-adaptive variants IAS-of-K and IAS-of-M.

Beam search (Snell et al. 2024) spends its compute on the steps, not on whole
solutions: ``N`` first steps are drawn, the PRM scores every partial solution,
the ``K`` best by median success estimate are kept and each is continued with
``M`` next steps, and so on until the beams finish or ``max_steps`` is reached.
Finished beams are kept as candidates; the final answer is the candidate with
the best median estimate.

Park et al. 2025 make the two widths adaptive from the PRM's calibrated lower
bounds ``p`` (with ``N_IAS(p) = ceil(log(1 - C) / log(1 - p))``):

- IAS-of-K keeps the fewest beams ``K`` such that ``K * M_max >= N_IAS(p_K)``,
  ``p_K`` the lower bound of the K-th best beam: when the leading beams are
  likely right, few are worth continuing.
- IAS-of-M gives each kept beam ``min(M_max, ceil(N_IAS(p_weakest) / K_max))``
  samples, ``p_weakest`` the lowest lower bound among the kept beams: sure
  beams need few continuations.

When even the widest search cannot reach ``C`` (every lower bound is low), the
paper keeps the widest search (``unreachable="spend_max"``). With
``unreachable="floor"`` each adaptive width drops to its floor instead
(``floor_beams``, ``floor_samples_per_beam``): our variant, which stops paying
full width for beams the PRM says will almost surely fail, as
``AdaptiveBestOfN(unreachable="floor")`` does for whole samples.

Both rules act only once the PRM has scored a step, so the ``N`` first steps
are drawn blind. With ``first_round="sequential"`` they are drawn in rounds of
``first_round_size`` instead, each round scored, until the drawn first steps
reach ``C`` by sequential IAS's rule (``1 - prod_i (1 - p_i) >= C`` over their
lower bounds ``p_i``; see :mod:`langchain_adaptive.strategies._sequential`) or
``N`` are drawn: our variant, which brings IAS to the one round the paper's
rules leave at full width.

Lookahead search (Snell et al. 2024) is beam search whose step scores look
ahead: with ``lookahead=k``, each open candidate step at a selection is rolled
out ``k`` further steps at temperature 0 (or until it answers, or reaches
``max_steps``), and the PRM's estimate at the end of the rollout ranks the
step (``Beam.lookahead``); the step's own estimates are read off the same PRM
call. Beam search is ``k = 0``. Rollouts are beams with ``rollout_of`` set:
their tokens count in the budget, and a step is only started when its
rollout fits in ``max_total_tokens`` too (the reservation covers ``1 + k``
steps). Identical candidate steps share one rollout (greedy decoding would
repeat it). The rollouts of one depth go out as one :class:`ExtendBeams`
action, one greedy continuation per step; each is reported as an
``adaptive_rollout_scored`` event.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from langchain_adaptive._selection import Aggregation, SelectionRule
from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.budget import clip_probability, ias_sample_count
from langchain_adaptive.results import Beam, StopReason, SuccessEstimate
from langchain_adaptive.strategies._base import (
    Action,
    CollectBeams,
    Decision,
    ExtendBeams,
    Plan,
    PruneBeams,
    RunState,
    ScoreBeams,
    Strategy,
)


def ias_beams_kept(lower_bounds: Sequence[float], m_max: int, target_confidence: float) -> int:
    """IAS-of-K: the fewest beams ``K`` with ``K * m_max >= N_IAS(p_K)``.

    Args:
        lower_bounds: The candidate beams' lower bounds, best beam first; its
            length is the most beams that may be kept (``K_max``).
        m_max: Samples each kept beam gets.
        target_confidence: IAS's ``C``.

    Returns:
        ``K`` in ``1..len(lower_bounds)``; ``len(lower_bounds)`` when no ``K``
        reaches the target (see :func:`ias_reachable`). ``p_K`` is the lowest
        lower bound among the first ``K`` beams (the K-th best when the ranking
        by median agrees with the ranking by lower bound).

    Raises:
        ValueError: No lower bounds, or ``m_max`` below 1.

    Example:
        >>> ias_beams_kept([0.6, 0.5, 0.1], m_max=4, target_confidence=0.99)
        2
    """
    if not lower_bounds or m_max < 1:
        raise ValueError("IAS-of-K needs at least one beam and m_max >= 1")
    k = _fewest_beams_reaching(lower_bounds, m_max, target_confidence)
    return len(lower_bounds) if k is None else k


def _fewest_beams_reaching(
    lower_bounds: Sequence[float], m_max: int, target_confidence: float
) -> int | None:
    """The fewest leading beams that reach ``C`` with ``m_max`` samples each, or ``None``."""
    weakest = math.inf
    for k, p in enumerate(lower_bounds, start=1):
        weakest = min(weakest, p)
        if k * m_max >= ias_sample_count(weakest, target_confidence):
            return k
    return None


def ias_samples_per_beam(
    weakest_lower: float, k_max: int, m_max: int, target_confidence: float
) -> int:
    """IAS-of-M: ``min(m_max, ceil(N_IAS(weakest_lower) / k_max))`` samples per kept beam.

    Example:
        >>> ias_samples_per_beam(0.5, k_max=4, m_max=4, target_confidence=0.99)
        2
    """
    if k_max < 1 or m_max < 1:
        raise ValueError("IAS-of-M needs k_max >= 1 and m_max >= 1")
    needed = ias_sample_count(weakest_lower, target_confidence)
    return max(1, min(m_max, math.ceil(needed / k_max)))


def first_steps_confidence(first_steps: Sequence[Beam], quantile: float) -> float:
    """``1 - prod_i (1 - p_i)``: the chance that some scored first step leads to a right answer.

    ``p_i`` is each first step's lower bound at ``quantile``, read as an
    independent chance of success; a step the PRM could not score (an empty
    one) counts as 0.

    Example:
        >>> from langchain_adaptive.results import SuccessEstimate
        >>> steps = [Beam(id=i, steps=["s"], step_estimates=[SuccessEstimate.point(0.4)])
        ...          for i in range(2)]
        >>> round(first_steps_confidence(steps, 0.1), 2)
        0.64
    """
    miss = 1.0
    for beam in first_steps:
        if beam.step_estimates:
            miss *= 1.0 - clip_probability(beam.step_estimates[-1].at(quantile))
    return 1.0 - miss


def ias_reachable(weakest_lower: float, k: int, m: int, target_confidence: float) -> bool:
    """Whether ``k`` beams of ``m`` samples reach ``N_IAS`` of the weakest kept beam."""
    return k * m >= ias_sample_count(weakest_lower, target_confidence)


class BeamWidths(BaseModel):
    """One selection round's outcome: the beams kept (best first) and samples for each."""

    kept: list[Beam]
    m: int
    reachable: bool
    """Whether ``K * M`` covers ``N_IAS`` of the weakest kept beam (before any floor)."""
    floored: bool = False
    """No ``K`` leading beams reach ``C`` even with ``M_max`` samples each, and the
    adaptive widths dropped to their floors."""


class BeamSearch(Strategy):
    """Step-level beam search guided by a PRM, with optional IAS-of-K and IAS-of-M.

    ``n_paths`` (``N``) first steps are drawn; every ``freq`` steps the PRM
    scores the open beams, the best ``beams_kept`` (``K``) by median estimate
    are kept and each gets ``samples_per_beam`` (``M``) next steps (between
    selections each beam gets one). A beam finishes when its step states a
    final answer, the model stops, or it has ``max_steps`` steps; finished
    beams leave the search and become candidates, and the open width shrinks
    by one for each (at most ``N`` paths in all). Hard limits hold: ``N`` is
    capped by the runnable's ``max_samples``, each step by
    ``max_tokens_per_sample``, and a step is only started when it fits in
    ``max_total_tokens``.

    The model continues a partial solution (see
    :func:`langchain_adaptive._sampling.draw_steps`): chat models must support
    assistant prefill.

    Example:
        .. code-block:: python

            strategy = BeamSearch(n_paths=8, beams_kept=2, samples_per_beam=4, adaptive_m=True)
            result = AdaptiveReasoningRunnable(model=chat, prm=prm, strategy=strategy).invoke(q)
            [(b.id, b.parent_id, b.finished, b.pruned) for b in result.beams]
    """

    name: ClassVar[str] = "beam_search"
    requires_prm: ClassVar[bool] = True
    stepwise: ClassVar[bool] = True

    selection: SelectionRule = "prm"
    """Final pick: by default the candidate with the best median estimate."""
    aggregation: Aggregation = "last"
    """A candidate's score is its last step's median estimate."""

    n_paths: int | None = Field(default=None, ge=1)
    """``N``: first steps drawn and paths in all; ``None`` uses the runnable's ``max_samples``."""
    beams_kept: int = Field(default=4, ge=1)
    """``K`` (``K_max`` with ``adaptive_k``): beams kept at each selection."""
    samples_per_beam: int = Field(default=4, ge=1)
    """``M`` (``M_max`` with ``adaptive_m``): next steps drawn for each kept beam."""
    freq: int = Field(default=1, ge=1)
    """Select every ``freq`` steps; in between each open beam gets one next step."""
    max_steps: int = Field(default=8, ge=1)
    """Steps after which a beam counts as finished."""
    adaptive_k: bool = False
    """IAS-of-K: keep the fewest beams that reach the target confidence."""
    adaptive_m: bool = False
    """IAS-of-M: give kept beams only the samples the weakest of them needs."""
    quantile: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Quantile of a beam's estimate used as its lower bound ``p``."""
    unreachable: Literal["spend_max", "floor"] = "spend_max"
    """When no ``K <= K_max`` leading beams reach ``C`` with ``M_max`` samples each: keep
    the widths IAS chose (the paper: the widest) or drop each adaptive width to its floor."""
    floor_beams: int = Field(default=1, ge=1)
    """``K`` at an unreachable selection with ``adaptive_k`` and ``unreachable="floor"``."""
    floor_samples_per_beam: int = Field(default=2, ge=1)
    """``M`` at an unreachable selection with ``adaptive_m`` and ``unreachable="floor"``."""
    first_round: Literal["all", "sequential"] = "all"
    """Draw the ``N`` first steps at once (the paper), or in scored rounds until they reach
    ``C`` (see the module docstring)."""
    first_round_size: int = Field(default=2, ge=1)
    """First steps drawn between two looks at their scores, with ``first_round="sequential"``."""
    step_stop: tuple[str, ...] = (STEP_JOINER,)
    """Stop strings that end one step (a blank line, matching the default step delimiter)."""
    lookahead: int = Field(default=0, ge=0)
    """``k``: steps each candidate step is rolled out greedily before the PRM ranks it (the
    estimate at the rollout's end scores the step); 0 is plain beam search."""

    @model_validator(mode="after")
    def _floor_needs_an_adaptive_width(self) -> BeamSearch:
        if self.unreachable == "floor" and not (self.adaptive_k or self.adaptive_m):
            raise ValueError(
                'unreachable="floor" lowers the adaptive widths: set adaptive_k or adaptive_m'
            )
        return self

    def widths(self, ranked: Sequence[Beam], width: int, target_confidence: float) -> BeamWidths:
        """Which beams to keep and how many samples each gets, from the ranked open beams.

        Args:
            ranked: Scored open beams, best median estimate first.
            width: Paths still open (``N`` minus finished beams); ``K * M <= width``.
            target_confidence: IAS's ``C``.
        """
        m_cap = min(self.samples_per_beam, width)
        k_cap = max(1, min(self.beams_kept, len(ranked), width // m_cap))
        lowers = [_estimate(beam).at(self.quantile) for beam in ranked]
        k = ias_beams_kept(lowers[:k_cap], m_cap, target_confidence) if self.adaptive_k else k_cap
        weakest = min(lowers[:k])
        m = (
            ias_samples_per_beam(weakest, k_cap, m_cap, target_confidence)
            if self.adaptive_m
            else m_cap
        )
        reachable = ias_reachable(weakest, k, m, target_confidence)
        out_of_reach = _fewest_beams_reaching(lowers[:k_cap], m_cap, target_confidence) is None
        floored = out_of_reach and self.unreachable == "floor"
        if floored:
            k = min(self.floor_beams, k) if self.adaptive_k else k
            m = min(self.floor_samples_per_beam, m) if self.adaptive_m else m
        return BeamWidths(kept=list(ranked[:k]), m=m, reachable=reachable, floored=floored)

    def plan(self, state: RunState) -> Plan:
        n = min(self.n_paths or state.max_samples, state.max_samples)
        finished: list[Beam] = []
        stranded: list[Beam] = []  # kept, but the token cap left no room to continue them
        active: list[Beam] = []
        low_confidence = False
        reason: StopReason = "beams_finished"
        step = 0  # 0-based index of the step being generated
        parents: tuple[Beam | None, ...] = (None,)
        counts: tuple[int, ...] = (self._step_allowance(state, n, step),)
        while True:
            if sum(counts) == 0:
                reason = "token_budget"
                stranded.extend(b for b in parents if b is not None)
                break
            if step == 0 and self.first_round == "sequential":
                new = yield from self._first_steps_in_rounds(state, counts[0])
            else:
                new = yield ExtendBeams(parents, counts, self.step_stop)
            stranded.extend(
                b for b, c in zip(parents, counts, strict=True) if b is not None and c == 0
            )
            if step + 1 >= self.max_steps:
                for beam in new:
                    beam.finished = True
            finished.extend(b for b in new if b.finished)
            active = [b for b in new if not b.finished]
            width = n - len(finished) - len(stranded)
            if not active:
                reason = "max_steps" if step + 1 >= self.max_steps else "beams_finished"
                break
            if width < 1:
                yield PruneBeams(step, (), tuple(active), 0, 0)
                active = []
                break
            if (step + 1) % self.freq == 0:
                depth = self._rollout_depth(step)
                if depth:
                    yield from self._roll_out(state, active, depth)
                unscored = [b for b in active if not _is_scored(b)]
                if unscored:
                    yield ScoreBeams(tuple(unscored))
                ranked = sorted(active, key=lambda b: (-_estimate(b).median, b.id))
                chosen = self.widths(ranked, width, state.target_confidence)
                kept = chosen.kept
                low_confidence = low_confidence or not chosen.reachable
                dropped = [b for b in ranked if all(b is not k for k in kept)]
                yield PruneBeams(
                    step, tuple(kept), tuple(dropped), len(kept), chosen.m, chosen.floored
                )
                wanted = [chosen.m] * len(kept)
            else:
                kept, wanted = active, [1] * len(active)
            parents = tuple(kept)
            counts = tuple(_fill(wanted, self._step_allowance(state, sum(wanted), step + 1)))
            active = []
            step += 1
        candidates = [*finished, *stranded, *active]
        unscored = [b for b in candidates if b.steps and not _is_scored(b)]
        if unscored:
            yield ScoreBeams(tuple(unscored))
        yield CollectBeams(tuple(candidates))
        return Decision(stop_reason=reason, decided_samples=n, low_confidence=low_confidence)

    def _first_steps_in_rounds(
        self, state: RunState, allowed: int
    ) -> Generator[Action, Any, list[Beam]]:
        """Up to ``allowed`` first steps (``N`` within the token cap), a scored round at a
        time, until they reach ``C``."""
        drawn: list[Beam] = []
        while len(drawn) < allowed:
            wanted = min(self.first_round_size, allowed - len(drawn))
            count = self._step_allowance(state, wanted, 0)
            if count == 0:
                break
            new: list[Beam] = yield ExtendBeams((None,), (count,), self.step_stop)
            drawn.extend(new)
            if not new:
                break
            yield ScoreBeams(tuple(new))
            if first_steps_confidence(drawn, self.quantile) >= state.target_confidence:
                break
        return drawn

    def _rollout_depth(self, step: int) -> int:
        """Rollout steps after the candidate steps of ``step`` (0-based): none between
        selections, and none past ``max_steps``."""
        if not self.lookahead or (step + 1) % self.freq:
            return 0
        return max(0, min(self.lookahead, self.max_steps - step - 1))

    def _step_allowance(self, state: RunState, wanted: int, step: int) -> int:
        """Candidate steps of ``step`` the token cap allows, each with room for its rollout."""
        reserve = 1 + self._rollout_depth(step)
        return state.tracker.step_allowance(wanted * reserve) // reserve

    def _roll_out(
        self, state: RunState, steps: Sequence[Beam], depth: int
    ) -> Generator[Action, Any, None]:
        """Roll ``steps`` out ``depth`` steps greedily; set their ``lookahead`` and estimates."""
        twins: dict[tuple[str, ...], list[Beam]] = {}
        for beam in steps:
            twins.setdefault(tuple(beam.steps), []).append(beam)
        heads = [group[0] for group in twins.values()]
        leaves = {head.id: head for head in heads}
        frontier = list(heads)
        for _ in range(depth):
            frontier = frontier[: state.tracker.step_allowance(len(frontier))]
            if not frontier:
                break
            new: list[Beam] = yield ExtendBeams(
                tuple(frontier),
                (1,) * len(frontier),
                self.step_stop,
                temperature=0.0,
                rollout=True,
            )
            for child in new:
                if child.rollout_of is not None:
                    leaves[child.rollout_of] = child
            frontier = [child for child in new if not child.finished]
        ends = [leaf for leaf in leaves.values() if leaf.steps and not _is_scored(leaf)]
        if ends:
            yield ScoreBeams(tuple(ends))
        for head in heads:
            leaf = leaves[head.id]
            if leaf is not head and leaf.step_estimates:
                head.step_estimates = leaf.step_estimates[: len(head.steps)]
                head.lookahead = leaf.estimate
            for twin in twins[tuple(head.steps)][1:]:
                twin.step_estimates = head.step_estimates
                twin.lookahead = head.lookahead


def _is_scored(beam: Beam) -> bool:
    """Whether every step of the beam has its estimate (an empty beam has none to score)."""
    return beam.step_estimates is not None and len(beam.step_estimates) == len(beam.steps)


def _estimate(beam: Beam) -> SuccessEstimate:
    """What ranks a beam: its rollout's estimate under lookahead, else its own."""
    estimate = beam.lookahead or beam.estimate
    if estimate is None:
        raise ValueError(f"beam {beam.id} was not scored before selection")
    return estimate


def _fill(wanted: Sequence[int], allowed: int) -> list[int]:
    """Hand out ``allowed`` samples to ``wanted`` in order (best beam first)."""
    counts = []
    for want in wanted:
        take = min(want, allowed)
        counts.append(take)
        allowed -= take
    return counts


__all__ = [
    "BeamSearch",
    "BeamWidths",
    "first_steps_confidence",
    "ias_beams_kept",
    "ias_reachable",
    "ias_samples_per_beam",
]
