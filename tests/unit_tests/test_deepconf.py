"""DeepConf online: confidence functions, the percentile's direction, and the strategy in
invoke, batch, async and replay on a scripted model that reports top-k logprobs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.calibration import PlattCalibrator
from langchain_adaptive.confidence import (
    ConfidenceGate,
    confidence_stop_at,
    group_confidences,
    keep_threshold,
    lowest_group_confidence,
    token_confidence,
    token_confidences,
)
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import QuestionPool, RecordedSample
from langchain_adaptive.evaluation.replay import Policy, prepare_pools, replay_question
from langchain_adaptive.strategies import DeepConf, build_strategy
from tests.unit_tests.fakes import ScriptedChatModel

# -- pure functions ---------------------------------------------------------------------


def test_token_confidence_is_the_negative_mean_of_the_top_k_logprobs() -> None:
    assert token_confidence([-0.5, -1.5]) == pytest.approx(1.0)
    peaked, flat = token_confidence([-0.01, -9.0, -9.0]), token_confidence([-1.0, -1.1, -1.2])
    assert peaked > flat  # a model sure of its token puts little mass on the alternatives
    with pytest.raises(ValueError):
        token_confidence([])
    with pytest.raises(ValueError):
        token_confidence([float("nan")])


def test_token_confidences_read_openai_entries_and_use_the_first_k() -> None:
    entries = {
        "content": [
            {"logprob": -0.1, "top_logprobs": [{"logprob": -0.1}, {"logprob": -3.0}]},
            {"logprob": -0.2, "top_logprobs": [{"logprob": -0.2}, {"logprob": -5.0}]},
        ]
    }
    assert token_confidences(entries) == pytest.approx([1.55, 2.6])
    assert token_confidences(entries, top_k=1) == pytest.approx([0.1, 0.2])
    assert token_confidences({"content": [{"logprob": -0.1}]}) is None  # no alternatives
    assert token_confidences(None) is None


def test_group_confidences_slide_over_full_windows() -> None:
    values = [4.0, 2.0, 6.0, 0.0]
    assert group_confidences(values, 2) == [3.0, 4.0, 3.0]
    assert group_confidences(values, 10) == [3.0]  # shorter than a window: its mean
    assert lowest_group_confidence(values, 2) == min(group_confidences(values, 2))


def test_the_online_stop_fires_on_the_first_full_window_below_the_threshold() -> None:
    values = [5.0, 1.0, 5.0, 1.0, 1.0, 5.0]
    # windows of 2 end at tokens 2..6 with means 3, 3, 3, 1, 3
    assert confidence_stop_at(values, threshold=2.0, window=2) == 5
    assert confidence_stop_at(values, threshold=1.0, window=2) is None
    assert confidence_stop_at([0.0], threshold=9.0, window=2) is None  # no full window
    gate = ConfidenceGate(threshold=2.0, window=2)
    assert [gate.push(v) for v in values] == [False, False, False, False, True, False]
    never = ConfidenceGate(threshold=None, window=1)
    assert not any(never.push(v) for v in values)


def test_deepconf_low_puts_the_threshold_at_the_90th_percentile() -> None:
    lowest = [float(v) for v in range(1, 11)]
    low, high = keep_threshold(lowest, 0.1), keep_threshold(lowest, 0.9)
    assert low == pytest.approx(np.percentile(lowest, 90))
    assert high == pytest.approx(np.percentile(lowest, 10))
    # low keeps only the most confident 10%, high keeps 90%
    assert sum(v >= low for v in lowest) == 1
    assert sum(v >= high for v in lowest) == 9


# -- the strategy on a scripted model ---------------------------------------------------

SURE = [-0.01, -6.0, -7.0, -8.0]
UNSURE = [-1.0, -1.2, -1.4, -1.6]
C_SURE, C_UNSURE = token_confidence(SURE), token_confidence(UNSURE)
RIGHT = "7 + 1 = 8 . The answer is 8"
RESPONSES = [
    RIGHT,  # warmup: lowest group confidence C_SURE
    "hmm 7 + 1 = 7 . The answer is 7",  # (C_UNSURE + C_SURE) / 2
    RIGHT,
    "hmm hmm 7 + 1 = 7 . The answer is 7",  # C_UNSURE: below s, dropped
    "hmm hmm hmm 7 + 1 = 7 . The answer is 7",  # online: stopped after 2 tokens
    RIGHT,  # online: votes, and the share reaches 0.8
]


def _top(word: str) -> list[float]:
    return UNSURE if word.startswith("hmm") else SURE


def _model(*, stops: bool = True) -> ScriptedChatModel:
    return ScriptedChatModel(
        responses=RESPONSES, word_top_logprobs=_top, supports_confidence_stop=stops
    )


def _strategy(**settings: object) -> DeepConf:
    return DeepConf(mode="high", warmup=4, window=2, consensus=0.8, **settings)  # type: ignore[arg-type]


def _reasoner(model: ScriptedChatModel, strategy: DeepConf) -> AdaptiveReasoningRunnable:
    # one call at a time: the scripted responses then reach the samples in drawing order
    return AdaptiveReasoningRunnable(model=model, strategy=strategy, max_samples=12).with_config(
        max_concurrency=1
    )  # type: ignore[return-value]


def test_deepconf_stops_low_confidence_traces_mid_generation_and_stops_on_consensus() -> None:
    model = _model()
    result = _reasoner(model, _strategy()).invoke({"question": "What is 7 + 1?", "gold": "8"})
    assert result.answer == "8" and result.correct
    assert result.stop_reason == "consensus"
    assert len(result.candidates) == 6
    aborted = result.candidates[4]
    assert aborted.finish_reason == "confidence_stop"
    assert aborted.usage.output_tokens == 2 and aborted.text == "hmm hmm"
    # warmup traces only report confidences; online ones carry the threshold
    warmup_call, online_call = model.calls[0]["confidence_stop"], model.calls[4]["confidence_stop"]
    assert warmup_call["threshold"] is None
    s = keep_threshold([C_SURE, (C_UNSURE + C_SURE) / 2, C_SURE, C_UNSURE], 0.9)
    assert online_call["threshold"] == pytest.approx(s)
    # weights are the lowest group confidences; the least confident warmup trace and the
    # aborted trace do not vote
    assert result.candidates[0].score == pytest.approx(C_SURE)
    voters = 3 * C_SURE + (C_UNSURE + C_SURE) / 2
    assert result.confidence == pytest.approx(3 * C_SURE / voters)
    assert result.warnings == []
    expected_tokens = sum(len(r.split()) for r in RESPONSES) - (len(RESPONSES[4].split()) - 2)
    assert result.budget.generated_tokens == expected_tokens


def test_deepconf_low_keeps_only_the_most_confident_warmup_traces() -> None:
    result = _reasoner(_model(), DeepConf(mode="low", warmup=4, window=2)).invoke("What is 7 + 1?")
    # only the two most confident traces (both 8) vote: consensus right after warmup
    assert len(result.candidates) == 4 and result.stop_reason == "consensus"
    assert result.answer == "8" and result.confidence == 1.0


def test_deepconf_in_batch_and_async_matches_invoke() -> None:
    question = {"question": "What is 7 + 1?", "gold": "8"}
    single = _reasoner(_model(), _strategy()).invoke(question)
    batched = _reasoner(_model(), _strategy()).batch(
        [question, question], config={"max_concurrency": 1}
    )
    awaited = asyncio.run(_reasoner(_model(), _strategy()).ainvoke(question))
    for other in [*batched, awaited]:
        assert other.answer == single.answer
        assert other.budget.generated_tokens == single.budget.generated_tokens
        assert [c.finish_reason for c in other.candidates] == [
            c.finish_reason for c in single.candidates
        ]


def test_deepconf_offline_scores_finished_traces_and_says_so() -> None:
    result = _reasoner(_model(stops=False), _strategy()).invoke("What is 7 + 1?")
    assert result.answer == "8" and len(result.candidates) == 6
    dropped = result.candidates[4]
    assert dropped.finish_reason == "stop"  # generated in full
    assert result.budget.generated_tokens == sum(len(r.split()) for r in RESPONSES)
    assert any("ran offline" in w and "1 trace(s)" in w for w in result.warnings)


def test_deepconf_falls_back_to_token_logprobs_with_a_warning() -> None:
    model = ScriptedChatModel(
        responses=RESPONSES, token_logprob=lambda text: -2.0 if "hmm" in text else -0.1
    )
    result = _reasoner(model, _strategy()).invoke("What is 7 + 1?")
    assert result.answer == "8"
    assert any("no top-k logprobs" in w for w in result.warnings)


def test_deepconf_without_any_logprobs_is_a_configuration_error_keeping_the_samples() -> None:
    reasoner = _reasoner(ScriptedChatModel(responses=RESPONSES), _strategy())
    with pytest.raises(ConfigurationError, match="token confidence") as caught:
        reasoner.invoke("What is 7 + 1?")
    assert caught.value.partial is not None and len(caught.value.partial.candidates) == 4


def test_calibrated_deepconf_weighs_traces_by_calibrated_probability() -> None:
    # a calibrator fitted where more confident traces were right more often
    rng = np.random.default_rng(0)
    raw = rng.uniform(1.0, 6.0, 400)
    successes = (rng.uniform(size=400) < 1 / (1 + np.exp(-(raw - 3.5)))).astype(float)
    calibrator = PlattCalibrator(score_scale="real").fit(raw, None, successes, np.ones(400))
    result = _reasoner(_model(), _strategy(calibrator=calibrator)).invoke("What is 7 + 1?")
    p_sure, p_mixed = calibrator.predict_mean([C_SURE, (C_SURE + C_UNSURE) / 2])
    assert result.candidates[0].score == pytest.approx(p_sure)
    assert result.candidates[1].score == pytest.approx(p_mixed)
    # the stop rule reads calibrated weights: 8 has p_sure per vote, 7 has p_mixed
    shares = [k * p_sure / (k * p_sure + p_mixed) for k in (2, 3)]
    if shares[0] >= 0.8:
        assert len(result.candidates) == 4 and result.confidence == pytest.approx(shares[0])
    else:
        assert result.confidence == pytest.approx(shares[1])


def test_deepconf_is_registered_and_refuses_an_unfitted_calibrator() -> None:
    assert isinstance(build_strategy("deepconf"), DeepConf)
    assert build_strategy("deepconf_high").mode == "high"
    with pytest.raises(ConfigurationError, match="fitted"):
        build_strategy("deepconf", calibrator=PlattCalibrator())


# -- replay -----------------------------------------------------------------------------


def _pool(with_confidences: bool = True) -> QuestionPool:
    samples = []
    for text in RESPONSES:
        words = text.split(" ")
        samples.append(
            RecordedSample(
                text=text,
                steps=[text],
                answer=text.rsplit(" ", 1)[-1],
                correct=text.endswith("8"),
                output_tokens=len(words),
                finish_reason="stop",
                token_confidences=[token_confidence(_top(w)) for w in words]
                if with_confidences
                else None,
            )
        )
    return QuestionPool(id="q", question="What is 7 + 1?", gold="8", samples=samples)


def test_replay_reproduces_the_live_run_early_aborts_included() -> None:
    live = _reasoner(_model(), _strategy()).invoke({"question": "What is 7 + 1?", "gold": "8"})
    policy = Policy(name="deepconf", family="deepconf", strategy=_strategy(), max_samples=6)
    outcome = replay_question(policy, prepare_pools([_pool()])[0])
    assert outcome.samples == len(live.candidates)
    assert outcome.tokens == live.budget.generated_tokens
    assert outcome.correct == bool(live.correct)
    assert outcome.stop_reason == live.stop_reason


def test_replay_refuses_deepconf_on_a_pool_without_token_confidences() -> None:
    from langchain_adaptive.evaluation.replay import replay

    policy = Policy(name="deepconf", family="deepconf", strategy=_strategy(), max_samples=6)
    with pytest.raises(ConfigurationError, match="--record-logprobs"):
        replay(prepare_pools([_pool(with_confidences=False)]), [policy], replicates=0)


# -- bench record --record-logprobs -----------------------------------------------------


def test_recorded_token_confidences_replay_deepconf_like_the_live_run(tmp_path: Path) -> None:
    from langchain_adaptive.evaluation import read_pools, record_pools
    from langchain_adaptive.evaluation.datasets import Problem

    out = tmp_path / "pools.jsonl"
    problem = Problem(id="q", question="What is 7 + 1?", gold="8")
    summary = record_pools(
        _model(),
        [problem],
        out,
        samples=6,
        progress=False,
        record_logprobs=4,
        config={"max_concurrency": 1},
    )
    assert summary.failed == {}
    pool_file = read_pools(out)
    assert pool_file.header.settings["record_logprobs"] == 4
    pool = pool_file.pools[0]
    first = pool.samples[0]
    assert first.token_confidences == pytest.approx([C_SURE] * first.output_tokens)
    live = _reasoner(_model(), _strategy()).invoke({"question": problem.question, "gold": "8"})
    policy = Policy(name="deepconf", family="deepconf", strategy=_strategy(), max_samples=6)
    outcome = replay_question(policy, prepare_pools([pool])[0])
    assert (outcome.samples, outcome.tokens) == (
        len(live.candidates),
        live.budget.generated_tokens,
    )


def test_recording_logprobs_from_a_model_without_top_k_fails_the_question(
    tmp_path: Path,
) -> None:
    from langchain_adaptive.evaluation import record_pools
    from langchain_adaptive.evaluation.datasets import Problem

    problem = Problem(id="q", question="What is 7 + 1?", gold="8")
    model = ScriptedChatModel(responses=RESPONSES, token_logprob=lambda text: -0.1)
    summary = record_pools(
        model, [problem], tmp_path / "p.jsonl", samples=2, progress=False, record_logprobs=4
    )
    assert "top-k logprobs" in summary.failed["q"]
    assert model.calls[0]["top_logprobs"] == 4 and model.calls[0]["logprobs"] is True


def test_replay_votes_only_over_the_traces_deepconf_kept() -> None:
    """Three confident-enough-to-draw but dropped traces must not outvote the kept one."""
    samples = [
        RecordedSample(
            text=f"The answer is {answer}",
            steps=[f"The answer is {answer}"],
            answer=answer,
            correct=answer == "8",
            output_tokens=4,
            finish_reason="stop",
            token_confidences=[confidence] * 4,
        )
        for answer, confidence in (("9", 2.0), ("9", 2.0), ("9", 2.0), ("8", 3.0))
    ]
    pool = QuestionPool(id="q", question="What is 7 + 1?", gold="8", samples=samples)
    policy = Policy(
        name="deepconf", family="deepconf", strategy=DeepConf(warmup=4, window=2), max_samples=4
    )
    outcome = replay_question(policy, prepare_pools([pool])[0])
    assert outcome.correct  # only the "8" trace is above DeepConf-low's threshold


def test_an_empty_trace_has_no_confidence_and_never_votes() -> None:
    pool = _pool()
    empty = RecordedSample(text="", output_tokens=0, finish_reason="stop", token_confidences=[])
    samples = [pool.samples[0], empty, *pool.samples[1:]]
    pool = pool.model_copy(update={"samples": samples})
    policy = Policy(name="deepconf", family="deepconf", strategy=_strategy(), max_samples=7)
    prepared = prepare_pools([pool])[0]
    assert prepared.has_token_confidences
    outcome = replay_question(policy, prepared)
    # three written warmup traces set the threshold (their 10th percentile lies above the
    # "hmm" trace), the two that vote agree: consensus with no online draw
    s = keep_threshold([C_SURE, (C_UNSURE + C_SURE) / 2, C_SURE], 0.9)
    assert s > (C_UNSURE + C_SURE) / 2
    assert outcome.correct and outcome.samples == 4 and outcome.stop_reason == "consensus"
