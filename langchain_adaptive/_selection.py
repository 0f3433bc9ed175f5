"""Choosing the final answer from the candidates: PRM argmax, weighted vote, majority vote."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from langchain_adaptive.answers import AnswerEquivalence, answers_match, group_answers
from langchain_adaptive.results import Candidate, SuccessEstimate

SelectionRule = Literal[
    "prm", "weighted_vote", "majority_vote", "filtered_vote_top10", "filtered_vote_top90"
]
"""``prm``: the candidate with the best aggregated PRM score.
``weighted_vote``: the answer whose candidates' scores sum highest (PRM-weighted majority).
``majority_vote``: the most frequent answer (self-consistency); needs no PRM.
``filtered_vote_top10`` / ``filtered_vote_top90``: DeepConf's offline filter (Fu et al.
2025, arXiv 2508.15260): keep the 10% ("DeepConf-low") or 90% ("DeepConf-high") of the
answered candidates with the highest scores (at least one), then a score-weighted vote
among them. With a self-confidence scorer (mean token log-probability) this is DeepConf's
confidence-filtered vote; with a PRM it filters by the PRM."""

FILTER_KEEP: dict[str, float] = {"filtered_vote_top10": 0.1, "filtered_vote_top90": 0.9}
"""Share of candidates each filtered vote keeps."""

Aggregation = Literal["last", "min", "mean", "product"]
"""How per-step success estimates (their medians) combine into one candidate score."""


def aggregate(estimates: Sequence[SuccessEstimate], how: Aggregation) -> float:
    """One score from a candidate's per-step estimates."""
    values = [estimate.median for estimate in estimates]
    if not values:
        raise ValueError("cannot aggregate an empty list of step estimates")
    if how == "last":
        return values[-1]
    if how == "min":
        return min(values)
    if how == "mean":
        return sum(values) / len(values)
    if how == "product":
        return math.prod(values)
    raise ValueError(f"unknown aggregation {how!r}")


class SelectionOutcome(BaseModel):
    """The selected candidate and how much support its answer had."""

    index: int | None
    answer: str | None
    votes: int = 0
    """Candidates whose answer is equivalent to the selected one."""
    rule: SelectionRule


def select(
    candidates: Sequence[Candidate],
    rule: SelectionRule,
    *,
    equivalent: AnswerEquivalence = answers_match,
) -> SelectionOutcome:
    """Pick the final candidate.

    Candidates with an extracted answer are preferred over those without. Ties
    go to the candidate drawn first, so selection is deterministic. When a
    score-based rule meets unscored candidates it falls back to counting votes.
    """
    if not candidates:
        return SelectionOutcome(index=None, answer=None, rule=rule)
    answered = [c for c in candidates if c.answer is not None]
    pool = answered or list(candidates)
    scored = all(c.score is not None for c in pool)
    if rule in FILTER_KEEP and scored:
        keep = max(1, math.ceil(FILTER_KEEP[rule] * len(pool)))
        # the highest scores, ties to the candidate drawn first; drawing order kept
        kept = sorted(pool, key=lambda c: (-(c.score or 0.0), c.index))[:keep]
        pool = sorted(kept, key=lambda c: c.index)
    labels = group_answers([c.answer for c in pool], equivalent)

    if rule == "prm" and scored:
        best = max(pool, key=lambda c: (c.score, -c.index))
        votes = _votes(pool, labels, pool.index(best))
        return SelectionOutcome(index=best.index, answer=best.answer, votes=votes, rule=rule)

    weights: dict[int | None, float] = {}
    for candidate, label in zip(pool, labels, strict=True):
        weight = candidate.score if rule != "majority_vote" and scored else 1.0
        weights[label] = weights.get(label, 0.0) + float(weight or 0.0)
    first_seen = {label: i for i, label in reversed(list(enumerate(labels)))}
    winner = max(weights, key=lambda label: (weights[label], -first_seen[label]))
    members = [c for c, label in zip(pool, labels, strict=True) if label == winner]
    best = max(members, key=lambda c: (c.score if c.score is not None else 0.0, -c.index))
    return SelectionOutcome(index=best.index, answer=best.answer, votes=len(members), rule=rule)


def select_finalists(
    candidates: Sequence[Candidate],
    rule: SelectionRule,
    finalists: Sequence[int] | None,
    *,
    equivalent: AnswerEquivalence = answers_match,
) -> SelectionOutcome:
    """:func:`select` over the candidates a strategy named as finalists (``None``: all).

    The one place the live runnable and replay pick an answer, so a strategy that
    drops candidates from the vote (DeepConf's low-confidence traces, revision
    chains' earlier attempts) is judged the same way in both.
    """
    pool = candidates if finalists is None else [candidates[i] for i in finalists]
    return select(pool, rule, equivalent=equivalent)


def _votes(pool: Sequence[Candidate], labels: Sequence[int | None], position: int) -> int:
    label = labels[position]
    if label is None:
        return 1
    return sum(1 for other in labels if other == label)


__all__ = [
    "FILTER_KEEP",
    "Aggregation",
    "SelectionOutcome",
    "SelectionRule",
    "aggregate",
    "select",
    "select_finalists",
]
