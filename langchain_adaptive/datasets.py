"""Questions with gold answers: a seeded arithmetic suite, a split by question, a JSONL loader.

Calibration needs questions whose answers can be checked and whose difficulty
varies, so a PRM's scores can be compared with how often the policy actually
succeeds. :func:`arithmetic_suite` generates such a suite from a seed (one-
to three-digit addition, subtraction and multiplication, then two-step
expressions); :func:`load_jsonl` reads a user's own dataset. Calibrators are
evaluated on held-out questions, so :func:`train_test_split` splits by question
text: no question (and so no prefix of its solutions) is on both sides.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive.errors import AdaptiveInputError, ConfigurationError


class Problem(BaseModel):
    """A question with its gold answer, for calibration and evaluation.

    Example:
        >>> Problem(id="add1-0", question="What is 3 + 4?", gold="7", level="add1").gold
        '7'
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    """Stable identity: calibration records are keyed by it, so a rerun can resume."""
    question: str = Field(min_length=1)
    """The question as a user would ask it (no instruction appended)."""
    gold: str | None = None
    """The correct final answer; calibration refuses problems without one."""
    level: str | None = None
    """Difficulty level or subset name, for stratified splits and per-level reports."""


# -- the arithmetic suite --------------------------------------------------------------

_Builder = Callable[[random.Random], tuple[str, int]]


