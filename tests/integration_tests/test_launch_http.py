"""Launch-and-cancel against a real HTTP server on 127.0.0.1 through ``ChatOpenAI``.

The server is ``examples/benchmarks/_openai_slots.py`` (a scripted
OpenAI-compatible server with 4 parallel slots, one word every 20 ms), run as a
subprocess. Once Adaptive-Consistency is settled, the requests still streaming
must be cut off: the server must see their clients disconnect, and the words it
sent them must be what the run reports as ``cancelled_tokens``.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_openai", reason='needs the "remote" extra')
pytest.importorskip("fastapi", reason='needs the "serve" extra')

import httpx
from langchain_openai import ChatOpenAI

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.strategies import AdaptiveConsistency

SERVER = Path(__file__).parents[2] / "examples" / "benchmarks" / "_openai_slots.py"
SCRIPT = ["--token-delay", "0.02", "--p-correct", "1.0"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", str(port), "--slots", "4", *SCRIPT],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/stats", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("the scripted server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _reasoner(url: str, launch: str) -> AdaptiveReasoningRunnable:
    chat = ChatOpenAI(
        base_url=f"{url}/v1", api_key="unused", model="scripted", stream_usage=True, max_retries=0
    )
    return AdaptiveReasoningRunnable(
        model=chat,
        strategy=AdaptiveConsistency(),  # four agreeing answers settle it
        max_samples=8,
        max_tokens_per_sample=128,
        launch=launch,
    )


def _stats(url: str) -> dict[str, int]:
    for _ in range(100):  # the server notices a disconnect at its next word
        stats = httpx.get(f"{url}/stats").json()
        if stats["finished"] + stats["disconnected"] == stats["requests"]:
            return dict(stats)
        time.sleep(0.05)
    return dict(stats)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_server_sees_the_cancelled_requests_disconnect(server: str, mode: str) -> None:
    httpx.post(f"{server}/reset")
    runnable = _reasoner(server, "eager")
    if mode == "sync":
        result = runnable.invoke("What is 12 + 30?")
    else:
        result = asyncio.run(runnable.ainvoke("What is 12 + 30?"))
    budget = result.budget
    assert result.stop_reason == "consensus" and result.answer == "42"
    assert budget.samples_used == 4
    assert budget.cancelled_samples == 4
    stats = _stats(server)
    assert stats["requests"] == 8  # every planned sample was launched
    assert stats["finished"] + stats["disconnected"] == 8
    assert stats["disconnected"] >= 1  # at least one was cut off mid-stream or in the queue
    # the run counts every word it received; the server may have sent one more per request
    received = budget.generated_tokens + budget.cancelled_tokens
    assert received <= stats["generated"] <= received + stats["disconnected"]
    assert budget.cancelled_tokens > 0


def test_rounds_sends_one_request_at_a_time(server: str) -> None:
    httpx.post(f"{server}/reset")
    result = _reasoner(server, "rounds").invoke("What is 12 + 30?")
    stats = _stats(server)
    assert result.budget.samples_used == stats["requests"] == stats["finished"] == 4
    assert stats["disconnected"] == 0
    assert result.budget.generated_tokens == stats["generated"]
