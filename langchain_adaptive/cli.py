"""The ``langchain-adaptive`` command line: ``ask``, ``calibrate`` a PRM, ``bench`` policies."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any, TextIO
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from langchain_adaptive._argparse import OneLineArgumentParser, check_arguments, file_error
from langchain_adaptive._reasoner_flags import add_reasoner_arguments, build_reasoner
from langchain_adaptive.callbacks._events import AdaptiveFinished, BudgetDecided
from langchain_adaptive.callbacks._handler import AdaptiveCallbackHandler
from langchain_adaptive.errors import AdaptiveError
from langchain_adaptive.results import AdaptiveResult


class ProgressPrinter(AdaptiveCallbackHandler):
    """Prints what the reasoner is doing to stderr, one line per phase."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self.stream = stream
        self.started = time.perf_counter()
        self._estimated: set[UUID] = set()

    def _say(self, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.1f}s] {text}", file=self.stream, flush=True)

    def on_budget_decided(self, event: BudgetDecided, *, run_id: UUID, **kwargs: Any) -> None:
        if event.estimate is not None and run_id not in self._estimated:
            self._estimated.add(run_id)
            self._say(f"question success estimate p = {event.estimate.lower:.3f}")
        self._say(f"{event.strategy}: drawing {event.n} sample(s)")

    def on_adaptive_finished(self, event: AdaptiveFinished, *, run_id: UUID, **kwargs: Any) -> None:
        self._estimated.discard(run_id)
        self._say(f"stopped ({event.stop_reason}) after {event.samples_used} sample(s)")


BENCH_EXTRA_INSTALL = 'pip install "langchain-adaptive[bench]"'
"""What to run when ``bench`` or ``calibrate`` lacks the harness's packages."""

_BENCH_PACKAGES = ("matplotlib", "tqdm")
_HARNESS_COMMANDS = {
    "calibrate": "collect data, fit and evaluate calibrators",
    "bench": "record pools, replay policies, run live",
}


def missing_bench_packages() -> list[str]:
    """The ``bench`` extra's packages that are not installed: the harness needs them all.

    Found without importing them (``ask`` builds the same parser and stays fast); a name
    blocked in ``sys.modules`` (``None``) counts as missing, as ``import`` would.
    """
    return [
        name
        for name in _BENCH_PACKAGES
        if (sys.modules[name] is None if name in sys.modules else find_spec(name) is None)
    ]


def _build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="langchain-adaptive",
        description="Calibrated instance-adaptive sampling for LangChain models.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser(
        "ask", help="answer a question on the on-device default (SmolLM2 via llama.cpp)"
    )
    ask.add_argument(
        "question",
        nargs="+",
        help="the question to answer; several questions get one line each, to compare "
        "what each was given",
    )
    ask.add_argument("--json", action="store_true", help="print the full result as JSON")
    add_reasoner_arguments(ask)
    ask.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ask.add_argument(
        "--verbose", action="store_true", help="also show llama.cpp's own messages on stderr"
    )
    if missing_bench_packages():  # listed for --help; main() refuses them in one line
        for name, text in _HARNESS_COMMANDS.items():
            commands.add_parser(name, help=f"{text} (needs the bench extra)", add_help=False)
    else:
        from langchain_adaptive.evaluation.calibrate_cli import add_calibrate_commands
        from langchain_adaptive.evaluation.cli import add_bench_commands

        add_calibrate_commands(commands)
        add_bench_commands(commands)
    serve = commands.add_parser(
        "serve-prm",
        help="serve a local PRM (hf, probe or judge) over HTTP, vLLM's /pooling API",
        add_help=False,
    )
    serve.add_argument("arguments", nargs=argparse.REMAINDER, help="see serve-prm --help")
    commands.add_parser(
        "serve",
        help="serve adaptive sampling behind OpenAI's chat-completions API (see serve --help)",
        add_help=False,
    ).add_argument("arguments", nargs=argparse.REMAINDER, help="see serve --help")
    return parser


