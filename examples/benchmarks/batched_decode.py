"""Time N samples of one prompt: decoded together in one llama.cpp batch vs one after another.

Both sides are ``ChatLlamaCpp`` on the bundled SmolLM2-135M-Instruct GGUF with
the same weights (one shared ``Llama``), context settings, sampling settings and
thread count; one has ``batched_samples=True`` (the default: every live sample
decoded in one ``llama_decode`` per token step), the other ``False`` (the
samples drawn sequentially, reusing the prompt's KV cache). Each timed call is
one ``generate([messages], n=N)``.

Each sample is asked for ``--max-tokens`` tokens (64) with EOS left on: the
prompt asks for a story of at least 500 words, which keeps SmolLM2 writing, and
the JSON records every sample's real token count and how many stopped early.
Throughput is generated tokens (``usage_metadata``) per second of wall time.

Sides and sample counts are interleaved: every repeat times each N on both
sides, the side that goes first alternating between repeats, after one untimed
warm-up per side and N (which evaluates the prompt and sizes the batched
context). At N = 1 both sides draw one sample sequentially (a baseline).

Run::

    pip install "langchain-adaptive[llamacpp,bench]"
    python examples/benchmarks/batched_decode.py \
        --samples 1,4,8,16 --max-tokens 64 --repeats 3 \
        --out bench-results/batched_decode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, bundled_model_path

MESSAGES: list[BaseMessage] = [
    HumanMessage("Write a long story about a dragon and a knight. Use at least 500 words.")
]
SIDES = ("sequential", "batched")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--samples", default="1,4,8,16", help="comma-separated sample counts N per call"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="max tokens per sample")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per side and N")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--top-k", type=int, default=40)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument(
        "--batched-n-ctx",
        type=int,
        default=None,
        help="KV cells for one batch of samples (default: n_ctx, the library's default)",
    )
    parser.add_argument(
        "--n-threads",
        type=int,
        default=os.cpu_count(),
        help="generation threads on both sides (default: all cores; llama.cpp's own "
        "default of half the cores would give the batched side, which decodes with "
        "the batch thread count, more threads than the sequential one)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results/batched_decode.json"),
        help="where to write the JSON results (the plot goes next to it as .png)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the JSON file and the plot, and print a table.

    Args:
        argv: Command-line arguments; ``None`` reads ``sys.argv``.

    Returns:
        The results written to ``--out``.
    """
    args = _parse_args(argv)
    counts = [int(n) for n in args.samples.split(",")]
    path = bundled_model_path()
    sampling = {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "max_tokens": args.max_tokens,
    }
    context = {"n_ctx": args.n_ctx, "n_threads": args.n_threads}
    models = {
        side: ChatLlamaCpp(
            model=str(path),
            seed=0,
            batched_samples=side == "batched",
            batched_n_ctx=args.batched_n_ctx,
            **context,
            **sampling,
        )
        for side in SIDES
    }
    load_average_start = os.getloadavg()

    rows: dict[str, dict[str, dict[str, list[float]]]] = {
        side: {str(n): {"seconds": [], "tokens": [], "stopped_early": []} for n in counts}
        for side in SIDES
    }
    for n in counts:  # warm-up: evaluates the prompt, creates and sizes the batched context
        for side in SIDES:
            models[side].generate([MESSAGES], n=n)
    for repeat in range(args.repeats):
        for n in counts:
            order = SIDES if repeat % 2 == 0 else SIDES[::-1]
            for side in order:
                start = time.perf_counter()
                result = models[side].generate([MESSAGES], n=n)
                seconds = time.perf_counter() - start
                messages = [g.message for g in result.generations[0]]
                row = rows[side][str(n)]
                row["seconds"].append(seconds)
                row["tokens"].append(sum(m.usage_metadata["output_tokens"] for m in messages))
                row["stopped_early"].append(
                    sum(m.response_metadata["finish_reason"] == "stop" for m in messages)
                )

    summary: dict[str, dict[str, Any]] = {}
    for n in counts:
        entry: dict[str, Any] = {}
        for side in SIDES:
            row = rows[side][str(n)]
            row["tokens_per_s"] = [
                t / s for t, s in zip(row["tokens"], row["seconds"], strict=True)
            ]
            entry[side] = {
                "median_seconds": statistics.median(row["seconds"]),
                "median_tokens_per_s": statistics.median(row["tokens_per_s"]),
            }
        entry["ratio_batched_over_sequential_tokens_per_s"] = (
            entry["batched"]["median_tokens_per_s"] / entry["sequential"]["median_tokens_per_s"]
        )
        entry["batches_per_call"] = _batches_per_call(models["batched"], n)
        summary[str(n)] = entry

    results: dict[str, Any] = {
        "model": path.name,
        "samples": counts,
        "repeats": args.repeats,
        "sampling": sampling,
        "context": {**context, "batched_n_ctx": args.batched_n_ctx},
        "prompt_tokens": models["batched"].get_num_tokens_from_messages(MESSAGES),
        "eos": "left on; the prompt keeps the model writing, stopped_early counts exceptions",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_start": load_average_start,
            "load_average_end": os.getloadavg(),
        },
        "repeats_detail": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    _plot(results, args.out.with_suffix(".png"))
    _print_table(results)
    return results


