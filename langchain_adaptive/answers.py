"""From a sampled solution to steps, a final answer, and answer equivalence.

These three functions are the defaults of :class:`AdaptiveReasoningRunnable`;
each can be replaced by any callable with the same signature.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import lru_cache

logger = logging.getLogger(__name__)

StepSplitter = Callable[[str], list[str]]
AnswerExtractor = Callable[[str], str | None]
AnswerEquivalence = Callable[[str, str], bool]

DEFAULT_STEP_DELIMITER = r"\n\s*\n"
STEP_JOINER = "\n\n"
"""How steps are joined back into a prefix (what the default delimiter splits on)."""
"""A blank line ends a step, as in the PRM literature (Math-Shepherd, Qwen2.5-Math-PRM)."""

_MAX_ANSWER_CHARS = 200
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|=|:)\s*[:=]?\s*\$?(?:\\\()?\s*"
    r"(?P<ans>[^\n$]*?)\s*(?:\\\))?\$?\s*(?:\.\s*$|\.?\s*\n|$)",
    re.IGNORECASE | re.MULTILINE,
)
_LAST_NUMBER = re.compile(_NUMBER)
_NUMERIC_ONLY = re.compile(rf"^\s*{_NUMBER}\s*$")


def split_steps(text: str, delimiter: str = DEFAULT_STEP_DELIMITER) -> list[str]:
    """Split a solution into reasoning steps at a regex delimiter (default: a blank line)."""
    return [step.strip() for step in re.split(delimiter, text) if step.strip()]


def _boxed_contents(text: str) -> list[str]:
    """Return the contents of every ``\\boxed{...}``, balancing nested braces."""
    found: list[str] = []
    start = text.find("\\boxed")
    while start != -1:
        brace = text.find("{", start)
        if brace == -1:
            break
        depth, i = 0, brace
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    if text[brace + 1 : i].strip():  # an empty \boxed{} is no answer
                        found.append(text[brace + 1 : i].strip())
                    break
            i += 1
        start = text.find("\\boxed", i)
    return found


_PLACEHOLDERS = frozenset({"X", "x", "<number>", "<answer>", "[answer]"})
_LEADING_NUMBER = re.compile(
    rf"(?:[A-Za-z']+\s+){{0,3}}({_NUMBER})(?:\s*[,;.]?\s+[A-Za-z].*)?", re.S
)


def _clean(answer: str) -> str | None:
    answer = answer.strip().strip("*").strip()
    answer = answer.rstrip(".").strip()
    if not answer:
        return None
    return answer[:_MAX_ANSWER_CHARS]


def extract_answer(text: str) -> str | None:
    """Extract the final answer of a solution.

    Looks, in order of trust, for the last ``\\boxed{}``, the last "The answer is X"
    (also "Final answer: X", "Answer = X"), and finally the last number in the text.

    Returns:
        The answer as written (numbers without thousands separators), or ``None``
        when the text holds nothing that looks like an answer.
    """
    boxed = _boxed_contents(text)
    if boxed:
        return _normalize_number_text(_clean(boxed[-1]))
    stated = [m.group("ans") for m in _ANSWER_IS.finditer(text)]
    for candidate in reversed(stated):
        cleaned = _clean(candidate)
        if cleaned is None:
            continue
        if cleaned in _PLACEHOLDERS:  # the model echoed the prompt's template
            continue
        # "The answer is 15 apples" -> "15"; symbolic answers stay whole.
        with_unit = re.fullmatch(rf"\s*({_NUMBER})\s*[a-zA-Z ]*", cleaned)
        if with_unit:
            return _normalize_number_text(with_unit.group(1))
        # "The answer is simply 15, and ..." / "7 because 3+4 = 7" -> the leading number.
        leading = _LEADING_NUMBER.fullmatch(cleaned)
        if leading:
            return _normalize_number_text(leading.group(1))
        return cleaned
    numbers = _LAST_NUMBER.findall(text)
    if numbers:
        return _normalize_number_text(numbers[-1])
    return None


_SHORT_LABEL_CHARS = 4
"""Longest answer without a digit that counts as stated (a choice letter, "yes", "(B)")."""


def states_final_answer(text: str) -> bool:
    """Whether ``text`` states a final answer (``\\boxed{}`` or "The answer is X").

    Unlike :func:`extract_answer` it ignores bare numbers, so a step-level
    search can tell the step that ends a solution from an intermediate result.
    A stated answer must hold a digit or be a short label ("B", "yes"): prose
    such as "until the answer is reached" does not end a solution.
    """
    if _boxed_contents(text):
        return True
    for match in _ANSWER_IS.finditer(text):
        cleaned = _clean(match.group("ans"))
        if cleaned is None or cleaned in _PLACEHOLDERS:
            continue
        if any(ch.isdigit() for ch in cleaned) or len(cleaned) <= _SHORT_LABEL_CHARS:
            return True
    return False


def _normalize_number_text(answer: str | None) -> str | None:
    if answer is None:
        return None
    if _NUMERIC_ONLY.match(answer):
        return answer.replace(",", "").strip()
    return answer


@lru_cache(maxsize=4096)
def _as_fraction(answer: str) -> Fraction | None:
    text = answer.replace(",", "").replace(" ", "")
    if not _NUMERIC_ONLY.match(text):
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(a: str, b: str) -> bool:
    """Whether two extracted answers are mathematically equivalent.

    Exact numbers are compared as fractions (fast, no sympy). Anything else goes
    to math-verify, bounded in every thread: an answer too costly for symbolic
    work (longer than ``MAX_SYMBOLIC_CHARS``, nested deeper than
    ``MAX_SYMBOLIC_DEPTH``, a power tower, an exponent or factorial above
    ``MAX_SYMBOLIC_EXPONENT``) is compared as a string only; on the main thread
    math-verify runs here with its own signal-based timeout, elsewhere (LangChain's
    ``batch`` runs threads, where ``signal.alarm`` is unavailable and a huge power
    would hold the GIL) in a worker process killed after ``COMPARE_DEADLINE_S``.
    A model's text cannot hang the caller; a comparison that runs out of time is
    "not equal".
    """
    if a.strip() == b.strip():
        return True
    fa, fb = _as_fraction(a), _as_fraction(b)
    if fa is not None and fb is not None:
        return fa == fb
    if symbolic_cost_reason(a) or symbolic_cost_reason(b):
        return False  # the strings differ, and symbolic work on them is not safe
    return _math_verify_equal(a, b)


MAX_SYMBOLIC_CHARS = 1000
"""Longest answer math-verify sees; longer ones are compared as strings."""
MAX_SYMBOLIC_DEPTH = 24
"""Deepest bracket nesting math-verify sees (its parser recurses per level)."""
MAX_SYMBOLIC_EXPONENT = 10_000
"""Largest literal exponent or factorial argument math-verify sees (``9^{99999999}`` is not)."""
COMPARE_DEADLINE_S = 10.0
"""Longest one symbolic comparison may take outside the main thread (a worker process)."""

_OPENERS, _CLOSERS = "{([", "})]"
_INTEGER = re.compile(r"\d[\d,]*")


def symbolic_cost_reason(answer: str) -> str | None:
    """Why ``answer`` is too costly for symbolic comparison, or ``None`` when it is safe.

    A cheap linear scan, run before any sympy work: length, bracket depth, power
    towers (an exponent holding another power), and literal exponents or
    factorial arguments above :data:`MAX_SYMBOLIC_EXPONENT`.
    """
    if len(answer) > MAX_SYMBOLIC_CHARS:
        return f"longer than {MAX_SYMBOLIC_CHARS} characters"
    depth = deepest = 0
    for char in answer:
        if char in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSERS:
            depth = max(0, depth - 1)
    if deepest > MAX_SYMBOLIC_DEPTH:
        return f"brackets nested {deepest} deep"
    text = answer.replace("**", "^")
    for index, char in enumerate(text):
        if char == "^":
            exponent, after = _operand_after(text, index + 1)
            chained = text[after:].lstrip().startswith("^")  # a^b^c: a tower without braces
            if chained or "^" in exponent or "!" in exponent or "\\exp" in exponent:
                return "a power tower"
            if _too_big(exponent):
                return f"an exponent above {MAX_SYMBOLIC_EXPONENT}"
        elif char == "!":
            operand = _operand_before(text, index)
            if "!" in operand or "^" in operand or _too_big(operand):
                return f"a factorial above {MAX_SYMBOLIC_EXPONENT}"
    return None


def _operand_after(text: str, start: int) -> tuple[str, int]:
    """The exponent after a ``^`` (a bracketed group, else the next token) and where it ends."""
    while start < len(text) and text[start] == " ":
        start += 1
    if start < len(text) and text[start] in "{(":
        group = _group(text, start)
        return group, start + len(group)
    match = _INTEGER.match(text, start)
    if match:
        return match.group(), match.end()
    return text[start : start + 1], start + 1


def _operand_before(text: str, end: int) -> str:
    """The operand before a ``!``: a bracketed group, else the integer or token before it."""
    stop = end
    while stop > 0 and text[stop - 1] == " ":
        stop -= 1
    if stop and text[stop - 1] in _CLOSERS:
        depth, i = 0, stop - 1
        while i >= 0:
            if text[i] in _CLOSERS:
                depth += 1
            elif text[i] in _OPENERS:
                depth -= 1
                if depth == 0:
                    return text[i:stop]
            i -= 1
        return text[:stop]
    start = stop
    while start > 0 and (text[start - 1].isdigit() or text[start - 1] == ","):
        start -= 1
    return text[start:stop]


def _group(text: str, start: int) -> str:
    depth = 0
    for i in range(start, len(text)):
        if text[i] in _OPENERS:
            depth += 1
        elif text[i] in _CLOSERS:
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def _too_big(operand: str) -> bool:
    """Whether a literal integer in ``operand`` exceeds :data:`MAX_SYMBOLIC_EXPONENT`."""
    return any(
        int(number.replace(",", "")) > MAX_SYMBOLIC_EXPONENT
        for number in _INTEGER.findall(operand)
        if number.replace(",", "")
    )


class _Undecided(Exception):
    """No verdict in time: "not equal" for this call, but never cached (a later call may decide)."""


def _math_verify_equal(a: str, b: str) -> bool:
    try:
        return _decided_equal(a, b)
    except _Undecided:
        return False


@lru_cache(maxsize=4096)
def _decided_equal(a: str, b: str) -> bool:
    """math-verify's verdict; raises :class:`_Undecided` (which ``lru_cache`` does not keep)
    when no worker was free or the comparison ran out of time."""
    if threading.current_thread() is not threading.main_thread():
        verdict = _WORKERS.compare(_as_latex(a), _as_latex(b), COMPARE_DEADLINE_S)
        if verdict is None:
            raise _Undecided
        return verdict
    from langchain_adaptive._answer_worker import compare

    return compare(_as_latex(a), _as_latex(b))


class _WorkerPool:
    """Worker processes for symbolic comparisons off the main thread, killed on a deadline.

    A subprocess (not ``multiprocessing``), so a user's script is never re-imported.
    Workers start on first use (importing math-verify takes about a second), at
    most ``size`` at once; a worker that misses its deadline is killed and
    replaced on the next call.
    """

    def __init__(self, size: int = 4, startup_s: float = 60.0) -> None:
        self.size = size
        self.startup_s = startup_s
        self._idle: list[subprocess.Popen[str]] = []
        self._alive = 0
        self._ready = threading.Condition()

    def compare(self, a: str, b: str, deadline_s: float) -> bool | None:
        """The verdict, or ``None`` when no worker was free or the worker ran out of time
        (a worker's first start, importing math-verify, may add up to ``startup_s``)."""
        worker = self._acquire(deadline_s)
        if worker is None:
            logger.warning("answer comparison: no worker free within %.1fs; not equal", deadline_s)
            return None
        verdict = _ask(worker, json.dumps([a, b]), deadline_s)
        if verdict is None:
            logger.warning(
                "answer comparison: math-verify took over %.1fs; the worker was stopped and the "
                "answers count as not equal",
                deadline_s,
            )
            self._discard(worker)
            return None
        self._release(worker)
        return verdict

    def _acquire(self, wait_s: float) -> subprocess.Popen[str] | None:
        end = time.monotonic() + wait_s
        with self._ready:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.poll() is None:
                        return worker
                    self._alive -= 1
                if self._alive < self.size:
                    self._alive += 1
                    break
                left = end - time.monotonic()
                if left <= 0 or not self._ready.wait(left):
                    return None
        started = _start_worker(self.startup_s)
        if started is None:
            with self._ready:
                self._alive -= 1
                self._ready.notify()
        return started

    def _release(self, worker: subprocess.Popen[str]) -> None:
        with self._ready:
            self._idle.append(worker)
            self._ready.notify()

    def _discard(self, worker: subprocess.Popen[str]) -> None:
        _stop(worker)
        with self._ready:
            self._alive -= 1
            self._ready.notify()

    def close(self) -> None:
        """Stop every idle worker (at exit; a busy one stops when its caller gives up)."""
        with self._ready:
            idle, self._idle = self._idle, []
            self._alive -= len(idle)
        for worker in idle:
            _stop(worker)


def _start_worker(startup_s: float) -> subprocess.Popen[str] | None:
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "langchain_adaptive._answer_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
        )
    except OSError:
        logger.warning("answer comparison: cannot start a worker process", exc_info=True)
        return None
    if _read_line(worker, startup_s) != "ready":
        logger.warning("answer comparison: the worker process did not start in %.0fs", startup_s)
        _stop(worker)
        return None
    return worker


