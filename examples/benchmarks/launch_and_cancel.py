"""Launch-and-cancel against rounds and fixed N: wall time and tokens, same questions, one run.

Three policies answer the same arithmetic questions on each backend:

* ``fixed-N``: majority vote over N samples drawn at once;
* ``rounds``: Adaptive-Consistency drawing one sample a round (``launch="rounds"``);
* ``eager``: the same rule with ``launch="eager"``: its N samples start at once, the
  rule reads them as they finish, and the rest are cancelled when it stops.

Backends: the in-process batched decoder (bundled SmolLM2 through ChatLlamaCpp,
``--llama-questions``), and a local OpenAI-compatible server with 4 parallel slots
on 127.0.0.1 started here, reached through ``langchain_openai.ChatOpenAI``
(``--server-questions``). The server is llama.cpp's ``llama-server`` when
``--llama-server PATH`` is given, else the scripted server in ``_openai_slots.py``
(one word every ``--token-delay`` seconds per slot); the JSON says which.

Tokens are everything generated: kept samples' plus cancelled ones'
(``budget.cancelled_tokens``). Per backend the JSON holds per-question rows,
means, and paired 95% bootstrap intervals (questions resampled) of the ratios
the issue targets: eager's wall time over fixed-N's (target <= 1.3) and eager's
tokens over rounds' (target <= 1.1).

    nice -n 10 python examples/benchmarks/launch_and_cancel.py \\
        --out bench-results/launch-and-cancel.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.evaluation.cli import interleave_levels
from langchain_adaptive.evaluation.datasets import Problem, arithmetic_suite
from langchain_adaptive.strategies import AdaptiveConsistency, BestOfN

HERE = Path(__file__).parent
POLICIES = ("fixed-N", "rounds", "eager")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--llama-questions", type=int, default=6)
    parser.add_argument("--server-questions", type=int, default=16)
    parser.add_argument("--levels", default="add1,add2,sub2,mul1")
    parser.add_argument("--skip-first", type=int, default=40)
    parser.add_argument("--n", type=int, default=8, help="fixed N, and the adaptive cap")
    parser.add_argument("--threshold", type=float, default=0.95, help="Adaptive-Consistency's")
    parser.add_argument("--sample-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--n-gpu-layers", type=int, default=0, help="in-process: layers offloaded (-1: all)"
    )
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--token-delay", type=float, default=0.01, help="scripted server's")
    parser.add_argument("--llama-server", type=Path, default=None, help="llama-server binary")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench-results/launch-and-cancel.json"))
    return parser.parse_args(argv)


def _problems(count: int, args: argparse.Namespace) -> list[Problem]:
    levels = tuple(level for level in args.levels.split(",") if level)
    per_level = -(-count // len(levels))
    suite = arithmetic_suite(args.skip_first + per_level, seed=0, levels=levels)
    kept = [p for p in suite if int(p.id.rsplit("-", 1)[1]) >= args.skip_first]
    return interleave_levels(kept)[:count]


def _reasoner(chat: BaseChatModel, policy: str, args: argparse.Namespace) -> Any:
    rule = AdaptiveConsistency(threshold=args.threshold)
    strategy = BestOfN(n=args.n, selection="majority_vote") if policy == "fixed-N" else rule
    return AdaptiveReasoningRunnable(
        model=chat,
        strategy=strategy,
        max_samples=args.n,
        max_tokens_per_sample=args.sample_tokens,
        launch="eager" if policy == "eager" else "rounds",
    )


def _run(
    make_chat: Callable[[int], BaseChatModel],
    problems: list[Problem],
    args: argparse.Namespace,
    scripted_url: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every policy on every question, back to back; one row per (policy, question).

    ``make_chat(i)`` gives each policy its model for question ``i``. In-process that is a
    new ``ChatLlamaCpp`` seeded by the question (the loaded model is shared), so every
    policy draws the same seeds in the same order: batched calls give the same text, and
    one-at-a-time calls nearly always do (see docs/guides/launch-and-cancel.md). With the
    scripted server (``scripted_url``) its draw counters are reset before each policy, so
    the k-th request for a question gets the same draw under every policy. Either way the
    draws are paired (common random numbers): the policies differ only in which draws
    they take, in what order, and what they cancel. The scripted server's own count of
    the words it sent is kept beside ours.
    """
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in POLICIES}
    for index, problem in enumerate(problems):
        for policy in POLICIES:  # same question, every policy, back to back
            if scripted_url is not None:
                httpx.post(f"{scripted_url}/reset").raise_for_status()
            reasoner = _reasoner(make_chat(index), policy, args)
            start = time.perf_counter()
            result = reasoner.invoke({"question": problem.question, "gold": problem.gold})
            seconds = time.perf_counter() - start
            budget = result.budget
            row = {
                "id": problem.id,
                "seconds": seconds,
                "generated_tokens": budget.generated_tokens,
                "cancelled_tokens": budget.cancelled_tokens,
                "tokens": budget.generated_tokens + budget.cancelled_tokens,
                "samples": budget.samples_used,
                "cancelled_samples": budget.cancelled_samples,
                "correct": bool(result.correct),
                "stop_reason": result.stop_reason,
                "kept": [[c.answer, c.usage.output_tokens] for c in result.candidates],
            }
            if scripted_url is not None:
                row["server_tokens"] = _server_words(scripted_url)
            rows[policy].append(row)
        print(f"  question {index + 1}/{len(problems)}", flush=True)
    return rows


