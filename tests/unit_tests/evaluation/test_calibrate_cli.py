"""``langchain-adaptive calibrate fit|eval`` on synthetic records (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_adaptive.calibration._base import Calibrator
from langchain_adaptive.cli import main
from tests.unit_tests.calibration.conftest import make_synthetic


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    records = make_synthetic(n_questions=40, seed=3).records
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    return path


def test_fit_saves_a_loadable_calibrator(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "platt"
    assert (
        main(["calibrate", "fit", "--data", str(data), "--method", "platt", "--out", str(out)]) == 0
    )
    calibrator = Calibrator.load(out)
    assert calibrator.kind == "platt" and calibrator.metadata["train_questions"] == 28


def test_fit_quantile_with_and_without_cross_validation(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from langchain_adaptive.calibration import _quantile as quantile

    monkeypatch.setattr(quantile, "DEFAULT_CV_GRID", {"hidden": (0,), "weight_decay": (1.0, 0.1)})
    common = ["calibrate", "fit", "--data", str(data), "--method", "quantile"]
    assert main([*common, "--out", str(tmp_path / "cv")]) == 0
    assert "cross-validation chose {'hidden': 0, 'weight_decay':" in capsys.readouterr().out
    chosen = Calibrator.load(tmp_path / "cv")
    assert chosen.to_config()["hyperparameters"]["hidden"] == 0
    assert main([*common, "--no-select-by-cv", "--out", str(tmp_path / "plain")]) == 0
    assert "cross-validation" not in capsys.readouterr().out
    plain = Calibrator.load(tmp_path / "plain").to_config()["hyperparameters"]
    assert plain["hidden"] == 32 and plain["select_by_cv"] is False


def test_eval_compares_raw_and_fitted_calibrators(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from langchain_adaptive.calibration import _quantile as quantile

    monkeypatch.setattr(
        quantile, "DEFAULT_CV_GRID", {"hidden": (0,), "use_features": (False, True)}
    )
    saved = tmp_path / "iso"
    main(["calibrate", "fit", "--data", str(data), "--method", "isotonic", "--out", str(saved)])
    out = tmp_path / "report.json"
    code = main(
        [
            "calibrate",
            "eval",
            "--data",
            str(data),
            "--fit",
            "platt,quantile",
            "--calibrator",
            f"saved_iso={saved}",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["report"]["rows"]}
    assert list(rows) == ["raw", "platt", "quantile", "saved_iso"]
    assert report["report"]["n_questions"] == 12  # 30% of 40 questions held out
    assert rows["platt"]["brier"] < rows["raw"]["brier"]  # the raw score is overconfident
    best = min(("platt", "saved_iso"), key=lambda name: rows[name]["brier"])
    assert report["report"]["reference"] == best  # the better of the two baselines
    assert rows[best]["brier_difference"] is None
    gap = rows["quantile"]["brier_difference"]
    assert gap["reference"] == best and gap["lower"] <= gap["difference"] <= gap["upper"]
    search = report["cross_validation"]["quantile"]
    assert set(search["chosen"]) == {"hidden", "use_features"}
    assert [r["candidate"]["use_features"] for r in search["results"]] == [False, True]
    markdown = out.with_suffix(".md").read_text()
    assert "| raw" in markdown and f"Brier - {best} (95% CI)" in markdown
    assert out.with_suffix(".png").stat().st_size > 0


def test_eval_rejects_unknown_methods(data: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown method"):
        main(
            [
                "calibrate",
                "eval",
                "--data",
                str(data),
                "--fit",
                "magic",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )


def test_bad_records_file_is_a_typed_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code = main(
        [
            "calibrate",
            "fit",
            "--data",
            str(empty),
            "--method",
            "platt",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2 and "CalibrationError" in capsys.readouterr().err


def test_few_shot_examples_come_from_the_suite_and_leave_their_questions_out() -> None:
    import argparse

    from langchain_adaptive.evaluation.calibrate_cli import few_shot_arguments, few_shot_examples
    from langchain_adaptive.evaluation.datasets import arithmetic_suite

    parser = argparse.ArgumentParser()
    few_shot_arguments(parser)
    problems = arithmetic_suite(3, seed=0, levels=("steps2",))
    assert few_shot_examples(parser.parse_args([]), problems) == ([], problems)

    args = parser.parse_args(["--few-shot", "2", "--few-shot-seed", "0"])
    examples, kept = few_shot_examples(args, problems)
    assert [e.question for e in examples] == [p.question for p in problems[:2]]
    assert kept == problems[2:]  # a question shown solved is not asked again