def _ask(worker: subprocess.Popen[str], line: str, deadline_s: float) -> bool | None:
    try:
        assert worker.stdin is not None
        worker.stdin.write(line + "\n")
        worker.stdin.flush()
    except OSError:
        return None
    answer = _read_line(worker, deadline_s)
    return None if answer is None else answer == "1"


def _read_line(worker: subprocess.Popen[str], timeout_s: float) -> str | None:
    """One line of the worker's output, or ``None`` if none came within ``timeout_s``."""
    assert worker.stdout is not None
    if not select.select([worker.stdout], [], [], timeout_s)[0]:
        return None
    line = worker.stdout.readline()
    return line.strip() if line else None


def _stop(worker: subprocess.Popen[str]) -> None:
    worker.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):  # a kill is not refused
        worker.wait(timeout=5)
    for stream in (worker.stdin, worker.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


_WORKERS = _WorkerPool()
atexit.register(_WORKERS.close)


def _as_latex(answer: str) -> str:
    """math-verify reads LaTeX inside math delimiters; bare ``\\sqrt{4}`` would not parse."""
    return answer if "$" in answer or "\\(" in answer or "\\[" in answer else f"${answer}$"


def group_answers(
    answers: Sequence[str | None], equivalent: AnswerEquivalence = answers_match
) -> list[int | None]:
    """Assign each answer the index of its equivalence class (``None`` stays ``None``).

    Classes are numbered in order of first appearance; each new answer is compared
    only with one representative per class. An ``equivalent`` with a ``key``
    attribute (a function giving equal keys exactly to equivalent answers)
    groups by key instead, in linear time.
    """
    key = getattr(equivalent, "key", None)
    if callable(key):
        numbering: dict[object, int] = {}
        return [
            None if answer is None else numbering.setdefault(key(answer), len(numbering))
            for answer in answers
        ]
    representatives: list[str] = []
    labels: list[int | None] = []
    for answer in answers:
        if answer is None:
            labels.append(None)
            continue
        for index, representative in enumerate(representatives):
            if equivalent(representative, answer):
                labels.append(index)
                break
        else:
            representatives.append(answer)
            labels.append(len(representatives) - 1)
    return labels


__all__ = [
    "COMPARE_DEADLINE_S",
    "DEFAULT_STEP_DELIMITER",
    "MAX_SYMBOLIC_CHARS",
    "MAX_SYMBOLIC_DEPTH",
    "MAX_SYMBOLIC_EXPONENT",
    "STEP_JOINER",
    "AnswerEquivalence",
    "AnswerExtractor",
    "StepSplitter",
    "answers_match",
    "extract_answer",
    "group_answers",
    "split_steps",
    "states_final_answer",
    "symbolic_cost_reason",
]
