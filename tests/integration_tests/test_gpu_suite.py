"""``examples/benchmarks/gpu_suite.sh`` in its no-GPU mode, and how it reports a broken part.

The suite exists for the first machine with a GPU, so here it runs with
``CUDA_VISIBLE_DEVICES=""``: it must say "no GPU" on one line, run the CPU smoke
version of every part (the real bundled SmolLM2, a random-weight PRM built by the
script, ``pytest -m gpu``) and write its JSON. ``GPU_SUITE_GGUF`` points at the
bundled GGUF so the "larger model" part runs too. The checks are of keys and
shapes, not of speeds. The whole run takes one to two minutes on two busy cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_adaptive.integrations.llamacpp import bundled_model_path  # lazy: no llama_cpp

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "examples" / "benchmarks" / "gpu_suite.sh"
HELPER = ROOT / "examples" / "benchmarks" / "gpu_suite.py"
PARTS = {"llamacpp_bundled", "llamacpp_larger", "launch_eager", "hf_prm", "gpu_tests"}

needs_shell = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="needs bash and coreutils' timeout",
)


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GPU_SUITE_GGUF"}
    env.update(CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable, **extra)
    return env


@pytest.mark.slow
@pytest.mark.llamacpp
@needs_shell
def test_without_a_gpu_it_runs_every_part_on_the_cpu_and_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
    pytest.importorskip("transformers", reason='needs the "hf" extra')
    out = tmp_path / "suite"
    done = subprocess.run(
        ["bash", str(SUITE), str(out)],
        env=_environment(GPU_SUITE_GGUF=str(bundled_model_path())),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # the script finds the repository itself
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("gpu_suite: no GPU (CUDA_VISIBLE_DEVICES is ''):")
    assert lines[-1].startswith("gpu_suite: no GPU") and "CPU smoke passed" in lines[-1]

    summary = json.loads((out / "gpu_suite.json").read_text())
    assert summary["mode"] == "cpu-smoke" and summary["ok"] is True
    assert summary["no_gpu_reason"] == "CUDA_VISIBLE_DEVICES is ''"
    assert set(summary["parts"]) == PARTS
    assert {name: part["status"] for name, part in summary["parts"].items()} == dict.fromkeys(
        PARTS, "ok"
    )
    for part in summary["parts"].values():
        assert 0 < part["seconds"] <= part["limit_s"]
        assert (out / part["log"]).is_file() and (out / part["result"]).is_file()
    assert summary["failed_parts"] == summary["failed_tests"] == []
    env = summary["environment"]
    assert env == json.loads((out / "environment.json").read_text())
    assert "TORCH_CUDA=0\n" in (out / "environment.sh").read_text()
    assert env["torch"]["cuda_available"] is False
    assert env["llama_cpp"]["gpu_offload"] is False
    assert env["larger_gguf"] == str(bundled_model_path())

    # llama.cpp: n_gpu_layers=-1 asked, the CPU build says it cannot offload, rows per N
    for name in ("llamacpp_bundled", "llamacpp_larger"):
        report = json.loads((out / f"{name}.json").read_text())
        offload = report["offload"]
        assert offload["n_gpu_layers"] == -1
        assert offload["llama_supports_gpu_offload"] is False
        assert offload["device"] == "cpu" and offload["layers_on_gpu"] == 0
        assert sum(offload["layer_devices"].values()) > 0
        assert report["samples"] == [1, 2] and set(report["summary"]) == {"1", "2"}
        assert (out / f"{name}.png").stat().st_size > 0
    rows = summary["tables"]["llamacpp"]
    assert [(row["part"], row["n"]) for row in rows] == [
        ("llamacpp_bundled", 1),
        ("llamacpp_bundled", 2),
        ("llamacpp_larger", 1),
        ("llamacpp_larger", 2),
    ]
    for row in rows:
        assert row["device"] == "cpu"
        assert all(row[key] > 0 for key in ("sequential_tok_s", "batched_tok_s", "shared_tok_s"))

    # launch-and-cancel in-process, n_gpu_layers=-1 asked: a row per policy, paired ratios
    report = json.loads((out / "launch_eager.json").read_text())
    assert report["settings"]["n_gpu_layers"] == -1 and list(report["backends"]) == ["in-process"]
    launch = summary["tables"]["launch_eager"]
    assert [row["policy"] for row in launch] == ["fixed-N", "rounds", "eager"]
    for row in launch:
        assert row["questions"] == 1 and row["seconds"] > 0 and row["tokens"] > 0
    assert launch[0]["wall_over_fixed"] == 1.0 and launch[1]["tokens_over_rounds"] == 1.0
    assert launch[2]["wall_over_fixed_ci95"] is not None

    # the PRM: the CPU's float64 against its float32, one row per side
    prm = summary["tables"]["hf_prm"]
    assert [(row["size"], row["side"]) for row in prm] == [
        ("tiny", "cpu/float32"),
        ("tiny", "cpu/float64"),
    ]
    assert prm[0]["within_tolerance"] is None and prm[1]["within_tolerance"] is True
    report = json.loads((out / "hf_prm.json").read_text())
    assert report["all_within_tolerance"] is True
    assert report["sizes"]["tiny"]["targets"]["cpu/float64"]["dtype"] == "float64"

    # pytest -m gpu: every gpu-marked test collected, and skipped without a GPU
    tests = summary["tables"]["gpu_tests"]
    names = {row["test"].rsplit("::", 1)[-1] for row in tests}
    assert {"test_on_a_gpu_scores_match_the_cpu", "test_every_layer_is_assigned_to_a_gpu"} <= names
    assert {row["outcome"] for row in tests} == {"skipped"}
    assert json.loads((out / "gpu_tests.json").read_text()) == tests

    markdown = (out / "gpu_suite.md").read_text()
    assert "| SmolLM2-135M-Instruct.Q4_1.gguf | cpu (0/" in markdown
    assert "| tiny (0.03M) | cpu/float64 |" in markdown
    assert "| eager | 1 |" in markdown


@needs_shell
def test_usage_error_without_an_output_folder() -> None:
    done = subprocess.run(["bash", str(SUITE)], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "usage:" in done.stderr


@needs_shell
def test_without_a_gpu_and_without_the_smoke_it_exits_0_at_once(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SUITE), str(tmp_path)],
        env=_environment(GPU_SUITE_SMOKE="0"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("gpu_suite: no GPU (CUDA_VISIBLE_DEVICES is ''):")
    assert lines[-1].endswith(f"): nothing measured; results in {tmp_path}")
    summary = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert summary["mode"] == "no-gpu" and summary["ok"] is True
    assert {part["status"] for part in summary["parts"].values()} == {"skipped"}
    assert set(summary["parts"]) == PARTS


def _helper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HELPER), *args], capture_output=True, text=True, check=False
    )


def test_a_timed_out_or_failed_part_fails_the_suite_and_keeps_the_rest(tmp_path: Path) -> None:
    environment = {
        "no_gpu_reason": None,
        "nvidia_smi": {"found": True, "gpus": [{"name": "NVIDIA H100"}], "error": None},
        "torch": {"installed": True, "version": "2.13.0", "cuda_available": True},
        "llama_cpp": {"installed": True, "version": "0.3.36", "gpu_offload": True},
    }
    (tmp_path / "environment.json").write_text(json.dumps(environment))
    (tmp_path / "hf_prm.json").write_text("{}")  # a part that broke after opening its file
    records = [
        ("llamacpp_bundled", "--rc", "124", "--limit", "9"),
        ("hf_prm", "--rc", "3", "--limit", "9"),
        ("llamacpp_larger", "--failed", "no such file"),
        ("launch_eager", "--skipped", "cannot offload"),
        ("gpu_tests", "--skipped", "no tests"),
    ]
    for name, *args in records:
        assert _helper("record", str(tmp_path), name, *args).returncode == 0

    done = _helper("summarize", str(tmp_path), "--mode", "gpu", "--wall", "1", "--limit", "40")
    assert done.returncode == 1
    summary = json.loads((tmp_path / "gpu_suite.json").read_text())
    statuses = {name: part["status"] for name, part in summary["parts"].items()}
    assert statuses == {
        "llamacpp_bundled": "timeout",
        "llamacpp_larger": "failed",
        "launch_eager": "skipped",
        "hf_prm": "failed",
        "gpu_tests": "skipped",
    }
    assert summary["ok"] is False
    assert summary["failed_parts"] == ["llamacpp_bundled", "llamacpp_larger", "hf_prm"]
    assert summary["parts"]["llamacpp_larger"]["reason"] == "no such file"
    assert summary["tables"] == {"llamacpp": [], "launch_eager": [], "hf_prm": [], "gpu_tests": []}
    assert summary["table_errors"] == {"hf_prm": "hf_prm.json: KeyError: 'sizes'"}
    assert "| llamacpp_bundled | timeout |" in (tmp_path / "gpu_suite.md").read_text()
