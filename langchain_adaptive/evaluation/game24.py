"""Game of 24: an exact verifier, answer extraction, and the recorded GPT-4 samples.

A Game-of-24 answer is an arithmetic expression; it is right when it uses the
puzzle's four numbers, each exactly once, and equals 24. Model output is
untrusted text, so the expression is never handed to ``eval``: a small
tokenizer and recursive-descent parser build a tree over ``+ - * /`` and
parentheses, evaluated with exact :class:`~fractions.Fraction` arithmetic
(``8 / (3 - 8 / 3)`` is exactly 24, which floats would miss).

The puzzles come from ``24.csv`` (ranked by how long people take to solve
them); :func:`load_game24_recorded` pairs the Tree-of-Thoughts GPT-4 samples
with their puzzles, for replaying fixed versus adaptive sample allocation offline.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_adaptive.errors import AdaptiveInputError, DatasetError
from langchain_adaptive.evaluation.datasets import Problem

TARGET = 24
"""The value every Game-of-24 answer must reach."""

GAME24_QUESTION = (
    "Use the numbers {numbers} and basic arithmetic operations (+ - * /) to obtain 24. "
    "Use each number exactly once. End with a line of the form "
    "'Answer: <expression> = 24'."
)
"""A self-contained question (``{numbers}`` is filled in), for chat models without a few-shot
prompt; its ``Answer:`` line is what :func:`game24_answer` reads."""

TOT_INPUT_TEMPLATE = "Input: {numbers}"
"""The question as Tree-of-Thoughts' few-shot prompts end (the prompt supplies the rules)."""

_MAX_EXPRESSION_CHARS = 500
"""Longer text is refused: it bounds the tree's depth, and so the evaluator's recursion."""
_MAX_DEPTH = 100
"""Parenthesis and unary-minus nesting limit: deeper input is refused, not a RecursionError."""


class ExpressionError(AdaptiveInputError):
    """Text is not an arithmetic expression this parser accepts, or divides by zero."""


