"""Particle filtering: weights, seeded resampling, finished particles, IAS's N, the early stop,
hard limits, events, and the same search in invoke, ainvoke, batch, abatch and astream_events."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.budget import BudgetLimits, BudgetTracker, ias_sample_count
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.results import AdaptiveResult, Beam, SuccessEstimate
from langchain_adaptive.strategies import (
    STRATEGIES,
    AdaptiveParticleFiltering,
    CollectBeams,
    EstimateQuestion,
    ExtendBeams,
    ParticleFiltering,
    PruneBeams,
    RunState,
    ScoreBeams,
    build_strategy,
)
from langchain_adaptive.strategies._particle_filtering import (
    finished_vote_share,
    particle_log_weight,
    question_rng,
    resample,
    resampling_probabilities,
)
from tests.unit_tests.fakes import ScriptedPRM
from tests.unit_tests.test_beam_search import (
    QUESTION,
    EventRecorder,
    StepChatModel,
    arithmetic_steps,
    right_steps,
)


def _beam(beam_id: int, r: float, *, finished: bool = False, text: str = "step") -> Beam:
    return Beam(
        id=beam_id, steps=[text], step_estimates=[SuccessEstimate.point(r)], finished=finished
    )


def reasoner(
    model: Any = None, prm: ScriptedPRM | None = None, *, adaptive: bool = False, **settings: Any
) -> AdaptiveReasoningRunnable:
    cls = AdaptiveParticleFiltering if adaptive else ParticleFiltering
    strategy = cls(**{"n_particles": 4, "max_steps": 4, **settings})
    return AdaptiveReasoningRunnable(
        model=model or StepChatModel(next_step=arithmetic_steps),
        prm=prm or ScriptedPRM(step_score=right_steps),
        strategy=strategy,
    )


def _shape(result: AdaptiveResult) -> list[tuple[Any, ...]]:
    return [
        (b.id, b.parent_id, tuple(b.steps), b.finished, b.pruned, b.answer)
        for b in result.beams or []
    ]


# -- weights and resampling ----------------------------------------------------------


def test_the_log_weight_is_the_logit_of_the_last_median() -> None:
    for r in (0.1, 0.5, 0.8, 0.99):
        beam = Beam(
            id=0,
            steps=["a", "b"],
            step_estimates=[SuccessEstimate.point(0.3), SuccessEstimate.point(r)],
        )
        assert math.exp(particle_log_weight(beam)) == pytest.approx(r / (1 - r))
    # extremes are clipped, so every weight stays finite and positive
    assert math.isfinite(particle_log_weight(_beam(0, 1.0)))
    assert particle_log_weight(Beam(id=0, steps=[], step_estimates=[])) == pytest.approx(
        math.log(1e-4 / (1 - 1e-4))
    )


def test_resampling_probabilities_are_proportional_to_r_over_one_minus_r() -> None:
    rs = [0.9, 0.5, 0.2, 0.5]
    odds = [r / (1 - r) for r in rs]
    probabilities = resampling_probabilities(
        [particle_log_weight(_beam(i, r)) for i, r in enumerate(rs)]
    )
    assert probabilities == pytest.approx([o / sum(odds) for o in odds])


def test_resampling_with_a_fixed_seed_follows_the_weights() -> None:
    population = [_beam(i, r) for i, r in enumerate([0.9, 0.5, 0.2, 0.05])]
    odds = np.array([r / (1 - r) for r in (0.9, 0.5, 0.2, 0.05)])
    expected = odds / odds.sum()
    rng = np.random.default_rng(7)
    totals = np.zeros(4)
    rounds = 4000
    for _ in range(rounds):
        drawn, copies = resample(population, rng)
        assert len(drawn) == 4 and sum(copies) == 4
        assert [b.id for b in drawn] == sorted(b.id for b in drawn)  # copies stay together
        totals += copies
    frequencies = totals / totals.sum()
    # 16,000 draws: a binomial standard error of at most 0.004 per share
    assert np.abs(frequencies - expected).max() < 0.02
    again = [resample(population, np.random.default_rng(7))[1] for _ in range(2)]
    assert again[0] == again[1]


def test_the_question_rng_is_stable_across_processes() -> None:
    here = question_rng(3, QUESTION).integers(0, 2**32, size=4).tolist()
    code = (
        "from langchain_adaptive.strategies._particle_filtering import question_rng; "
        f"print(question_rng(3, {QUESTION!r}).integers(0, 2**32, size=4).tolist())"
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout.strip()
    assert there == str(here)
    assert question_rng(4, QUESTION).integers(0, 2**32, size=4).tolist() != here
    assert question_rng(3, QUESTION + " ").integers(0, 2**32, size=4).tolist() != here


def test_the_vote_share_counts_finished_particles_over_the_whole_population() -> None:
    population = [
        _beam(0, 0.8, finished=True, text="The answer is 14."),
        _beam(0, 0.8, finished=True, text="The answer is 14."),  # a copy votes again
        _beam(1, 0.4, finished=True, text="The answer is 15."),
        _beam(2, 0.8),  # unfinished: in the denominator only
    ]
    answer, share = finished_vote_share(
        population, extract=lambda t: t.split()[-1].rstrip("."), equivalent=str.__eq__
    )
    assert answer == "14" and share == pytest.approx(1.6 / 2.8)
    assert finished_vote_share(population[3:], extract=lambda t: t, equivalent=str.__eq__) == (
        None,
        0.0,
    )


# -- the plan, driven by hand ----------------------------------------------------------


def drive(strategy: ParticleFiltering, *, max_samples: int = 8, p: float = 0.5) -> list[Any]:
    """Answer the plan's actions with beams whose first step is right for even copies."""
    state = RunState(
        question=QUESTION,
        target_confidence=0.99,
        tracker=BudgetTracker(BudgetLimits(max_samples=max_samples)),
        has_prm=True,
    )
    actions: list[Any] = []
    plan = strategy.plan(state)
    outcome: Any = None
    try:
        while True:
            action = plan.send(outcome)
            actions.append(action)
            outcome = None
            if isinstance(action, EstimateQuestion):
                outcome = SuccessEstimate.point(p)
            elif isinstance(action, ExtendBeams):
                outcome = []
                for parent, count in zip(action.parents, action.counts, strict=True):
                    base = parent.steps if parent is not None else []
                    for i in range(count):
                        step = arithmetic_steps(list(base), i)
                        beam = Beam(
                            id=len(state.beams),
                            parent_id=parent.id if parent is not None else None,
                            steps=[*base, step],
                            finished=step.startswith("The answer"),
                        )
                        state.beams.append(beam)
                        outcome.append(beam)
            elif isinstance(action, ScoreBeams):
                for beam in action.beams:
                    beam.step_estimates = [
                        SuccessEstimate.point(right_steps(s)) for s in beam.steps
                    ]
    except StopIteration as stop:
        actions.append(stop.value)
    return actions


