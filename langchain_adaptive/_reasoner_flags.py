"""The flags ``ask`` and ``serve`` share, and the on-device reasoner they describe.

A private module of the command-line layer, so ``cli`` (``ask``) and ``_serve_openai``
(``serve``) both use it without importing each other; choosing the bundled llama.cpp
model is the command line's business, never the runtime's or the servers'.
"""

from __future__ import annotations

import argparse
from typing import Any, get_args

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.budget import DEFAULT_MAX_SAMPLES
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.runnable import AdaptiveReasoningRunnable
from langchain_adaptive.strategies import STRATEGIES, build_strategy

LAUNCH_MODES = get_args(AdaptiveReasoningRunnable.model_fields["launch"].annotation)
"""``--launch``'s choices: the runnable's own ``launch`` values."""

STRATEGY_CHOICES = sorted(set(STRATEGIES) - {"compute_optimal", "fixed_allocation"})
"""``--strategy``'s choices: every registered strategy a flag can build. A compute-optimal
policy needs its fitted file and a fixed allocation a batch's allocation, so the Python API
builds those."""


def add_reasoner_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, PRM and limit flags ``ask`` and ``serve`` share (see :func:`build_reasoner`)."""
    parser.add_argument(
        "--strategy",
        default=None,
        choices=STRATEGY_CHOICES,
        help="sampling strategy (default: adaptive_best_of_n with majority-vote selection)",
    )
    parser.add_argument(
        "--selection",
        default=None,
        choices=get_args(SelectionRule),
        help="how the final answer is chosen among the samples",
    )
    parser.add_argument(
        "--stop-model",
        default=None,
        help="saved answer-level stop rule (bench fit-stop-rule) for --strategy answer_stop; "
        "--target-confidence is then its threshold",
    )
    parser.add_argument("--target-confidence", type=float, default=0.99, help="IAS target C")
    parser.add_argument(
        "--max-samples",
        type=int,
        default=DEFAULT_MAX_SAMPLES,
        help="hard cap on samples (default: %(default)s)",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=192, help="generated-token cap per sample"
    )
    parser.add_argument(
        "--launch",
        default="rounds",
        choices=LAUNCH_MODES,
        help="how strategies that draw in rounds (adaptive_consistency, "
        "early_stopping_consistency, sequential_ias, answer_stop, deepconf) get their "
        "samples: round by round, or eager: the rest start at once and those still running "
        "are cancelled when the rule stops (default: %(default)s)",
    )
    parser.add_argument("--model", default=None, help="GGUF path or Hugging Face repo id")
    parser.add_argument("--model-file", default=None, help="file name or glob inside --model repo")
    parser.add_argument("--n-gpu-layers", type=int, default=0, help="layers on the GPU (-1: all)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    parser.add_argument(
        "--prm",
        default="auto",
        choices=["auto", "probe", "judge"],
        help="on-device PRM: the calibrated probe shipped for the bundled model, or the LLM judge",
    )


def build_reasoner(args: argparse.Namespace) -> AdaptiveReasoningRunnable:
    """The on-device reasoner :func:`add_reasoner_arguments`' flags describe.

    Raises:
        ImportError: The ``llamacpp`` extra is not installed.
        AdaptiveError: A setting the reasoner refuses (e.g. ``--prm probe`` with ``--model``).
    """
    from langchain_adaptive.integrations.llamacpp import default_reasoner

    settings = {}
    overrides: dict[str, Any] = {"selection": args.selection} if args.selection else {}
    stop_model = getattr(args, "stop_model", None)
    if (args.strategy == "answer_stop") != (stop_model is not None):
        raise ConfigurationError("--strategy answer_stop and --stop-model go together")
    if stop_model is not None:
        from langchain_adaptive.calibration._answer_stop import AnswerStopModel

        model = AnswerStopModel.load(stop_model)
        overrides = {
            "model": model,
            "threshold": args.target_confidence,
            "selection": args.selection or model.selection,
        }
    if args.strategy or args.selection:
        settings["strategy"] = build_strategy(args.strategy or "adaptive_best_of_n", **overrides)
    return default_reasoner(
        args.model,
        model_file=args.model_file,
        n_gpu_layers=args.n_gpu_layers,
        n_threads=args.threads,
        seed=args.seed,
        prm=args.prm,
        **settings,
        target_confidence=args.target_confidence,
        max_samples=args.max_samples,
        max_tokens_per_sample=args.max_tokens,
        launch=args.launch,
    )
