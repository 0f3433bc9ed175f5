"""A remote policy: the bundled SmolLM2 behind llama-cpp-python's OpenAI-compatible server.

``python -m llama_cpp.server`` runs as a subprocess on a free loopback port and
``ChatOpenAI`` talks to it, so the whole path is real: HTTP, the server's chat
template, its ``usage`` block read back as ``usage_metadata``. Settings are tiny
(48 tokens, two samples, one thread) so the file stays near a minute on a busy CPU.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
pytest.importorskip("llama_cpp.server.app", reason='needs the "remote" extra')
pytest.importorskip("langchain_openai", reason='needs the "remote" extra')

import httpx
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI

from langchain_adaptive.evaluation.collect import acollect_calibration_data
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.integrations.llamacpp import bundled_model_path
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.runnable import AdaptiveReasoningRunnable

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

ALIAS = "smollm2"
QUESTIONS = ["What is 2 + 3?", "What is 7 * 6?", "What is 10 - 4?"]
BENCHMARK = Path(__file__).parents[2] / "examples" / "benchmarks" / "remote_policy_throughput.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def policy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on the bundled GGUF; yields its ``/v1`` URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(bundled_model_path()),
            "--model_alias",
            ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60.0
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start:\n{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def chat(url: str, client: httpx.AsyncClient, max_tokens: int = 48) -> ChatOpenAI:
    """ChatOpenAI on the server, with two settings llama_cpp.server needs.

    ChatOpenAI sends its token cap as ``max_completion_tokens``, which
    llama_cpp.server does not read: ``extra_body`` adds the ``max_tokens`` it
    reads. And langchain-openai shares one cached async HTTP client between
    instances, bound to the first event loop that used it; each test runs in its
    own loop, so each passes its own client.
    """
    return ChatOpenAI(
        base_url=url,
        api_key="none",
        model=ALIAS,
        max_tokens=max_tokens,
        extra_body={"max_tokens": max_tokens},
        max_retries=0,
        http_async_client=client,
    )


def test_server_lists_the_bundled_model(policy_url: str) -> None:
    models = httpx.get(f"{policy_url}/models").json()
    assert [m["id"] for m in models["data"]] == [ALIAS]


async def test_adaptive_runnable_abatch_on_a_remote_policy(policy_url: str) -> None:
    async with httpx.AsyncClient() as client:
        runnable = AdaptiveReasoningRunnable(
            model=chat(policy_url, client),
            strategy="majority_vote",
            max_samples=2,
            max_tokens_per_sample=48,
        )
        results = await runnable.abatch(QUESTIONS, config={"max_concurrency": 2})
    assert [r.question for r in results] == QUESTIONS
    for result in results:
        assert len(result.candidates) == result.budget.samples_used == 2
        assert all(c.text.strip() for c in result.candidates)
        # exact counts from the server's ``usage``, as usage_metadata: not estimated
        assert not result.budget.tokens_estimated
        assert 0 < result.budget.generated_tokens <= 2 * 48
        assert result.budget.prompt_tokens > 0
        assert all(0 < c.usage.output_tokens <= 48 for c in result.candidates)
        assert result.answer is None or result.answer in {c.answer for c in result.candidates}
    assert any(r.answer is not None for r in results)  # SmolLM2 states some answer


class ConstantPRM(ProcessRewardModel):
    """0.5 everywhere: calibration needs a PRM score, and this test is about the policy."""

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        return [[SuccessEstimate.point(0.5)] * max(1, len(steps)) for steps in solutions]


async def test_calibration_collects_from_a_remote_policy(policy_url: str, tmp_path: Path) -> None:
    problems = [
        Problem(id="add-0", question="What is 2 + 3?", gold="5", level="add1"),
        Problem(id="add-1", question="What is 4 + 4?", gold="8", level="add1"),
    ]
    out = tmp_path / "records.jsonl"
    async with httpx.AsyncClient() as client:
        records = await acollect_calibration_data(
            chat(policy_url, client, max_tokens=32),
            ConstantPRM(),
            problems,
            out=out,
            n_val=2,
            n_mc=1,
            max_steps=2,
            max_tokens=32,
            max_concurrency=2,
            progress=False,
        )
    assert {r.question_id for r in records} == {"add-0", "add-1"}
    assert all(r.raw_score == 0.5 and r.trials >= 1 for r in records)
    assert any(r.tokens > 0 for r in records)
    assert len(out.read_text().splitlines()) == len(records)


def test_throughput_benchmark_runs_with_tiny_settings(policy_url: str, tmp_path: Path) -> None:
    """The benchmark on this file's server; 2 questions x 4 tokens keep it short."""
    out = tmp_path / "remote.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--questions",
            "2",
            "--max-tokens",
            "4",
            "--no-warmup",
            "--base-url",
            policy_url,
            "--samples",
            "1",
            "--concurrency",
            "1",
            "2",
            "--n-threads",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["questions"] == 2
    assert [run["concurrency"] for run in results["remote"]] == [1, 2]
    assert [run["concurrency"] for run in results["in_process"]] == [1, 2]
    for run in results["remote"] + results["in_process"]:
        assert run["questions_per_s"] > 0 and run["generated_tokens"] > 0
        assert run["generated_tokens_per_s"] > 0
    assert results["remote"][0]["speedup_vs_concurrency_1"] == 1.0
    assert results["machine"]["cpus"] >= 1
    assert "remote" in done.stdout and "in-process" in done.stdout
    assert out.with_suffix(".png").is_file() or "no plot" in done.stdout
