"""Lookahead search: rollouts at temperature 0 score the step at their end, their tokens count
and are reserved, twins share one rollout, and ``lookahead=0`` is beam search unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from langchain_adaptive import AdaptiveReasoningRunnable, BeamSearch
from langchain_adaptive.budget import BudgetLimits, BudgetTracker
from langchain_adaptive.results import AdaptiveResult, Beam, SuccessEstimate
from langchain_adaptive.strategies import (
    STRATEGIES,
    CollectBeams,
    ExtendBeams,
    PruneBeams,
    RunState,
    ScoreBeams,
    build_strategy,
)
from tests.unit_tests.fakes import ScriptedPRM
from tests.unit_tests.test_beam_search import (
    QUESTION,
    EventRecorder,
    StepChatModel,
    arithmetic_steps,
    right_steps,
)


def tempting_steps(steps: list[str], i: int) -> str:
    """A first step that looks good but leads astray ("3 + 4 = 7 so"), and a plain one that
    leads to the answer; every later step follows from the first."""
    if not steps:
        return "A: 3 + 4 = 7" if i % 2 == 0 else "B: 3 + 4 is 7"
    if len(steps) == 1:
        return "A then wrong 15" if steps[0].startswith("A") else "B then 7 * 2 = 14"
    return "The answer is 15." if steps[0].startswith("A") else "The answer is 14."


def tempting_score(step: str) -> float:
    """The PRM likes A's first step more than B's, but A's next step is wrong."""
    return {"A: 3 + 4 = 7": 0.8, "B: 3 + 4 is 7": 0.6, "A then wrong 15": 0.1}.get(step, 0.9)


def reasoner(model: StepChatModel | None = None, **settings: Any) -> AdaptiveReasoningRunnable:
    strategy = BeamSearch(
        **{"n_paths": 4, "beams_kept": 1, "samples_per_beam": 4, "max_steps": 4, **settings}
    )
    return AdaptiveReasoningRunnable(
        model=model or StepChatModel(next_step=tempting_steps),
        prm=ScriptedPRM(step_score=tempting_score),
        strategy=strategy,
    )


def _shape(result: AdaptiveResult) -> list[tuple[Any, ...]]:
    return [
        (b.id, b.parent_id, tuple(b.steps), b.finished, b.pruned, b.rollout_of)
        for b in result.beams or []
    ]


def test_the_estimate_at_the_rollouts_end_ranks_the_step() -> None:
    plain = reasoner().invoke(QUESTION)
    ahead = reasoner(lookahead=1).invoke(QUESTION)
    assert plain.answer == "15"  # beam search keeps A, whose own score is higher
    assert ahead.answer == "14"  # lookahead sees where A leads and keeps B

    first = [b for b in ahead.beams or [] if b.parent_id is None]
    by_text = {b.steps[0]: b for b in first}
    a, b = by_text["A: 3 + 4 = 7"], by_text["B: 3 + 4 is 7"]
    assert a.lookahead is not None and a.lookahead.median == pytest.approx(0.1)
    assert b.lookahead is not None and b.lookahead.median == pytest.approx(0.9)
    # the step keeps its own estimate, read off the rollout's scored prefix
    assert a.estimate is not None and a.estimate.median == pytest.approx(0.8)
    assert b.estimate is not None and b.estimate.median == pytest.approx(0.6)


def test_rollouts_decode_greedily_and_are_marked_but_never_candidates() -> None:
    model = StepChatModel(next_step=tempting_steps)
    result = reasoner(model, lookahead=2).invoke(QUESTION)

    rollouts = [b for b in result.beams or [] if b.rollout_of is not None]
    assert rollouts
    beams = {b.id: b for b in result.beams or []}
    for beam in rollouts:
        origin = beams[beam.rollout_of]  # type: ignore[index]
        assert origin.rollout_of is None
        assert beam.steps[: len(origin.steps)] == origin.steps
        assert 0 < len(beam.steps) - len(origin.steps) <= 2
    assert {c.beam_id for c in result.candidates}.isdisjoint(b.id for b in rollouts)
    greedy = [call for call in model.calls if call["temperature"] == 0.0]
    assert greedy and all(call["n"] == 1 for call in greedy)
    assert len(greedy) == len(rollouts)
    assert all(call["temperature"] == 0.7 for call in model.calls if call not in greedy)


