"""``examples/benchmarks/evaluation_harness.sh``: every command it runs parses as written."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from langchain_adaptive.cli import _build_parser

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "examples" / "benchmarks" / "evaluation_harness.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def dry_run(*stages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *stages],
        cwd=ROOT,
        env={**os.environ, "DRY_RUN": "1"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_command_of_every_stage_parses() -> None:
    done = dry_run("all")
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    assert len(commands) == 14
    parser = _build_parser()
    for argv in commands:
        if argv[0] == "langchain-adaptive":
            parser.parse_args(argv[1:])  # an unknown flag or choice exits here
        else:
            assert argv[:1] == ["python"] and (ROOT / argv[1]).is_file(), argv
    live = next(a for a in commands if a[1:3] == ["bench", "live"])
    args = parser.parse_args(live[1:])
    assert args.calibrator == ["judge-isotonic=judge:bench-results/calibration/judge-isotonic"]
    assert args.policies.split(",")[1] == "ias-floor4:judge-isotonic@0.9"


def test_an_unknown_stage_is_refused_before_anything_runs() -> None:
    done = dry_run("record", "recrod")
    assert done.returncode == 2 and "unknown stage 'recrod'" in done.stderr
    assert done.stdout == ""
    assert dry_run().returncode == 2
