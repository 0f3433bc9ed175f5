"""Selection rules and score aggregation."""

from __future__ import annotations

import pytest

from langchain_adaptive._selection import aggregate, select
from langchain_adaptive.results import Candidate, SuccessEstimate


def cand(index: int, answer: str | None, score: float | None = None) -> Candidate:
    return Candidate(index=index, text=str(answer), answer=answer, score=score)


def test_aggregations() -> None:
    steps = [SuccessEstimate.point(p) for p in (0.8, 0.5, 0.9)]
    assert aggregate(steps, "last") == 0.9
    assert aggregate(steps, "min") == 0.5
    assert aggregate(steps, "mean") == pytest.approx(2.2 / 3)
    assert aggregate(steps, "product") == pytest.approx(0.36)
    with pytest.raises(ValueError):
        aggregate([], "last")


def test_prm_rule_takes_the_top_score_and_breaks_ties_by_order() -> None:
    pool = [cand(0, "1", 0.4), cand(1, "2", 0.7), cand(2, "3", 0.7)]
    outcome = select(pool, "prm")
    assert (outcome.index, outcome.answer, outcome.votes) == (1, "2", 1)


def test_weighted_vote_sums_scores_per_equivalent_answer() -> None:
    pool = [cand(0, "0.5", 0.3), cand(1, "1/2", 0.3), cand(2, "7", 0.5)]
    outcome = select(pool, "weighted_vote")
    assert outcome.answer in {"0.5", "1/2"} and outcome.votes == 2


def test_majority_vote_and_unanswered_candidates() -> None:
    pool = [cand(0, None, 0.99), cand(1, "4"), cand(2, "5"), cand(3, "4")]
    outcome = select(pool, "majority_vote")
    assert (outcome.answer, outcome.votes, outcome.index) == ("4", 2, 1)
    assert select(pool[:1], "prm").index == 0  # nothing answered: still pick something
    assert select([], "prm").index is None


def test_score_rule_on_unscored_candidates_falls_back_to_votes() -> None:
    pool = [cand(0, "3"), cand(1, "8"), cand(2, "8")]
    assert select(pool, "prm").answer == "8"
