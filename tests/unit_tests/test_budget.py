"""Tests for langchain_adaptive.budget: the IAS formula and the hard limits."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from langchain_adaptive.budget import (
    DEFAULT_MAX_SAMPLES,
    P_MAX,
    P_MIN,
    BudgetLimits,
    BudgetTracker,
    clip_probability,
    coverage_probability,
    ias_sample_count,
)
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.results import TokenUsage

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
confidences = st.floats(min_value=1e-6, max_value=1.0 - 1e-9, allow_nan=False)

# -- clip_probability / coverage_probability --------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.0, P_MIN), (-3.0, P_MIN), (1.0, P_MAX), (7.0, P_MAX), (0.3, 0.3)],
)
def test_clip_probability(p: float, expected: float) -> None:
    assert clip_probability(p) == expected


@pytest.mark.parametrize("p", [math.nan, math.inf, -math.inf])
def test_clip_probability_rejects_non_finite(p: float) -> None:
    with pytest.raises(ValueError, match="not finite"):
        clip_probability(p)


def test_coverage_probability_values() -> None:
    assert coverage_probability(0.5, 7) == pytest.approx(1 - 0.5**7)
    assert coverage_probability(0.1, 2) == pytest.approx(0.19)
    assert coverage_probability(0.5, 0) == 0.0
    # Clipped: p=1 never gives certainty.
    assert coverage_probability(1.0, 1) == pytest.approx(P_MAX)


# -- ias_sample_count -------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "c", "expected"),
    [
        (0.5, 0.99, 7),
        (0.1, 0.99, 44),
        (0.5, 0.75, 2),  # exact: 1 - 0.5^2 == 0.75, must not round up to 3
        # Exact cases whose float ratio lands just above the integer (e.g. 2.0000000000000004):
        (0.3, 0.51, 2),
        (0.7, 0.91, 2),
        (0.6, 0.936, 3),
        (0.95, 0.9975, 2),
        (0.5, 0.5, 1),
        (0.99, 0.5, 1),
        (0.9, 0.999, 3),
    ],
)
def test_ias_sample_count_known_values(p: float, c: float, expected: int) -> None:
    assert ias_sample_count(p, c) == expected


def test_ias_sample_count_clips_extreme_probabilities() -> None:
    assert ias_sample_count(1.0, 0.99) == 1
    expected = math.ceil(math.log(0.01) / math.log1p(-P_MIN))
    assert ias_sample_count(0.0, 0.99) == expected
    assert ias_sample_count(-1.0, 0.99) == expected


@pytest.mark.parametrize("c", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_ias_sample_count_rejects_bad_confidence(c: float) -> None:
    with pytest.raises(ConfigurationError, match="target confidence"):
        ias_sample_count(0.5, c)


def test_ias_sample_count_rejects_nan_probability() -> None:
    with pytest.raises(ValueError, match="not finite"):
        ias_sample_count(math.nan, 0.9)


@settings(max_examples=100, deadline=None)
@given(probabilities, probabilities, confidences)
def test_ias_sample_count_non_increasing_in_p(p1: float, p2: float, c: float) -> None:
    lo, hi = sorted((p1, p2))
    assert ias_sample_count(lo, c) >= ias_sample_count(hi, c)


@settings(max_examples=100, deadline=None)
@given(probabilities, confidences, confidences)
def test_ias_sample_count_non_decreasing_in_confidence(p: float, c1: float, c2: float) -> None:
    lo, hi = sorted((c1, c2))
    assert ias_sample_count(p, lo) <= ias_sample_count(p, hi)


@settings(max_examples=100, deadline=None)
@given(probabilities, confidences)
def test_ias_sample_count_reaches_target_and_is_minimal(p: float, c: float) -> None:
    n = ias_sample_count(p, c)
    assert n >= 1
    # Float slack: 1 - (1 - p) can round one ulp below p (p == c, n == 1), and the
    # formula's 1e-9 epsilon on the ratio may accept a shortfall of ~1e-10.
    assert coverage_probability(p, n) >= c - 1e-9
    if n > 1:
        # One fewer sample would miss the target (up to float rounding on exact cases).
        assert coverage_probability(p, n - 1) < c + 1e-9


# -- BudgetLimits ---------------------------------------------------------------


def test_budget_limits_defaults() -> None:
    limits = BudgetLimits()
    assert (limits.max_samples, limits.max_tokens_per_sample, limits.max_total_tokens) == (
        16,
        256,
        None,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_samples": 0},
        {"max_tokens_per_sample": 0},
        {"max_total_tokens": 0},
        {"max_total_tokens": 100, "max_tokens_per_sample": 200},
    ],
)
def test_budget_limits_rejects_invalid(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        BudgetLimits(**kwargs)


def test_budget_limits_total_smaller_than_one_sample_message() -> None:
    with pytest.raises(ValidationError, match="no sample could be drawn"):
        BudgetLimits(max_total_tokens=10, max_tokens_per_sample=11)


def test_budget_limits_total_equal_to_one_sample_is_allowed() -> None:
    limits = BudgetLimits(max_total_tokens=50, max_tokens_per_sample=50)
    assert BudgetTracker(limits).allowance(5) == 1


# -- BudgetTracker ----------------------------------------------------------------


def test_allowance_sample_cap_only() -> None:
    tracker = BudgetTracker(BudgetLimits(max_samples=5))
    assert tracker.allowance(3) == 3
    assert tracker.allowance(10) == 5
    tracker.record_samples([TokenUsage(output_tokens=10_000)] * 4)  # no token cap
    assert tracker.allowance(10) == 1
    tracker.record_samples([TokenUsage()])
    assert tracker.allowance(10) == 0
    assert tracker.token_limited() is False


@pytest.mark.parametrize("wanted", [0, -1, -100])
def test_allowance_of_nothing_is_zero(wanted: int) -> None:
    assert BudgetTracker(BudgetLimits()).allowance(wanted) == 0


def test_allowance_reserves_worst_case_tokens() -> None:
    limits = BudgetLimits(max_samples=10, max_tokens_per_sample=100, max_total_tokens=350)
    tracker = BudgetTracker(limits)
    assert tracker.allowance(100) == 3  # 350 // 100, not 10
    tracker.record_samples([TokenUsage(output_tokens=60), TokenUsage(output_tokens=60)])
    assert tracker.allowance(100) == 2  # 230 left
    tracker.record_samples([TokenUsage(output_tokens=100)])
    assert tracker.allowance(100) == 1  # 130 left
    assert tracker.token_limited() is False
    tracker.record_samples([TokenUsage(output_tokens=31)])
    assert tracker.allowance(100) == 0  # 99 left: a worst-case sample no longer fits
    assert tracker.token_limited() is True


def test_prompt_tokens_do_not_count_against_token_cap() -> None:
    limits = BudgetLimits(max_samples=10, max_tokens_per_sample=10, max_total_tokens=20)
    tracker = BudgetTracker(limits)
    tracker.record_samples([TokenUsage(input_tokens=1_000, output_tokens=0)])
    assert tracker.allowance(5) == 2


def test_record_samples_accumulates_usage() -> None:
    tracker = BudgetTracker(BudgetLimits())
    tracker.record_samples(
        [
            TokenUsage(input_tokens=5, output_tokens=7, model_calls=1),
            TokenUsage(input_tokens=5, output_tokens=3, model_calls=1, estimated=True),
        ]
    )
    tracker.record_samples([])
    assert tracker.samples == 2
    assert tracker.usage == TokenUsage(
        input_tokens=10, output_tokens=10, model_calls=2, estimated=True
    )


def test_record_prm_call_counts() -> None:
    tracker = BudgetTracker(BudgetLimits())
    for _ in range(3):
        tracker.record_prm_call()
    assert tracker.prm_calls == 3


def test_recording_from_threads_loses_nothing() -> None:
    tracker = BudgetTracker(BudgetLimits())

    def work() -> None:
        for _ in range(500):
            tracker.record_samples([TokenUsage(output_tokens=1)])
            tracker.record_prm_call()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.samples == 2000
    assert tracker.usage.output_tokens == 2000
    assert tracker.prm_calls == 2000


@settings(max_examples=50, deadline=None)
@given(
    max_samples=st.integers(1, 40),
    per_sample=st.integers(1, 50),
    total_extra=st.one_of(st.none(), st.integers(0, 600)),
    wants=st.lists(st.integers(0, 20), min_size=1, max_size=15),
    data=st.data(),
)
def test_allowance_never_lets_a_run_exceed_limits(
    max_samples: int,
    per_sample: int,
    total_extra: int | None,
    wants: list[int],
    data: st.DataObject,
) -> None:
    total = None if total_extra is None else per_sample + total_extra
    limits = BudgetLimits(
        max_samples=max_samples, max_tokens_per_sample=per_sample, max_total_tokens=total
    )
    tracker = BudgetTracker(limits)
    # The drawn wants, then greedy requests until the budget is drained (each
    # non-empty grant adds a sample, so max_samples + 1 rounds always suffice).
    for wanted in [*wants, *[10**6] * (max_samples + 1)]:
        granted = tracker.allowance(wanted)
        assert 0 <= granted <= max(0, wanted)
        usages = [
            TokenUsage(output_tokens=data.draw(st.integers(0, per_sample))) for _ in range(granted)
        ]
        tracker.record_samples(usages)
        assert tracker.samples <= max_samples
        if total is not None:
            assert tracker.usage.output_tokens <= total
    # Once drained, the tracker refuses only because a limit really binds.
    assert tracker.allowance(1) == 0
    tokens_left = None if total is None else total - tracker.usage.output_tokens
    assert tracker.samples == max_samples or (tokens_left is not None and tokens_left < per_sample)
    assert tracker.token_limited() == (tracker.samples < max_samples)


def test_one_default_sample_cap_everywhere() -> None:
    """The runnable, the limits and the CLIs' --max-samples share DEFAULT_MAX_SAMPLES."""
    from langchain_adaptive.cli import _build_parser
    from langchain_adaptive.runnable import AdaptiveReasoningRunnable

    parser = _build_parser()
    ask = parser.parse_args(["ask", "What is 2 + 3?"])
    live = parser.parse_args(["bench", "live", "--out", "unused"])
    runnable_default = AdaptiveReasoningRunnable.model_fields["max_samples"].default
    assert BudgetLimits().max_samples == runnable_default == DEFAULT_MAX_SAMPLES
    assert ask.max_samples == live.max_samples == DEFAULT_MAX_SAMPLES