def test_each_round_extends_every_open_particle_once_and_copies_go_together() -> None:
    actions = drive(ParticleFiltering(n_particles=4))
    extends = [a for a in actions if isinstance(a, ExtendBeams)]
    assert extends[0].parents == (None,) and extends[0].counts == (4,)
    prunes = [a for a in actions if isinstance(a, PruneBeams)]
    for extend, prune in zip(extends[1:], prunes, strict=False):
        # the particles the resampling kept, as (beam, copies), are what the next round extends
        open_kept = Counter(b.id for b in prune.kept if not b.finished)
        assert {p.id: c for p, c in zip(extend.parents, extend.counts, strict=True)} == open_kept
        assert sum(extend.counts) == len([b for b in prune.kept if not b.finished])
        assert (prune.k, prune.m, len(prune.kept)) == (4, 1, 4)
    decision = actions[-1]
    assert decision.stop_reason == "beams_finished" and decision.decided_samples == 4
    [collect] = [a for a in actions if isinstance(a, CollectBeams)]
    assert len(collect.beams) == 4 and all(b.finished for b in collect.beams)


def test_the_adaptive_plan_sizes_the_population_with_ias() -> None:
    for p, cap in ((0.5, 16), (0.9, 16), (0.2, 8)):
        actions = drive(AdaptiveParticleFiltering(), max_samples=cap, p=p)
        assert actions[0] == EstimateQuestion()
        expected = min(ias_sample_count(p, 0.99), cap)
        assert actions[1].counts == (expected,) and actions[-1].decided_samples == expected
        assert actions[-1].low_confidence == (ias_sample_count(p, 0.99) > cap)
    floored = drive(AdaptiveParticleFiltering(unreachable="floor", floor_particles=3), p=0.05)
    assert floored[1].counts == (3,) and floored[-1].low_confidence
    capped = drive(AdaptiveParticleFiltering(n_particles=2), max_samples=16, p=0.5)
    assert capped[1].counts == (2,)


# -- live through the runnable ---------------------------------------------------------


