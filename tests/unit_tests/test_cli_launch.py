"""Issue 34: ``--launch {rounds,eager}`` on ``ask``, ``serve`` and ``bench live``.

Parser-level: each command takes exactly the runnable's ``launch`` values, defaults to
``rounds`` and refuses others in one line; the runs themselves are tested in
``test_launch.py`` (``run_live``) and on the bundled model (``test_cli_llamacpp.py``).
"""

from __future__ import annotations

import argparse
from typing import get_args

import pytest

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive._serve_openai import parse_serve_args
from langchain_adaptive.cli import _build_parser, main

LAUNCH = get_args(AdaptiveReasoningRunnable.model_fields["launch"].annotation)
LIVE = ["bench", "live", "--levels", "add1", "--per-level", "1", "--out", "live.json"]


def choices(parser: argparse.ArgumentParser, *path: str) -> tuple[str, ...]:
    """The ``--launch`` choices of the (sub)command ``path`` of ``parser``."""
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    (action,) = [a for a in parser._actions if "--launch" in a.option_strings]
    return tuple(action.choices or ())


def test_ask_serve_and_bench_live_take_the_runnables_launch_values() -> None:
    parser = _build_parser()
    assert choices(parser, "ask") == LAUNCH
    assert choices(parser, "bench", "live") == LAUNCH
    assert parser.parse_args(["ask", "What is 2 + 3?"]).launch == "rounds"
    assert parser.parse_args(["ask", "What is 2 + 3?", "--launch", "eager"]).launch == "eager"
    assert parser.parse_args(LIVE).launch == "rounds"
    assert parser.parse_args([*LIVE, "--launch", "eager"]).launch == "eager"
    assert parse_serve_args([]).launch == "rounds"
    assert parse_serve_args(["--launch", "eager"]).launch == "eager"


@pytest.mark.parametrize("argv", [["ask", "What is 2 + 3?"], LIVE], ids=["ask", "bench-live"])
def test_an_unknown_launch_mode_is_one_line_naming_the_flag(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--launch", "fast"])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--launch" in line and "'fast'" in line and "eager" in line