def format_result(result: AdaptiveResult) -> str:
    """A short human-readable report of one result."""
    budget = result.budget
    lines = [f"Answer: {result.answer if result.answer is not None else '(none found)'}"]
    estimate = result.question_estimate
    if estimate is not None:
        lines.append(
            f"Success estimate: lower {estimate.lower:.3f}, median {estimate.median:.3f}"
            + (f" (raw {estimate.raw_score:.3f})" if estimate.raw_score is not None else "")
        )
    confidence = f", confidence {result.confidence:.3f}" if result.confidence is not None else ""
    lines.append(
        f"Samples: {budget.samples_used} used, {budget.decided_samples} decided, cap "
        f"{budget.max_samples} ({result.strategy}, stop: {result.stop_reason}{confidence})"
    )
    estimated = " (estimated)" if budget.tokens_estimated else ""
    prm = (
        f"; PRM: {budget.prm_input_tokens} prompt tokens in {budget.prm_model_calls} call(s)"
        if budget.prm_model_calls
        else ""
    )
    cancelled = (
        f"; {budget.cancelled_tokens} more in {budget.cancelled_samples} cancelled sample(s)"
        if budget.cancelled_samples
        else ""
    )
    lines.append(
        f"Tokens: {budget.generated_tokens} generated, {budget.prompt_tokens} prompt{estimated}"
        + cancelled
        + prm
    )
    if result.low_confidence:
        lines.append("Note: the target confidence was out of reach within the cap.")
    lines.extend(f"Warning: {warning}" for warning in result.warnings)
    lines.append(f"Time: {result.elapsed_s:.1f} s")
    return "\n".join(lines)


def format_line(result: AdaptiveResult) -> str:
    """One line per question: the answer, and why it got the samples it got."""
    estimate = result.question_estimate
    p = f"p >= {estimate.lower:.3f}" if estimate is not None else "no question estimate"
    budget = result.budget
    answer = result.answer if result.answer is not None else "(none found)"
    low = ", target out of reach" if result.low_confidence else ""
    cancelled = f" (+{budget.cancelled_tokens} cancelled)" if budget.cancelled_samples else ""
    return (
        f"{result.question!r}: {answer} | {p}, decided {budget.decided_samples}, drew "
        f"{budget.samples_used} of {budget.max_samples} ({result.stop_reason}{low}) | "
        f"{budget.generated_tokens} tokens{cancelled}"
    )


def _show_library_logs() -> None:
    """Send the package's debug logs (llama.cpp's load messages among them) to stderr."""
    logger = logging.getLogger("langchain_adaptive")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _ask(args: argparse.Namespace) -> int:
    try:
        from langchain_adaptive.integrations.llamacpp import default_reasoner  # noqa: F401
    except ImportError as error:  # pragma: no cover - depends on the install
        print(
            f"error: {error}. Install the extra: pip install 'langchain-adaptive[llamacpp]'",
            file=sys.stderr,
        )
        return 2
    if args.verbose:
        _show_library_logs()
    try:
        reasoner = build_reasoner(args)
        callbacks: list[BaseCallbackHandler] = [] if args.quiet else [ProgressPrinter()]
        results = []
        for question in args.question:  # one at a time: the progress lines stay in order
            results.append(reasoner.invoke(question, config={"callbacks": callbacks}))
            if len(args.question) > 1 and not args.json:
                print(format_line(results[-1]), flush=True)
    except AdaptiveError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        if args.json and error.partial is not None:
            print(error.partial.model_dump_json(indent=2))
        return 2
    except ValueError as error:  # pydantic validation of the settings
        print(f"error: invalid settings: {error}", file=sys.stderr)
        return 2
    if args.json:
        dumped = [result.model_dump(mode="json") for result in results]
        print(json.dumps(dumped[0] if len(dumped) == 1 else dumped, indent=2))
    elif len(results) == 1:
        print(format_result(results[0]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``langchain-adaptive`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve-prm"]:  # its own parser, so --help and options pass through
        from langchain_adaptive._serve_prm import main as serve_main

        serve_main(arguments[1:])
        return 0
    if arguments[:1] == ["serve"]:  # its own parser too: ask's flags plus the server's
        from langchain_adaptive._serve_openai import main as serve_openai

        serve_openai(arguments[1:])
        return 0
    if arguments[:1] in (["calibrate"], ["bench"]) and (missing := missing_bench_packages()):
        print(
            f"langchain-adaptive {arguments[0]}: error: the evaluation harness needs the bench "
            f"extra ({', '.join(missing)} missing): {BENCH_EXTRA_INSTALL}",
            file=sys.stderr,
        )
        return 2
    parser = _build_parser()
    args = parser.parse_args(arguments)
    check_arguments(parser, args)  # counts >= 1, inputs readable UTF-8, outputs writable
    try:
        if args.command == "ask":
            return _ask(args)
        if args.command in ("calibrate", "bench"):
            try:
                from langchain_adaptive.evaluation.calibrate_cli import run_calibrate
                from langchain_adaptive.evaluation.cli import run_bench

                return run_calibrate(args) if args.command == "calibrate" else run_bench(args)
            except AdaptiveError as error:
                print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
                return 2
    except (OSError, UnicodeDecodeError) as error:  # a file the checks could not foresee
        message = file_error(error, args)
        if message is None:
            raise
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
