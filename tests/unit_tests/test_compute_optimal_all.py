"""Compute-optimal over every family: token budgets, 2-fold fits on any policies' outcomes, and a
policy that chooses revise, lookahead search or particle filtering loaded and run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.cli import main
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.compute_optimal_fit import (
    PolicyOutcome,
    cross_validate,
    fit_policy,
    read_outcomes,
    split_folds,
)
from langchain_adaptive.results import AdaptiveResult, SuccessEstimate
from langchain_adaptive.strategies import build_strategy
from langchain_adaptive.strategies._compute_optimal import (
    BinChoice,
    BudgetLevel,
    ComputeOptimalPolicy,
    ComputeOptimalStrategy,
)
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM
from tests.unit_tests.test_beam_search import (
    EventRecorder,
    StepChatModel,
    arithmetic_steps,
    right_steps,
)


def outcome(q: str, policy: str, correct: bool, tokens: int, p: float = 0.5) -> PolicyOutcome:
    return PolicyOutcome(
        question_id=q,
        policy=policy,
        strategy="best_of_n",
        settings={"n": 2},
        max_samples=2,
        correct=correct,
        generated_tokens=tokens,
        samples=tokens // 10,
        question_estimate=SuccessEstimate.point(p),
    )


QUESTION_IDS = [f"q{i}" for i in range(10)]


def test_two_fold_choices_never_see_the_questions_they_are_judged_on() -> None:
    # A is right exactly on the first fold, B exactly on the second: a choice fitted on the
    # other fold always picks the policy that is wrong here, so held-out accuracy is 0. A fit
    # that saw the judged questions (all of them, or its own fold) would score 0.5 or 1.
    first, second = split_folds(QUESTION_IDS, seed=3)
    assert sorted(first + second) == sorted(QUESTION_IDS) and len(first) == len(second) == 5
    outcomes = [outcome(q, "A", q in first, 20) for q in QUESTION_IDS]
    outcomes += [outcome(q, "B", q in second, 20) for q in QUESTION_IDS]
    (level,) = cross_validate(outcomes, estimator="est", budgets=[50], bins=1, seed=3)
    assert level.accuracy == 0.0
    chosen = {h.question_id: h.policy for h in level.questions}
    assert all(chosen[q] == "B" for q in first) and all(chosen[q] == "A" for q in second)
    assert [h.question_id for h in level.questions] == QUESTION_IDS
    assert {h.fold for h in level.questions if h.question_id in first} == {0}
    assert level.fits[0].levels[0].choices[0].policy == "B"  # fitted without fold 0


def test_two_fold_recovers_a_choice_that_generalises() -> None:
    # Hard questions (low estimate) need the costly policy, easy ones are right with the cheap
    # one: per bin, the cheap one on easy questions, the costly one on hard ones within budget.
    outcomes = []
    for i, q in enumerate(QUESTION_IDS):
        easy = i % 2 == 0
        p = 0.8 if easy else 0.2
        outcomes.append(outcome(q, "cheap", easy, 10, p))
        outcomes.append(outcome(q, "costly", True, 90, p))
    low, high = cross_validate(outcomes, estimator="est", budgets=[20, 100], bins=2)
    assert low.accuracy == 0.5 and low.mean_tokens == 10
    # within 100 tokens: never wrong, and the cheap policy wherever the fold's bins allow it
    assert high.accuracy == 1.0 and high.mean_tokens < 90
    cheap = [h.question_id for h in high.questions if h.policy == "cheap"]
    assert cheap and all(QUESTION_IDS.index(q) % 2 == 0 for q in cheap)


def test_token_budgets_choose_within_tokens_not_samples() -> None:
    outcomes = [outcome(q, "cheap", i < 5, 30) for i, q in enumerate(QUESTION_IDS)]
    outcomes += [outcome(q, "costly", True, 120) for q in QUESTION_IDS]
    policy = fit_policy(outcomes, estimator="est", budgets=[50, 150], bins=1)
    assert policy.version == 2 and policy.budget_unit == "tokens"
    assert [lv.choices[0].policy for lv in policy.levels] == ["cheap", "costly"]
    assert policy.levels[1].choices[0].mean_tokens == 120
    # in samples (tokens // 10 here) both fit a budget of 50
    by_samples = fit_policy(outcomes, estimator="est", budgets=[50], bins=1, budget_unit="samples")
    assert by_samples.levels[0].choices[0].policy == "costly"
    with pytest.raises(ConfigurationError, match="has no outcome on question"):
        fit_policy(outcomes[:-1], estimator="est", budgets=[50])
    with pytest.raises(ConfigurationError, match="budgets must be positive"):
        fit_policy(outcomes, estimator="est", budgets=[0])


def test_version_1_files_cannot_hold_token_budgets() -> None:
    level = BudgetLevel(budget=10, choices=[_choice("best_of_n", {"n": 1})])
    fields: dict[str, Any] = {
        "estimator": "est",
        "quantile": 0.5,
        "bin_edges": [],
        "levels": [level],
    }
    assert ComputeOptimalPolicy(selection="majority_vote", **fields).budget_unit == "samples"
    with pytest.raises(ValueError, match="need version 2"):
        ComputeOptimalPolicy(selection="majority_vote", budget_unit="tokens", **fields)
    with pytest.raises(ValueError, match="need version 2"):
        ComputeOptimalPolicy(selection=None, **fields)


# -- a policy over every family, loaded and run -----------------------------------------------


class StepOrWholeModel(StepChatModel):
    """One step when asked for a step (a step stop), the whole solution when not (a first
    attempt or a revision), from the same ``next_step``."""

    supports_n_samples: ClassVar[bool] = True

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if stop:
            return super()._generate(messages, stop, run_manager, **kwargs)
        result = super()._generate(messages, [STEP_JOINER], run_manager, **kwargs)
        for i, generation in enumerate(result.generations):
            steps = [str(generation.message.content)]
            while not steps[-1].startswith("The answer"):
                steps.append(self.next_step(steps, i))
            text = STEP_JOINER.join(steps)
            generation.message.content = text
            words = len(text.split())
            generation.message.usage_metadata = {  # type: ignore[attr-defined]
                "input_tokens": 10, "output_tokens": words, "total_tokens": 10 + words,
            }  # fmt: skip
        return result


HARD, MIDDLE, EASY = "What is (3 + 4) * 2?", "Compute (3 + 4) * 2.", "(3 + 4) * 2 = ?"
ESTIMATES = {HARD: 0.1, MIDDLE: 0.45, EASY: 0.8}
DELEGATES = {
    HARD: ("revise", {"chains": 1, "revisions": 2}, "adaptive_revision"),
    MIDDLE: (
        "beam_search",
        {"n_paths": 4, "beams_kept": 2, "samples_per_beam": 2, "max_steps": 4, "lookahead": 1},
        "adaptive_rollout_scored",
    ),
    EASY: ("particle_filtering", {"n_particles": 3, "max_steps": 4, "seed": 1}, None),
}


def _choice(strategy: str, settings: dict[str, Any], cap: int | None = None) -> BinChoice:
    built = build_strategy(strategy, **settings)
    return BinChoice(
        strategy=strategy,
        settings=built.model_dump(mode="json", exclude_defaults=True),
        target_confidence=0.9,
        max_samples=4,
        max_tokens_per_sample=cap,
        policy=f"{strategy} {settings}",
        accuracy=1.0,
        mean_samples=4.0,
    )


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    searches = [_choice(name, settings) for name, settings, _ in DELEGATES.values()]
    wide = [_choice("best_of_n", {"n": 4, "selection": "majority_vote"}, cap=64)] * 3
    policy = ComputeOptimalPolicy(
        version=2,
        estimator="scripted",
        quantile=0.5,
        selection=None,
        budget_unit="tokens",
        bin_edges=[0.3, 0.6],
        levels=[BudgetLevel(budget=60, choices=searches), BudgetLevel(budget=400, choices=wide)],
    )
    return policy.save(tmp_path / "policy.json")


def _run(strategy: Any, question: str, **fields: Any) -> tuple[AdaptiveResult, EventRecorder]:
    recorder = EventRecorder()
    runnable = AdaptiveReasoningRunnable(
        **{
            "model": StepOrWholeModel(next_step=arithmetic_steps),
            "prm": ScriptedPRM(question_p=ESTIMATES, step_score=right_steps),
            "strategy": strategy,
            "max_samples": 8,
            **fields,
        }
    )
    result = runnable.invoke({"question": question, "gold": "14"}, {"callbacks": [recorder]})
    return result, recorder


@pytest.mark.parametrize("question", [HARD, MIDDLE, EASY])
def test_a_loaded_policy_runs_revise_lookahead_or_particles_by_bin(
    policy_file: Path, question: str
) -> None:
    name, settings, event = DELEGATES[question]
    # 100 tokens a question: the 60-token level (the 400-token one does not fit)
    result, recorder = _run(ComputeOptimalStrategy.load(policy_file, budget=100), question)
    direct, _ = _run(build_strategy(name, **settings), question, max_samples=4)
    assert result.strategy == "compute_optimal"
    assert result.answer == direct.answer and result.correct == direct.correct
    assert result.budget.generated_tokens == direct.budget.generated_tokens
    assert len(result.candidates) == len(direct.candidates)
    assert result.beams == direct.beams  # a delegated search's beams are reported too
    kinds = {n for n, _ in recorder.events}
    for other_name, _, other_event in DELEGATES.values():
        if other_event is not None:
            assert (other_event in kinds) == (other_name == name and other_event == event)
    if name == "particle_filtering":
        assert recorder.named("adaptive_beams_pruned")  # each resampling
    assert not any("validated with" in w for w in result.warnings)  # no cap recorded


def test_a_token_budget_selects_its_level_and_runs_at_its_token_cap(policy_file: Path) -> None:
    strategy = ComputeOptimalStrategy.load(policy_file, budget=500)
    model = StepOrWholeModel(next_step=arithmetic_steps)
    result, recorder = _run(strategy, MIDDLE, model=model)
    assert result.budget.samples_used == 4 and not result.beams  # best-of-4, no search
    assert not recorder.named("adaptive_rollout_scored")
    # validated at 64 tokens a generation: the runnable's 256 is lowered to it, not warned of
    assert [call["max_tokens"] for call in model.calls] == [64]
    assert not any("validated with" in w for w in result.warnings)
    # a runnable that allows fewer tokens than the choice was validated with keeps its cap
    model = StepOrWholeModel(next_step=arithmetic_steps)
    result, _ = _run(strategy, MIDDLE, model=model, max_tokens_per_sample=32)
    assert [call["max_tokens"] for call in model.calls] == [32]
    assert any(
        "validated with 64 tokens per generation, this run allows 32" in w for w in result.warnings
    )
    with pytest.raises(ConfigurationError, match="below the smallest level"):
        ComputeOptimalStrategy.load(policy_file, budget=59)


def test_choose_policy_cli_fits_a_token_policy_from_live_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.jsonl"
    rows = []
    for i, q in enumerate(QUESTION_IDS):
        hard = i in (1, 3, 5, 7)  # 4 of 10: the lower median is the easiest's estimate
        estimate = SuccessEstimate.point(0.2 if hard else 0.8).model_dump(mode="json")
        common = {"question_id": q, "max_samples": 4, "question_estimate": estimate}
        rows.append({**common, "policy": "one sample", "strategy": "best_of_n",
                     "settings": {"n": 1}, "correct": not hard, "generated_tokens": 20,
                     "samples": 1, "trace": {"ignored": True}})  # fmt: skip
        rows.append({**common, "policy": "lookahead", "strategy": "beam_search",
                     "settings": {"lookahead": 1, "n_paths": 4}, "correct": True,
                     "generated_tokens": 150, "samples": 4,
                     "max_tokens_per_sample": 32})  # fmt: skip
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(read_outcomes(records)) == 20
    out = tmp_path / "policy.json"
    args = ["bench", "choose-policy", "--records", str(records), "--estimator", "probe"]
    assert main([*args, "--budgets", "30,200", "--bins", "2", "--out", str(out)]) == 0
    policy = ComputeOptimalPolicy.load(out)
    assert policy.budget_unit == "tokens" and policy.selection is None
    assert [c.policy for c in policy.levels[1].choices] == ["lookahead", "one sample"]
    assert policy.levels[1].choices[0].max_tokens_per_sample == 32
    printed = capsys.readouterr().out
    assert "2-fold" in printed and "held-out accuracy" in printed
    (tmp_path / "bad.jsonl").write_text('{"policy": "x"}\n')
    bad = ["bench", "choose-policy", "--records", str(tmp_path / "bad.jsonl"), "--estimator", "p"]
    assert main([*bad, "--out", str(tmp_path / "bad.json")]) != 0
    assert "bad.jsonl:1 is not an outcome record" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize(("rule", "answer"), [("prm", "14"), ("weighted_vote", "16")])
def test_the_chosen_strategy_selects_by_its_own_rule(rule: str, answer: str) -> None:
    # three answers of 16 at 0.4 outweigh one 14 at 0.9 in a weighted vote (the outer
    # strategy's default rule); by PRM score alone, 14 wins
    choice = _choice("best_of_n", {"n": 4, "selection": rule})
    policy = ComputeOptimalPolicy(
        version=2, estimator="scripted", quantile=0.5, selection=None, bin_edges=[],
        levels=[BudgetLevel(budget=4, choices=[choice])],
    )  # fmt: skip
    wrong, right = "7 + 9 = 16\n\nThe answer is 16.", "7 + 7 = 14\n\nThe answer is 14."
    runnable = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[wrong, wrong, right, wrong]),
        prm=ScriptedPRM(step_score=lambda step: 0.9 if "14" in step else 0.4),
        strategy=ComputeOptimalStrategy(policy=policy),
        max_samples=4,
    )
    assert ComputeOptimalStrategy(policy=policy).selection == "weighted_vote"
    assert runnable.invoke("What is 7 + 7?").answer == answer
