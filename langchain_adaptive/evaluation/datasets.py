"""Questions with gold answers: a seeded arithmetic suite, a split by question, loaders.

Calibration and evaluation need questions whose answers can be checked and
whose difficulty varies, so a PRM's scores can be compared with how often the
policy actually succeeds. :func:`arithmetic_suite` generates such a suite from a
seed (one- to three-digit addition, subtraction and multiplication, then
two-step expressions, and, on request, two- and three-step expressions on
one-digit numbers with reference solutions written step by step, for
step-level search); :func:`load_dataset` reads a user's own JSON Lines or
JSON dataset with a field mapping, and :func:`load_gsm8k` and :func:`load_math`
read two public benchmarks with their gold answers (``#### 42`` and
``\\boxed{42}``). Calibrators are evaluated on held-out questions, so
:func:`train_test_split` splits by question text: no question (and so no prefix
of its solutions) is on both sides.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive.errors import AdaptiveInputError, ConfigurationError, DatasetError
from langchain_adaptive.inputs import FewShotExample


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
    solution: str | None = None
    """A reference solution, one step per paragraph, ending "The answer is X." (when known)."""


# -- the arithmetic suite --------------------------------------------------------------

_Builder = Callable[[random.Random], tuple[str, int]]
_SolvedBuilder = Callable[[random.Random], tuple[str, int, str | None]]


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


def _solution(*lines: str, value: int) -> str:
    """A reference solution: one step a paragraph, then the answer sentence."""
    return "\n\n".join([*lines, f"The answer is {value}."])


def _steps2(rng: random.Random) -> tuple[str, int, str | None]:
    """Two operations on one-digit numbers, e.g. ``(3 + 4) * 2``, solved one operation a step."""
    a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(2, 9)
    form = rng.randrange(4)
    if form == 0:
        s = a + b
        v = s * c
        return (
            f"What is ({a} + {b}) * {c}?",
            v,
            _solution(f"{a} + {b} = {s}", f"{s} * {c} = {v}", value=v),
        )
    if form == 1:
        s = a + b
        c = min(c, s)
        v = s - c
        return (
            f"What is ({a} + {b}) - {c}?",
            v,
            _solution(f"{a} + {b} = {s}", f"{s} - {c} = {v}", value=v),
        )
    p = a * b
    if form == 2:
        v = p + c
        return (
            f"What is {a} * {b} + {c}?",
            v,
            _solution(f"{a} * {b} = {p}", f"{p} + {c} = {v}", value=v),
        )
    c = min(c, p)
    v = p - c
    return (
        f"What is {a} * {b} - {c}?",
        v,
        _solution(f"{a} * {b} = {p}", f"{p} - {c} = {v}", value=v),
    )


def _steps3(rng: random.Random) -> tuple[str, int, str | None]:
    """Three operations on one-digit numbers, e.g. ``(3 + 4) * 2 - 5``, one operation a step."""
    a, b, c, d = (rng.randint(1, 9) for _ in range(4))
    form = rng.randrange(4)
    if form == 0:
        s, c = a + b, max(c, 2)
        p = s * c
        d = min(d, p)
        v = p - d
        lines = (f"{a} + {b} = {s}", f"{s} * {c} = {p}", f"{p} - {d} = {v}")
        return f"What is ({a} + {b}) * {c} - {d}?", v, _solution(*lines, value=v)
    if form == 1:
        s, c = a + b, max(c, 2)
        p = s * c
        v = p + d
        lines = (f"{a} + {b} = {s}", f"{s} * {c} = {p}", f"{p} + {d} = {v}")
        return f"What is ({a} + {b}) * {c} + {d}?", v, _solution(*lines, value=v)
    if form == 2:
        p, q = a * b, c * d
        v = p + q
        lines = (f"{a} * {b} = {p}", f"{c} * {d} = {q}", f"{p} + {q} = {v}")
        return f"What is {a} * {b} + {c} * {d}?", v, _solution(*lines, value=v)
    c, d = max(c, d), min(c, d)
    s, t = a + b, c - d
    v = s * t
    lines = (f"{a} + {b} = {s}", f"{c} - {d} = {t}", f"{s} * {t} = {v}")
    return f"What is ({a} + {b}) * ({c} - {d})?", v, _solution(*lines, value=v)


def _unsolved(build: _Builder) -> _SolvedBuilder:
    """A builder without a reference solution (its random draws stay exactly the same)."""

    def solved(rng: random.Random) -> tuple[str, int, str | None]:
        question, value = build(rng)
        return question, value, None

    return solved


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

MULTI_STEP_LEVELS: tuple[str, ...] = ("steps2", "steps3")
"""Levels for step-level search, not in the default suite (so its questions stay the same).

