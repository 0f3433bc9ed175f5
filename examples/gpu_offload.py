"""On device with GPU offload: every layer on the GPU when llama.cpp can, else the CPU.

``n_gpu_layers=-1`` offloads the whole model. A llama-cpp-python wheel built
without a GPU backend (the default ``pip install`` builds for the CPU) cannot
offload, so this script checks first, says so, and falls back to the CPU
instead of silently running there.

    # a CUDA build of llama-cpp-python (see its README), then:
    CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python
    python examples/gpu_offload.py "What is 7 + 8?"
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import llama_cpp

from langchain_adaptive.integrations.llamacpp import default_reasoner


def gpu_layers(requested: int) -> int:
    """``requested`` when this llama.cpp build can offload, else 0 with a message on stderr."""
    if requested == 0:
        return 0
    if llama_cpp.llama_supports_gpu_offload():
        return requested
    print(
        "llama.cpp was built without GPU offload (llama_supports_gpu_offload() is False): "
        "running on the CPU. Reinstall llama-cpp-python with a GPU backend, e.g. "
        'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
        "llama-cpp-python, to offload.",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="What is 7 + 8?")
    parser.add_argument("--n-gpu-layers", type=int, default=-1, help="-1: all layers")
    parser.add_argument("--model", default=None, help="GGUF path or repo id (default: bundled)")
    parser.add_argument("--max-samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    layers = gpu_layers(args.n_gpu_layers)
    reasoner = default_reasoner(
        args.model,
        n_gpu_layers=layers,
        max_samples=args.max_samples,
        max_tokens_per_sample=args.max_tokens,
        seed=args.seed,
    )
    started = time.perf_counter()
    result = reasoner.invoke(args.question)
    elapsed = time.perf_counter() - started
    device = "GPU (all layers)" if layers == -1 else f"GPU ({layers} layers)" if layers else "CPU"
    print(f"Device: {device}")
    print(f"Answer: {result.answer}")
    print(
        f"Samples: {result.budget.samples_used}, {result.budget.generated_tokens} tokens "
        f"in {elapsed:.1f} s ({result.budget.generated_tokens / elapsed:.1f} tokens/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