def test_twin_steps_share_one_rollout() -> None:
    result = reasoner(lookahead=1).invoke(QUESTION)
    first = [b for b in result.beams or [] if b.parent_id is None]
    assert len(first) == 4 and len({tuple(b.steps) for b in first}) == 2
    first_rollouts = [b for b in result.beams or [] if b.rollout_of in {f.id for f in first}]
    assert len(first_rollouts) == 2
    for beam in first:
        assert beam.lookahead is not None


def test_rollout_tokens_are_counted() -> None:
    plain = reasoner().invoke(QUESTION)
    model = StepChatModel(next_step=tempting_steps)
    ahead = reasoner(model, lookahead=1).invoke(QUESTION)
    beams = ahead.beams or []
    rolled = sum(b.usage.output_tokens for b in beams if b.rollout_of is not None)
    assert rolled > 0
    assert ahead.budget.generated_tokens == sum(b.usage.output_tokens for b in beams)
    assert ahead.budget.model_calls == len(model.calls)  # one call per rollout step, too
    assert ahead.budget.samples_used == len(ahead.candidates) <= 4  # rollouts are not paths
    assert plain.budget.generated_tokens < ahead.budget.generated_tokens


@pytest.mark.parametrize("lookahead", [1, 2, 3])
@pytest.mark.parametrize("total_steps", [2, 3, 5, 8, 13])
def test_the_reservation_covers_the_rollouts(lookahead: int, total_steps: int) -> None:
    per_step = 6
    total = per_step * total_steps
    result = AdaptiveReasoningRunnable(
        model=StepChatModel(next_step=lambda steps, i: "w " * 10),  # 10 words, cut to 6
        prm=ScriptedPRM(step_score=lambda step: 0.5),
        strategy=BeamSearch(
            n_paths=4, beams_kept=2, samples_per_beam=2, max_steps=6, lookahead=lookahead
        ),
        max_tokens_per_sample=per_step,
        max_total_tokens=total,
    ).invoke(QUESTION)
    assert result.budget.generated_tokens <= total
    beams = result.beams or []
    searched = [b for b in beams if b.rollout_of is None]
    # every search step that was rolled out got its whole rollout (or reached max_steps)
    for step in searched:
        rollouts = [b for b in beams if b.rollout_of == step.id]
        if rollouts:
            depth = max(len(b.steps) for b in rollouts) - len(step.steps)
            assert depth == min(lookahead, 6 - len(step.steps))
    assert result.stop_reason == "token_budget" or total_steps >= 13


def test_lookahead_zero_is_beam_search_unchanged() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    prm = ScriptedPRM(step_score=right_steps)
    settings = {"n_paths": 4, "beams_kept": 2, "samples_per_beam": 2, "max_steps": 4}
    recorder_zero, recorder_default = EventRecorder(), EventRecorder()
    zero = AdaptiveReasoningRunnable(
        model=model, prm=prm, strategy=BeamSearch(**settings, lookahead=0)
    ).invoke(QUESTION, {"callbacks": [recorder_zero]})
    default_model = StepChatModel(next_step=arithmetic_steps)
    default = AdaptiveReasoningRunnable(
        model=default_model,
        prm=ScriptedPRM(step_score=right_steps),
        strategy=BeamSearch(**settings),
    ).invoke(QUESTION, {"callbacks": [recorder_default]})
    assert _shape(zero) == _shape(default)
    assert zero.budget.model_dump() == default.budget.model_dump()
    assert recorder_zero.events == recorder_default.events
    assert model.calls == default_model.calls
    assert all(b.rollout_of is None and b.lookahead is None for b in zero.beams or [])
    assert not recorder_zero.named("adaptive_rollout_scored")