``steps2``: ``(a + b) * c``, ``(a + b) - c``, ``a * b + c`` or ``a * b - c``;
``steps3``: ``(a + b) * c - d``, ``(a + b) * c + d``, ``a * b + c * d`` or
``(a + b) * (c - d)``; every number one digit and every result non-negative.
Each problem carries a reference ``solution`` with one operation a step, the
form the bundled model's steps take.
"""

_BUILDERS: dict[str, _SolvedBuilder] = {
    **{f"add{d}": _unsolved(_binary("+", d)) for d in (1, 2, 3)},
    **{f"sub{d}": _unsolved(_binary("-", d)) for d in (1, 2, 3)},
    **{f"mul{d}": _unsolved(_binary("*", d)) for d in (1, 2, 3)},
    "two_step": _unsolved(_two_step),
    "steps2": _steps2,
    "steps3": _steps3,
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
        levels: Level names from :data:`ARITHMETIC_LEVELS` or
            :data:`MULTI_STEP_LEVELS`, in the order wanted.

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
            f"unknown arithmetic levels {unknown}; choose from "
            f"{[*ARITHMETIC_LEVELS, *MULTI_STEP_LEVELS]}"
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
            question, value, solution = _BUILDERS[level](rng)
            if question in seen:
                continue
            seen.add(question)
            problems.append(
                Problem(
                    id=f"{level}-{len(seen) - 1}",
                    question=question,
                    gold=str(value),
                    level=level,
                    solution=solution,
                )
            )
    return problems


def worked_examples(problems: Iterable[Problem]) -> list[FewShotExample]:
    """Problems with reference solutions, as few-shot examples for a runnable's ``examples``.

    Raises:
        ConfigurationError: A problem has no reference solution (of the arithmetic
            suite, only :data:`MULTI_STEP_LEVELS` have them).

    Example:
        >>> [e.question for e in worked_examples(arithmetic_suite(1, seed=3, levels=("steps2",)))]
        ['What is (9 + 8) - 5?']
    """
    examples = []
    for problem in problems:
        if problem.solution is None:
            raise ConfigurationError(f"problem {problem.id!r} has no reference solution to show")
        examples.append(FewShotExample(question=problem.question, solution=problem.solution))
    return examples


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

DatasetFormat = Literal["auto", "jsonl", "json"]
"""How a dataset file is read: sniffed (``auto``), JSON Lines, or one JSON list of objects."""

GoldParser = Callable[[Any], "str | int | float | None"]
"""Turns a record's raw gold field into the gold answer, or ``None`` when it holds none."""

_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})
_MISSING: Any = object()


class _Record(NamedTuple):
    position: int
    """1-based line (JSON Lines) or item (JSON list): what an error message names."""
    unit: str
    row: Any