def test_particle_filtering_finds_the_right_path_and_reports_each_resampling() -> None:
    recorder = EventRecorder()
    result = reasoner().invoke({"question": QUESTION, "gold": "14"}, {"callbacks": [recorder]})
    assert result.answer == "14" and result.correct and result.strategy == "particle_filtering"
    beams = {b.id: b for b in result.beams or []}
    assert [b.steps for b in beams.values() if b.parent_id is None] == [
        ["3 + 4 = 7"],
        ["3 + 4 = 8"],
    ] * 2
    resamplings = recorder.named("adaptive_beams_pruned")
    assert resamplings and all(e["k"] == 4 and e["m"] == 1 for e in resamplings)
    for event in resamplings:
        assert len(event["kept"]) == 4  # one entry per particle, copies repeated
        assert not set(event["dropped"]) & set(event["kept"])
        assert all(beams[i].pruned for i in event["dropped"])
    for beam in beams.values():  # every child extends its parent by one step
        if beam.parent_id is not None:
            assert beam.steps[:-1] == beams[beam.parent_id].steps
    assert len(result.candidates) == 4 == result.budget.samples_used
    assert all(beams[c.beam_id].finished for c in result.candidates)  # type: ignore[index]
    assert sum(b.usage.output_tokens for b in beams.values()) == result.budget.generated_tokens


def test_a_resampled_copy_is_a_separate_continuation_and_pays_its_tokens() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    recorder = EventRecorder()
    result = reasoner(model=model, n_particles=4).invoke(QUESTION, {"callbacks": [recorder]})
    first = recorder.named("adaptive_beams_pruned")[0]
    copies = Counter(first["kept"])
    assert max(copies.values()) >= 2  # right steps weigh 81 times the wrong ones
    second_round = [c for c in model.calls[1:] if c["prefix"].count("\n\n") == 1]
    assert sorted(c["n"] for c in second_round) == sorted(copies.values())
    children = [b for b in result.beams or [] if b.parent_id in copies]
    assert len(children) == 4 and all(b.usage.output_tokens > 0 for b in children)


def test_the_same_seed_resamples_the_same_way_and_another_seed_may_not() -> None:
    def run(seed: int) -> tuple[list[Any], list[Any]]:
        recorder = EventRecorder()
        prm = ScriptedPRM(step_score=lambda step: 0.6 if "7" in step else 0.4)
        result = reasoner(prm=prm, n_particles=6, seed=seed).invoke(
            QUESTION, {"callbacks": [recorder]}
        )
        return _shape(result), recorder.named("adaptive_beams_pruned")

    assert run(0) == run(0)
    assert len({str(run(seed)[1]) for seed in range(6)}) > 1


def test_finished_particles_keep_their_weight_and_are_not_extended() -> None:
    def steps(done: list[str], i: int) -> str:
        if not done:  # one particle answers at once (rightly), the others reason
            return "The answer is 14." if i == 0 else "3 + 4 = 7"
        return arithmetic_steps(done, i)

    prm = ScriptedPRM(step_score=right_steps)
    recorder = EventRecorder()
    result = reasoner(model=StepChatModel(next_step=steps), prm=prm).invoke(
        QUESTION, {"callbacks": [recorder]}
    )
    early = (result.beams or [])[0]
    assert early.finished and early.steps == ["The answer is 14."]
    assert all(b.parent_id != early.id for b in result.beams or [])  # never extended
    scored = [s for _, solutions in prm.calls for s in solutions if s == ["The answer is 14."]]
    assert len(scored) == 1  # scored once; its weight stays that of its last step
    rounds = recorder.named("adaptive_beams_pruned")
    assert len(rounds) >= 2
    # it stays in the population (with its weight) in later resamplings unless drawn out
    later = [e for e in rounds[1:] if early.id in e["kept"] or early.id in e["dropped"]]
    assert later or early.id in {c.beam_id for c in result.candidates}


def test_selection_prm_picks_the_highest_weight_and_weighted_vote_sums_scores() -> None:
    def steps(done: list[str], i: int) -> str:
        if not done:
            return ["The answer is 14.", "The answer is 15.", "The answer is 15."][i % 3]
        return "unused"

    prm = ScriptedPRM(step_score=lambda step: 0.9 if "14" in step else 0.5)
    best = reasoner(model=StepChatModel(next_step=steps), prm=prm, n_particles=3).invoke(QUESTION)
    assert best.answer == "14" and best.stop_reason == "beams_finished"
    vote = reasoner(
        model=StepChatModel(next_step=steps), prm=prm, n_particles=3, selection="weighted_vote"
    ).invoke(QUESTION)
    assert vote.answer == "15"  # 0.5 + 0.5 > 0.9


