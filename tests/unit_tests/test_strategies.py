"""Strategies driven by hand: the actions they ask for and the decisions they return."""

from __future__ import annotations

import pytest

from langchain_adaptive.budget import BudgetLimits, BudgetTracker
from langchain_adaptive.errors import ConfigurationError, UnknownStrategyError
from langchain_adaptive.results import Candidate, SuccessEstimate, TokenUsage
from langchain_adaptive.strategies import (
    STRATEGIES,
    AdaptiveBestOfN,
    AdaptiveConsistency,
    BestOfN,
    Decision,
    Draw,
    EarlyStoppingConsistency,
    EstimateQuestion,
    RunState,
    ScoreCandidates,
    Strategy,
    build_strategy,
    leader_probability,
)


def drive(strategy, answers, *, p=0.5, max_samples=32, has_prm=True):
    """Run a plan, answering Draw with candidates whose answers come from ``answers``."""
    state = RunState(
        question="q",
        target_confidence=0.99,
        tracker=BudgetTracker(BudgetLimits(max_samples=max_samples)),
        has_prm=has_prm,
    )
    actions = []
    plan = strategy.plan(state)
    outcome = None
    try:
        while True:
            action = plan.send(outcome)
            actions.append(action)
            if isinstance(action, EstimateQuestion):
                outcome = SuccessEstimate.point(p)
            elif isinstance(action, Draw):
                start = len(state.candidates)
                new = [
                    Candidate(index=i, text="", answer=answers[i % len(answers)])
                    for i in range(start, start + action.n)
                ]
                state.tracker.record_samples([TokenUsage(output_tokens=1)] * action.n)
                state.candidates.extend(new)
                outcome = new
            else:
                outcome = None
    except StopIteration as stop:
        return stop.value, actions, state


def test_leader_probability_matches_the_beta_tail() -> None:
    # X ~ Beta(a+1, b+1): P(X > 1/2) by the binomial identity, checked at known points.
    assert leader_probability(0, 0) == pytest.approx(0.5)
    assert leader_probability(1, 0) == pytest.approx(0.75)
    assert leader_probability(4, 0) == pytest.approx(31 / 32)
    assert leader_probability(3, 3) == pytest.approx(0.5)
    assert leader_probability(6, 2) > leader_probability(5, 2) > leader_probability(5, 3)


def test_adaptive_consistency_stops_after_four_unanimous() -> None:
    decision, actions, state = drive(AdaptiveConsistency(), ["15"], has_prm=False)
    assert decision.stop_reason == "consensus" and len(state.candidates) == 4
    assert actions == [Draw(1)] * 4


def test_adaptive_consistency_keeps_going_on_a_split_vote() -> None:
    decision, _, state = drive(AdaptiveConsistency(), ["1", "2"], max_samples=12, has_prm=False)
    assert decision.stop_reason == "max_samples" and len(state.candidates) == 12
    assert decision.low_confidence


def test_adaptive_consistency_ignores_unanswered_samples() -> None:
    decision, _, state = drive(AdaptiveConsistency(), [None, "7"], has_prm=False)
    assert decision.stop_reason == "consensus" and len(state.candidates) == 8


def test_adaptive_consistency_rounds() -> None:
    _, actions, state = drive(AdaptiveConsistency(round_size=3), ["7"], has_prm=False)
    assert actions == [Draw(3), Draw(3)] and len(state.candidates) == 6


def test_esc_stops_at_the_first_unanimous_window() -> None:
    decision, actions, state = drive(EarlyStoppingConsistency(), ["7"], has_prm=False)
    assert actions == [Draw(5)] and decision.stop_reason == "consensus"
    assert not decision.low_confidence and len(state.candidates) == 5


def test_esc_continues_while_windows_disagree() -> None:
    # answers cycle 1,1,1,1,2 | 1,1,1,1,2 ...: no window is unanimous
    decision, actions, state = drive(
        EarlyStoppingConsistency(), ["1"] * 4 + ["2"], max_samples=12, has_prm=False
    )
    assert actions == [Draw(5), Draw(5), Draw(2)]
    assert decision.stop_reason == "max_samples" and decision.low_confidence
    assert len(state.candidates) == 12


