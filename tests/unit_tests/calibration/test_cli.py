"""``langchain-adaptive calibrate fit|eval`` on synthetic records (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_adaptive.calibration.base import Calibrator
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


def test_eval_compares_raw_and_fitted_calibrators(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
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
    assert "| raw" in out.with_suffix(".md").read_text()
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
