"""The ``ask`` command on the bundled model: llama.cpp's own messages stay off stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("llama_cpp")

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

# llama.cpp prints this while it creates the probe's embedding context.
LLAMA_CPP_LINE = "pooling_type"


def ask(*flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "langchain_adaptive.cli", "ask", "What is 2 + 3?"]
    command += ["--max-samples", "1", "--max-tokens", "16", "--seed", "0", "--threads", "2"]
    return subprocess.run(
        [*command, *flags], capture_output=True, text=True, timeout=300, check=True
    )


def test_ask_keeps_llama_cpp_quiet_unless_verbose() -> None:
    quiet = ask("--quiet")
    assert quiet.stdout.startswith("Answer: ")
    assert quiet.stderr == ""
    progress = ask()
    assert LLAMA_CPP_LINE not in progress.stderr
    assert "question success estimate" in progress.stderr
    verbose = ask("--quiet", "--verbose")
    assert LLAMA_CPP_LINE in verbose.stderr


def test_ask_several_questions_gives_a_line_each_with_why() -> None:
    command = [sys.executable, "-m", "langchain_adaptive.cli", "ask", "What is 2 + 3?"]
    command += ["What is 48 * 17?", "--max-samples", "2", "--max-tokens", "16", "--seed", "0"]
    done = subprocess.run(
        [*command, "--threads", "2"], capture_output=True, text=True, timeout=300, check=True
    )
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["'What is 2 + 3?'", "'What is 48 * 17?'"]
    for line in lines:
        assert "p >= " in line and "decided " in line and " of 2 (" in line
    # the progress lines say when each decision was made, one question after the other
    decisions = [line for line in done.stderr.splitlines() if "drawing" in line]
    assert len(decisions) == 2


def test_ask_launch_eager_reaches_the_runnable_and_runs_on_the_bundled_model() -> None:
    from langchain_adaptive._reasoner_flags import build_reasoner
    from langchain_adaptive.cli import _build_parser

    flags = ["--strategy", "adaptive_consistency", "--max-samples", "4", "--launch", "eager"]
    assert build_reasoner(_build_parser().parse_args(["ask", "q", *flags])).launch == "eager"
    done = ask(*flags, "--quiet", "--json")
    result = json.loads(done.stdout)
    budget = result["budget"]
    assert result["answer"] is not None and result["strategy"] == "adaptive_consistency"
    # eager launched every sample the cap allows at once: each was taken or cancelled
    assert budget["samples_used"] + budget["cancelled_samples"] == 4
    assert budget["cancelled_tokens"] <= 16 * budget["cancelled_samples"]
    assert not [w for w in result["warnings"] if "launch=" in w]
