"""Throughput of AdaptiveReasoningRunnable.abatch on a remote policy vs an in-process one.

The policy is the bundled SmolLM2-135M-Instruct GGUF both times:

- remote: ``python -m llama_cpp.server`` (started here as a subprocess on a free
  loopback port) behind ``langchain_openai.ChatOpenAI``, one HTTP request per sample;
- in-process: :class:`~langchain_adaptive.integrations.llamacpp.ChatLlamaCpp`
  (one ``generate(n=...)`` call per question, the prompt evaluated once).

For each side and each ``--concurrency`` (``abatch``'s ``max_concurrency``: how
many questions run at once) it times ``abatch`` over the same ``--questions``
arithmetic questions with ``strategy="majority_vote"`` and a fixed
``--samples`` per question, and reports questions/s, generated tokens/s (from
each result's exact ``usage_metadata`` counts) and the speed-up over concurrency 1.
The server runs alone first and is stopped before the in-process side loads, so
the two never share the CPU. Both use ``--n-threads`` llama.cpp threads.

Run::

    pip install "langchain-adaptive[llamacpp,remote,bench]"
    python examples/benchmarks/remote_policy_throughput.py \
        --questions 32 --samples 2 --max-tokens 64 --concurrency 1 2 4 \
        --out bench-results/remote_policy_throughput.json
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
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel

from langchain_adaptive.evaluation.datasets import ARITHMETIC_LEVELS, arithmetic_suite
from langchain_adaptive.integrations.llamacpp import (
    ChatLlamaCpp,
    bundled_model_path,
    default_threads,
)
from langchain_adaptive.runnable import AdaptiveReasoningRunnable

ALIAS = "smollm2"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32, help="questions per abatch")
    parser.add_argument("--samples", type=int, default=2, help="samples per question")
    parser.add_argument("--max-tokens", type=int, default=64, help="max tokens per sample")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, default=None, help="default: usable cores, ≤8")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question suite")
    parser.add_argument(
        "--base-url",
        help="an OpenAI-compatible server already serving the bundled GGUF as model "
        f"{ALIAS!r} (e.g. http://127.0.0.1:8000/v1); default: start llama_cpp.server here",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed first question on each side (for smoke tests)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results/remote_policy_throughput.json"),
        help="where to write the JSON results (the plot goes next to it, .png)",
    )
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def llama_server(model: Path, *, n_ctx: int, n_threads: int) -> Iterator[tuple[str, float]]:
    """Run llama-cpp-python's OpenAI server on a free port; yields (``/v1`` URL, start s)."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
    ]
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if process.poll() is not None or time.perf_counter() - start > 120:
                    log.seek(0)
                    sys.exit(f"llama_cpp.server did not start:\n{log.read()[-3000:]}")
                try:
                    if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            yield url, time.perf_counter() - start
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _questions(count: int, seed: int) -> list[str]:
    """``count`` arithmetic questions taken round-robin over the levels, easy to hard."""
    by_level: dict[str, list[str]] = {level: [] for level in ARITHMETIC_LEVELS}
    for problem in arithmetic_suite(-(-count // len(ARITHMETIC_LEVELS)), seed=seed):
        by_level[problem.level].append(problem.question)
    rounds = zip(*by_level.values(), strict=True)
    return [question for round_ in rounds for question in round_][:count]


async def _time_abatch(
    model: BaseChatModel, questions: list[str], args: argparse.Namespace, concurrency: int
) -> dict[str, Any]:
    """One timed ``abatch`` over every question at ``concurrency`` questions at once."""
    runnable = AdaptiveReasoningRunnable(
        model=model,
        strategy="majority_vote",
        max_samples=args.samples,
        max_tokens_per_sample=args.max_tokens,
    )
    start = time.perf_counter()
    results = await runnable.abatch(questions, config={"max_concurrency": concurrency})
    seconds = time.perf_counter() - start
    tokens = sum(r.budget.generated_tokens for r in results)
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "generated_tokens": tokens,
        "samples": sum(r.budget.samples_used for r in results),
        "tokens_estimated": any(r.budget.tokens_estimated for r in results),
        "answered": sum(r.answer is not None for r in results),
        "questions_per_s": len(results) / seconds,
        "generated_tokens_per_s": tokens / seconds,
    }


async def _side(
    model: BaseChatModel, questions: list[str], args: argparse.Namespace, levels: list[int]
) -> list[dict[str, Any]]:
    """A warm-up question, then one timed run per concurrency, all in one event loop.

    One loop, because ``ChatOpenAI``'s async client is bound to the loop it first ran in.
    """
    if args.warmup:
        await _time_abatch(model, questions[:1], args, 1)
    return [await _time_abatch(model, questions, args, c) for c in levels]


def _with_speedups(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = next((r for r in runs if r["concurrency"] == 1), runs[0])
    for run in runs:
        run["speedup_vs_concurrency_1"] = round(run["questions_per_s"] / base["questions_per_s"], 4)
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both sides, write the JSON file and the plot, print a table.

    Args:
        argv: Command-line arguments; ``None`` reads ``sys.argv``.

    Returns:
        The results written to ``--out``.
    """
    args = _parse_args(argv)
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        sys.exit('This benchmark needs the remote extra: pip install "langchain-adaptive[remote]"')
    threads = args.n_threads or default_threads()
    path = bundled_model_path()
    questions = _questions(args.questions, args.seed)
    concurrency = sorted(set(args.concurrency))

    server = (
        contextlib.nullcontext((args.base_url, 0.0))
        if args.base_url
        else llama_server(path, n_ctx=args.n_ctx, n_threads=threads)
    )
    with server as (url, server_start):
        # ChatOpenAI sends the cap as ``max_completion_tokens``, which llama_cpp.server
        # ignores; ``extra_body`` puts the ``max_tokens`` it reads into the request too.
        remote = ChatOpenAI(
            base_url=url,
            api_key="none",
            model=ALIAS,
            max_tokens=args.max_tokens,
            extra_body={"max_tokens": args.max_tokens},
            max_retries=0,
        )
        remote_runs = asyncio.run(_side(remote, questions, args, concurrency))

    start = time.perf_counter()
    local = ChatLlamaCpp(model=str(path), n_ctx=args.n_ctx, n_threads=threads)
    local.shared_llama  # noqa: B018 - loads the weights now, outside the timed runs
    local_load = time.perf_counter() - start
    local_runs = asyncio.run(_side(local, questions, args, concurrency))

    results: dict[str, Any] = {
        "model": path.name,
        "questions": len(questions),
        "samples_per_question": args.samples,
        "max_tokens": args.max_tokens,
        "n_ctx": args.n_ctx,
        "n_threads": threads,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "llama_cpp_python": importlib.metadata.version("llama-cpp-python"),
            "langchain_openai": importlib.metadata.version("langchain-openai"),
        },
        "remote_server": args.base_url or "llama_cpp.server, started here",
        "startup_seconds": {"remote_server": server_start, "in_process_load": local_load},
        "remote": _with_speedups(remote_runs),
        "in_process": _with_speedups(local_runs),
        "remote_over_in_process_questions_per_s": {
            str(r["concurrency"]): r["questions_per_s"] / loc["questions_per_s"]
            for r, loc in zip(remote_runs, local_runs, strict=True)
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    _plot(results, args.out.with_suffix(".png"))
    _print_table(results)
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    """Questions/s and tokens/s against concurrency, both sides (needs the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    for side, label, color in (
        ("remote", "llama_cpp.server + ChatOpenAI", "C0"),
        ("in_process", "ChatLlamaCpp (in-process)", "C1"),
    ):
        runs = results[side]
        x = [r["concurrency"] for r in runs]
        axes[0].plot(x, [r["questions_per_s"] for r in runs], "o-", color=color, label=label)
        axes[1].plot(x, [r["generated_tokens_per_s"] for r in runs], "o-", color=color)
    for ax, ylabel in zip(axes, ("questions / s", "generated tokens / s"), strict=True):
        ax.set_xlabel("abatch max_concurrency")
        ax.set_ylabel(ylabel)
        ax.set_xticks([r["concurrency"] for r in results["remote"]])
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{results['questions']} questions x {results['samples_per_question']} samples x "
        f"{results['max_tokens']} tokens, {results['model']}, {results['n_threads']} threads",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_table(results: dict[str, Any]) -> None:
    print(
        f"{results['model']}: {results['questions']} questions x "
        f"{results['samples_per_question']} samples x {results['max_tokens']} max tokens, "
        f"{results['n_threads']} threads"
    )
    print(f"{'side':<12}{'conc':>5}{'s':>9}{'q/s':>8}{'tok/s':>9}{'vs c=1':>8}")
    for side, name in (("remote", "remote"), ("in_process", "in-process")):
        for run in results[side]:
            print(
                f"{name:<12}{run['concurrency']:>5}{run['seconds']:>9.2f}"
                f"{run['questions_per_s']:>8.3f}{run['generated_tokens_per_s']:>9.1f}"
                f"{run['speedup_vs_concurrency_1']:>7.2f}x"
            )
    ratios = ", ".join(
        f"c={c}: {ratio:.2f}x"
        for c, ratio in results["remote_over_in_process_questions_per_s"].items()
    )
    print(f"remote / in-process questions/s: {ratios}")


if __name__ == "__main__":
    main()
