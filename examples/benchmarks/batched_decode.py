"""Time N samples of one prompt: decoded together in one llama.cpp batch vs one after another.

All sides are ``ChatLlamaCpp`` on the bundled SmolLM2-135M-Instruct GGUF with
the same weights (one shared ``Llama``), context settings, sampling settings and
thread count: ``batched_samples=False`` (the samples drawn sequentially, reusing
the prompt's KV cache), ``batched_samples=True`` (the default: every live sample
decoded in one ``llama_decode`` per token step, one KV stream per sample), and
the same with ``batched_kv_layout="shared"`` (one cache holding the prompt once).
Each timed call is one ``generate([messages], n=N)``.

The decode ceiling. Beside the end-to-end timings, the script times raw
``llama_decode`` calls on the same weights: one step of N rows (one token of each
of N sequences) against N one-row steps. Their ratio is the most any batched
sampler can gain on this machine's matrix kernels, before sampling and text
handling; it is reported per layout so the end-to-end ratios can be read against it.

Each sample is asked for ``--max-tokens`` tokens (64) with EOS left on: the
prompt asks for a story of at least 500 words, which keeps SmolLM2 writing, and
the JSON records every sample's real token count and how many stopped early.
Throughput is generated tokens (``usage_metadata``) per second of wall time.

Every repeat times each side at every N, the side that goes first rotating
between repeats, after one untimed warm-up per side and N (which evaluates the
prompt). At N = 1 every side draws one sample sequentially (a baseline). The two
batched sides share the model's one batched context, which llama.cpp rebuilds
whenever the KV layout changes (on the 2-core CI machine under load, a call of 4
samples took 15 s right after the other layout's call against 2 s in a row), so
in every repeat a batched side first makes one untimed call at each N, the
largest first: its timed calls then find the context that a user of that layout
keeps between calls. (Until this was fixed the sides alternated at every N and
each timed batched call rebuilt the context.)

GPU offload. ``--n-gpu-layers -1`` offloads every layer and ``--model`` takes
another GGUF (a path, a folder or a cached repo id). A llama-cpp-python wheel
built without a GPU backend runs such a model on the CPU without a word, so the
JSON's ``offload`` block records ``llama_supports_gpu_offload()`` and the device
llama.cpp assigned each layer to (read from its load log), and
``--require-offload`` stops with an error instead of measuring the CPU.
``examples/benchmarks/gpu_suite.sh`` runs this script that way.

Run::

    pip install "langchain-adaptive[llamacpp,bench]"
    python examples/benchmarks/batched_decode.py \
        --samples 1,4,8,16 --max-tokens 64 --repeats 3 \
        --out bench-results/batched_decode.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

import llama_cpp
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, resolve_model_path

MESSAGES: list[BaseMessage] = [
    HumanMessage("Write a long story about a dragon and a knight. Use at least 500 words.")
]
SIDES = ("sequential", "batched", "batched_shared")
"""Sequential; batched with one KV stream per sample (the default, exact); batched with
one cache sharing the prompt (``batched_kv_layout="shared"``)."""
BATCHED = SIDES[1:]
_LAYER_LINE = re.compile(r"layer\s+\d+ assigned to device (\S+?),")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--samples", default="1,4,8,16", help="comma-separated sample counts N per call"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="GGUF file, folder or cached Hugging Face repo id (default: the bundled SmolLM2)",
    )
    parser.add_argument(
        "--model-file", default=None, help="file name or glob inside a --model folder or repo"
    )
    parser.add_argument(
        "--n-gpu-layers",
        type=int,
        default=0,
        help="layers offloaded to a GPU on every side (-1: all; default 0, the CPU)",
    )
    parser.add_argument(
        "--require-offload",
        action="store_true",
        help="exit with an error when --n-gpu-layers asks for a GPU that this llama.cpp "
        "build cannot use, instead of measuring the CPU",
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
    path = resolve_model_path(args.model, filename=args.model_file)
    supported = bool(llama_cpp.llama_supports_gpu_offload())
    if args.n_gpu_layers != 0 and not supported:
        message = (
            f"--n-gpu-layers {args.n_gpu_layers} asks for a GPU, but this llama-cpp-python "
            "build cannot offload (llama_supports_gpu_offload() is False: no GPU backend, or "
            "no GPU visible)"
        )
        if args.require_offload:
            raise SystemExit(f"error: {message}.")
        print(f"warning: {message}: measuring the CPU; the JSON says so.")
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
            batched_samples=side != "sequential",
            batched_n_ctx=args.batched_n_ctx,
            batched_kv_layout="shared" if side == "batched_shared" else "per_sequence",
            n_gpu_layers=args.n_gpu_layers,
            **context,
            **sampling,
        )
        for side in SIDES
    }
    offload = _offload(args.n_gpu_layers, supported, _load_log(path, args.n_gpu_layers, context))
    if len({id(model.shared_llama) for model in models.values()}) != 1:
        raise RuntimeError("every side must run on the one model whose load log was read")
    load_average_start = os.getloadavg()

    rows: dict[str, dict[str, dict[str, list[float]]]] = {
        side: {str(n): {"seconds": [], "tokens": [], "stopped_early": []} for n in counts}
        for side in SIDES
    }
    for side in SIDES:  # warm-up: evaluates the prompt, sizes the batched context
        for n in counts:
            models[side].generate([MESSAGES], n=n)
    for repeat in range(args.repeats):
        shift = repeat % len(SIDES)
        for side in SIDES[shift:] + SIDES[:shift]:
            if side in BATCHED:  # untimed: this layout's context, sized for the largest N
                for n in sorted(counts, reverse=True):  # and warm at every N (GPU graphs)
                    models[side].generate([MESSAGES], n=n)
            for n in counts:
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
        for side in BATCHED:
            entry[f"ratio_{side}_over_sequential_tokens_per_s"] = (
                entry[side]["median_tokens_per_s"] / entry["sequential"]["median_tokens_per_s"]
            )
            entry[f"{side}_batches_per_call"] = _batches_per_call(models[side], n)
        summary[str(n)] = entry
    ceiling = _decode_ceiling(models["batched"], counts, args.repeats)

    results: dict[str, Any] = {
        "model": path.name,
        "model_path": str(path),
        "model_bytes": path.stat().st_size,
        "offload": offload,
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
        "decode_ceiling": ceiling,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    _plot(results, args.out.with_suffix(".png"))
    _print_table(results)
    return results


def _load_log(path: Path, n_gpu_layers: int, context: dict[str, Any]) -> list[str]:
    """Load the shared model verbosely and return what llama.cpp said (its layer placement).

    Every side then gets this same loaded model (the cache key leaves ``verbose``
    out); llama.cpp's logging is turned back down afterwards.
    """
    said = io.StringIO()
    loader = ChatLlamaCpp(model=str(path), n_gpu_layers=n_gpu_layers, verbose=True, **context)
    with contextlib.redirect_stderr(said):
        shared = loader.shared_llama
    shared.llama.verbose = False  # no per-call prints from llama_cpp.Llama
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama_cpp's quiet level
    return said.getvalue().splitlines()


def _offload(requested: int, supported: bool, log: list[str]) -> dict[str, Any]:
    """Where the layers went: the request, the build's support and llama.cpp's own log.

    ``device`` is ``"gpu"`` only when llama.cpp assigned every layer to a device
    other than the CPU; ``"unknown"`` when its log named no layer (a changed
    log format), so a reader never takes a CPU run for a GPU one.
    """
    devices: dict[str, int] = {}
    for line in log:
        match = _LAYER_LINE.search(line)
        if match:
            devices[match.group(1)] = devices.get(match.group(1), 0) + 1
    on_cpu = sum(count for name, count in devices.items() if name.upper().startswith("CPU"))
    on_gpu = sum(devices.values()) - on_cpu
    if not devices:
        device = "unknown"
    else:
        device = "gpu" if on_cpu == 0 else "cpu" if on_gpu == 0 else "mixed"
    return {
        "n_gpu_layers": requested,
        "llama_supports_gpu_offload": supported,
        "layer_devices": devices,
        "layers_on_gpu": on_gpu,
        "device": device,
        "llama_cpp_version": llama_cpp.__version__,
    }


def _batches_per_call(model: ChatLlamaCpp, n: int) -> int:
    """How many llama.cpp batches one call of n samples takes (more when they do not fit)."""
    if n < 2:
        return 0
    from langchain_adaptive.integrations.llamacpp import BatchedSampler

    sampler = BatchedSampler.for_model(model.shared_llama)
    prompt = model.get_num_tokens_from_messages(MESSAGES)
    per_call = sampler.capacity(
        prompt, model.max_tokens, model.batched_n_ctx, model.batched_kv_layout
    )
    return -(-n // per_call) if per_call >= 2 else 0


def _decode_ceiling(model: ChatLlamaCpp, counts: list[int], repeats: int) -> dict[str, Any]:
    """Raw ``llama_decode``: one step of N rows against N one-row steps, per KV layout.

    Each layout gets its own context on the model's weights, sized for the largest
    N, with the generation thread count; a 32-token prefix is evaluated on sequence
    0 and copied to the others, then 16 steps are timed per N and repeat (every row
    asks for logits, as sampling does). The median step time gives the ratio
    ``N * t(1) / t(N)``.
    """
    shared = model.shared_llama
    largest = max(counts)
    steps, prefix = 16, 32
    out: dict[str, Any] = {"steps": steps, "prefix_tokens": prefix}
    with shared.lock:
        llama = shared.llama
        for layout in ("per_sequence", "shared"):
            params = type(llama.context_params).from_buffer_copy(llama.context_params)
            params.n_seq_max = largest
            params.kv_unified = layout == "shared"
            window = 256 * -(-(prefix + steps * repeats + 1) // 256)
            params.n_ctx = (
                window * largest
                if layout == "per_sequence"
                else 256 * -(-(prefix + largest * (steps * repeats + 1)) // 256)
            )
            params.n_batch = params.n_ubatch = max(params.n_batch, largest)
            params.n_threads_batch = params.n_threads
            ctx = llama_cpp.llama_init_from_model(llama.model, params)
            batch = llama_cpp.llama_batch_init(max(prefix, largest), 0, 1)
            try:
                step_ms: dict[str, float] = {}
                for n in counts:
                    memory = llama_cpp.llama_get_memory(ctx)
                    llama_cpp.llama_memory_clear(memory, True)
                    _fill(batch, [(100 + i, i, 0) for i in range(prefix)], logits=False)
                    llama_cpp.llama_decode(ctx, batch)
                    for seq in range(1, n):
                        llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)
                    times = []
                    for step in range(steps * repeats):
                        _fill(
                            batch, [(200 + step, prefix + step, s) for s in range(n)], logits=True
                        )
                        start = time.perf_counter()
                        if llama_cpp.llama_decode(ctx, batch) != 0:
                            raise RuntimeError(f"llama_decode failed at N={n} ({layout})")
                        times.append(time.perf_counter() - start)
                    step_ms[str(n)] = 1000 * statistics.median(times)
            finally:
                llama_cpp.llama_batch_free(batch)
                llama_cpp.llama_free(ctx)
            out[layout] = {
                "median_step_ms": step_ms,
                "ratio_n_single_steps_over_one_batched_step": {
                    str(n): n * step_ms[str(counts[0])] / step_ms[str(n)] / counts[0]
                    for n in counts
                },
            }
    return out


def _fill(batch: Any, entries: list[tuple[int, int, int]], *, logits: bool) -> None:
    for i, (token, position, seq) in enumerate(entries):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits
    batch.n_tokens = len(entries)


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
    for color, side in zip(("C1", "C0", "C2"), SIDES, strict=True):
        for n in counts:
            per_repeat = results["repeats_detail"][side][str(n)]["tokens_per_s"]
            ax.scatter([n] * len(per_repeat), per_repeat, color=color, s=12, alpha=0.5)
        medians = [results["summary"][str(n)][side]["median_tokens_per_s"] for n in counts]
        ax.plot(counts, medians, marker="o", color=color, label=side)
    for side in BATCHED:
        for n in counts:
            ratio = results["summary"][str(n)][f"ratio_{side}_over_sequential_tokens_per_s"]
            top = results["summary"][str(n)][side]["median_tokens_per_s"]
            ax.annotate(f"{ratio:.2f}x", (n, top), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8)  # fmt: skip
    ax.set_xticks(counts)
    ax.set_xlabel("samples per call (N)")
    ax.set_ylabel("generated tokens / s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    load = results["machine"]["load_average_start"][0]
    ax.set_title(
        f"{results['model']} on the {results['offload']['device'].upper()}, "
        f"{results['sampling']['max_tokens']} tokens per sample, "
        f"{results['context']['n_threads']} threads\n"
        f"{results['machine']['cpus']} CPUs, load average {load:.2f} at start",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_table(results: dict[str, Any]) -> None:
    machine = results["machine"]
    offload = results["offload"]
    print(
        f"{results['model']} on the {offload['device'].upper()} (n_gpu_layers "
        f"{offload['n_gpu_layers']}, layers {offload['layer_devices']}), "
        f"{results['sampling']['max_tokens']} max tokens per sample, "
        f"prompt {results['prompt_tokens']} tokens, {results['repeats']} repeats, "
        f"{results['context']['n_threads']} threads, load average "
        f"{machine['load_average_start'][0]:.2f} -> {machine['load_average_end'][0]:.2f}"
    )
    ceiling = results["decode_ceiling"]
    print(
        f"{'N':>3}{'sequential':>12}{'per-seq':>9}{'ratio':>7}{'shared':>8}{'ratio':>7}"
        f"{'ceiling per-seq':>17}{'ceiling shared':>16}   (tok/s; ceiling: raw llama_decode)"
    )
    for n in results["samples"]:
        entry = results["summary"][str(n)]
        print(
            f"{n:>3}{entry['sequential']['median_tokens_per_s']:>12.1f}"
            f"{entry['batched']['median_tokens_per_s']:>9.1f}"
            f"{entry['ratio_batched_over_sequential_tokens_per_s']:>7.2f}"
            f"{entry['batched_shared']['median_tokens_per_s']:>8.1f}"
            f"{entry['ratio_batched_shared_over_sequential_tokens_per_s']:>7.2f}"
            + "".join(
                f"{ceiling[layout]['ratio_n_single_steps_over_one_batched_step'][str(n)]:>{w}.2f}"
                for layout, w in (("per_sequence", 17), ("shared", 16))
            )
        )


if __name__ == "__main__":
    main()