def test_the_plan_rolls_out_one_depth_per_action_then_scores_the_ends() -> None:
    state = RunState(
        question=QUESTION,
        target_confidence=0.9,
        tracker=BudgetTracker(BudgetLimits(max_samples=4)),
        has_prm=True,
    )
    strategy = BeamSearch(n_paths=3, beams_kept=1, samples_per_beam=3, max_steps=5, lookahead=2)
    plan = strategy.plan(state)
    action = next(plan)
    assert action == ExtendBeams((None,), (3,))
    ids = iter(range(100))
    first = [Beam(id=next(ids), steps=[text]) for text in ("x", "y", "x")]
    action = plan.send(first)
    assert isinstance(action, ExtendBeams) and action.rollout and action.temperature == 0.0
    assert [b.id for b in action.parents] == [0, 1] and action.counts == (1, 1)  # type: ignore[union-attr]
    depth1 = [
        Beam(id=next(ids), parent_id=0, steps=["x", "x1"], rollout_of=0),
        Beam(id=next(ids), parent_id=1, steps=["y", "The answer is 3."], rollout_of=1),
    ]
    depth1[1].finished = True
    action = plan.send(depth1)
    assert isinstance(action, ExtendBeams) and action.rollout
    assert [b.id for b in action.parents] == [3]  # type: ignore[union-attr]  # finished stops
    depth2 = [Beam(id=next(ids), parent_id=3, steps=["x", "x1", "x2"], rollout_of=0)]
    action = plan.send(depth2)
    assert action == ScoreBeams((depth2[0], depth1[1]))
    depth2[0].step_estimates = [SuccessEstimate.point(v) for v in (0.5, 0.4, 0.2)]
    depth1[1].step_estimates = [SuccessEstimate.point(v) for v in (0.3, 0.7)]
    action = plan.send(None)
    assert isinstance(action, PruneBeams)
    assert [b.steps for b in action.kept] == [["y"]]  # 0.7 at its rollout's end beats 0.2
    assert first[2].lookahead == first[0].lookahead == depth2[0].estimate
    assert first[0].estimate == SuccessEstimate.point(0.5)
    plan.close()
    assert not isinstance(action, CollectBeams)


def test_adaptive_widths_take_lookahead_and_the_registry_has_it() -> None:
    assert build_strategy("ias_of_k", lookahead=2).lookahead == 2  # type: ignore[attr-defined]
    assert build_strategy("ias_of_m", lookahead=1).adaptive_m  # type: ignore[attr-defined]
    assert STRATEGIES["lookahead_search"] == (BeamSearch, {"lookahead": 1})
    result = reasoner(lookahead=1, adaptive_k=True, adaptive_m=True).invoke(QUESTION)
    assert result.answer == "14"


def test_sync_async_batch_and_abatch_give_the_same_lookahead_search() -> None:
    sync_events, async_events = EventRecorder(), EventRecorder()
    sync = reasoner(lookahead=1).invoke(QUESTION, {"callbacks": [sync_events]})
    asynchronous = asyncio.run(
        reasoner(lookahead=1).ainvoke(QUESTION, {"callbacks": [async_events]})
    )
    assert _shape(sync) == _shape(asynchronous)
    assert sync.budget.model_dump() == asynchronous.budget.model_dump()
    assert sync_events.events == async_events.events
    rollouts = sync_events.named("adaptive_rollout_scored")
    assert rollouts and all(r["rollout_steps"] == 1 for r in rollouts)
    beams = {b.id: b for b in sync.beams or []}
    for event in rollouts:
        assert beams[event["rollout_beam_id"]].rollout_of == event["beam_id"]
    batched = reasoner(lookahead=1).batch([QUESTION, QUESTION])
    abatched = asyncio.run(reasoner(lookahead=1).abatch([QUESTION, QUESTION]))
    assert [_shape(r) for r in batched] == [_shape(r) for r in abatched] == [_shape(sync)] * 2


async def test_astream_events_report_the_rollouts() -> None:
    events = [e async for e in reasoner(lookahead=1).astream_events(QUESTION, version="v2")]
    names = [e["name"] for e in events if e["event"] == "on_custom_event"]
    assert "adaptive_rollout_scored" in names and names[-1] == "adaptive_finished"
