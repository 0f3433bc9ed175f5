"""Tests for langchain_adaptive.calibration.metrics: hand-computed values, reports, plots."""

from __future__ import annotations

import doctest
import importlib
import math
from pathlib import Path
from typing import Any

import pytest

from langchain_adaptive.calibration import (
    CalibrationReport,
    IdentityCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    auroc,
    brier_score,
    evaluate,
    expected_calibration_error,
    pinball_loss,
    quantile_coverage,
    reliability_diagram,
    report_markdown,
    split_by_question,
)
from langchain_adaptive.calibration.metrics import brier_difference_interval, reliability_bins
from langchain_adaptive.errors import CalibrationError
from tests.unit_tests.calibration.conftest import Synthetic

# -- single metrics by hand --------------------------------------------------------------


def test_brier_expands_records_into_outcomes() -> None:
    # (3 of 4 at p=0.5): 3 * 0.25 + 1 * 0.25 = 1.0; (0 of 2 at p=0.1): 2 * 0.01 = 0.02.
    assert brier_score([0.5, 0.1], [3, 0], [4, 2]) == pytest.approx(1.02 / 6)
    assert brier_score([1.0, 0.0], [5, 0], [5, 5]) == 0.0


def test_ece_by_hand() -> None:
    # Bin [0.2, 0.267): p=0.2 and 0.25, 3 of 8 -> mean p (0.2*4 + 0.25*4)/8 = 0.225, gap 0.15.
    # Bin [0.933, 1]: p=1.0, 2 of 4 -> gap 0.5. ECE = (8 * 0.15 + 4 * 0.5) / 12.
    ece = expected_calibration_error([0.2, 0.25, 1.0], [1, 2, 2], [4, 4, 4])
    assert ece == pytest.approx((8 * 0.15 + 4 * 0.5) / 12)
    assert expected_calibration_error([0.5, 0.5], [1, 1], [2, 2]) == 0.0
    bins = reliability_bins([0.2, 0.25, 1.0], [1, 2, 2], [4, 4, 4])
    assert [(b.lower, b.records, b.trials) for b in bins] == [(3 / 15, 2, 8.0), (14 / 15, 1, 4.0)]


def test_pinball_by_hand() -> None:
    # level 0.1: under-prediction by 0.5 costs 0.05, over-prediction by 0.25 costs 0.225.
    assert pinball_loss([0.5, 0.5], [1.0, 0.25], 0.1) == pytest.approx((0.05 + 0.225) / 2)
    assert pinball_loss([0.5, 0.5], [1.0, 0.25], 0.9) == pytest.approx((0.45 + 0.025) / 2)
    with pytest.raises(CalibrationError, match=r"\(0, 1\)"):
        pinball_loss([0.5], [0.5], 1.0)


def test_coverage_counts_ties_as_covered() -> None:
    assert quantile_coverage([0.0, 0.25, 0.5, 0.75], [0.0, 0.25, 0.25, 1.0]) == 0.75


def test_auroc_by_hand() -> None:
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [0, 1, 1]) == 0.5
    # Pairs (pos, neg): (0.4, 0.1) 1, (0.4, 0.4) 0.5, (0.9, 0.1) 1, (0.9, 0.4) 1 -> 3.5 / 4.
    assert auroc([0.1, 0.4, 0.4, 0.9], [False, False, True, True]) == 0.875
    assert math.isnan(auroc([0.1, 0.9], [True, True]))