def test_adaptive_n_comes_from_the_question_estimate() -> None:
    for p, expected in ((0.9, ias_sample_count(0.9, 0.99)), (0.5, 7), (0.05, 8)):
        model = StepChatModel(next_step=arithmetic_steps)
        prm = ScriptedPRM(default_p=p, step_score=right_steps)
        result = (
            reasoner(model=model, prm=prm, adaptive=True, n_particles=None)
            .model_copy(update={"max_samples": 8})
            .invoke(QUESTION)
        )
        assert model.calls[0]["n"] == expected == result.budget.decided_samples
        assert result.strategy == "adaptive_particle_filtering"
        assert result.low_confidence == (p == 0.05)


def test_adaptive_stops_early_once_the_finished_vote_reaches_the_target() -> None:
    def steps(done: list[str], i: int) -> str:
        if not done:  # three of four particles answer 14 at once; one keeps reasoning
            return "3 + 4 = 7" if i == 3 else "The answer is 14."
        return arithmetic_steps(done, i)

    model = StepChatModel(next_step=steps)
    recorder = EventRecorder()
    prm = ScriptedPRM(default_p=0.1, step_score=right_steps)  # N_IAS = 12: the cap, 4
    runnable = reasoner(model=model, prm=prm, adaptive=True, n_particles=4).model_copy(
        update={"target_confidence": 0.7}
    )
    result = runnable.invoke(QUESTION, {"callbacks": [recorder]})
    # share: 3 * 0.9 of 4 * 0.9 = 0.75 >= 0.7 after the first round
    assert result.stop_reason == "consensus" and result.answer == "14"
    assert result.confidence == pytest.approx(0.75)
    assert len(model.calls) == 1 and result.budget.samples_used == 3
    assert recorder.named("adaptive_early_stop")[0]["reason"] == "consensus"
    [dropped] = recorder.named("adaptive_beams_pruned")
    assert dropped["kept"] == [] and len(dropped["dropped"]) == 1
    # short of the target, the search resamples and goes on
    later = EventRecorder()
    patient = runnable.model_copy(update={"target_confidence": 0.8}).invoke(
        QUESTION, {"callbacks": [later]}
    )
    assert patient.stop_reason == "beams_finished" and patient.confidence is not None
    assert later.named("adaptive_beams_pruned")[0]["k"] == 4
    assert not later.named("adaptive_early_stop")


def test_the_early_stop_reads_answers_with_the_runnables_extractor() -> None:
    def steps(done: list[str], i: int) -> str:
        if not done:  # two answers, and one particle still reasoning
            return ["The answer is 14.", "The answer is 15.", "3 + 4 = 7"][i % 3]
        return arithmetic_steps(done, i)

    prm = ScriptedPRM(default_p=0.1, step_score=lambda step: 0.9)
    runnable = reasoner(
        model=StepChatModel(next_step=steps), prm=prm, adaptive=True, n_particles=3
    ).model_copy(update={"target_confidence": 0.6})
    assert runnable.invoke(QUESTION).stop_reason != "consensus"  # 14 and 15: 1/3 each
    parity = runnable.model_copy(update={"answer_extractor": lambda text: "a number"})
    assert parity.invoke(QUESTION).stop_reason == "consensus"  # one answer: 2/3 >= 0.6


def test_a_resampling_that_draws_only_finished_particles_ends_the_search() -> None:
    def steps(done: list[str], i: int) -> str:
        return "3 + 4 = 8" if i == 3 and not done else "The answer is 14."

    model = StepChatModel(next_step=steps)
    prm = ScriptedPRM(step_score=lambda step: 0.9999 if "14" in step else 0.0001)
    result = reasoner(model=model, prm=prm).invoke(QUESTION)
    # the open particle weighs 1e-8 of the finished ones: the draw keeps none of it
    assert result.stop_reason == "beams_finished" and not result.low_confidence
    assert len(model.calls) == 1 and result.budget.samples_used == 4
    assert {c.answer for c in result.candidates} == {"14"}


def test_plain_particle_filtering_never_stops_on_the_vote() -> None:
    result = reasoner().model_copy(update={"target_confidence": 0.01}).invoke(QUESTION)
    assert result.stop_reason == "beams_finished" and result.confidence is None


# -- hard limits -------------------------------------------------------------------------


