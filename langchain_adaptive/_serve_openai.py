"""``langchain-adaptive serve``: build the runnable the flags describe and serve it.

The command line above the OpenAI-compatible server: ``ask``'s reasoner flags (the
bundled llama.cpp model and PRM by default) plus an optional upstream policy build an
:class:`~langchain_adaptive.runnable.AdaptiveReasoningRunnable`, and
:func:`~langchain_adaptive.integrations.http.openai_server.serve` serves the object,
so the server itself never imports the llama.cpp integration or the CLI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr

from langchain_adaptive._reasoner_flags import add_reasoner_arguments, build_reasoner
from langchain_adaptive.integrations.http.openai_server import (
    API_KEY_ENV,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MODEL_NAME,
    DEFAULT_REQUEST_TIMEOUT_S,
    UPSTREAM_API_KEY_ENV,
    serve,
)
from langchain_adaptive.runnable import AdaptiveReasoningRunnable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langchain-adaptive serve",
        description="Serve adaptive sampling behind OpenAI's chat-completions API. The API key, "
        f"if any, comes from ${API_KEY_ENV}.",
    )
    add_reasoner_arguments(parser)
    upstream = parser.add_argument_group(
        "upstream policy (remote extra): sample from an OpenAI-compatible server such as vLLM, "
        "llama.cpp's server or Ollama; the PRM stays on device"
    )
    upstream.add_argument("--upstream-base-url", help="e.g. http://127.0.0.1:8001/v1")
    upstream.add_argument("--upstream-model", help="the model name the upstream server serves")
    upstream.add_argument(
        "--upstream-timeout", type=float, default=120.0, help="seconds per upstream call"
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine)")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument(
        "--served-model-name", default=DEFAULT_MODEL_NAME, help="the name clients send as model"
    )
    server.add_argument(
        "--max-concurrency",
        type=int,
        default=DEFAULT_MAX_CONCURRENCY,
        help="requests answered at once; more get HTTP 429 (default: %(default)s)",
    )
    server.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help="seconds one request may run; longer gets HTTP 504 (default: %(default)s)",
    )
    server.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="seconds to receive a request body; longer gets HTTP 408 (default: %(default)s)",
    )
    server.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="larger bodies get HTTP 413 (default: %(default)s)",
    )
    server.add_argument(
        "--log-prompts", action="store_true", help="log questions and answers (off by default)"
    )
    server.add_argument("--log-level", default="info")
    server.add_argument(
        "--config",
        type=Path,
        default=None,
        help='JSON file of flag values ({"strategy": "sequential_ias", "port": 8080, ...}; '
        "names as the long flags, - or _); flags given on the command line win",
    )
    server.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="seconds requests in flight may take to finish after SIGTERM (default: 30)",
    )
    return parser


def build_served_runnable(args: argparse.Namespace) -> AdaptiveReasoningRunnable:
    """The runnable ``serve``'s flags describe: ``ask``'s reasoner, its policy maybe upstream."""
    reasoner = build_reasoner(args)
    if not args.upstream_base_url:
        return reasoner
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as error:
        raise ImportError(
            'an upstream policy needs langchain-openai: pip install "langchain-adaptive[remote]"'
        ) from error
    policy = ChatOpenAI(
        base_url=args.upstream_base_url,
        model=args.upstream_model,
        api_key=SecretStr(os.environ.get(UPSTREAM_API_KEY_ENV) or "unused"),
        timeout=args.upstream_timeout,
        max_retries=1,
    )
    return reasoner.model_copy(update={"model": policy})


def parse_serve_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``serve``'s arguments: a ``--config`` file's values first, then the command line's.

    The file's values become flags in front of the command line, so argparse checks them
    exactly as typed flags (types, choices) and a flag given on the command line wins.
    """
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    known, _ = parser.parse_known_args(argv)
    if known.config is None:
        return parser.parse_args(argv)
    return parser.parse_args([*_config_flags(parser, known.config), *argv])


def _config_flags(parser: argparse.ArgumentParser, path: Path) -> list[str]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        parser.error(f"--config {path}: cannot read a JSON object ({error})")
    if not isinstance(config, dict):
        parser.error(f"--config {path}: expected a JSON object of flag values")
    flags = {
        option: action
        for action in parser._actions  # argparse keeps no public map of its options
        for option in action.option_strings
        if option.startswith("--") and option not in ("--config", "--help")
    }
    tokens: list[str] = []
    for key, value in config.items():
        option = "--" + str(key).replace("_", "-")
        if option not in flags:
            parser.error(f"--config {path}: unknown setting {key!r}")
        if isinstance(flags[option], argparse._StoreTrueAction):
            if not isinstance(value, bool):
                parser.error(f"--config {path}: {key!r} takes true or false")
            tokens += [option] if value else []
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            tokens += [option, str(value)]
        else:
            parser.error(f"--config {path}: {key!r} takes a string or a number")
    return tokens


def main(argv: Sequence[str] | None = None) -> None:
    """Build the runnable the command line describes and serve it: the ``serve`` entry point."""
    parser = _parser()
    args = parse_serve_args(argv)
    if bool(args.upstream_base_url) != bool(args.upstream_model):
        parser.error("--upstream-base-url and --upstream-model go together")
    if args.max_request_bytes < 1 or args.max_concurrency < 1:
        parser.error("--max-request-bytes and --max-concurrency must be at least 1")
    if min(args.request_timeout, args.body_timeout) <= 0:
        parser.error("--request-timeout and --body-timeout must be positive")
    logging.basicConfig(level=args.log_level.upper())
    runnable = build_served_runnable(args)
    serve(
        runnable,
        host=args.host,
        port=args.port,
        graceful_timeout=args.graceful_timeout,
        log_level=args.log_level,
        model_name=args.served_model_name,
        api_key=os.environ.get(API_KEY_ENV) or None,
        max_request_bytes=args.max_request_bytes,
        body_timeout_s=args.body_timeout,
        request_timeout_s=args.request_timeout,
        max_concurrency=args.max_concurrency,
        log_prompts=args.log_prompts,
    )