def test_esc_unanswered_samples_are_not_a_consensus() -> None:
    decision, _, state = drive(
        EarlyStoppingConsistency(window=2), [None], max_samples=6, has_prm=False
    )
    assert decision.stop_reason == "max_samples" and len(state.candidates) == 6


def test_esc_a_short_last_window_does_not_count_as_consensus() -> None:
    decision, actions, _ = drive(EarlyStoppingConsistency(), ["1", "2"], max_samples=3)
    assert actions[0] == Draw(3) and decision.stop_reason == "max_samples"


def test_adaptive_best_of_n_asks_first_then_draws_once_then_scores() -> None:
    decision, actions, _ = drive(AdaptiveBestOfN(), ["1"], p=0.5)
    assert actions == [EstimateQuestion(), Draw(7), ScoreCandidates()]
    assert decision == Decision(
        stop_reason="adaptive_budget", decided_samples=7, confidence=decision.confidence
    )
    assert decision.confidence == pytest.approx(1 - 0.5**7)


def test_best_of_n_majority_vote_never_scores() -> None:
    _, actions, _ = drive(BestOfN(n=5, selection="majority_vote"), ["1"])
    assert actions == [Draw(5)]


def test_best_of_n_defaults_to_the_cap() -> None:
    decision, actions, _ = drive(BestOfN(), ["1"], max_samples=9)
    assert actions[0] == Draw(9) and decision.stop_reason == "fixed_budget"


def test_registry() -> None:
    assert set(STRATEGIES) >= {"best_of_n", "majority_vote", "adaptive_best_of_n", "ias", "esc"}
    assert isinstance(build_strategy("esc"), EarlyStoppingConsistency)
    assert build_strategy("majority_vote").selection == "majority_vote"
    assert build_strategy("ias", unreachable="floor").unreachable == "floor"
    instance = BestOfN(n=2)
    assert build_strategy(instance) is instance
    with pytest.raises(UnknownStrategyError) as caught:
        build_strategy("nope")
    assert isinstance(caught.value, KeyError) and "adaptive_best_of_n" in str(caught.value)
    with pytest.raises(ConfigurationError, match="invalid settings"):
        build_strategy("best_of_n", n=0)


def _draw_tags(actions: list[object]) -> list[tuple[int, int | None, str]]:
    return [(a.n, a.planned, a.reason) for a in actions if isinstance(a, Draw)]


@pytest.mark.parametrize(
    ("strategy", "p", "max_samples", "expected"),
    [
        (AdaptiveBestOfN(), 0.5, 32, [(7, 7, "ias")]),
        (AdaptiveBestOfN(), 0.1, 8, [(8, 8, "capped")]),
        (AdaptiveBestOfN(unreachable="floor", floor_samples=3), 0.1, 8, [(3, 3, "floor")]),
        (BestOfN(n=4), 0.5, 32, [(4, 4, "fixed")]),
        (BestOfN(n=40), 0.5, 6, [(6, 6, "capped")]),
        (EarlyStoppingConsistency(window=2), 0.5, 5, [(2, None, "sequential_round")] * 2),
        (AdaptiveConsistency(round_size=2), 0.5, 4, [(2, None, "sequential_round")] * 2),
    ],
)
def test_draws_say_how_many_were_planned_and_why(
    strategy: Strategy, p: float, max_samples: int, expected: list[tuple[int, int | None, str]]
) -> None:
    _, actions, _ = drive(strategy, ["1", "2"], p=p, max_samples=max_samples)
    assert _draw_tags(actions)[: len(expected)] == expected


def test_draw_tags_take_no_part_in_equality() -> None:
    assert Draw(3, reason="ias", planned=5) == Draw(3)
    assert Draw(3, reason="ias") != Draw(4, reason="ias")


def test_every_strategy_in_the_package_is_registered() -> None:
    import importlib
    import pkgutil

    import langchain_adaptive.strategies as package

    defined = {
        cls
        for info in pkgutil.iter_modules(package.__path__)
        for cls in vars(importlib.import_module(f"{package.__name__}.{info.name}")).values()
        if isinstance(cls, type) and issubclass(cls, Strategy) and cls is not Strategy
    }
    registered = {cls for cls, _ in STRATEGIES.values()}
    assert defined and defined <= registered, sorted(c.__name__ for c in defined - registered)
