"""Command-line plumbing shared by every ``langchain-adaptive`` command: one-line errors.

A CLI error is one line on stderr that names the argument, and exit status 2
(argparse's convention for usage errors), never a traceback: the parser class
prints no usage block, the argument types refuse out-of-range numbers as they
are parsed, and :func:`file_error` turns an ``OSError`` or a decoding error
into such a line, naming the option whose path failed.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

USAGE_ERROR = 2
"""Exit status of every command-line error (argparse's own)."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (``--help`` still shows usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bounded_int(name: str, low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    parse.__name__ = name
    return parse


positive_int = _bounded_int("positive_int", 1)
"""An argparse type: a whole number of at least 1 (threads, samples, tokens)."""
port_number = _bounded_int("port", 0, 65535)
"""An argparse type: a TCP port, 0 (any free one) to 65535."""


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def existing_dir(text: str) -> str:
    """An argparse type: a folder that exists."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    return text


def file_error(error: BaseException, args: argparse.Namespace | None) -> str | None:
    """The one-line message for a file that could not be read or written, else ``None``.

    The option named is the one whose path the failed file is, lies in, or was
    derived from (``--out report.json`` writes ``report.md`` too).
    """
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({error.reason} at byte {error.start})" + _which(args)
    if not isinstance(error, OSError) or error.filename is None:
        return None
    failed = Path(os.fsdecode(error.filename))
    reason = error.strerror or type(error).__name__
    option = _option_for(failed, args)
    where = f"argument {option}: " if option else ""
    return f"{where}{reason}: {failed}"


def _which(args: argparse.Namespace | None) -> str:
    paths = [f"--{k.replace('_', '-')} {v}" for k, v in _paths(args)]
    return f" (the files given: {', '.join(paths)})" if paths else ""


def _paths(args: argparse.Namespace | None) -> list[tuple[str, Path]]:
    if args is None:
        return []
    return [(key, value) for key, value in vars(args).items() if isinstance(value, Path)]


def _option_for(failed: Path, args: argparse.Namespace | None) -> str | None:
    ranked: list[tuple[int, str]] = []
    for key, path in _paths(args):
        option = f"--{key.replace('_', '-')}"
        if failed == path:
            ranked.append((0, option))
        elif path in failed.parents or failed in path.parents:
            ranked.append((1, option))
        elif failed.parent == path.parent and failed.name.startswith(path.stem):
            ranked.append((2, option))
    return min(ranked)[1] if ranked else None


POSITIVE_COUNTS = ("threads", "n_threads", "max_samples", "max_tokens")
"""Arguments that count something and must be at least 1 when given."""
INPUT_FILES = ("dataset", "data", "path")
"""Arguments that, when they hold a path, name a text file to read."""
OUTPUT_PATHS = ("out",)
"""Arguments that name a file or folder to write."""


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, before any work, what would otherwise fail late with a traceback.

    Counts below 1 (``--threads 0`` would be passed on silently), input files
    that are missing, not files or not UTF-8, and outputs whose folder cannot
    exist (a file stands where it should be). Errors go through ``parser.error``.
    """
    for name in POSITIVE_COUNTS:
        value = getattr(args, name, None)
        if isinstance(value, int) and value < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be at least 1, got {value}")
    for name in INPUT_FILES:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            problem = _unreadable(value)
            if problem:
                parser.error(f"argument --{name.replace('_', '-')}: {problem}")
    for name in OUTPUT_PATHS:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            problem = _unwritable(value)
            if problem:
                parser.error(f"argument --{name.replace('_', '-')}: {problem}")


def _unreadable(path: Path) -> str | None:
    if not path.exists():
        return f"no such file: {path}"
    if not path.is_file():
        return f"not a file: {path}"
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    return f"{path} is not UTF-8 text (byte {offset + error.start}: {error.reason})"
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        return f"{path} is not UTF-8 text (it ends inside a character: {error.reason})"
    except OSError as error:
        return f"cannot read {path}: {error.strerror or error}"
    return None


def _unwritable(path: Path) -> str | None:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        return f"cannot write {path}: {existing} is a file, not a folder"
    folder = existing if existing.is_dir() else existing.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write {path}: {folder} is not writable"
    return None


def fail(message: str, prog: str = "langchain-adaptive") -> NoReturn:
    """Print ``message`` as a one-line CLI error and exit with status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


__all__ = [
    "USAGE_ERROR",
    "OneLineArgumentParser",
    "check_arguments",
    "existing_dir",
    "fail",
    "file_error",
    "port_number",
    "positive_float",
    "positive_int",
]