def _digits(rng: random.Random, digits: int) -> int:
    """A number with exactly ``digits`` digits (one-digit numbers start at 1, not 0)."""
    return rng.randint(1 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def _binary(symbol: str, digits: int) -> _Builder:
    def build(rng: random.Random) -> tuple[str, int]:
        a, b = _digits(rng, digits), _digits(rng, digits)
        if symbol == "-" and b > a:  # results stay non-negative: one difficulty axis at a time
            a, b = b, a
        value = {"+": a + b, "-": a - b, "*": a * b}[symbol]
        return f"What is {a} {symbol} {b}?", value

    return build


def _two_step(rng: random.Random) -> tuple[str, int]:
    """Two operations on two-digit numbers and a one-digit factor, e.g. ``(a + b) * c``."""
    a, b, c = _digits(rng, 2), _digits(rng, 2), rng.randint(2, 9)
    form = rng.randrange(4)
    if form == 0:
        return f"What is ({a} + {b}) * {c}?", (a + b) * c
    if form == 1:
        a, b = max(a, b), min(a, b)
        return f"What is ({a} - {b}) * {c}?", (a - b) * c
    if form == 2:
        return f"What is {a} * {c} + {b}?", a * c + b
    a, b = max(a, b), min(a, b)
    return f"What is {a} * {c} - {b}?", a * c - b


ARITHMETIC_LEVELS: tuple[str, ...] = (
    "add1",
    "sub1",
    "add2",
    "sub2",
    "mul1",
    "add3",
    "sub3",
    "mul2",
    "two_step",
    "mul3",
)
"""Level names, roughly from easiest to hardest for a small model.

``add``/``sub``/``mul`` followed by the operands' digit count (subtraction keeps
the result non-negative), and ``two_step``: ``(a + b) * c``, ``(a - b) * c``,
``a * c + b`` or ``a * c - b`` with two-digit ``a``, ``b`` and one-digit ``c``.
"""

_BUILDERS: dict[str, _Builder] = {
    **{f"add{d}": _binary("+", d) for d in (1, 2, 3)},
    **{f"sub{d}": _binary("-", d) for d in (1, 2, 3)},
    **{f"mul{d}": _binary("*", d) for d in (1, 2, 3)},
    "two_step": _two_step,
}

_MAX_DRAWS_PER_QUESTION = 200
"""Rejection-sampling patience for distinct questions before a level counts as exhausted."""


def arithmetic_suite(
    n_per_level: int,
    seed: int = 0,
    levels: Sequence[str] = ARITHMETIC_LEVELS,
) -> list[Problem]:
    """Generate arithmetic questions of graded difficulty, deterministically from ``seed``.

    Each level draws from its own random stream (seeded by ``seed`` and the
    level name), so adding or removing a level leaves the others unchanged, and
    a larger ``n_per_level`` extends a level without changing its first
    questions. Questions within a level are distinct.

    Args:
        n_per_level: Questions per level.
        seed: The seed; the same seed gives the same suite on every platform.
        levels: Level names from :data:`ARITHMETIC_LEVELS`, in the order wanted.

    Returns:
        Problems ordered by level then index, with ids ``f"{level}-{i}"``, integer
        gold answers as strings and ``level`` set.

    Raises:
        ConfigurationError: An unknown level, a negative count, or more questions
            asked of a level than it has distinct ones (``add1`` has 81).

    Example:
        >>> suite = arithmetic_suite(2, seed=0, levels=("add1", "two_step"))
        >>> [p.id for p in suite]
        ['add1-0', 'add1-1', 'two_step-0', 'two_step-1']
    """
    if n_per_level < 0:
        raise ConfigurationError(f"n_per_level must be at least 0, got {n_per_level}")
    unknown = [level for level in levels if level not in _BUILDERS]
    if unknown:
        raise ConfigurationError(
            f"unknown arithmetic levels {unknown}; choose from {list(ARITHMETIC_LEVELS)}"
        )
    if len(set(levels)) != len(levels):
        raise ConfigurationError(f"levels repeat: {list(levels)}")
    problems: list[Problem] = []
    for level in levels:
        rng = random.Random(f"langchain-adaptive:{seed}:{level}")  # str seeds are stable
        seen: set[str] = set()
        draws = 0
        while len(seen) < n_per_level:
            draws += 1
            if draws > _MAX_DRAWS_PER_QUESTION * max(n_per_level, 1):
                raise ConfigurationError(
                    f"level {level!r} has too few distinct questions for "
                    f"n_per_level={n_per_level} (found {len(seen)})"
                )
            question, value = _BUILDERS[level](rng)
            if question in seen:
                continue
            seen.add(question)
            problems.append(
                Problem(
                    id=f"{level}-{len(seen) - 1}", question=question, gold=str(value), level=level
                )
            )
    return problems


# -- splitting -------------------------------------------------------------------------


def train_test_split(
    problems: Sequence[Problem], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Problem], list[Problem]]:
    """Split problems into train and test sets that share no question.

    Problems with the same question text (after stripping and case-folding) go
    to the same side, so a calibrator is never tested on a question it was
    fitted on. The split is stratified by ``level``: each level sends
    ``round(test_fraction * its distinct questions)`` to test, so both sides
    keep the difficulty mix.

    Args:
        problems: The problems to split.
        test_fraction: Share of each level's distinct questions held out, in (0, 1).
        seed: Seed of the shuffle that picks the held-out questions.

    Returns:
        ``(train, test)``, each in the input order.

    Raises:
        ConfigurationError: ``test_fraction`` is not in (0, 1).

    Example:
        >>> train, test = train_test_split(arithmetic_suite(10, levels=("add1",)), 0.3)
        >>> len(train), len(test)
        (7, 3)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigurationError(f"test_fraction must be in (0, 1), got {test_fraction}")
    by_level: dict[str | None, list[str]] = {}
    for problem in problems:
        key = _question_key(problem.question)
        questions = by_level.setdefault(problem.level, [])
        if key not in questions:
            questions.append(key)
    rng = random.Random(f"langchain-adaptive-split:{seed}")
    held_out: set[str] = set()
    for level in sorted(by_level, key=lambda name: (name is None, name or "")):
        questions = sorted(by_level[level])
        rng.shuffle(questions)
        held_out.update(questions[: round(test_fraction * len(questions))])
    train = [p for p in problems if _question_key(p.question) not in held_out]
    test = [p for p in problems if _question_key(p.question) in held_out]
    return train, test


def _question_key(question: str) -> str:
    return " ".join(question.split()).casefold()


# -- loading ---------------------------------------------------------------------------


def load_jsonl(
    path: str | os.PathLike[str],
    *,
    question_field: str = "question",
    gold_field: str = "gold",
    id_field: str | None = "id",
    level_field: str | None = "level",
    require_gold: bool = True,
) -> list[Problem]:
    """Read problems from a JSON Lines file, one JSON object a line.

    A dataset is input the user controls, so every problem is checked and the
    first bad line fails the load with its line number rather than being
    skipped: silently dropping questions would bias a calibration. Blank lines
    are ignored.

    Args:
        path: The file.
        question_field: Key of the question text.
        gold_field: Key of the gold answer (numbers are turned into text).
        id_field: Key of the problem id; a missing id (or ``None`` here) uses
            ``f"line-{n}"`` with the 1-based line number.
        level_field: Key of an optional level or subset name.
        require_gold: Fail on a problem without a gold answer (calibration
            needs one).

    Returns:
        The problems in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        AdaptiveInputError: A line is not a JSON object, lacks the question,
            lacks the gold answer while ``require_gold`` is set, or repeats an id;
            the message names the file and line.
    """
    source = Path(path)
    problems: list[Problem] = []
    line_of_id: dict[str, int] = {}
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{source}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise AdaptiveInputError(f"{where}: not valid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise AdaptiveInputError(
                    f"{where}: expected a JSON object, got {type(row).__name__}"
                )
            question = row.get(question_field)
            if not isinstance(question, str) or not question.strip():
                raise AdaptiveInputError(
                    f"{where}: {question_field!r} must be a non-empty string, got {question!r}"
                )
            gold = _gold_text(row.get(gold_field), where, gold_field)
            if gold is None and require_gold:
                raise AdaptiveInputError(
                    f"{where}: no gold answer in {gold_field!r}; calibration grades samples "
                    "against it (pass require_gold=False to load questions alone)"
                )
            raw_id = row.get(id_field) if id_field is not None else None
            problem_id = f"line-{number}" if raw_id is None else str(raw_id)
            if not problem_id.strip():
                raise AdaptiveInputError(f"{where}: {id_field!r} is empty")
            if problem_id in line_of_id:
                raise AdaptiveInputError(
                    f"{where}: id {problem_id!r} repeats line {line_of_id[problem_id]}; "
                    "ids key calibration records and must be unique"
                )
            line_of_id[problem_id] = number
            level = row.get(level_field) if level_field is not None else None
            problems.append(
                Problem(
                    id=problem_id,
                    question=question.strip(),
                    gold=gold,
                    level=None if level is None else str(level),
                )
            )
    return problems


def _gold_text(value: Any, where: str, field: str) -> str | None:
    """The gold answer as text: numbers without a trailing ``.0``, strings stripped."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AdaptiveInputError(
            f"{where}: {field!r} must be a string or a number, got {type(value).__name__}"
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AdaptiveInputError(f"{where}: {field!r} is not a finite number: {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    return text or None


def check_gold(problems: Iterable[Problem]) -> None:
    """Raise if any problem lacks a gold answer or ids repeat, naming the culprits.

    Raises:
        AdaptiveInputError: Problems without gold, or a repeated id.
    """
    missing: list[str] = []
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise AdaptiveInputError(f"problem id {problem.id!r} repeats; ids must be unique")
        seen.add(problem.id)
        if problem.gold is None or not problem.gold.strip():
            missing.append(problem.id)
    if missing:
        shown = ", ".join(repr(i) for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise AdaptiveInputError(
            f"{len(missing)} problem(s) have no gold answer ({shown}{more}); "
            "calibration grades rollouts against it"
        )


__all__ = [
    "ARITHMETIC_LEVELS",
    "Problem",
    "arithmetic_suite",
    "check_gold",
    "load_jsonl",
    "train_test_split",
]