def _server_words(url: str) -> int:
    """The words the scripted server sent, once its cut-off requests have stopped."""
    seen = -1
    for _ in range(50):  # a disconnected request stops at its next word
        stats = httpx.get(f"{url}/stats").json()
        if (
            stats["generated"] == seen
            and stats["requests"] == stats["finished"] + stats["disconnected"]
        ):
            break
        seen = stats["generated"]
        time.sleep(0.02)
    return int(stats["generated"])


def _ratio_ci(
    top: list[float], bottom: list[float], replicates: int, seed: int
) -> tuple[float, list[float]]:
    """Ratio of means and its 95% paired bootstrap interval (questions resampled together)."""
    rng = random.Random(seed)
    pairs = list(zip(top, bottom, strict=True))
    boots = []
    for _ in range(replicates):
        sample = rng.choices(pairs, k=len(pairs))
        boots.append(sum(t for t, _ in sample) / max(1e-9, sum(b for _, b in sample)))
    boots.sort()
    ratio = sum(top) / max(1e-9, sum(bottom))
    return ratio, [boots[int(0.025 * replicates)], boots[int(0.975 * replicates) - 1]]


def _summary(rows: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    policies = {
        name: {
            "mean_seconds": statistics.fmean(r["seconds"] for r in got),
            "mean_tokens": statistics.fmean(r["tokens"] for r in got),
            "mean_cancelled_tokens": statistics.fmean(r["cancelled_tokens"] for r in got),
            "mean_samples": statistics.fmean(r["samples"] for r in got),
            "accuracy": statistics.fmean(float(r["correct"]) for r in got),
        }
        for name, got in rows.items()
    }
    for name, got in rows.items():
        if all("server_tokens" in r for r in got):
            policies[name]["mean_server_tokens"] = statistics.fmean(r["server_tokens"] for r in got)

    def column(name: str, key: str) -> list[float]:
        return [float(r[key]) for r in rows[name]]

    wall, wall_ci = _ratio_ci(
        column("eager", "seconds"), column("fixed-N", "seconds"), args.replicates, 1
    )
    tokens, tokens_ci = _ratio_ci(
        column("eager", "tokens"), column("rounds", "tokens"), args.replicates, 2
    )
    rounds_wall, rounds_wall_ci = _ratio_ci(
        column("rounds", "seconds"), column("fixed-N", "seconds"), args.replicates, 3
    )
    fixed_tokens, fixed_tokens_ci = _ratio_ci(
        column("fixed-N", "tokens"), column("rounds", "tokens"), args.replicates, 4
    )
    return {
        "policies": policies,
        "eager_over_fixed_wall": {"ratio": wall, "ci95": wall_ci, "target": 1.3},
        "eager_over_rounds_tokens": {"ratio": tokens, "ci95": tokens_ci, "target": 1.1},
        "rounds_over_fixed_wall": {"ratio": rounds_wall, "ci95": rounds_wall_ci},
        "fixed_over_rounds_tokens": {"ratio": fixed_tokens, "ci95": fixed_tokens_ci},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str, str]:
    port = _free_port()
    if args.llama_server is not None:
        from langchain_adaptive.integrations.llamacpp import bundled_model_path

        command = [str(args.llama_server), "-m", str(bundled_model_path()), "--parallel"]
        command += [str(args.slots), "--port", str(port), "-c", "4096", "-t", str(args.threads)]
        kind = f"llama-server ({args.slots} slots, bundled SmolLM2)"
        probe = "/health"
    else:
        command = [sys.executable, str(HERE / "_openai_slots.py"), "--port", str(port)]
        command += ["--slots", str(args.slots), "--token-delay", str(args.token_delay)]
        kind = f"scripted OpenAI-compatible server ({args.slots} slots, {args.token_delay}s/word)"
        probe = "/stats"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + probe, timeout=1.0).status_code == 200:
                return process, url, kind
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"{kind} did not start on {url}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Both backends, every policy on every question; JSON, PNG and a markdown table."""
    args = _parse_args(argv)
    started = time.perf_counter()
    load_start = os.getloadavg()
    backends: dict[str, Any] = {}
    if args.llama_questions:
        from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp

        def seeded(question: int) -> BaseChatModel:
            return ChatLlamaCpp(
                seed=args.seed * 1_000_003 + question,
                n_threads=args.threads,
                n_gpu_layers=args.n_gpu_layers,
                temperature=args.temperature,
            )

        print("in-process batched decoder (ChatLlamaCpp, bundled SmolLM2)", flush=True)
        rows = _run(seeded, _problems(args.llama_questions, args), args)
        backends["in-process"] = {
            "backend": "ChatLlamaCpp, bundled SmolLM2, batched decoder",
            "paired_draws": True,
            "rows": rows,
            "summary": _summary(rows, args),
        }
    if args.server_questions:
        from langchain_openai import ChatOpenAI

        process, url, kind = _start_server(args)
        print(kind, flush=True)
        try:

            def chat(question: int) -> BaseChatModel:
                return ChatOpenAI(
                    base_url=f"{url}/v1",
                    api_key="unused",  # type: ignore[arg-type]
                    model="scripted",
                    temperature=args.temperature,
                    stream_usage=True,
                    max_retries=0,
                )

            scripted = url if args.llama_server is None else None
            rows = _run(chat, _problems(args.server_questions, args), args, scripted)
        finally:
            process.terminate()
            process.wait(10)
        backends["server"] = {
            "backend": kind,
            "paired_draws": scripted is not None,
            "rows": rows,
            "summary": _summary(rows, args),
        }
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "command": "python examples/benchmarks/launch_and_cancel.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seconds": time.perf_counter() - started,
        "backends": backends,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(_markdown(results))
    _plot(results, args.out.with_suffix(".png"))
    print(_markdown(results))
    return results