def test_max_samples_caps_the_particles() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    result = (
        reasoner(model=model, n_particles=16).model_copy(update={"max_samples": 3}).invoke(QUESTION)
    )
    assert model.calls[0]["n"] == 3 and result.budget.decided_samples == 3
    assert result.budget.samples_used <= 3


def test_the_token_cap_is_a_hard_limit_and_keeps_the_particles() -> None:
    runnable = reasoner(n_particles=4).model_copy(
        update={"max_tokens_per_sample": 5, "max_total_tokens": 30}
    )
    result = runnable.invoke(QUESTION)
    assert result.budget.generated_tokens <= 30
    assert result.stop_reason == "token_budget" and result.low_confidence
    assert result.candidates and result.beams
    assert all(b.usage.output_tokens <= 5 for b in result.beams or [])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.integers(1, 9),
    max_samples=st.integers(1, 8),
    per_step=st.integers(1, 8),
    total_extra=st.integers(0, 60),
    seed=st.integers(0, 3),
    name=st.sampled_from(["particle_filtering", "adaptive_particle_filtering"]),
)
def test_limits_hold_for_any_caps(
    words: int, max_samples: int, per_step: int, total_extra: int, seed: int, name: str
) -> None:
    def steps(done: list[str], i: int) -> str:
        filler = " ".join(["so"] * (words - 1))
        return f"{filler} The answer is {i}." if len(done) >= 1 + i % 3 else f"{filler} {i} + 1"

    total = per_step + total_extra
    result = AdaptiveReasoningRunnable(
        model=StepChatModel(next_step=steps),
        prm=ScriptedPRM(default_p=0.3, step_score=lambda s: 0.7 if "1" in s else 0.3),
        strategy=build_strategy(name, seed=seed, max_steps=4),
        max_samples=max_samples,
        max_tokens_per_sample=per_step,
        max_total_tokens=total,
    ).invoke(QUESTION)
    assert result.budget.samples_used <= max_samples
    assert result.budget.generated_tokens <= total
    assert all(b.usage.output_tokens <= per_step for b in result.beams or [])
    assert result.budget.decided_samples <= max_samples


# -- the registry, sync and async ------------------------------------------------------


def test_both_names_are_registered() -> None:
    assert STRATEGIES["particle_filtering"][0] is ParticleFiltering
    assert isinstance(build_strategy("adaptive_particle_filtering"), AdaptiveParticleFiltering)
    assert build_strategy("particle_filtering", seed=5).seed == 5  # type: ignore[attr-defined]
    assert ParticleFiltering.stepwise and ParticleFiltering.requires_prm
    with pytest.raises(ConfigurationError, match="invalid settings"):
        build_strategy("particle_filtering", n_particles=0)


def test_the_cli_accepts_both_names() -> None:
    from langchain_adaptive.cli import _build_parser

    parser = _build_parser()
    for name in ("particle_filtering", "adaptive_particle_filtering"):
        args = parser.parse_args(["ask", "What is 2 + 3?", "--strategy", name])
        assert args.strategy == name


def test_sync_async_batch_and_abatch_give_the_same_search() -> None:
    def settings() -> AdaptiveReasoningRunnable:
        prm = ScriptedPRM(step_score=lambda step: 0.6 if "7" in step else 0.4)
        return reasoner(prm=prm, n_particles=6, seed=2, adaptive=True)

    sync_events, async_events = EventRecorder(), EventRecorder()
    sync = settings().invoke(QUESTION, {"callbacks": [sync_events]})
    asynchronous = asyncio.run(settings().ainvoke(QUESTION, {"callbacks": [async_events]}))
    assert _shape(sync) == _shape(asynchronous)
    assert sync.budget.model_dump() == asynchronous.budget.model_dump()
    assert sync_events.events == async_events.events
    questions = [QUESTION, "What is (2 + 5) * 2?"]
    batched = settings().batch(questions)
    abatched = asyncio.run(settings().abatch(questions, config={"max_concurrency": 2}))
    assert _shape(batched[0]) == _shape(sync)
    assert [_shape(r) for r in batched] == [_shape(r) for r in abatched]


async def test_astream_events_report_the_resampling() -> None:
    events = [e async for e in reasoner().astream_events(QUESTION, version="v2")]
    names = [e["name"] for e in events if e["event"] == "on_custom_event"]
    assert "adaptive_beams_pruned" in names and "adaptive_step_scored" in names
    assert names[-1] == "adaptive_finished"
    finished = next(e for e in events if e["name"] == "adaptive_finished")["data"]
    assert finished["strategy"] == "particle_filtering"
