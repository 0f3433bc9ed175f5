"""Time N samples of one prompt: our ChatLlamaCpp vs langchain-community's.

Both sides run the bundled SmolLM2-135M-Instruct GGUF with the same context
settings, sampling settings and ``max_tokens``, each on its own ``Llama`` object
loaded once before timing (load time is reported separately). In every repeat
both KV caches are cleared first, so each side evaluates the prompt once from
scratch:

- ours: one ``generate([messages], n=N)`` call (the prompt is evaluated once;
  the samples are drawn one after another, reusing its KV cache);
- community: ``N`` separate ``invoke`` calls of
  ``langchain_community.chat_models.ChatLlamaCpp``.

It also times creating ``--instances`` more model objects with the same
settings (ours share the loaded weights; the community class reloads them in its
validator). Generated tokens are counted the same way on both sides (the output text
re-tokenized with the model's tokenizer, since the community model reports no
usage); ours also reports its exact ``usage_metadata`` counts.

Run::

    pip install "langchain-adaptive[llamacpp]" langchain-community
    python examples/benchmarks/chat_model_vs_community.py \
        --samples 8 --max-tokens 64 --repeats 3 \
        --out bench-results/chat_model_vs_community.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, bundled_model_path

MESSAGES: list[BaseMessage] = [
    SystemMessage("You are a careful math tutor. Think step by step."),
    HumanMessage(
        "A train travels 180 km in 2 hours and then 120 km in 1.5 hours. "
        "What is its average speed for the whole trip, in km/h?"
    ),
]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8, help="samples per repeat (N)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max tokens per sample")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per side")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--top-k", type=int, default=40)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-batch", type=int, default=512)
    parser.add_argument("--n-threads", type=int, default=None, help="default: llama.cpp's")
    parser.add_argument(
        "--instances",
        type=int,
        default=4,
        help="also time creating this many more model objects with the same settings",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results/chat_model_vs_community.json"),
        help="where to write the JSON results",
    )
    return parser.parse_args(argv)


def _count(ours: ChatLlamaCpp, texts: list[str]) -> int:
    return sum(ours.get_num_tokens(text) for text in texts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the JSON file and print a table.

    Args:
        argv: Command-line arguments; ``None`` reads ``sys.argv``.

    Returns:
        The results written to ``--out``.
    """
    args = _parse_args(argv)
    try:
        from langchain_community.chat_models import ChatLlamaCpp as CommunityChatLlamaCpp
    except ImportError:
        sys.exit("This benchmark needs langchain-community: pip install langchain-community")

    path = bundled_model_path()
    sampling = {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "max_tokens": args.max_tokens,
        "repeat_penalty": 1.0,
    }
    context = {"n_ctx": args.n_ctx, "n_batch": args.n_batch, "n_threads": args.n_threads}

    start = time.perf_counter()
    ours = ChatLlamaCpp(model=str(path), seed=0, **context, **sampling)
    ours_llama = ours.shared_llama.llama  # loads the weights (lazily, once)
    ours_load = time.perf_counter() - start

    start = time.perf_counter()
    community = CommunityChatLlamaCpp(
        model_path=str(path), verbose=False, **context, **sampling
    )  # loads the weights in its validator; min_p keeps llama.cpp's default 0.05 as ours
    community_load = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(args.instances):
        ChatLlamaCpp(model=str(path), seed=0, **context, **sampling).shared_llama  # noqa: B018
    ours_instances = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.instances):
        CommunityChatLlamaCpp(model_path=str(path), verbose=False, **context, **sampling)
    community_instances = time.perf_counter() - start

    rows: dict[str, dict[str, list[float]]] = {
        "ours": {"seconds": [], "tokens": [], "usage_output_tokens": []},
        "community": {"seconds": [], "tokens": []},
    }
    for _ in range(args.repeats):
        with ours.shared_llama.lock:
            ours_llama.reset()  # cold prompt: evaluate it once in this repeat
        start = time.perf_counter()
        result = ours.generate([MESSAGES], n=args.samples)
        rows["ours"]["seconds"].append(time.perf_counter() - start)
        generations = result.generations[0]
        rows["ours"]["tokens"].append(_count(ours, [g.text for g in generations]))
        rows["ours"]["usage_output_tokens"].append(
            sum(g.message.usage_metadata["output_tokens"] for g in generations)
        )

        community.client.reset()
        start = time.perf_counter()
        texts = [community.invoke(MESSAGES).text for _ in range(args.samples)]
        rows["community"]["seconds"].append(time.perf_counter() - start)
        rows["community"]["tokens"].append(_count(ours, texts))

    summary: dict[str, Any] = {}
    for side, row in rows.items():
        row["tokens_per_s"] = [t / s for t, s in zip(row["tokens"], row["seconds"], strict=True)]
        summary[side] = {
            "median_seconds": statistics.median(row["seconds"]),
            "median_tokens_per_s": statistics.median(row["tokens_per_s"]),
            "seconds_per_sample": statistics.median(row["seconds"]) / args.samples,
        }
    results: dict[str, Any] = {
        "model": path.name,
        "samples": args.samples,
        "repeats": args.repeats,
        "sampling": sampling,
        "context": context,
        "prompt_tokens": ours.get_num_tokens_from_messages(MESSAGES),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "load_seconds": {"ours": ours_load, "community": community_load},
        "more_instances": args.instances,
        "more_instances_seconds": {"ours": ours_instances, "community": community_instances},
        "repeats_detail": rows,
        "summary": summary,
        "ratio_community_over_ours_seconds": (
            summary["community"]["median_seconds"] / summary["ours"]["median_seconds"]
        ),
        "ratio_ours_over_community_tokens_per_s": (
            summary["ours"]["median_tokens_per_s"] / summary["community"]["median_tokens_per_s"]
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    _plot(results, args.out.with_suffix(".png"))
    _print_table(results)
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    """Per-repeat wall time of both sides, side by side (needs matplotlib: the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    sides = ("ours", "community")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for x, side in enumerate(sides):
        seconds = results["repeats_detail"][side]["seconds"]
        ax.scatter([x] * len(seconds), seconds, color="C0" if side == "ours" else "C1")
        ax.hlines(results["summary"][side]["median_seconds"], x - 0.2, x + 0.2, color="k")
    ax.set_xticks(
        range(len(sides)), ["ChatLlamaCpp (ours)\none call, n samples", "community\nn invokes"]
    )
    ax.set_ylabel("wall time (s)")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"{results['samples']} samples x {results['sampling']['max_tokens']} tokens, "
        f"{results['model']}\ncommunity/ours = {results['ratio_community_over_ours_seconds']:.2f}x",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_table(results: dict[str, Any]) -> None:
    n = results["samples"]
    print(
        f"{results['model']}, {n} samples x {results['sampling']['max_tokens']} max tokens, "
        f"prompt {results['prompt_tokens']} tokens, {results['repeats']} repeats"
    )
    print(f"{'side':<11}{'load s':>8}{'median s':>10}{'s/sample':>10}{'tok/s':>8}  per-repeat s")
    for side in ("ours", "community"):
        row, summary = results["repeats_detail"][side], results["summary"][side]
        print(
            f"{side:<11}{results['load_seconds'][side]:>8.2f}{summary['median_seconds']:>10.2f}"
            f"{summary['seconds_per_sample']:>10.3f}{summary['median_tokens_per_s']:>8.1f}  "
            + ", ".join(f"{s:.2f}" for s in row["seconds"])
        )
    more = results["more_instances_seconds"]
    print(
        f"{results['more_instances']} more instances: ours {more['ours']:.3f} s (shared "
        f"weights), community {more['community']:.2f} s (reloads in its validator)"
    )
    print(
        f"community/ours time: {results['ratio_community_over_ours_seconds']:.2f}x; "
        f"ours/community tok/s: {results['ratio_ours_over_community_tokens_per_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
