"""A Hugging Face PRM on another device: the same scores as on the CPU, and its throughput.

No download: the script builds random-weight Qwen2 token-classification PRMs (the
output contract of Qwen2.5-Math-PRM, as ``tests/integration_tests/test_huggingface_prm.py``
builds them) with a byte-level tokenizer, saves each to a temporary folder and
loads it back through ``HuggingFacePRM.from_pretrained(folder, local_files_only=True)``,
the code path a hub download takes. Two sizes:

- ``tiny``: the tests' model (hidden 32, 2 layers), its weights spread wide
  (initializer range 0.2) so the step scores differ from 0.5 and a wrong kernel shows;
- ``small``: hidden 512, 8 layers (about 25M parameters), the usual initializer
  range 0.02: enough arithmetic per token for a GPU's throughput to mean something.

For each size the reference is the CPU in float32. Every ``--targets`` entry
(``device/dtype``; ``auto`` is CUDA in float32 and in the dtype ``HuggingFacePRM``
picks there, bfloat16 on a card that has it) scores the same ``--solutions``
arithmetic solutions of one question. The JSON records the largest absolute
difference of the step probabilities from the reference against a tolerance
(1e-4 in float32, 2e-2 in half precision, the tests' bounds) and the
throughput of one ``score`` call (solutions, steps and input tokens per second;
the median of ``--repeats`` after one warm-up). The script exits 1 when a target
misses its tolerance, after writing the JSON and the plot.

Without CUDA, ``--targets cpu/bfloat16`` compares the CPU with itself in half
precision, which runs every line here: ``examples/benchmarks/gpu_suite.sh`` does
that where no GPU is present.

Run::

    pip install "langchain-adaptive[hf,bench]"
    python examples/benchmarks/hf_prm_device.py --targets auto --sizes tiny,small \\
        --solutions 64 --repeats 3 --out bench-results/hf_prm_device.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, decoders, models
from tokenizers.pre_tokenizers import ByteLevel

from langchain_adaptive.integrations.huggingface import HuggingFacePRM

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The ChatML layout of Qwen2.5's chat template."""

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "initializer_range": 0.2,
    },
    "small": {
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "initializer_range": 0.02,
    },
}
QUESTION = "What is 17 + 25, then times 3?"
TOLERANCE = {"float32": 1e-4, "float64": 1e-4, "bfloat16": 2e-2, "float16": 2e-2}
"""Largest absolute difference of a step probability from the CPU's float32 one."""


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--targets",
        default="auto",
        help="comma-separated device/dtype pairs to compare with cpu/float32 "
        "(e.g. cuda/float32,cuda/bfloat16); auto: CUDA in float32 and in its default dtype",
    )
    parser.add_argument("--sizes", default="tiny,small", help=f"of {sorted(SIZES)}")
    parser.add_argument("--solutions", type=int, default=64, help="solutions per score call")
    parser.add_argument("--steps", type=int, default=4, help="most steps per solution")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed score calls per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results/hf_prm_device.json"),
        help="where to write the JSON results (the plot goes next to it as .png)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, write the JSON file and the plot, and print a table.

    Returns:
        0 when every target matched the CPU within its tolerance, else 1.

    Raises:
        SystemExit: ``--targets auto`` without CUDA, an unknown size, or a count below 1.
    """
    args = _parse_args(argv)
    if args.repeats < 1 or args.solutions < 1 or args.steps < 1:
        raise SystemExit("error: --repeats, --solutions and --steps must be at least 1")
    targets = _targets(args.targets)
    sizes = args.sizes.split(",")
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        raise SystemExit(f"error: unknown sizes {unknown}; choose from {sorted(SIZES)}")
    solutions = _solutions(args.solutions, args.steps)
    results: dict[str, Any] = {
        "question": QUESTION,
        "solutions": args.solutions,
        "steps": sum(len(steps) for steps in solutions),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "reference": "cpu/float32",
        "targets": targets,
        "machine": _machine(),
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="hf-prm-device-") as tmp:
        for size in sizes:
            folder = _build(size, Path(tmp) / size, args.seed)
            results["sizes"][size] = _compare(folder, size, targets, solutions, args)
    ok = all(
        side["within_tolerance"]
        for entry in results["sizes"].values()
        for side in entry["targets"].values()
    )
    results["all_within_tolerance"] = ok
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    _plot(results, args.out.with_suffix(".png"))
    _print_table(results)
    return 0 if ok else 1


def _targets(spec: str) -> list[str]:
    """``device/dtype`` pairs; ``auto``: CUDA in float32 and in HuggingFacePRM's own pick."""
    if spec != "auto":
        pairs = [item.strip() for item in spec.split(",") if item.strip()]
        for pair in pairs:
            if pair.count("/") != 1:
                raise SystemExit(f"error: target {pair!r} is not DEVICE/DTYPE")
        return pairs
    if not torch.cuda.is_available():
        raise SystemExit(
            f"error: --targets auto needs CUDA, and torch {torch.__version__} sees none; "
            "pass e.g. --targets cpu/bfloat16"
        )
    fast = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return ["cuda/float32", f"cuda/{fast}"]