@pytest.mark.parametrize(
    ("metric", "args", "message"),
    [
        (brier_score, ([0.5, float("nan")], [1, 1], [2, 2]), "NaN"),
        (brier_score, ([0.5], [1, 1], [2, 2]), "1 probabilities, 2 successes"),
        (brier_score, ([], [], []), "no records"),
        (brier_score, ([1.5], [1], [2]), r"\[0, 1\]"),
        (brier_score, ([0.5], [3], [2]), "successes <= trials"),
        (expected_calibration_error, ([0.5], [1], [0]), "trials >= 1"),
        (pinball_loss, ([0.5, 0.5], [0.5], 0.1), "2 predicted quantiles for 1"),
        (quantile_coverage, ([float("nan")], [0.5]), "NaN"),
        (auroc, ([0.5, 0.6], [True]), "1 labels for 2"),
        (auroc, ([float("nan"), 0.6], [True, False]), "NaN"),
    ],
)
def test_metrics_reject_bad_input(metric: Any, args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        metric(*args)


# -- evaluate, the report, the diagram ---------------------------------------------------


@pytest.fixture(scope="module")
def report(train_data: Synthetic, held_out: Synthetic) -> CalibrationReport:
    platt = PlattCalibrator().fit_records(train_data.records)
    isotonic = IsotonicCalibrator(interval_trials=8).fit_records(train_data.records)
    return evaluate({"platt": platt, "isotonic": isotonic}, held_out.records)


def test_evaluate_puts_raw_first_and_matches_the_metrics(
    report: CalibrationReport, held_out: Synthetic
) -> None:
    assert [row.name for row in report.rows] == ["raw", "platt", "isotonic"]
    assert [row.kind for row in report.rows] == ["raw", "platt", "isotonic"]
    assert report.n_records == len(held_out.records)
    assert report.n_questions == 750
    raw = report.row("raw")
    assert raw.brier == pytest.approx(
        brier_score(held_out.raw, held_out.successes, held_out.trials)
    )
    assert raw.coverage[0.1] == pytest.approx(quantile_coverage(held_out.raw, held_out.rates))
    for name in ("platt", "isotonic"):
        row = report.row(name)
        assert row.brier < raw.brier and row.ece < raw.ece
        assert row.coverage[0.1] > raw.coverage[0.1]
        assert row.pinball[0.1] < raw.pinball[0.1]
    # A monotone recalibration ranks like the raw score.
    assert report.row("platt").auroc == pytest.approx(raw.auroc)
    with pytest.raises(KeyError):
        report.row("missing")


def test_evaluate_none_is_the_raw_prm(held_out: Synthetic) -> None:
    records = held_out.records[:200]
    report = evaluate({"prm": None, "identity": IdentityCalibrator()}, records)
    assert [row.name for row in report.rows] == ["prm", "identity"]
    assert report.rows[0].model_dump(exclude={"name", "kind"}) == report.rows[1].model_dump(
        exclude={"name", "kind"}
    )
    with pytest.raises(CalibrationError, match="no records"):
        evaluate({"raw": None}, [])


def test_the_report_round_trips_through_json(report: CalibrationReport) -> None:
    again = CalibrationReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert set(again.row("platt").coverage) == {0.1, 0.5, 0.9}


def test_report_markdown_is_one_table(report: CalibrationReport) -> None:
    text = report_markdown(report)
    lines = text.strip().splitlines()
    assert lines[0].startswith("Calibration on 3000 records from 750 questions")
    assert "paired bootstrap over the questions (2000 resamples)" in lines[0]
    assert lines[2].startswith(
        "| calibrator | kind | Brier | Brier - platt (95% CI) | ECE | AUROC | pinball@0.1 |"
    )
    assert "coverage@0.1" in lines[2] and lines[2].endswith("mean lower |")
    assert [line.split("|")[1].strip() for line in lines[4:]] == ["raw", "platt", "isotonic"]
    assert f"{report.row('platt').brier:.4f} | reference |" in lines[5]
    gap = report.row("isotonic").brier_difference
    assert gap is not None
    assert f"{gap.difference:+.4f} ({gap.lower:+.4f}, {gap.upper:+.4f})" in lines[6]
    plain = report.model_copy(update={"reference": None})
    assert "Brier -" not in report_markdown(plain)


# -- the paired bootstrap ----------------------------------------------------------------


def test_brier_difference_interval_resamples_whole_questions() -> None:
    # Question a: 50 prefixes that all succeed; question b: 50 that all fail. The
    # calibrator says 0.9 everywhere, the reference 0.5: better on a, worse on b.
    groups = ["a"] * 50 + ["b"] * 50
    successes = [4] * 50 + [0] * 50
    p, r = [0.9] * 100, [0.5] * 100
    difference, lower, upper = brier_difference_interval(
        p, r, successes, [4] * 100, groups, n_resamples=4000
    )
    a, b = 0.01 - 0.25, 0.81 - 0.25  # per-rollout Brier gap on each question
    assert difference == pytest.approx((a + b) / 2)
    # Drawing whole questions gives {a, a}, {a, b}, {b, b}: the interval reaches both
    # ends. Drawing prefixes instead would give a narrow interval around the mean.
    assert lower == pytest.approx(a) and upper == pytest.approx(b)
    same = brier_difference_interval(r, r, successes, [4] * 100, groups)
    assert same == (0.0, 0.0, 0.0)
    again = brier_difference_interval(p, r, successes, [4] * 100, groups, seed=0)
    assert again == brier_difference_interval(p, r, successes, [4] * 100, groups, seed=0)


def test_brier_difference_interval_narrows_with_more_questions(held_out: Synthetic) -> None:
    truth, raw = held_out.true_p, held_out.raw
    args = (held_out.successes, held_out.trials, held_out.groups)
    wide = brier_difference_interval(truth[:80], raw[:80], *(a[:80] for a in args))
    narrow = brier_difference_interval(truth, raw, *args)
    assert narrow[1] < narrow[0] < narrow[2] < 0  # the truth beats the overconfident score
    assert narrow[2] - narrow[1] < (wide[2] - wide[1]) / 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_brier_difference_interval_rejects_bad_settings(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(CalibrationError, match=message):
        brier_difference_interval([0.5], [0.5], [1], [2], ["a"], **kwargs)
    with pytest.raises(CalibrationError, match="groups"):
        brier_difference_interval([0.5, 0.5], [0.5, 0.5], [1, 1], [2, 2], ["a"])


def test_evaluate_compares_every_row_with_the_best_baseline(
    report: CalibrationReport, held_out: Synthetic, train_data: Synthetic
) -> None:
    best = min(("platt", "isotonic"), key=lambda name: report.row(name).brier)
    assert report.reference == best and report.bootstrap_resamples == 2000
    for row in report.rows:
        if row.name == best:
            assert row.brier_difference is None
            continue
        gap = row.brier_difference
        assert gap is not None and gap.reference == best
        assert gap.difference == pytest.approx(row.brier - report.row(best).brier)
        assert gap.lower <= gap.difference <= gap.upper
    raw_gap = report.row("raw").brier_difference
    assert raw_gap is not None and raw_gap.lower > 0  # the raw score is clearly worse
    platt = PlattCalibrator().fit_records(train_data.records)
    records = held_out.records[:400]
    chosen = evaluate({"platt": platt}, records, reference="raw", bootstrap=200)
    gap = chosen.row("platt").brier_difference
    assert chosen.reference == "raw" and gap is not None and gap.upper < 0
    none = evaluate({"platt": platt}, records, bootstrap=0)
    assert none.reference is None and all(row.brier_difference is None for row in none.rows)
    assert evaluate({"raw": None}, records).reference is None  # no baseline to compare with
    with pytest.raises(CalibrationError, match="reference 'missing'"):
        evaluate({"platt": platt}, records, reference="missing")


def test_reliability_diagram_writes_a_png(report: CalibrationReport, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = reliability_diagram(report, tmp_path / "plots" / "reliability.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = reliability_diagram(
        {"raw": ([0.2, 0.9], [1, 8], [8, 8])}, tmp_path / "arrays.png", title="raw only"
    )
    assert other.stat().st_size > 1000


# -- split by question -------------------------------------------------------------------


def test_split_by_question_keeps_questions_whole(held_out: Synthetic) -> None:
    records = held_out.records[:400]  # 100 questions of 4 prefixes
    train, test = split_by_question(records, test_fraction=0.25, seed=3)
    train_ids = {r.question_id for r in train}
    test_ids = {r.question_id for r in test}
    assert not train_ids & test_ids
    assert len(test_ids) == 25 and len(train) + len(test) == 400
    assert split_by_question(records, 0.25, seed=3) == (train, test)
    assert split_by_question(records, 0.25, seed=4) != (train, test)
    positions = {id(record): i for i, record in enumerate(records)}
    assert [positions[id(r)] for r in test] == sorted(positions[id(r)] for r in test)


def test_split_by_question_rejects_what_cannot_be_split(held_out: Synthetic) -> None:
    one_question = held_out.records[:4]
    with pytest.raises(CalibrationError, match="at least two questions"):
        split_by_question(one_question)
    with pytest.raises(CalibrationError, match="test_fraction"):
        split_by_question(held_out.records, test_fraction=1.0)
    train, test = split_by_question(held_out.records[:8], test_fraction=0.9)
    assert len({r.question_id for r in train}) == 1 and len({r.question_id for r in test}) == 1


@pytest.mark.parametrize("module", ["_base", "_baselines", "metrics"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"langchain_adaptive.calibration.{module}"))
    assert result.attempted > 0 and result.failed == 0