def _show(text: str) -> str:
    """Model output quoted in a message, cut short: it may be long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


# -- the parser ------------------------------------------------------------------------

_OPERATOR_ALIASES = str.maketrans(
    {
        "\u00d7": "*",  # multiplication sign
        "\u2715": "*",  # multiplication x
        "\u2716": "*",  # heavy multiplication x
        "\u22c5": "*",  # dot operator
        "\u00b7": "*",  # middle dot
        "\u00f7": "/",  # division sign
        "\u2215": "/",  # division slash
        "\u2212": "-",  # minus sign
        "\u2013": "-",  # en dash
    }
)
"""Operators models write in Unicode, read as their ASCII forms."""
_LATEX_ALIASES = {"times": "*", "cdot": "*", "div": "/", "left": "", "right": ""}
_LATEX_OPERATOR = re.compile(r"\\(times|cdot|div|left|right)(?![A-Za-z])")
"""LaTeX operators (``\\times``, ``\\div``, ``\\left(``), as in ``$(1+2) \\times 8$``."""
_TOKEN = re.compile(r"(?P<number>\d+(?:\.\d+)?)|(?P<symbol>[-+*/()])|(?P<bad>\S)")


@dataclass(frozen=True)
class _Number:
    value: Fraction


@dataclass(frozen=True)
class _Negate:
    operand: _Node


@dataclass(frozen=True)
class _Binary:
    op: str
    left: _Node
    right: _Node


_Node = _Number | _Negate | _Binary


def _tokens(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs; anything but numbers, ``+ - * /`` and parentheses is refused."""
    text = _LATEX_OPERATOR.sub(lambda m: _LATEX_ALIASES[m.group(1)], text)
    text = text.translate(_OPERATOR_ALIASES)
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "bad"
        if kind == "bad":
            bad = text[match.start() : match.start() + 20]
            raise ExpressionError(f"unexpected {bad!r} in {_show(text)}")
        tokens.append((kind, match.group()))
    return tokens


class _Parser:
    """Recursive descent over the grammar below; binary operators associate to the left.

    ``expr := term (('+'|'-') term)*``; ``term := factor (('*'|'/') factor)*``;
    ``factor := NUMBER | '(' expr ')' | '-' factor``.
    """

    def __init__(self, text: str) -> None:
        if len(text) > _MAX_EXPRESSION_CHARS:
            raise ExpressionError(f"expression longer than {_MAX_EXPRESSION_CHARS} characters")
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    def parse(self) -> _Node:
        if not self.tokens:
            raise ExpressionError(f"no expression in {_show(self.text)}")
        node = self._expression()
        if self.index < len(self.tokens):
            raise ExpressionError(
                f"unexpected {self.tokens[self.index][1]!r} in {_show(self.text)}"
            )
        return node

    def _peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def _expression(self) -> _Node:
        node = self._term()
        while (op := self._peek()) in ("+", "-"):
            self.index += 1
            node = _Binary(op, node, self._term())
        return node

    def _term(self) -> _Node:
        node = self._factor()
        while (op := self._peek()) in ("*", "/"):
            self.index += 1
            node = _Binary(op, node, self._factor())
        return node

    def _factor(self) -> _Node:
        if self.index >= len(self.tokens):
            raise ExpressionError(f"{_show(self.text)} ends where a number was expected")
        kind, token = self.tokens[self.index]
        self.index += 1
        if kind == "number":  # Fraction(int) is far cheaper than parsing a string
            return _Number(Fraction(int(token)) if token.isdigit() else Fraction(token))
        if token in ("(", "-"):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ExpressionError(f"expression nested deeper than {_MAX_DEPTH}")
            if token == "-":
                node: _Node = _Negate(self._factor())
            else:
                node = self._expression()
                if self._peek() != ")":
                    raise ExpressionError(f"unbalanced '(' in {_show(self.text)}")
                self.index += 1
            self.depth -= 1
            return node
        raise ExpressionError(
            f"unexpected {token!r} where a number was expected in {_show(self.text)}"
        )


def _value(node: _Node) -> Fraction:
    if isinstance(node, _Number):
        return node.value
    if isinstance(node, _Negate):
        return -_value(node.operand)
    left, right = _value(node.left), _value(node.right)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    if right == 0:
        raise ExpressionError("division by zero")
    return left / right


def _literals(node: _Node) -> list[Fraction]:
    if isinstance(node, _Number):
        return [node.value]
    if isinstance(node, _Negate):
        return _literals(node.operand)
    return _literals(node.left) + _literals(node.right)


def _has_negation(node: _Node) -> bool:
    if isinstance(node, _Number):
        return False
    if isinstance(node, _Negate):
        return True
    return _has_negation(node.left) or _has_negation(node.right)


def evaluate_expression(text: str) -> Fraction:
    """The exact value of an arithmetic expression over ``+ - * /``, parentheses and numbers.

    Unary minus is accepted; the Unicode multiplication and division signs and
    minus sign, and LaTeX's ``\\times``, ``\\cdot`` and ``\\div``, read as ``*``,
    ``/`` and ``-``. Nothing else is: no names, no ``**``, no calls, so model
    output is safe to pass.

    Raises:
        ExpressionError: The text is not such an expression, or divides by zero.

    Example:
        >>> evaluate_expression("8 / (3 - 8 / 3)")
        Fraction(24, 1)
    """
    return _value(_Parser(text).parse())


# -- answers ---------------------------------------------------------------------------

_ANSWER_LINE = re.compile(
    r"^[\s*_#>-]*(?:final\s+)?answer[\s*_]*[:\uff1a][\s*_]*(?P<rest>.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_WRAPPERS = re.compile(r"^(?:\$|\\\(|\\\[)+|(?:\$|\\\)|\\\])+$")


def _expression_part(text: str) -> str | None:
    """The expression of ``"<expression> = 24"`` (or ``"24 = <expression>"``), tidied."""
    text = text.strip().strip("*_`").strip()
    text = _WRAPPERS.sub("", text).strip().rstrip(".").strip()
    parts = [part.strip() for part in re.split(r"=|≈|≠", text)]
    reversed_form = len(parts) > 1 and parts[0] == str(TARGET) and parts[1]
    expression = parts[1] if reversed_form else parts[0]
    expression = _WRAPPERS.sub("", expression).strip()
    if not re.search(r"\d", expression) or re.search(
        r"[A-Za-z]", _LATEX_OPERATOR.sub("", expression)
    ):
        return None  # "None", "Not possible to obtain 24", an empty line
    return expression


def game24_answer(solution_text: str) -> str | None:
    """The expression on a solution's last ``Answer:`` line, without its ``= 24``.

    Tolerates ``Answer: (1+2)*8=24``, a missing ``= 24``, ``24 = ...``, Markdown
    bold and ``$...$``. Unicode operators are kept: the parser reads them.
    Without an ``Answer:`` line, a last line that is a whole equation reaching
    the target (``(6 / (9 - 7)) * 8 = 24``, as GPT-4 sometimes answers the
    standard prompt) is the answer; a step such as ``4 * 6 = 24 (left: 24)`` is not.

    Returns:
        The expression text, or ``None`` when there is no answer line or it
        holds no expression ("Answer: None", "Answer: Not possible to obtain 24").

    Example:
        >>> game24_answer("Steps:\\n10 - 4 = 6 (left: 5 6 6)\\nAnswer: (10 - 4) * (5 - 6 / 6) = 24")
        '(10 - 4) * (5 - 6 / 6)'
        >>> game24_answer("(6 / (9 - 7)) * 8 = 24")
        '(6 / (9 - 7)) * 8'
    """
    matches = list(_ANSWER_LINE.finditer(solution_text))
    if matches:
        return _expression_part(matches[-1].group("rest"))
    lines = [line for line in solution_text.splitlines() if line.strip()]
    return _bare_equation(lines[-1]) if lines else None


def _bare_equation(line: str) -> str | None:
    """The expression of a line that is exactly ``<expression> = 24`` (or ``24 = ...``)."""
    text = _WRAPPERS.sub("", line.strip().strip("*_`").strip()).strip().rstrip(".").strip()
    sides = [_WRAPPERS.sub("", side).strip() for side in text.split("=")]
    if len(sides) != 2 or str(TARGET) not in sides:
        return None
    expression = sides[1] if sides[0] == str(TARGET) else sides[0]
    return _expression_part(expression)


def puzzle_numbers(text: str) -> tuple[int, ...]:
    """The numbers of a puzzle written as ``"4 5 6 10"`` (commas and brackets are fine).

    Raises:
        AdaptiveInputError: The text holds no number, or one that is not a whole number.
    """
    if re.search(r"\d\.\d|[^\d\s,;\[\]()]", text):
        raise AdaptiveInputError(f"a puzzle is whole numbers like '4 5 6 10', got {text!r}")
    numbers = tuple(int(n) for n in re.findall(r"\d+", text))
    if not numbers:
        raise AdaptiveInputError(f"no numbers in the puzzle {text!r}")
    return numbers


def check_game24(numbers: Sequence[int] | str, expression: str, *, target: int = TARGET) -> bool:
    """Whether ``expression`` uses exactly ``numbers``, each once, and equals ``target`` exactly.

    The numbers are compared as a multiset of the expression's literals, so
    reusing one, leaving one out or bringing in another fails. Only binary
    ``+ - * /`` are allowed (no unary minus: it is not a Game-of-24 operation).
    Malformed text and division by zero are wrong answers, not errors.

    Args:
        numbers: The puzzle, as integers or as text like ``"4 5 6 10"``.
        expression: The answer expression, without ``= 24``.
        target: The value to reach.

    Example:
        >>> check_game24([4, 5, 6, 10], "(5 * (10 - 4)) - 6")
        True
        >>> check_game24("4 5 6 10", "(5 * (10 - 4)) - 6 + 0")
        False
    """
    wanted = puzzle_numbers(numbers) if isinstance(numbers, str) else tuple(numbers)
    try:
        tree = _Parser(expression).parse()
        if _has_negation(tree):
            return False
        used = Counter((f.numerator, f.denominator) for f in _literals(tree))
        if used != Counter((int(n), 1) for n in wanted):
            return False
        return _value(tree) == target
    except ExpressionError:
        return False


def game24_matches(gold: str, answer: str) -> bool:
    """Grade an answer against a puzzle; an :data:`~langchain_adaptive.answers.AnswerEquivalence`.

    ``gold`` is the puzzle's numbers (``"4 5 6 10"``, a :class:`Problem`'s gold
    from :func:`load_game24_puzzles`); ``answer`` is an expression, with or
    without ``= 24``, or a whole solution (read by :func:`game24_answer`). Not
    symmetric: it grades, it does not compare two answers.
    """
    whole_solution = _ANSWER_LINE.search(answer) is not None or "\n" in answer.strip()
    expression = game24_answer(answer) if whole_solution else _expression_part(answer)
    if expression is None:
        return False
    try:
        numbers = puzzle_numbers(gold)
    except AdaptiveInputError:
        return False
    return check_game24(numbers, expression)


# -- puzzles and recorded samples ------------------------------------------------------


class Game24Puzzle(BaseModel):
    """One puzzle with recorded model samples and their recorded verdicts.

    Example:
        >>> puzzle = Game24Puzzle(
        ...     idx=900, rank=901, numbers=(4, 5, 6, 10), question="Input: 4 5 6 10",
        ...     ys=("Answer: (5 * (10 - 4)) - 6 = 24",), r=(1,),
        ... )
        >>> puzzle.gold, puzzle.success_rate
        ('4 5 6 10', 1.0)
    """

    model_config = ConfigDict(frozen=True)

    idx: int = Field(ge=0)
    """0-based index into ``24.csv`` as Tree-of-Thoughts numbers puzzles."""
    rank: int = Field(ge=1)
    """The ``Rank`` column of ``24.csv``: ``idx + 1``; higher ranks took people longer."""
    numbers: tuple[int, int, int, int]
    """The four numbers to combine."""
    question: str = Field(min_length=1)
    """The question text, as :func:`load_game24_puzzles` writes it."""
    ys: tuple[str, ...] = ()
    """Recorded samples (whole solutions), in recording order."""
    r: tuple[int, ...] = ()
    """Recorded verdicts, 1 when ``ys[i]`` was graded correct."""

    @model_validator(mode="after")
    def _consistent(self) -> Game24Puzzle:
        if self.rank != self.idx + 1:
            raise ValueError(f"rank must be idx + 1, got idx={self.idx}, rank={self.rank}")
        if len(self.ys) != len(self.r):
            raise ValueError(f"{len(self.ys)} samples but {len(self.r)} verdicts")
        if any(v not in (0, 1) for v in self.r):
            raise ValueError(f"verdicts must be 0 or 1, got {sorted(set(self.r))}")
        return self

    @property
    def gold(self) -> str:
        """The numbers as :func:`game24_matches` takes them: ``"4 5 6 10"``."""
        return " ".join(map(str, self.numbers))

    @property
    def success_rate(self) -> float:
        """Share of recorded samples graded correct (0 when there are none)."""
        return sum(self.r) / len(self.r) if self.r else 0.0

    def to_problem(self) -> Problem:
        """The puzzle as a :class:`Problem`, with the id :func:`load_game24_puzzles` gives it."""
        return Problem(
            id=_problem_id(self.rank),
            question=self.question,
            gold=self.gold,
            level=_level(self.rank),
        )


def _problem_id(rank: int) -> str:
    return f"game24-{rank}"


def _level(rank: int) -> str:
    """Hundred-rank bands (``"ranks 901-1000"``): rank tracks how hard people found it."""
    low = (rank - 1) // 100 * 100 + 1
    return f"ranks {low}-{low + 99}"


def _read_csv(csv_path: Path) -> dict[int, tuple[int, int, int, int]]:
    """``Rank`` to the four ``Puzzles`` numbers, checked row by row."""
    puzzles: dict[int, tuple[int, int, int, int]] = {}
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"Rank", "Puzzles"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(
                f"{csv_path}: no {sorted(missing)} column (it has {reader.fieldnames})",
                path=str(csv_path),
                line=1,
            )
        for row in reader:
            line = reader.line_num
            try:
                rank = int(row["Rank"])
                numbers = puzzle_numbers(row["Puzzles"] or "")
            except (ValueError, TypeError) as error:
                raise DatasetError(
                    f"{csv_path}, line {line}: bad Rank or Puzzles ({error})",
                    path=str(csv_path),
                    line=line,
                ) from error
            if len(numbers) != 4:
                raise DatasetError(
                    f"{csv_path}, line {line}: a puzzle has 4 numbers, got {row['Puzzles']!r}",
                    path=str(csv_path),
                    line=line,
                )
            if rank in puzzles:
                raise DatasetError(
                    f"{csv_path}, line {line}: rank {rank} repeats", path=str(csv_path), line=line
                )
            puzzles[rank] = (numbers[0], numbers[1], numbers[2], numbers[3])
    return puzzles


def load_game24_puzzles(
    csv_path: str | os.PathLike[str],
    *,
    ranks: Iterable[int] | None = None,
    question_template: str = GAME24_QUESTION,
) -> list[Problem]:
    """Read Game-of-24 puzzles from ``24.csv`` as problems whose gold is the numbers.

    Grade answers with :func:`game24_matches` (the gold is the puzzle, not one
    expression: many are right).

    Args:
        csv_path: ``24.csv`` (columns ``Rank`` and ``Puzzles``).
        ranks: The ranks wanted (Tree-of-Thoughts tests on 901-1000); ``None``
            reads every puzzle.
        question_template: The question, with ``{numbers}`` for ``"4 5 6 10"``;
            :data:`GAME24_QUESTION` or :data:`TOT_INPUT_TEMPLATE`.

    Returns:
        Problems in rank order, with ids ``game24-<rank>`` and levels of hundred
        ranks (``"ranks 901-1000"``).

    Raises:
        FileNotFoundError: ``csv_path`` does not exist.
        DatasetError: A malformed row, a repeated rank, or a wanted rank not in the file.
    """
    source = Path(csv_path)
    puzzles = _read_csv(source)
    wanted = sorted(puzzles) if ranks is None else sorted(set(ranks))
    absent = [rank for rank in wanted if rank not in puzzles]
    if absent:
        raise DatasetError(f"{source}: no puzzles of rank {absent[:10]}", path=str(source))
    return [
        Problem(
            id=_problem_id(rank),
            question=question_template.format(numbers=" ".join(map(str, puzzles[rank]))),
            gold=" ".join(map(str, puzzles[rank])),
            level=_level(rank),
        )
        for rank in wanted
    ]


def load_game24_recorded(
    samples_json: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    *,
    question_template: str = GAME24_QUESTION,
) -> list[Game24Puzzle]:
    """Pair recorded Tree-of-Thoughts samples with their puzzles.

    The samples file is a JSON list of ``{"idx", "ys", "infos": [{"r": 0|1}, ...]}``
    (the chain-of-thought logs) or ``{"idx", "ys", "accs": [true|false, ...]}`` (the
    standard-prompt logs); puzzle ``idx`` is the row of ``24.csv`` whose ``Rank`` is
    ``idx + 1``.

    Raises:
        FileNotFoundError: Either file does not exist.
        DatasetError: Malformed JSON or records, a repeated ``idx``, an ``idx``
            with no puzzle, or samples and verdicts of different lengths; the
            message names the item.
    """
    source = Path(samples_json)
    puzzles = _read_csv(Path(csv_path))
    try:
        records = json.loads(source.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{source}, line {error.lineno}: not valid JSON ({error.msg})",
            path=str(source),
            line=error.lineno,
        ) from error
    if not isinstance(records, list):
        raise DatasetError(f"{source}: expected a JSON list of records", path=str(source))
    result: list[Game24Puzzle] = []
    item_of_idx: dict[int, int] = {}
    for item, record in enumerate(records, start=1):
        where = f"{source}, item {item}"
        try:
            puzzle = _recorded_puzzle(record, puzzles, question_template)
        except (ValueError, TypeError) as error:  # pydantic ValidationError is a ValueError
            raise DatasetError(f"{where}: {error}", path=str(source), line=item) from error
        if puzzle.idx in item_of_idx:
            raise DatasetError(
                f"{where}: idx {puzzle.idx} repeats item {item_of_idx[puzzle.idx]}",
                path=str(source),
                line=item,
            )
        item_of_idx[puzzle.idx] = item
        result.append(puzzle)
    return result


def _recorded_puzzle(
    record: Any, puzzles: dict[int, tuple[int, int, int, int]], question_template: str
) -> Game24Puzzle:
    if not isinstance(record, dict):
        raise TypeError(f"expected an object, got {type(record).__name__}")
    idx, ys = record.get("idx"), record.get("ys")
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise TypeError(f"'idx' must be an integer, got {idx!r}")
    if "infos" not in record and isinstance(record.get("accs"), list):
        # The standard-prompt logs store verdicts as ``accs``: one boolean a sample.
        accs = record["accs"]
        verdicts = [int(a) if isinstance(a, bool) else a for a in accs]
    else:
        infos = record.get("infos")
        if not isinstance(ys, list) or not isinstance(infos, list):
            raise TypeError("'ys' and 'infos' must be lists (or 'ys' and 'accs')")
        verdicts = [info.get("r") if isinstance(info, dict) else None for info in infos]
    if not isinstance(ys, list):
        raise TypeError("'ys' must be a list")
    if idx + 1 not in puzzles:
        raise ValueError(f"no puzzle of rank {idx + 1} (idx {idx}) in the CSV")
    numbers = puzzles[idx + 1]
    return Game24Puzzle(
        idx=idx,
        rank=idx + 1,
        numbers=numbers,
        question=question_template.format(numbers=" ".join(map(str, numbers))),
        ys=tuple(ys),
        r=tuple(verdicts),
    )


__all__ = [
    "GAME24_QUESTION",
    "TARGET",
    "TOT_INPUT_TEMPLATE",
    "ExpressionError",
    "Game24Puzzle",
    "check_game24",
    "evaluate_expression",
    "game24_answer",
    "game24_matches",
    "load_game24_puzzles",
    "load_game24_recorded",
    "puzzle_numbers",
]
