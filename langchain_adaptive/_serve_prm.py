"""``langchain-adaptive serve-prm``: choose a PRM by name and serve it over HTTP.

The command line above the PRM server: its flags name a PRM (``--prm hf|probe|judge``
and that PRM's settings), :func:`~langchain_adaptive._prm_factory.make_prm` builds it,
and :func:`~langchain_adaptive.integrations.http._server.serve_prm` serves the object,
so the server itself never imports the llama.cpp or Hugging Face integration.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from langchain_adaptive._argparse import (
    OneLineArgumentParser,
    existing_dir,
    port_number,
    positive_float,
    positive_int,
)
from langchain_adaptive._prm_factory import make_prm
from langchain_adaptive.errors import AdaptiveError
from langchain_adaptive.integrations.http._remote import API_KEY_ENV
from langchain_adaptive.integrations.http._server import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_INPUTS,
    DEFAULT_MAX_REQUEST_BYTES,
    serve_prm,
)

if TYPE_CHECKING:
    from langchain_adaptive.prm._base import ProcessRewardModel


def _parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="langchain-adaptive serve-prm",
        description="Serve a local process reward model over HTTP (vLLM's /pooling API), "
        "for RemotePRM. The API key, if any, comes from $" + API_KEY_ENV + ".",
    )
    parser.add_argument(
        "model",
        nargs="?",
        help="--prm hf: hub repo id or local folder of the PRM (required); --prm judge: the "
        "judge's GGUF path or repo id (default: the bundled SmolLM2); --prm probe: the policy "
        "GGUF the --head was trained for (default: the bundled SmolLM2)",
    )
    parser.add_argument(
        "--prm",
        default="hf",
        choices=["hf", "probe", "judge"],
        help="hf: a Hugging Face PRM; probe: the calibrated ProbePRM bundled for SmolLM2; "
        "judge: an LLMJudgePRM on a llama.cpp model (default: hf)",
    )
    parser.add_argument("--served-model-name", help="name clients send (default: MODEL or --prm)")
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine)")
    parser.add_argument("--port", type=port_number, default=8000, help="0-65535 (0: any free)")
    parser.add_argument(
        "--max-request-bytes",
        type=positive_int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="larger bodies get HTTP 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        default=DEFAULT_MAX_INPUTS,
        help="most prompts one request may carry; more get HTTP 400 (default: %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=positive_float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="seconds a client has to send a request body; slower uploads get HTTP 408 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="seconds requests in flight may take to finish after SIGTERM (default: 30)",
    )
    parser.add_argument("--log-level", default="info")
    hf = parser.add_argument_group("--prm hf")
    hf.add_argument(
        "--family", default="qwen", choices=["qwen", "math-shepherd", "token-classification"]
    )
    hf.add_argument("--adapter", help="LoRA adapter and/or quantile head folder")
    hf.add_argument("--device")
    hf.add_argument("--dtype")
    hf.add_argument("--batch-size", type=positive_int, default=8)
    hf.add_argument("--trust-remote-code", action="store_true")
    hf.add_argument("--local-files-only", action="store_true")
    local = parser.add_argument_group("--prm probe / judge (llama.cpp)")
    local.add_argument("--model-file", help="file name or glob inside a GGUF repo")
    local.add_argument(
        "--head",
        type=existing_dir,
        help="--prm probe: a probe head folder (default: the bundled one)",
    )
    local.add_argument("--n-ctx", type=positive_int, default=2048)
    local.add_argument("--n-gpu-layers", type=int, default=0)
    local.add_argument(
        "--n-threads", type=positive_int, help="default: the usable cores, at most 8"
    )
    return parser


def build_prm(args: argparse.Namespace) -> ProcessRewardModel:
    """The PRM the parsed command line asks for (loads nothing until the first score)."""
    if args.prm == "hf":
        return make_prm(
            "hf",
            model=args.model,
            family=args.family,
            adapter=args.adapter,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            trust_remote_code=args.trust_remote_code,
            local_files_only=args.local_files_only,
        )
    return make_prm(
        args.prm,
        model=args.model,
        model_file=args.model_file,
        head=args.head,
        n_ctx=args.n_ctx,
        n_gpu_layers=args.n_gpu_layers,
        n_threads=args.n_threads,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Build the PRM the command line names and serve it: the ``serve-prm`` entry point."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.prm == "hf" and not args.model:
        parser.error("MODEL is required with --prm hf (a hub repo id or a local folder)")
    if args.prm == "probe" and args.model and not args.head:
        parser.error(
            "the bundled probe head was trained for the bundled SmolLM2: with MODEL, pass the "
            "--head trained for it (`langchain-adaptive calibrate fit-probe`)"
        )
    try:
        prm = build_prm(args)
        if args.prm != "hf":  # load the GGUF now: a broken model fails here, not on a request
            prm.estimate_question("What is 1 + 1?")
    except (AdaptiveError, OSError, ImportError) as error:  # one line, not a traceback
        parser.exit(2, f"{parser.prog}: error: {type(error).__name__}: {error}\n")
    serve_prm(
        prm,
        host=args.host,
        port=args.port,
        model_name=args.served_model_name or args.model or args.prm,
        api_key=os.environ.get(API_KEY_ENV) or None,
        max_inputs=args.max_batch,
        max_request_bytes=args.max_request_bytes,
        body_timeout=args.body_timeout,
        graceful_timeout=args.graceful_timeout,
        log_level=args.log_level,
    )


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["build_prm", "main"]
