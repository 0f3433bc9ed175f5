"""Issue 31, item 14: every command-line error is one line naming the argument, exit status 2.

Each case fails before any model is loaded, so these run in milliseconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from langchain_adaptive._argparse import file_error
from langchain_adaptive.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text("", encoding="utf-8")
    return path


def cases(tmp_path: Path, records: Path) -> list[tuple[list[str], str, str]]:
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("x")
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"question": "caf\xe9", "gold": "1"}\n')
    missing = str(tmp_path / "missing.jsonl")
    out = str(tmp_path / "out")
    return [
        (["calibrate", "collect", "--dataset", missing, "--out", out], "--dataset", "no such"),
        (["calibrate", "fit", "--data", missing, "--out", out], "--data", "no such"),
        (["calibrate", "collect", "--dataset", str(latin1), "--out", out], "--dataset", "UTF-8"),
        (["calibrate", "fit", "--data", str(latin1), "--out", out], "--data", "UTF-8"),
        (["calibrate", "fit", "--data", str(records), "--out", f"{a_file}/d"], "--out", "a file"),
        (["calibrate", "fit", "--data", str(tmp_path), "--out", out], "--data", "not a file"),
        (["ask", "What is 2 + 3?", "--threads", "0"], "--threads", "at least 1"),
        (["ask", "What is 2 + 3?", "--max-samples", "0"], "--max-samples", "at least 1"),
        (["calibrate", "collect", "--threads", "0", "--out", out], "--threads", "at least 1"),
        (["serve-prm", "--port", "99999"], "--port", "65535"),
        (["serve-prm", "--port", "-1"], "--port", "65535"),
        (["serve-prm", "--prm", "probe", "--head", "/nonexistent"], "--head", "no such folder"),
        (["serve-prm", "--prm", "probe", "--n-threads", "0"], "--n-threads", "at least 1"),
        (["serve-prm", "--body-timeout", "0"], "--body-timeout", "positive"),
    ]


CASE_IDS = [
    "missing-dataset",
    "missing-data",
    "latin1-dataset",
    "latin1-data",
    "out-under-a-file",
    "data-is-a-folder",
    "ask-threads-0",
    "ask-max-samples-0",
    "collect-threads-0",
    "port-99999",
    "port-negative",
    "head-missing",
    "serve-threads-0",
    "body-timeout-0",
]


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_cli_errors_are_one_line_naming_the_argument(
    index: int, tmp_path: Path, records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, argument, words = cases(tmp_path, records)[index]
    code, err = run(argv, capsys)
    line = one_line(err)
    assert code == 2
    assert argument in line and words in line, line


def test_a_file_error_at_run_time_names_the_option_it_came_from() -> None:
    args = argparse.Namespace(data=Path("/d/records.jsonl"), out=Path("/r/report.json"))
    denied = PermissionError(13, "Permission denied", "/r/report.md")
    assert file_error(denied, args) == "argument --out: Permission denied: /r/report.md"
    missing = FileNotFoundError(2, "No such file or directory", "/d/records.jsonl")
    assert file_error(missing, args).startswith("argument --data: No such file")  # type: ignore[union-attr]
    assert file_error(ValueError("not a file error"), args) is None
