"""From a sampled solution to steps, a final answer, and answer equivalence.

These three functions are the defaults of :class:`AdaptiveReasoningRunnable`;
each can be replaced by any callable with the same signature.
"""

from __future__ import annotations

import logging
import re
import threading
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

    Exact numbers are compared as fractions (fast, no sympy); anything else goes
    to math-verify, with its signal-based timeout only on the main thread
    (``signal.alarm`` is unavailable elsewhere, and LangChain's ``batch`` runs threads).
    """
    if a.strip() == b.strip():
        return True
    fa, fb = _as_fraction(a), _as_fraction(b)
    if fa is not None and fb is not None:
        return fa == fb
    return _math_verify_equal(a, b)


@lru_cache(maxsize=4096)
def _math_verify_equal(a: str, b: str) -> bool:
    from math_verify import parse, verify

    on_main = threading.current_thread() is threading.main_thread()
    timeout = 5 if on_main else None
    try:
        gold = parse(_as_latex(a), parsing_timeout=timeout)
        pred = parse(_as_latex(b), parsing_timeout=timeout)
        if not gold or not pred:
            return False
        return bool(verify(gold, pred, timeout_seconds=timeout))
    except Exception:  # math-verify raises on exotic input; not equal is the safe answer
        logger.debug("math-verify could not compare %r and %r", a, b, exc_info=True)
        return False


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
    "DEFAULT_STEP_DELIMITER",
    "STEP_JOINER",
    "AnswerEquivalence",
    "AnswerExtractor",
    "StepSplitter",
    "answers_match",
    "extract_answer",
    "group_answers",
    "split_steps",
    "states_final_answer",
]
