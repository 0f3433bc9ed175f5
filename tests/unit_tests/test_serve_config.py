"""``langchain-adaptive serve --config FILE``: a file's flag values, the command line winning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from langchain_adaptive._serve_openai import parse_serve_args


def _config(tmp_path: Path, values: object) -> str:
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return str(path)


def test_a_config_file_sets_flags_and_the_command_line_wins(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"strategy": "sequential_ias", "max_samples": 8, "port": 8080, "log-prompts": True},
    )
    args = parse_serve_args(["--config", config, "--port", "9090"])
    assert args.strategy == "sequential_ias" and args.max_samples == 8
    assert args.log_prompts is True
    assert args.port == 9090  # the command line wins
    assert parse_serve_args([]).port == 8000  # no file, the defaults


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_sampels": 8}, "unknown setting 'max_sampels'"),
        ({"strategy": "nope"}, "invalid choice"),
        ({"max_samples": "many"}, "invalid int value"),
        ({"log_prompts": "yes"}, "takes true or false"),
        ({"port": [1, 2]}, "takes a string or a number"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_a_bad_config_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], values: object, message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_serve_args(["--config", _config(tmp_path, values)])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_config_file_that_is_not_json_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "serve.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SystemExit):
        parse_serve_args(["--config", str(path)])
    assert "cannot read a JSON object" in capsys.readouterr().err
