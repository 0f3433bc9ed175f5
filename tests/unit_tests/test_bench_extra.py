"""The harness is an optional layer: without the bench extra, bench and calibrate say so.

Each case runs in a fresh interpreter whose ``sys.modules`` blocks the bench extra's
packages (``None`` there makes ``import`` raise ImportError, as if not installed), so
the check sees what a user without ``pip install "langchain-adaptive[bench]"`` sees.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = (
    "import sys\n"
    "for name in ('matplotlib', 'tqdm', 'langchain_community'):\n"
    "    sys.modules[name] = None\n"
)


def _run(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + body],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "replay", "--pools", "pools.jsonl"],
        ["bench", "--help"],
        ["calibrate", "fit", "--data", "records.jsonl"],
    ],
)
def test_bench_and_calibrate_without_the_extra_exit_2_in_one_line(argv: list[str]) -> None:
    done = _run(f"from langchain_adaptive.cli import main\nraise SystemExit(main({argv!r}))\n")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert 'pip install "langchain-adaptive[bench]"' in lines[0]
    assert "matplotlib, tqdm missing" in lines[0] and argv[0] in lines[0]


def test_the_runtime_and_ask_need_no_harness() -> None:
    body = (
        "import langchain_adaptive as la\n"
        "from langchain_adaptive import AdaptiveReasoningRunnable, BudgetLimits\n"
        "import langchain_adaptive.strategies, langchain_adaptive.prm\n"
        "import langchain_adaptive.calibration, langchain_adaptive.callbacks\n"
        "from langchain_adaptive.cli import main\n"
        "try:\n"
        "    main(['ask', '--help'])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('langchain_adaptive.evaluation'))\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    done = _run(body)
    assert done.returncode == 0, done.stderr
    assert "--max-samples" in done.stdout and done.stdout.rstrip().endswith("ok")


def test_top_level_help_lists_the_harness_commands_and_the_extra() -> None:
    done = _run(
        "from langchain_adaptive.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as done:\n    assert done.code == 0\n"
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # argparse wraps the help column
    assert "bench" in text and "needs the bench extra" in text