def load_dataset(
    path: str | os.PathLike[str],
    *,
    question_field: str = "question",
    gold_field: str = "gold",
    id_field: str | None = None,
    level_field: str | None = None,
    gold_parser: GoldParser | None = None,
    limit: int | None = None,
    id_prefix: str | None = None,
    require_gold: bool = True,
    file_format: DatasetFormat = "auto",
) -> list[Problem]:
    """Read problems from a JSON Lines file or a JSON list of objects, mapping its fields.

    Evaluation datasets come in many shapes, so fields are named by the caller
    (dotted paths such as ``"meta.answer"`` reach into nested objects; a key that
    itself contains the dot wins). A dataset is input the user controls, so the
    first bad record fails the load with the file and line rather than being
    skipped: silently dropping questions would bias an evaluation.

    Args:
        path: The file. ``.jsonl``/``.ndjson`` files are JSON Lines; any other
            file is a JSON list when its first non-blank character is ``[``, and
            JSON Lines otherwise (blank lines are ignored).
        question_field: Field of the question text.
        gold_field: Field of the gold answer (numbers are turned into text).
        id_field: Field of the problem id; required in every record when given.
            ``None`` numbers the problems ``f"{id_prefix}{n}"`` with ``n`` the
            1-based line (JSON Lines) or item (JSON list).
        level_field: Field of an optional level or subset name (may be absent).
        gold_parser: Turns the raw gold field into the answer, e.g.
            :func:`gsm8k_gold` or :func:`boxed_answer`; ``None`` keeps the field.
        limit: Read at most this many problems (the first ones in the file).
        id_prefix: Prefix of generated ids; default ``"line-"`` for JSON Lines
            and ``"item-"`` for a JSON list.
        require_gold: Fail on a problem without a gold answer (grading needs one).
        file_format: ``"auto"`` (as described under ``path``), ``"jsonl"`` or ``"json"``.

    Returns:
        The problems in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetError: A record is not valid JSON or not an object, lacks the
            question, the id (when ``id_field`` is given) or the gold answer
            (when ``require_gold`` is set), ``gold_parser`` fails on it, or its
            id repeats; the message and the error's ``path``/``line`` name it.
        ConfigurationError: A negative ``limit``.

    Example:
        >>> import json, os, tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        ...     json.dump([{"q": "1 + 1?", "a": {"value": 2}}], f)
        >>> load_dataset(f.name, question_field="q", gold_field="a.value")
        [Problem(id='item-1', question='1 + 1?', gold='2', level=None)]
        >>> os.remove(f.name)
    """
    fields = _Fields(
        question=question_field,
        gold=gold_field,
        id=id_field,
        id_required=id_field is not None,
        levels=() if level_field is None else (level_field,),
        gold_parser=gold_parser,
        require_gold=require_gold,
    )
    return _load(Path(path), fields, file_format=file_format, id_prefix=id_prefix, limit=limit)


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

    The calibration CLI's format: :func:`load_dataset` with these defaults, except
    that a record without an id is numbered rather than refused.

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
        DatasetError: A line is not a JSON object, lacks the question, lacks the
            gold answer while ``require_gold`` is set, or repeats an id; the
            message names the file and line.
    """
    fields = _Fields(
        question=question_field,
        gold=gold_field,
        id=id_field,
        id_required=False,
        levels=() if level_field is None else (level_field,),
        gold_parser=None,
        require_gold=require_gold,
    )
    return _load(Path(path), fields, file_format="jsonl", id_prefix="line-", limit=None)


class _Fields(NamedTuple):
    """How a loader maps a record's fields onto a :class:`Problem`."""

    question: str
    gold: str
    id: str | None
    id_required: bool
    levels: tuple[str, ...]
    gold_parser: GoldParser | None
    require_gold: bool


class _RecordError(Exception):
    """A record is unusable; the loader adds where it is."""


def _load(
    source: Path,
    fields: _Fields,
    *,
    file_format: DatasetFormat,
    id_prefix: str | None,
    limit: int | None,
) -> list[Problem]:
    """The one loop behind every loader, so all report bad records the same way."""
    if file_format not in ("auto", "jsonl", "json"):
        raise ConfigurationError(
            f"file_format must be 'auto', 'jsonl' or 'json', got {file_format!r}"
        )
    if limit is not None and limit < 0:
        raise ConfigurationError(f"limit must be at least 0, got {limit}")
    if source.is_dir():
        raise DatasetError(f"{source}: is a directory, not a dataset file", path=str(source))
    if file_format == "auto":
        file_format = _sniff(source)
    problems: list[Problem] = []
    position_of_id: dict[str, int] = {}
    for record in _records(source, file_format):
        if limit is not None and len(problems) >= limit:
            break
        where = f"{source}, {record.unit} {record.position}"
        try:
            question, gold, raw_id, level = _read_record(record.row, fields)
            if raw_id is None:
                prefix = id_prefix if id_prefix is not None else f"{record.unit}-"
                raw_id = f"{prefix}{record.position}"
            if raw_id in position_of_id:
                raise _RecordError(
                    f"id {raw_id!r} repeats {record.unit} {position_of_id[raw_id]}; "
                    "ids key evaluation and calibration records and must be unique"
                )
        except _RecordError as error:
            raise DatasetError(
                f"{where}: {error}", path=str(source), line=record.position
            ) from error.__cause__
        position_of_id[raw_id] = record.position
        problems.append(Problem(id=raw_id, question=question, gold=gold, level=level))
    return problems


