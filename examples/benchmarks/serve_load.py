"""Load test of ``langchain-adaptive serve``'s OpenAI endpoint, and its overhead over a direct call.

The served runnable is instance-adaptive best-of-N on a scripted policy and PRM
that wait like a remote model (``--delay-s`` per policy call, ``--prm-delay-s``
per PRM call) and answer at once, so the figures measure the server, not a
model. The PRM's estimate (p = 0.5) at C = 0.9 asks for 4 samples, drawn
concurrently: one request takes about ``prm_delay + delay``.

1. Overhead at one client: ``--overhead-requests`` pairs, each a direct
   ``await runnable.ainvoke(messages)`` in this process and the same request
   through the server with the official ``openai`` client (``AsyncOpenAI``),
   alternated so drift hits both alike. Reported: p50 and mean of each, and the
   server's extra latency in percent (target: at most 5 % at p50).
2. Load: 1, 4 and 16 concurrent clients (``--clients``), each sending
   ``--requests`` requests one after another (a bounded run: clients x requests
   in all); reported: throughput (requests/s over the wall time), p50 and p95
   latency, and errors.

The server runs in its own process (``--serve PORT``, started here on a free
127.0.0.1 port) with ``--max-concurrency`` at the largest client count, so no
request is refused. Writes ``serve_load.json`` and ``serve_load.png`` to ``--out``.

Run::

    pip install "langchain-adaptive[server,remote,bench]"
    python examples/benchmarks/serve_load.py --out bench-results/serve-load
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig

from langchain_adaptive.prm import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.runnable import AdaptiveReasoningRunnable
from langchain_adaptive.strategies import AdaptiveBestOfN

QUESTION = "What is 17 + 25?"
SOLUTION = "17 + 25 = 42.\n\nThe answer is 42."


class DelayedChatModel(BaseChatModel):
    """Answers ``SOLUTION`` after ``delay_s``, reporting usage like a remote model."""

    delay_s: float

    @property
    def _llm_type(self) -> str:
        return "delayed-scripted"

    def _result(self, messages: list[BaseMessage]) -> ChatResult:
        prompt = sum(len(str(m.content).split()) for m in messages)
        output = len(SOLUTION.split())
        usage = {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}
        message = AIMessage(
            content=SOLUTION, usage_metadata=usage, response_metadata={"finish_reason": "stop"}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.delay_s)
        return self._result(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await asyncio.sleep(self.delay_s)
        return self._result(messages)


class DelayedPRM(ProcessRewardModel):
    """p = 0.5 for every question after ``delay_s``; steps score 0.8."""

    delay_s: float

    def _estimates(self, solutions: Sequence[Sequence[str]]) -> PRMScores:
        return [
            [SuccessEstimate.point(0.8)] * len(steps) if steps else [SuccessEstimate.point(0.5)]
            for steps in solutions
        ]

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        time.sleep(self.delay_s)
        return self._estimates(solutions)

    async def _ascore(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        await asyncio.sleep(self.delay_s)
        return self._estimates(solutions)


def build_runnable(delay_s: float, prm_delay_s: float) -> AdaptiveReasoningRunnable:
    """IAS at C = 0.9 on p = 0.5: four samples a request, majority vote."""
    return AdaptiveReasoningRunnable(
        model=DelayedChatModel(delay_s=delay_s),
        prm=DelayedPRM(delay_s=prm_delay_s),
        strategy=AdaptiveBestOfN(selection="majority_vote"),
        target_confidence=0.9,
        max_samples=8,
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/serve-load"))
    parser.add_argument("--delay-s", type=float, default=0.2, help="seconds per policy call")
    parser.add_argument("--prm-delay-s", type=float, default=0.02, help="seconds per PRM call")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--overhead-requests", type=int, default=40, help="direct/served pairs")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: be the server
    parser.add_argument("--max-concurrency", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _server(args: argparse.Namespace) -> Iterator[str]:
    """This script as a server process on a free loopback port; yields its base URL."""
    port = _free_port()
    command = [
        sys.executable, __file__, "--serve", str(port), "--delay-s", str(args.delay_s),
        "--prm-delay-s", str(args.prm_delay_s), "--max-concurrency", str(max(args.clients)),
    ]  # fmt: skip
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _summary(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_s": statistics.median(ordered),
        "p95_s": p95,
        "mean_s": statistics.fmean(ordered),
    }


async def _measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    import openai

    runnable = build_runnable(args.delay_s, args.prm_delay_s)
    messages = [HumanMessage(QUESTION)]
    body = [{"role": "user", "content": QUESTION}]
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)

    async def served() -> float:
        started = time.perf_counter()
        completion = await client.chat.completions.create(model="adaptive", messages=body)
        elapsed = time.perf_counter() - started
        assert completion.model_extra["adaptive"]["samples_used"] == 4
        return elapsed

    async def direct() -> float:
        started = time.perf_counter()
        result = await runnable.ainvoke(messages)
        elapsed = time.perf_counter() - started
        assert result.budget.samples_used == 4
        return elapsed

    for _ in range(3):  # warm both paths (imports, connections)
        await direct()
        await served()
    direct_s, served_s = [], []
    for _ in range(args.overhead_requests):
        direct_s.append(await direct())
        served_s.append(await served())
    overhead = {"direct": _summary(direct_s), "served": _summary(served_s)}
    for stat in ("p50_s", "mean_s"):
        extra = overhead["served"][stat] / overhead["direct"][stat] - 1
        overhead[f"extra_latency_{stat[:-2]}_pct"] = 100 * extra
    paired = statistics.median(s - d for s, d in zip(served_s, direct_s, strict=True))
    overhead["median_paired_extra_ms"] = 1000 * paired

    async def one_client(latencies: list[float]) -> int:
        errors = 0
        for _ in range(args.requests):
            try:
                latencies.append(await served())
            except openai.APIError:
                errors += 1
        return errors

    load = []
    for clients in args.clients:
        latencies: list[float] = []
        started = time.perf_counter()
        errors = sum(await asyncio.gather(*(one_client(latencies) for _ in range(clients))))
        wall = time.perf_counter() - started
        load.append(
            {
                "clients": clients,
                "requests": clients * args.requests,
                "errors": errors,
                "wall_s": wall,
                "throughput_rps": len(latencies) / wall,
                **_summary(latencies),
            }
        )
    await client.close()
    return {"overhead_1_client": overhead, "load": load}


def _load() -> float | None:
    """The 1-minute load average: how busy the shared machine was (2 cores: 2.0 is full)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _machine() -> dict[str, Any]:
    versions = {}
    for package in ("langchain-core", "fastapi", "uvicorn", "openai", "httpx"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "versions": versions,
    }


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load = report["load"]
    clients = [row["clients"] for row in load]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 4))
    left.plot(clients, [r["throughput_rps"] for r in load], marker="o")
    left.set(xlabel="concurrent clients", ylabel="requests / s", title="throughput", xscale="log")
    middle.plot(clients, [1000 * r["p50_s"] for r in load], marker="o", label="p50")
    middle.plot(clients, [1000 * r["p95_s"] for r in load], marker="s", label="p95")
    middle.set(xlabel="concurrent clients", ylabel="latency (ms)", title="latency", xscale="log")
    middle.legend()
    overhead = report["overhead_1_client"]
    names = ["direct ainvoke", "through the server"]
    right.bar(names, [1000 * overhead[k]["p50_s"] for k in ("direct", "served")])
    right.set(
        ylabel="p50 latency (ms)",
        title=f"one client: +{overhead['extra_latency_p50_pct']:.1f}% at p50",
    )
    fig.suptitle(
        f"langchain-adaptive serve, scripted policy ({report['config']['delay_s']} s a call)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = _parse_args(argv)
    if args.serve is not None:  # the server process
        from langchain_adaptive.integrations.http.openai_server import serve

        serve(
            build_runnable(args.delay_s, args.prm_delay_s),
            port=args.serve,
            log_level="warning",
            max_concurrency=args.max_concurrency,
        )
        return None
    load_before = _load()
    with _server(args) as url:
        measured = asyncio.run(_measure(args, url))
    report = {
        "benchmark": "serve_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "config": {
            "delay_s": args.delay_s,
            "prm_delay_s": args.prm_delay_s,
            "samples_per_request": 4,
            "clients": args.clients,
            "requests_per_client": args.requests,
            "overhead_requests": args.overhead_requests,
            "max_concurrency": max(args.clients),
        },
        "machine": {**_machine(), "load_average_1m": {"before": load_before, "after": _load()}},
        **measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, args.out / "serve_load.png")
    overhead = report["overhead_1_client"]
    print(
        f"one client: direct p50 {1000 * overhead['direct']['p50_s']:.1f} ms, served p50 "
        f"{1000 * overhead['served']['p50_s']:.1f} ms (+{overhead['extra_latency_p50_pct']:.1f}%)"
    )
    for row in report["load"]:
        print(
            f"{row['clients']:>3} client(s): {row['throughput_rps']:.1f} req/s, p50 "
            f"{1000 * row['p50_s']:.1f} ms, p95 {1000 * row['p95_s']:.1f} ms, "
            f"{row['errors']} error(s)"
        )
    return report


if __name__ == "__main__":
    main()
