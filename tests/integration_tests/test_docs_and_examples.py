"""The README's set-up commands and links, and the benchmark scripts, on the real model.

The README's and the docs' Python blocks run in ``test_doc_snippets.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "examples" / "benchmarks"


def test_the_readme_is_short_and_its_links_resolve() -> None:
    """The README says what the product is; measurements live under docs/results/."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "the README links into the docs"
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_readme_names_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[llamacpp]" && langchain-adaptive ask "What is 7 + 8?"' in text
    assert 'pip install -e ".[llamacpp,dev]" && pytest' in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[llamacpp,dev]"' in ci and "\npytest\n" in ci


def run_script(name: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], check=True, timeout=600, cwd=ROOT
    )


def test_ias_vs_fixed_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "ias.json"
    run_script(
        "ias_vs_fixed.py", "--levels", "add1,mul2", "--per-level", "1", "--max-samples", "2",
        "--max-tokens", "24", "--policies", "fixed,ias_judge", "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"fixed", "ias_judge"}
    assert len(report["rows"]) == 4
    assert all(r["samples"] == 2 for r in report["rows"] if r["policy"] == "fixed")
    assert "ias_judge" in report["ratios_over_fixed"]
    assert out.with_suffix(".png").stat().st_size > 0


def test_chat_model_benchmark_runs(tmp_path: Path) -> None:
    pytest.importorskip("langchain_community")
    out = tmp_path / "chat.json"
    run_script(
        "chat_model_vs_community.py",
        "--samples",
        "2",
        "--max-tokens",
        "8",
        "--repeats",
        "1",
        "--instances",
        "1",
        "--out",
        str(out),
    )
    report = json.loads(out.read_text())
    assert report["ratio_community_over_ours_seconds"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_deepconf_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "deepconf.json"
    run_script(
        "deepconf.py", "--questions", "1", "--levels", "add1", "--cap", "2", "--warmup", "1",
        "--sample-tokens", "24", "--window", "4", "--replicates", "20", "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {
        "majority vote N=2", "deepconf-low", "deepconf-high", "calibrated IAS",
    }  # fmt: skip
    for entry in report["summary"].values():
        assert entry["mean_samples"] <= 2
        assert set(entry["vs_majority_vote"]) >= {"token_ratio_ci95", "accuracy_difference_ci95"}
    assert out.with_suffix(".png").stat().st_size > 0


def test_launch_and_cancel_benchmark_runs(tmp_path: Path) -> None:
    """Both backends run with paired draws, and our token counts agree with the server's."""
    pytest.importorskip("langchain_openai")
    pytest.importorskip("fastapi")
    out = tmp_path / "launch.json"
    run_script(
        "launch_and_cancel.py", "--llama-questions", "2", "--server-questions", "3", "--n", "4",
        "--sample-tokens", "24", "--replicates", "20", "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert set(report["backends"]) == {"in-process", "server"}
    # Eager takes from fixed-N's draws. So do rounds on the server; in-process, a sequential
    # sample whose prompt reuses part of the KV cache may differ in the last bits, and with
    # them, rarely, its text (docs/guides/launch-and-cancel.md).
    paired = {"in-process": ("eager",), "server": ("rounds", "eager")}
    for name, backend in report["backends"].items():
        assert backend["paired_draws"] is True
        rows = backend["rows"]
        assert set(rows) == {"fixed-N", "rounds", "eager"}
        for question, fixed in enumerate(rows["fixed-N"]):
            drawn = Counter(tuple(kept) for kept in fixed["kept"])
            assert len(fixed["kept"]) == 4
            for policy in paired[name]:
                assert not Counter(tuple(kept) for kept in rows[policy][question]["kept"]) - drawn
    for row in (row for rows in report["backends"]["server"]["rows"].values() for row in rows):
        # what we count is what the server sent (a cut-off request may send one more word)
        assert 0 <= row["server_tokens"] - row["tokens"] <= row["cancelled_samples"]
    summary = report["backends"]["server"]["summary"]
    assert {"eager_over_fixed_wall", "eager_over_rounds_tokens"} <= set(summary)
    assert out.with_suffix(".png").stat().st_size > 0
