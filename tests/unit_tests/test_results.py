"""Tests for langchain_adaptive.results: success estimates, token usage, results."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from langchain_adaptive.results import (
    AdaptiveResult,
    BudgetReport,
    Candidate,
    SuccessEstimate,
    TokenUsage,
)

# -- SuccessEstimate: validation --------------------------------------------------


def test_quantiles_are_sorted_by_level() -> None:
    est = SuccessEstimate(quantiles={0.9: 0.7, 0.1: 0.2, 0.5: 0.4})
    assert list(est.quantiles) == [0.1, 0.5, 0.9]
    assert list(est.quantiles.values()) == [0.2, 0.4, 0.7]


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [
        ({}, "at least one quantile"),
        ({0.0: 0.5}, "not in \\(0, 1\\)"),
        ({1.0: 0.5}, "not in \\(0, 1\\)"),
        ({-0.1: 0.5}, "not in \\(0, 1\\)"),
        ({1.5: 0.5}, "not in \\(0, 1\\)"),
        ({math.nan: 0.5}, "not in \\(0, 1\\)"),
        ({0.5: math.nan}, "non-finite"),
        ({0.5: math.inf}, "non-finite"),
        ({0.5: -math.inf}, "non-finite"),
        ({0.5: -0.01}, "outside \\[0, 1\\]"),
        ({0.5: 1.01}, "outside \\[0, 1\\]"),
        ({0.1: 0.2, 0.9: math.nan}, "non-finite"),
    ],
)
def test_invalid_quantiles_are_rejected(quantiles: dict[float, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SuccessEstimate(quantiles=quantiles)


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_boundary_probabilities_are_valid(prob: float) -> None:
    assert SuccessEstimate(quantiles={0.5: prob}).median == prob


def test_success_estimate_is_frozen() -> None:
    est = SuccessEstimate(quantiles={0.5: 0.4}, raw_score=0.1)
    with pytest.raises(ValidationError):
        est.raw_score = 0.9  # type: ignore[misc]
    with pytest.raises(ValidationError):
        est.quantiles = {0.5: 0.9}  # type: ignore[misc]
    assert est.raw_score == 0.1
    assert est.quantiles == {0.5: 0.4}


# -- SuccessEstimate: point and accessors -------------------------------------------


def test_point_estimate() -> None:
    est = SuccessEstimate.point(0.3)
    assert est.quantiles == {0.1: 0.3, 0.5: 0.3, 0.9: 0.3}
    assert est.raw_score == 0.3
    assert est.lower == est.median == est.at(0.77) == 0.3


def test_point_estimate_keeps_explicit_raw_score() -> None:
    assert SuccessEstimate.point(0.3, raw_score=-2.5).raw_score == -2.5
    assert SuccessEstimate.point(0.3, raw_score=0.0).raw_score == 0.0


@pytest.mark.parametrize("prob", [math.nan, 1.5, -0.5])
def test_point_estimate_validates(prob: float) -> None:
    with pytest.raises(ValidationError):
        SuccessEstimate.point(prob)


def test_lower_and_median() -> None:
    est = SuccessEstimate(quantiles={0.9: 0.7, 0.5: 0.4, 0.1: 0.2}, raw_score=0.9)
    assert est.lower == 0.2
    assert est.median == 0.4


def test_median_interpolates_without_a_half_level() -> None:
    est = SuccessEstimate(quantiles={0.2: 0.3, 0.8: 0.9})
    assert est.median == pytest.approx(0.6)
    assert est.lower == 0.3


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0.01, 0.2),  # below the lowest level: clamped
        (0.1, 0.2),
        (0.3, 0.3),
        (0.5, 0.4),
        (0.7, 0.55),
        (0.9, 0.7),
        (0.99, 0.7),  # above the highest level: clamped
    ],
)
def test_at_interpolates_linearly(level: float, expected: float) -> None:
    est = SuccessEstimate(quantiles={0.1: 0.2, 0.5: 0.4, 0.9: 0.7})
    assert est.at(level) == pytest.approx(expected)


def test_single_quantile_is_flat() -> None:
    est = SuccessEstimate(quantiles={0.3: 0.6})
    assert est.at(0.01) == est.at(0.3) == est.at(0.99) == est.lower == est.median == 0.6


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.floats(0.001, 0.999),
        st.floats(0.0, 1.0),
        min_size=1,
        max_size=6,
    ),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_at_stays_within_range_and_is_monotone_for_sorted_values(
    raw: dict[float, float], level_a: float, level_b: float
) -> None:
    # Make the values non-decreasing in level, as a proper quantile function is.
    levels = sorted(raw)
    values = sorted(raw.values())
    est = SuccessEstimate(quantiles=dict(zip(levels, values, strict=True)))
    lo, hi = sorted((level_a, level_b))
    assert values[0] <= est.at(lo) <= est.at(hi) <= values[-1]
    for level, value in zip(levels, values, strict=True):
        assert est.at(level) == pytest.approx(value)


# -- TokenUsage -----------------------------------------------------------------


def test_token_usage_defaults() -> None:
    usage = TokenUsage()
    assert (usage.input_tokens, usage.output_tokens, usage.model_calls, usage.estimated) == (
        0,
        0,
        0,
        False,
    )


def test_token_usage_addition() -> None:
    a = TokenUsage(input_tokens=1, output_tokens=2, model_calls=3)
    b = TokenUsage(input_tokens=10, output_tokens=20, model_calls=30, estimated=True)
    total = a + b
    assert total == TokenUsage(input_tokens=11, output_tokens=22, model_calls=33, estimated=True)
    assert (b + a) == total
    # Operands are untouched.
    assert a == TokenUsage(input_tokens=1, output_tokens=2, model_calls=3)
    assert (a + TokenUsage()).estimated is False


# -- Candidate / AdaptiveResult -----------------------------------------------------


def _candidate(index: int, answer: str | None = "4") -> Candidate:
    return Candidate(index=index, text=f"text {index}", answer=answer)


def _result(
    selected_index: int | None, n_candidates: int, answer: str | None = "4"
) -> AdaptiveResult:
    return AdaptiveResult(
        question="2+2?",
        answer=answer,
        solution=None,
        selected_index=selected_index,
        candidates=[_candidate(i) for i in range(n_candidates)],
        strategy="ias",
        stop_reason="adaptive_budget",
        budget=BudgetReport(
            decided_samples=n_candidates,
            max_samples=8,
            samples_used=n_candidates,
            generated_tokens=0,
            prompt_tokens=0,
            model_calls=n_candidates,
        ),
        selection="prm_best",
    )


def test_candidate_defaults_are_independent() -> None:
    a, b = _candidate(0), _candidate(1)
    a.steps.append("x")
    assert b.steps == []
    assert a.step_estimates is None and a.score is None and a.correct is None


@pytest.mark.parametrize(("selected", "n"), [(0, 1), (2, 3), (None, 0), (None, 2)])
def test_valid_selected_index(selected: int | None, n: int) -> None:
    assert _result(selected, n).selected_index == selected


@pytest.mark.parametrize(("selected", "n"), [(0, 0), (3, 3), (-1, 3), (10, 2)])
def test_selected_index_must_point_at_a_candidate(selected: int, n: int) -> None:
    with pytest.raises(ValidationError, match="selected_index"):
        _result(selected, n)


def test_stop_reason_is_checked() -> None:
    with pytest.raises(ValidationError):
        AdaptiveResult.model_validate({**_result(None, 1).model_dump(), "stop_reason": "bored"})


def test_result_str_is_the_answer() -> None:
    assert str(_result(0, 1, answer="42")) == "42"
    assert str(_result(None, 0, answer=None)) == ""


def test_result_defaults() -> None:
    result = _result(0, 1)
    assert result.warnings == [] and result.low_confidence is False
    assert result.budget.prm_calls == 0 and result.budget.tokens_estimated is False


def test_crossed_quantiles_are_rejected() -> None:
    with pytest.raises(ValueError, match="cross"):
        SuccessEstimate(quantiles={0.1: 0.9, 0.9: 0.1})


def test_mean_is_validated_and_preferred_as_the_point_estimate() -> None:
    estimate = SuccessEstimate(quantiles={0.1: 0.0, 0.5: 0.0, 0.9: 0.6}, mean=0.2)
    assert estimate.expected == 0.2 and estimate.median == 0.0
    assert SuccessEstimate.point(0.3).expected == 0.3
    with pytest.raises(ValueError):
        SuccessEstimate(quantiles={0.5: 0.5}, mean=1.5)