def _batches_per_call(model: ChatLlamaCpp, n: int) -> int:
    """How many llama.cpp batches one call of n samples takes (more when they do not fit)."""
    if n < 2:
        return 0
    from langchain_adaptive.integrations.llamacpp.batched import BatchedSampler

    sampler = BatchedSampler.for_model(model.shared_llama)
    prompt = model.get_num_tokens_from_messages(MESSAGES)
    per_call = sampler.capacity(prompt, model.max_tokens, model.batched_n_ctx)
    return -(-n // per_call) if per_call >= 2 else 0


def _plot(results: dict[str, Any], path: Path) -> None:
    """Tokens per second against N for both sides (needs matplotlib: the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    counts = results["samples"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for color, side in zip(("C1", "C0"), SIDES, strict=True):
        for n in counts:
            per_repeat = results["repeats_detail"][side][str(n)]["tokens_per_s"]
            ax.scatter([n] * len(per_repeat), per_repeat, color=color, s=12, alpha=0.5)
        medians = [results["summary"][str(n)][side]["median_tokens_per_s"] for n in counts]
        ax.plot(counts, medians, marker="o", color=color, label=side)
    for n in counts:
        ratio = results["summary"][str(n)]["ratio_batched_over_sequential_tokens_per_s"]
        top = results["summary"][str(n)]["batched"]["median_tokens_per_s"]
        ax.annotate(f"{ratio:.2f}x", (n, top), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)  # fmt: skip
    ax.set_xticks(counts)
    ax.set_xlabel("samples per call (N)")
    ax.set_ylabel("generated tokens / s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    load = results["machine"]["load_average_start"][0]
    ax.set_title(
        f"{results['model']}, {results['sampling']['max_tokens']} tokens per sample, "
        f"{results['context']['n_threads']} threads\n"
        f"{results['machine']['cpus']} CPUs, load average {load:.2f} at start",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_table(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print(
        f"{results['model']}, {results['sampling']['max_tokens']} max tokens per sample, "
        f"prompt {results['prompt_tokens']} tokens, {results['repeats']} repeats, "
        f"{results['context']['n_threads']} threads, load average "
        f"{machine['load_average_start'][0]:.2f} -> {machine['load_average_end'][0]:.2f}"
    )
    print(f"{'N':>3}{'sequential tok/s':>18}{'batched tok/s':>15}{'ratio':>7}{'batches':>9}")
    for n in results["samples"]:
        entry = results["summary"][str(n)]
        print(
            f"{n:>3}{entry['sequential']['median_tokens_per_s']:>18.1f}"
            f"{entry['batched']['median_tokens_per_s']:>15.1f}"
            f"{entry['ratio_batched_over_sequential_tokens_per_s']:>7.2f}"
            f"{entry['batches_per_call']:>9}"
        )


if __name__ == "__main__":
    main()