def _read_record(row: Any, fields: _Fields) -> tuple[str, str | None, str | None, str | None]:
    """``(question, gold, id, level)`` of one record; ``id`` is ``None`` when it has none."""
    if not isinstance(row, dict):
        raise _RecordError(f"expected a JSON object, got {_json_type(row)}")
    question = _field(row, fields.question)
    if question is _MISSING:
        raise _RecordError(
            f"{fields.question!r} must be a non-empty string, but the record has no such "
            f"field (it has {_keys(row)})"
        )
    if not isinstance(question, str) or not question.strip():
        raise _RecordError(f"{fields.question!r} must be a non-empty string, got {question!r}")

    raw_gold = _field(row, fields.gold)
    value = None if raw_gold is _MISSING else raw_gold
    if fields.gold_parser is not None and value is not None:
        try:
            value = fields.gold_parser(value)
        except Exception as error:  # a user's parser: any failure is this record's
            raise _RecordError(
                f"could not parse the gold answer in {fields.gold!r} "
                f"({type(error).__name__}: {error})"
            ) from error
    gold = _gold_text(value, fields.gold)
    if gold is None and fields.require_gold:
        if raw_gold is _MISSING:
            found = f"the record has no such field (it has {_keys(row)})"
        elif fields.gold_parser is None or raw_gold is None:
            found = "it is empty"
        else:
            found = f"{getattr(fields.gold_parser, '__name__', 'gold_parser')} found none in it"
        raise _RecordError(
            f"no gold answer in {fields.gold!r}: {found}; grading needs one "
            "(pass require_gold=False to load questions alone)"
        )

    problem_id: str | None = None
    raw_id = _MISSING if fields.id is None else _field(row, fields.id)
    if raw_id is _MISSING or raw_id is None:
        if fields.id_required:
            raise _RecordError(f"no id in {fields.id!r} (the record has {_keys(row)})")
    elif isinstance(raw_id, dict | list):
        raise _RecordError(f"{fields.id!r} must be a string or a number, got {_json_type(raw_id)}")
    else:
        problem_id = str(raw_id)
        if not problem_id.strip():
            raise _RecordError(f"{fields.id!r} is empty")

    levels = (_field(row, name) for name in fields.levels)
    level = next((v for v in levels if v is not None and v is not _MISSING), None)
    return question.strip(), gold, problem_id, None if level is None else str(level)


def _sniff(source: Path) -> DatasetFormat:
    """JSON Lines by suffix, else a JSON list when the file starts with ``[``."""
    if source.suffix.lower() in _JSONL_SUFFIXES:
        return "jsonl"
    with source.open(encoding="utf-8-sig") as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return "json" if stripped[0] == "[" else "jsonl"
    return "jsonl"


def _records(source: Path, file_format: DatasetFormat) -> Iterator[_Record]:
    """The file's records with their positions; JSON Lines is streamed."""
    if file_format == "json":
        text = source.read_text(encoding="utf-8-sig")
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetError(
                f"{source}, line {error.lineno}: not valid JSON ({error.msg})",
                path=str(source),
                line=error.lineno,
            ) from error
        if not isinstance(rows, list):
            raise DatasetError(
                f"{source}: expected a JSON list of objects (or JSON Lines), "
                f"got {_json_type(rows)}",
                path=str(source),
            )
        for index, row in enumerate(rows, start=1):
            yield _Record(index, "item", row)
        return
    with source.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(
                    f"{source}, line {number}: not valid JSON ({error.msg})",
                    path=str(source),
                    line=number,
                ) from error
            yield _Record(number, "line", row)


