"""SelfConfidencePRM: the policy's reported token logprobs as a scorer, end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive._sampling import reported_logprobs
from langchain_adaptive.calibration import PlattCalibrator
from langchain_adaptive.errors import PRMError
from langchain_adaptive.prm import CalibratedPRM, SelfConfidencePRM, SplitPRM
from langchain_adaptive.prm._self_confidence import lowest_window_mean
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."
QUESTION = "What is 7 + 8?"
SERIAL = {"max_concurrency": 1}


def _sure_of_15(text: str) -> float:
    return -0.01 if "15" in text else -3.0


def _model(script: list[str], **fields: object) -> ScriptedChatModel:
    return ScriptedChatModel(responses=script, token_logprob=_sure_of_15, **fields)  # type: ignore[arg-type]


def test_reported_logprobs_reads_openais_shape_and_refuses_junk() -> None:
    entries = [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.5}]
    assert reported_logprobs({"content": entries}) == [-0.5, -1.5]
    assert reported_logprobs(entries) == [-0.5, -1.5]
    assert reported_logprobs(None) is None
    assert reported_logprobs({"content": [{"token": "a", "logprob": float("nan")}]}) is None
    assert reported_logprobs({"content": [{"token": "a"}]}) is None


def test_scores_are_the_mean_or_lowest_window_and_keep_the_raw_logprob() -> None:
    logprobs = [-0.1, -0.1, -4.0, -4.0, -0.1, -0.1]
    mean = SelfConfidencePRM().score(QUESTION, [["abcd", "efgh"]], token_logprobs=[logprobs])[0]
    assert mean[-1].raw_score == pytest.approx(np.mean(logprobs))
    assert mean[-1].median == pytest.approx(math.exp(np.mean(logprobs)))
    # the first step is 4 of the 10 characters: the first ceil(0.4 * 6) = 3 tokens
    assert len(mean) == 2 and mean[0].raw_score == pytest.approx(np.mean(logprobs[:3]))
    window = SelfConfidencePRM(signal="lowest_window", window=2)
    row = window.score(QUESTION, [["a b"]], token_logprobs=[logprobs])[0]
    assert row[-1].raw_score == pytest.approx(-4.0) == lowest_window_mean(logprobs, 2)


def test_question_alone_and_missing_logprobs_are_clear_prm_errors() -> None:
    with pytest.raises(PRMError, match="not a question alone"):
        SelfConfidencePRM().estimate_question(QUESTION)
    with pytest.raises(PRMError, match="without token logprobs"):
        SelfConfidencePRM().score(QUESTION, [["a"]])


def test_live_sequential_ias_stops_on_the_policys_confidence() -> None:
    reasoner = AdaptiveReasoningRunnable(
        model=_model([WRONG, WRONG, RIGHT]),
        prm=SelfConfidencePRM(),
        strategy="sequential_ias_1",
        target_confidence=0.9,
        max_samples=8,
    )
    result = reasoner.invoke({"question": QUESTION, "gold": "15"}, SERIAL)
    # exp(-3) = 0.05 twice, then exp(-0.01) = 0.99: the third sample reaches 0.9
    assert result.budget.samples_used == 3 and result.stop_reason == "adaptive_budget"
    assert result.candidates[2].token_logprobs == [-0.01] * len(RIGHT.split(" "))
    assert result.answer == "15" and result.correct


async def test_calibrated_self_confidence_budgets_first_sample_ias_async() -> None:
    # a Platt map fitted so that a confident sample is right 95% of the time
    raw = [-0.01] * 50 + [-3.0] * 50
    wins = [1.0] * 47 + [0.0] * 3 + [1.0] * 5 + [0.0] * 45
    calibrator = PlattCalibrator().fit(raw, None, wins, [1.0] * 100)
    reasoner = AdaptiveReasoningRunnable(
        model=_model([RIGHT]),
        prm=CalibratedPRM(prm=SelfConfidencePRM(), calibrator=calibrator),
        strategy="first_sample_ias",
        target_confidence=0.9,
        max_samples=8,
    )
    result = await reasoner.ainvoke(QUESTION, SERIAL)
    estimate = result.candidates[0].step_estimates[-1]  # type: ignore[index]
    assert estimate.raw_score == pytest.approx(-0.01)
    assert 0.85 < estimate.median < 0.99  # calibrated to the fitted 47 of 50, not exp(-0.01)
    p = estimate.at(0.1)  # the calibrated lower bound IAS budgets on
    assert result.budget.samples_used == math.ceil(math.log(0.1) / math.log(1 - p))


def test_split_prm_hands_logprobs_to_its_step_scorer() -> None:
    prm = SplitPRM(question_prm=ScriptedPRM(default_p=0.9), step_prm=SelfConfidencePRM())
    reasoner = AdaptiveReasoningRunnable(
        model=_model([RIGHT]), prm=prm, strategy="adaptive_best_of_n", target_confidence=0.99
    )
    result = reasoner.invoke(QUESTION, SERIAL)
    assert result.budget.samples_used == 2  # p = 0.9 at C = 0.99
    assert all(c.score == pytest.approx(math.exp(-0.01)) for c in result.candidates)