def _markdown(results: dict[str, Any]) -> str:
    lines = []
    for name, entry in results["backends"].items():
        summary = entry["summary"]
        lines += [
            f"**{name}**: {entry['backend']}, {len(entry['rows']['eager'])} questions",
            "",
            "| policy | wall s / question | tokens / question | of which cancelled "
            "| samples kept | accuracy |",
            "|---|---|---|---|---|---|",
        ]
        for policy, row in summary["policies"].items():
            lines.append(
                f"| {policy} | {row['mean_seconds']:.2f} | {row['mean_tokens']:.0f} "
                f"| {row['mean_cancelled_tokens']:.0f} | {row['mean_samples']:.1f} "
                f"| {row['accuracy']:.2f} |"
            )
        for key, label in (
            ("eager_over_fixed_wall", "eager wall / fixed-N wall"),
            ("eager_over_rounds_tokens", "eager tokens / rounds tokens"),
            ("rounds_over_fixed_wall", "rounds wall / fixed-N wall"),
            ("fixed_over_rounds_tokens", "fixed-N tokens / rounds tokens"),
        ):
            item = summary[key]
            low, high = item["ci95"]
            target = f" (target <= {item['target']})" if "target" in item else ""
            lines.append(f"- {label}: {item['ratio']:.2f} [{low:.2f}, {high:.2f}]{target}")
        counted = {
            policy: (row["mean_tokens"], row["mean_server_tokens"])
            for policy, row in summary["policies"].items()
            if "mean_server_tokens" in row
        }
        if counted:
            lines.append(
                "- tokens a question, ours / the server's own count: "
                + ", ".join(
                    f"{p} {ours:.1f} / {theirs:.1f}" for p, (ours, theirs) in counted.items()
                )
            )
        if entry.get("paired_draws"):
            lines.append("- paired draws: every policy drew from the same draws of each question")
        lines.append("")
    return "\n".join(lines)


def _plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    backends = results["backends"]
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
    for ax, (name, entry) in zip(axes[0], backends.items(), strict=True):
        for policy, row in entry["summary"]["policies"].items():
            ax.scatter(row["mean_tokens"], row["mean_seconds"], s=60, label=policy)
            ax.annotate(policy, (row["mean_tokens"], row["mean_seconds"]), fontsize=8)
        ax.set_xlabel("generated tokens per question (cancelled included)")
        ax.set_ylabel("wall seconds per question")
        ax.set_title(f"{name}: {entry['backend']}", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