def _solutions(count: int, most_steps: int) -> list[list[str]]:
    """Deterministic arithmetic solutions of 1 to ``most_steps`` steps, right and wrong."""
    out = []
    for i in range(count):
        a, b = 10 + i % 17, 20 + (3 * i) % 13
        total = a + b + (i % 3 == 0)  # every third one adds wrongly
        steps = [
            f"First add {a} and {b}: {a} + {b} = {total}.",
            f"Then multiply by 3: {total} * 3 = {3 * total}.",
            f"Check: {3 * total} / 3 = {total}, so the product is right.",
            f"The answer is {3 * total}.",
        ]
        out.append(steps[: 1 + i % most_steps])
    return out


def _tokenizer() -> Any:
    """A byte-level tokenizer (every byte a token) with ChatML specials and ``<extra_0>``."""
    vocab = {char: index for index, char in enumerate(sorted(ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
    backend.add_special_tokens(specials)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def _build(size: str, folder: Path, seed: int) -> Path:
    """A random-weight Qwen2ForTokenClassification with two labels, saved as a hub folder."""
    tokenizer = _tokenizer()
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), max_position_embeddings=1024, num_labels=2, **SIZES[size]
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2ForTokenClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _compare(
    folder: Path,
    size: str,
    targets: list[str],
    solutions: list[list[str]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    reference = _load(folder, "cpu/float32", args.batch_size)
    expected, reference_speed = _measure(reference, solutions, args.repeats)
    parameters = sum(p.numel() for p in reference.transformers_model.parameters())
    entry: dict[str, Any] = {
        "parameters": parameters,
        "config": SIZES[size],
        "input_tokens": sum(len(reference.encode(QUESTION, steps)[0]) for steps in solutions),
        "reference": reference_speed,
        "targets": {},
    }
    del reference
    for target in targets:
        prm = _load(folder, target, args.batch_size)
        got, speed = _measure(prm, solutions, args.repeats)
        differences = [
            abs(a - b)
            for row_got, row_expected in zip(got, expected, strict=True)
            for a, b in zip(row_got, row_expected, strict=True)
        ]
        tolerance = TOLERANCE.get(prm.dtype, 2e-2)
        entry["targets"][target] = {
            "device": prm.device,
            "dtype": prm.dtype,
            **speed,
            "speedup_over_reference": speed["solutions_per_s"] / reference_speed["solutions_per_s"],
            "max_abs_diff": max(differences),
            "mean_abs_diff": statistics.fmean(differences),
            "tolerance": tolerance,
            "within_tolerance": max(differences) <= tolerance,
            "score_spread": [min(min(row) for row in got), max(max(row) for row in got)],
        }
        del prm
    return entry


def _load(folder: Path, target: str, batch_size: int) -> HuggingFacePRM:
    device, dtype = target.split("/")
    return HuggingFacePRM.from_pretrained(
        str(folder), local_files_only=True, device=device, dtype=dtype, batch_size=batch_size
    )


def _measure(
    prm: HuggingFacePRM, solutions: list[list[str]], repeats: int
) -> tuple[list[list[float]], dict[str, Any]]:
    """The step probabilities of one score call, and its throughput after one warm-up.

    ``score`` returns Python floats, so each timed call includes the device's sync.
    ``repeat_max_abs_diff`` is how far the last call's scores moved from the first's
    (0 where the kernels are deterministic).
    """
    again = prm.score(QUESTION, solutions)  # warm-up
    scores = [[e.median for e in row] for row in again]
    seconds: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        again = prm.score(QUESTION, solutions)
        seconds.append(time.perf_counter() - start)
    drift = max(
        abs(a.median - b)
        for row_again, row in zip(again, scores, strict=True)
        for a, b in zip(row_again, row, strict=True)
    )
    median = statistics.median(seconds)
    steps = sum(len(row) for row in scores)
    tokens = sum(len(prm.encode(QUESTION, s)[0]) for s in solutions)
    return scores, {
        "seconds": seconds,
        "median_seconds": median,
        "solutions_per_s": len(solutions) / median,
        "steps_per_s": steps / median,
        "tokens_per_s": tokens / median,
        "repeat_max_abs_diff": drift,
    }


def _machine() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        "torch_cuda_version": torch.version.cuda,
    }


def _plot(results: dict[str, Any], path: Path) -> None:
    """Solutions per second, reference and targets, per size (needs matplotlib: bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'langchain-adaptive[bench]'): no plot")
        return
    sides = [results["reference"], *results["targets"]]
    sizes = list(results["sizes"])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    width = 0.8 / len(sides)
    for k, side in enumerate(sides):
        entries = [results["sizes"][size] for size in sizes]
        values = [entry["reference"] if k == 0 else entry["targets"][side] for entry in entries]
        xs = [i + (k - (len(sides) - 1) / 2) * width for i in range(len(sizes))]
        ax.bar(xs, [v["solutions_per_s"] for v in values], width, label=side)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels(
        [f"{size} ({results['sizes'][size]['parameters'] / 1e6:.2f}M)" for size in sizes]
    )
    ax.set_yscale("log")
    ax.set_ylabel("solutions scored / s")
    ax.legend(fontsize=8)
    machine = results["machine"]
    ax.set_title(
        f"HuggingFacePRM, {results['solutions']} solutions per call, batch "
        f"{results['batch_size']}\n{machine['cuda_device'] or 'no CUDA device'}, "
        f"torch {machine['torch']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_table(results: dict[str, Any]) -> None:
    print(
        f"{results['solutions']} solutions ({results['steps']} steps) per score call, "
        f"median of {results['repeats']}; reference {results['reference']}"
    )
    print(f"{'size':<7}{'side':<16}{'sol/s':>9}{'tok/s':>11}{'speedup':>9}{'max diff':>10}  ok")
    for size, entry in results["sizes"].items():
        ref = entry["reference"]
        print(f"{size:<7}{results['reference']:<16}{ref['solutions_per_s']:>9.1f}"
              f"{ref['tokens_per_s']:>11.0f}{1.0:>9.2f}{0.0:>10.1e}  -")  # fmt: skip
        for target, side in entry["targets"].items():
            print(f"{size:<7}{target:<16}{side['solutions_per_s']:>9.1f}"
                  f"{side['tokens_per_s']:>11.0f}{side['speedup_over_reference']:>9.2f}"
                  f"{side['max_abs_diff']:>10.1e}  "
                  f"{'yes' if side['within_tolerance'] else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
