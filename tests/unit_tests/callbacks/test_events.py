"""Event models: the payload contract, parsing, and redaction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from langchain_adaptive import SuccessEstimate
from langchain_adaptive.callbacks import (
    EVENT_MODELS,
    AdaptiveFinished,
    BeamsPruned,
    BudgetDecided,
    CandidateGenerated,
    CandidateScored,
    EarlyStop,
    EstimateSummary,
    StepScored,
    is_adaptive_event,
    parse_event,
)
from langchain_adaptive.callbacks._events import Revised, RolloutScored

CONTRACT = {
    "adaptive_budget_decided": {"strategy", "n", "estimate", "target_confidence", "reason"},
    "adaptive_candidate_generated": {"index", "output_tokens", "finish_reason", "answer"},
    "adaptive_candidate_scored": {"index", "score", "step_estimates"},
    "adaptive_step_scored": {"beam_id", "step_index", "lower", "median", "finished"},
    "adaptive_beams_pruned": {"step_index", "kept", "dropped", "k", "m", "floored"},
    "adaptive_revision": {
        "chain",
        "revision",
        "index",
        "shown",
        "prompt_tokens",
        "output_tokens",
        "answer",
    },
    "adaptive_rollout_scored": {
        "beam_id",
        "rollout_beam_id",
        "rollout_steps",
        "lower",
        "median",
        "finished",
    },
    "adaptive_early_stop": {"reason", "samples_used", "confidence"},
    "adaptive_finished": {
        "strategy",
        "stop_reason",
        "decided_samples",
        "samples_used",
        "generated_tokens",
        "max_samples",
        "confidence",
        "low_confidence",
    },
}

EXAMPLES = [
    BudgetDecided(
        strategy="adaptive_best_of_n",
        n=3,
        estimate=EstimateSummary(lower=0.2, median=0.4, upper=0.7, raw_score=0.5),
        target_confidence=0.9,
        reason="ias",
    ),
    CandidateGenerated(index=0, output_tokens=12, finish_reason="stop", answer="15"),
    CandidateScored(index=0, score=0.8, step_estimates=[0.5, 0.8]),
    StepScored(beam_id=2, step_index=1, lower=0.1, median=0.3, finished=False),
    BeamsPruned(step_index=1, kept=[0, 2], dropped=[1, 3], k=2, m=4),
    EarlyStop(reason="consensus", samples_used=4, confidence=None),
    AdaptiveFinished(
        strategy="esc",
        stop_reason="consensus",
        decided_samples=5,
        samples_used=5,
        generated_tokens=40,
        max_samples=40,
        confidence=None,
        low_confidence=False,
    ),
    Revised(
        chain=1, revision=2, index=5, shown=[1, 3], prompt_tokens=90, output_tokens=20, answer="7"
    ),
    RolloutScored(
        beam_id=4, rollout_beam_id=9, rollout_steps=1, lower=0.2, median=0.6, finished=True
    ),
]


def test_every_contract_event_has_a_model_with_exactly_its_keys() -> None:
    assert set(EVENT_MODELS) == set(CONTRACT)
    for event in EXAMPLES:
        assert set(event.payload()) == CONTRACT[event.event_name]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.event_name)
def test_payloads_round_trip_through_parse_event(event) -> None:  # type: ignore[no-untyped-def]
    assert is_adaptive_event(event.event_name)
    assert parse_event(event.event_name, event.payload()) == event


def test_parse_event_rejects_foreign_names_and_bad_payloads() -> None:
    assert not is_adaptive_event("on_llm_start")
    with pytest.raises(KeyError, match="not an adaptive event"):
        parse_event("my_event", {})
    with pytest.raises(ValidationError):
        parse_event("adaptive_early_stop", {"reason": "consensus"})


def test_validation_errors_do_not_quote_payload_text() -> None:
    with pytest.raises(ValidationError) as raised:
        parse_event("adaptive_candidate_generated", {"index": 0, "answer": "secret-42"})
    assert "output_tokens" in str(raised.value) and "secret-42" not in str(raised.value)


def test_unknown_keys_are_ignored_so_newer_emitters_do_not_break_handlers() -> None:
    data = {**EXAMPLES[5].payload(), "added_later": 1}
    assert parse_event("adaptive_early_stop", data) == EXAMPLES[5]


def test_redaction_empties_text_fields_only() -> None:
    generated = EXAMPLES[1]
    assert generated.payload(redact=True)["answer"] is None
    assert generated.payload(redact=True)["output_tokens"] == 12
    assert generated.redacted().answer is None
    assert EXAMPLES[0].payload(redact=True) == EXAMPLES[0].payload()


def test_estimate_summary_reads_the_lowest_median_and_highest_quantile() -> None:
    estimate = SuccessEstimate(quantiles={0.1: 0.2, 0.5: 0.4, 0.9: 0.7}, raw_score=0.9)
    summary = EstimateSummary.of(estimate)
    assert (summary.lower, summary.median, summary.upper, summary.raw_score) == (
        0.2,
        0.4,
        0.7,
        0.9,
    )