def _field(row: dict[str, Any], name: str) -> Any:
    """``row[name]``, or a dotted path through nested objects (and list indices)."""
    if name in row:
        return row[name]
    if "." not in name:
        return _MISSING
    value: Any = row
    for part in name.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _keys(row: dict[str, Any]) -> str:
    keys = sorted(map(str, row))
    shown = ", ".join(repr(k) for k in keys[:10])
    return f"fields {shown}{', ...' if len(keys) > 10 else ''}" if keys else "no fields"


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _gold_text(value: Any, field: str) -> str | None:
    """The gold answer as text: numbers without a trailing ``.0``, strings stripped."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _RecordError(f"{field!r} must be a string or a number, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _RecordError(f"{field!r} is not a finite number: {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    return text or None


# -- ready loaders ---------------------------------------------------------------------

_GSM8K_MARK = "####"


def gsm8k_gold(answer_text: str) -> str | None:
    """The gold number of a GSM8K answer: what follows the last ``####``, commas removed.

    GSM8K answers end with a worked solution then ``#### 1,200``; the number is
    the gold, written without thousands separators so it compares as a number.

    Example:
        >>> gsm8k_gold("80,000+50,000=130,000\\n#### 70,000")
        '70000'
    """
    if not isinstance(answer_text, str):
        raise TypeError(f"a GSM8K answer is text, got {type(answer_text).__name__}")
    mark = answer_text.rfind(_GSM8K_MARK)
    if mark == -1:
        return None
    gold = answer_text[mark + len(_GSM8K_MARK) :].strip().replace(",", "")
    return gold or None


def load_gsm8k(
    path: str | os.PathLike[str], *, limit: int | None = None, id_prefix: str | None = None
) -> list[Problem]:
    """Read a GSM8K split (``{"question", "answer"}`` a line) with its ``####`` gold numbers.

    Args:
        path: ``train.jsonl`` or ``test.jsonl`` of openai/grade-school-math.
        limit: Read at most this many problems.
        id_prefix: Prefix of the line-numbered ids; default ``f"gsm8k-{stem}-"``
            (``gsm8k-test-1`` is the first line of ``test.jsonl``).

    Raises:
        DatasetError: A line without a question or without ``####`` gold.
    """
    source = Path(path)
    return load_dataset(
        source,
        question_field="question",
        gold_field="answer",
        gold_parser=gsm8k_gold,
        limit=limit,
        id_prefix=f"gsm8k-{source.stem}-" if id_prefix is None else id_prefix,
        file_format="jsonl",
    )


_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def boxed_answer(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces balanced.

    MATH marks each solution's final answer this way; a regex cannot match the
    nested braces of ``\\boxed{\\frac{1}{2}}``, so braces are counted (escaped
    ``\\{``/``\\}`` are skipped). The brace-less ``\\boxed 5`` form counts too.

    Returns:
        The stripped content, or ``None`` when there is no complete, non-empty box.

    Example:
        >>> boxed_answer(r"so $x = \\boxed{\\frac{1}{2}}$ and \\boxed{\\{1, 2\\}}")
        '\\\\{1, 2\\\\}'
    """
    if not isinstance(text, str):
        raise TypeError(f"a solution is text, got {type(text).__name__}")
    for match in reversed(list(_BOXED.finditer(text))):
        content = _box_content(text, match.end())
        if content:
            return content
    return None


def _box_content(text: str, start: int) -> str | None:
    i = start
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":  # "\boxed 5$": up to the end of the math or the line
        if i == start:
            return None
        end = re.search(r"[$\n]|\\\)|\\\]", text[i:])
        return text[i : i + end.start() if end else len(text)].strip() or None
    depth = 0
    j = i
    while j < len(text):
        char = text[j]
        if char == "\\":
            j += 2  # an escaped character, \{ and \} included, never opens or closes
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip() or None
        j += 1
    return None  # unbalanced: the box never closes


def load_math(
    path: str | os.PathLike[str],
    *,
    id_field: str | None = None,
    limit: int | None = None,
    id_prefix: str | None = None,
) -> list[Problem]:
    """Read MATH-style records (``{problem, solution, level?, type?}``), gold from ``\\boxed{}``.

    The gold answer is the last boxed expression of the reference solution, as
    in the MATH benchmark; ``level`` (e.g. ``"Level 5"``) becomes the problem's
    level, or the subject ``type`` when there is no level.

    Args:
        path: A JSON Lines file or a JSON list of records (e.g. MATH-500's
            ``test.jsonl``).
        id_field: Field of the id (MATH-500 has ``unique_id``); ``None`` numbers
            the problems by position.
        limit: Read at most this many problems.
        id_prefix: Prefix of generated ids; default ``f"math-{stem}-"``.

    Raises:
        DatasetError: A record without a problem, or whose solution has no box.
    """
    source = Path(path)
    fields = _Fields(
        question="problem",
        gold="solution",
        id=id_field,
        id_required=id_field is not None,
        levels=("level", "type"),
        gold_parser=boxed_answer,
        require_gold=True,
    )
    prefix = f"math-{source.stem}-" if id_prefix is None else id_prefix
    return _load(source, fields, file_format="auto", id_prefix=prefix, limit=limit)


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
    "MULTI_STEP_LEVELS",
    "DatasetFormat",
    "GoldParser",
    "Problem",
    "arithmetic_suite",
    "boxed_answer",
    "check_gold",
    "gsm8k_gold",
    "load_dataset",
    "load_gsm8k",
    "load_jsonl",
    "load_math",
    "train_test_split",
    "worked_examples",
]
