"""Tests for langchain_adaptive.evaluation.game24: parser, verifier, recorded samples."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_adaptive.answers import AnswerEquivalence
from langchain_adaptive.errors import AdaptiveInputError, DatasetError
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.evaluation.game24 import (
    GAME24_QUESTION,
    TOT_INPUT_TEMPLATE,
    ExpressionError,
    Game24Puzzle,
    check_game24,
    evaluate_expression,
    game24_answer,
    game24_matches,
    load_game24_puzzles,
    load_game24_recorded,
    puzzle_numbers,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
GAME24 = SHARED / "data" / "game24"
CSV = GAME24 / "24.csv"
SAMPLES = GAME24 / "gpt-4_cot_samples_puzzles900-999.json"
needs_shared = pytest.mark.skipif(
    not (CSV.is_file() and SAMPLES.is_file()),
    reason=f"the shared Game-of-24 data is not at {GAME24} (it sits beside the repository in CI)",
)

# -- the parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8 / (3 - 8 / 3)", Fraction(24)),  # floats give 23.999999999999996
        ("1 + 2 * 3", Fraction(7)),
        ("(1 + 2) * 3", Fraction(9)),
        ("10 - 4 - 3", Fraction(3)),  # left-associative
        ("24 / 4 / 3", Fraction(2)),
        ("2 * 3 / 4", Fraction(3, 2)),
        ("-3 + 5", Fraction(2)),
        ("2 * -3", Fraction(-6)),
        ("-(2 - 5)", Fraction(3)),
        ("1.5 * 4", Fraction(6)),
        ("((((7))))", Fraction(7)),
        ("  6\t*\n4 ", Fraction(24)),
        ("6 \u00d7 4", Fraction(24)),  # multiplication sign
        ("48 \u00f7 2", Fraction(24)),  # division sign
        ("30 \u2212 6", Fraction(24)),  # minus sign
        (r"\left(1 + 2\right) \times 8 \div 1", Fraction(24)),
    ],
)
def test_evaluate_expression_is_exact(text: str, value: Fraction) -> None:
    assert evaluate_expression(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "__import__('os').system('true')",
        "os",
        "2 ** 3",
        "2 ^ 3",
        "2 // 3",
        "1e3",
        "24.",
        "abs(-24)",
        "(1 + 2",
        "1 + 2)",
        "1 +",
        "* 2",
        "1 2",
        "()",
        "[1 + 2] * 8",
        "1 = 1",
        "None",
        "4 / (2 - 2)",  # division by zero
        "1 / 0",
        "(" * 200 + "1" + ")" * 200,  # too deep
        "-" * 200 + "1",
        "1" + " + 1" * 600,  # too long
    ],
)
def test_evaluate_expression_refuses_anything_else(text: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate_expression(text)


def test_expression_error_is_an_input_error() -> None:
    with pytest.raises(AdaptiveInputError, match="division by zero"):
        evaluate_expression("1 / (3 - 3)")


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_Tree = int | tuple[str, "_Tree"] | tuple[str, "_Tree", "_Tree"]


def _trees() -> st.SearchStrategy[_Tree]:
    leaves = st.integers(min_value=0, max_value=30)
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.tuples(st.sampled_from("+-*/"), children, children),
            st.tuples(st.just("neg"), children),
        ),
        max_leaves=12,
    )


def _reference(tree: _Tree) -> Fraction:
    """The tree's value by Fraction arithmetic directly, independent of any text."""
    if isinstance(tree, int):
        return Fraction(tree)
    if tree[0] == "neg":
        return -_reference(tree[1])
    _, left_tree, right_tree = tree
    left, right = _reference(left_tree), _reference(right_tree)
    if tree[0] == "+":
        return left + right
    if tree[0] == "-":
        return left - right
    if tree[0] == "*":
        return left * right
    return left / right  # ZeroDivisionError propagates


def _render(tree: _Tree, draw: st.DrawFn) -> str:
    """Text with the parentheses precedence needs, plus optional redundant ones."""
    if isinstance(tree, int):
        text = str(tree)
    elif tree[0] == "neg":
        operand = _render(tree[1], draw)
        text = f"-{operand}" if isinstance(tree[1], int) else f"-({operand})"
    else:
        op, left, right = tree
        left_text, right_text = _render(left, draw), _render(right, draw)
        if isinstance(left, tuple) and left[0] != "neg" and _PRECEDENCE[left[0]] < _PRECEDENCE[op]:
            left_text = f"({left_text})"
        if isinstance(right, tuple) and right[0] != "neg":
            lower = _PRECEDENCE[right[0]] < _PRECEDENCE[op]
            if lower or (_PRECEDENCE[right[0]] == _PRECEDENCE[op] and op in "-/"):
                right_text = f"({right_text})"
        spaced = draw(st.booleans())
        text = f"{left_text} {op} {right_text}" if spaced else f"{left_text}{op}{right_text}"
    return f"({text})" if draw(st.booleans()) else text


@st.composite
def _expressions(draw: st.DrawFn) -> tuple[str, Fraction | None]:
    tree = draw(_trees())
    try:
        value: Fraction | None = _reference(tree)
    except ZeroDivisionError:
        value = None
    return _render(tree, draw), value


@settings(max_examples=150, deadline=None)
@given(_expressions())
def test_evaluate_expression_agrees_with_fraction_arithmetic(
    case: tuple[str, Fraction | None],
) -> None:
    text, value = case
    if value is None:
        with pytest.raises(ExpressionError, match="division by zero"):
            evaluate_expression(text)
    else:
        assert evaluate_expression(text) == value


def test_the_property_test_would_catch_a_precedence_bug() -> None:
    # "2 - 3 - 4" read right-to-left would give 3; the rendering keeps such cases.
    assert evaluate_expression("2 - 3 - 4") == -5
    assert evaluate_expression("2 - (3 - 4)") == 3
    assert evaluate_expression("2 / 3 * 4") == Fraction(8, 3)


# -- answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("solution", "expression"),
    [
        ("Steps:\n10 - 4 = 6 (left: 5 6 6)\nAnswer: (6 - 4) * 5 = 24", "(6 - 4) * 5"),
        ("Answer: (1+2)*8=24", "(1+2)*8"),
        ("Answer: (1+2)*8", "(1+2)*8"),
        ("Answer: 24 = (1+2)*8", "(1+2)*8"),
        ("answer: 3 * 8 = 24.", "3 * 8"),
        ("**Answer:** $(1 + 2) \u00d7 8 = 24$", "(1 + 2) \u00d7 8"),
        ("Final answer: 8 \u00f7 (3 \u2212 8/3) = 24", "8 \u00f7 (3 \u2212 8/3)"),
        ("Answer: 1 + 1 = 2\nmore text\nAnswer: 4 * 6 = 24", "4 * 6"),  # the last one
        ("Answer: (10 - 4) * 5 \u2260 24", "(10 - 4) * 5"),
        ("Answer: None", None),
        ("Answer: Not possible to obtain 24 with these numbers", None),
        ("Answer:", None),
        ("Steps:\n4 * 6 = 24 (left: 24)", None),  # no Answer line
        ("The answer is 4 * 6", None),
    ],
)
def test_game24_answer_reads_the_answer_line(solution: str, expression: str | None) -> None:
    assert game24_answer(solution) == expression


@pytest.mark.parametrize(
    ("solution", "numbers", "expression"),
    [
        # GPT-4 answers the standard prompt this way at times; check_game24 accepts it.
        ("(6 / (9 - 7)) * 8 = 24", (6, 7, 8, 9), "(6 / (9 - 7)) * 8"),
        ("9 - 7 = 2 (left: 2 6 8)\n\n(6 / (9 - 7)) * 8 = 24\n", (6, 7, 8, 9), "(6 / (9 - 7)) * 8"),
        ("24 = (1 + 2) * (11 - 3)", (1, 2, 3, 11), "(1 + 2) * (11 - 3)"),
    ],
)
def test_game24_answer_reads_a_bare_final_equation(
    solution: str, numbers: tuple[int, ...], expression: str
) -> None:
    assert game24_answer(solution) == expression
    assert check_game24(numbers, expression)
    assert game24_matches(" ".join(map(str, numbers)), solution)


@pytest.mark.parametrize(
    "solution",
    [
        "Steps:\n4 * 6 = 24 (left: 24)",  # a step, not an answer
        "Steps:\n10 - 4 = 6 (left: 5 6 6)\n5 * 4 = 20",  # does not reach 24
        "(1 + 2) * 8 = 24 = 3 * 8",
        "I cannot find 24",
        "",
    ],
)
def test_game24_answer_without_answer_line_wants_a_whole_equation(solution: str) -> None:
    assert game24_answer(solution) is None


@pytest.mark.parametrize(
    ("numbers", "expression", "right"),
    [
        ([4, 5, 6, 10], "(5 * (10 - 4)) - 6", True),
        ("4 5 6 10", "5*(10-4)-6", True),
        ([3, 3, 8, 8], "8 / (3 - 8 / 3)", True),
        ([1, 1, 4, 6], "(1 + 1 + 4) * 6 - 12", False),  # a number not in the puzzle
        ([4, 5, 6, 10], "5 * (10 - 4) - 6 + 0", False),
        ([4, 5, 6, 10], "6 * (10 - 6)", False),  # leaves numbers out
        ([4, 4, 6, 10], "4 * 6", False),
        ([4, 4, 6, 6], "4 * 6 + 4 * 6 - 4 * 6", False),  # reuses numbers
        ([2, 3, 4, 6], "(2 + 3 + 4 - 6) * 8", False),
        ([1, 2, 3, 4], "1 * 2 * 3 * 4", True),
        ([1, 2, 3, 4], "4 * 3 * 2 * 1", True),  # any order
        ([1, 2, 3, 4], "1 * 2 * 3 * 4 = 24", False),  # the bare expression only
        ([1, 2, 3, 4], "(1 + 2 + 3) * 4 / (4 - 4)", False),
        ([4, 4, 10, 10], "(10 * 10 - 4) / 4", True),
        ([1, 2, 3, 30], "30 - (1 + 2 + 3)", True),
        ([1, 2, 3, 30], "-(1 + 2 + 3) + 30", False),  # unary minus is not an operation
        ([1, 2, 3, 30], "30 + -(1 + 2 + 3)", False),
        ([1, 2, 3, 4], "__import__('os')", False),
        ([1, 2, 3, 4], "1 * 2 * 3 ** 4", False),
        ([1, 2, 3, 4], "", False),
        ([2, 2, 6, 6], "2.0 * 2 * 6", False),  # leaves a 6 out
        ([5, 5, 5, 1], "5 * (5 - 1 / 5)", True),
    ],
)
def test_check_game24(numbers: list[int] | str, expression: str, right: bool) -> None:
    assert check_game24(numbers, expression) is right


def test_game24_matches_is_an_answer_equivalence_that_grades() -> None:
    grade: AnswerEquivalence = game24_matches
    assert grade("4 5 6 10", "(5 * (10 - 4)) - 6")
    assert grade("4 5 6 10", "(5 * (10 - 4)) - 6 = 24")
    assert grade("4 5 6 10", "Steps:\n...\nAnswer: (5 * (10 - 4)) - 6 = 24")
    assert grade("4, 5, 6, 10", "5 * (10 - 4) - 6")
    assert not grade("4 5 6 10", "5 * (10 - 4) - 6 + 4")
    assert not grade("4 5 6 10", "Answer: None")
    assert not grade("4 5 6 10", "24")
    assert not grade("no numbers", "5 * (10 - 4) - 6")


@pytest.mark.parametrize("text", ["", "four five", "1.5 2 3 4", "-4 5 6 10"])
def test_puzzle_numbers_refuses_non_puzzles(text: str) -> None:
    with pytest.raises(AdaptiveInputError):
        puzzle_numbers(text)
    assert puzzle_numbers("[4, 5, 6, 10]") == (4, 5, 6, 10)


# -- puzzles and recorded samples ------------------------------------------------------


def test_game24_puzzle_checks_itself() -> None:
    puzzle = Game24Puzzle(
        idx=0, rank=1, numbers=(1, 1, 4, 6), question="Input: 1 1 4 6", ys=("a", "b"), r=(0, 1)
    )
    assert puzzle.gold == "1 1 4 6"
    assert puzzle.success_rate == 0.5
    assert puzzle.to_problem() == Problem(
        id="game24-1", question="Input: 1 1 4 6", gold="1 1 4 6", level="ranks 1-100"
    )
    with pytest.raises(ValueError, match="idx \\+ 1"):
        Game24Puzzle(idx=0, rank=5, numbers=(1, 1, 4, 6), question="q")
    with pytest.raises(ValueError, match="2 samples but 1 verdicts"):
        Game24Puzzle(idx=0, rank=1, numbers=(1, 1, 4, 6), question="q", ys=("a", "b"), r=(1,))
    with pytest.raises(ValueError, match="0 or 1"):
        Game24Puzzle(idx=0, rank=1, numbers=(1, 1, 4, 6), question="q", ys=("a",), r=(2,))
    with pytest.raises(ValueError):
        Game24Puzzle(idx=0, rank=1, numbers=(1, 1, 4), question="q")  # type: ignore[arg-type]


def _small_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("Rank,Puzzles,AMT (s)\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_load_game24_puzzles_from_a_small_csv(tmp_path: Path) -> None:
    csv_path = _small_csv(tmp_path / "24.csv", ["1,1 1 4 6,4.4", "2,1 1 11 11,4.41"])
    problems = load_game24_puzzles(csv_path, question_template=TOT_INPUT_TEMPLATE)
    assert problems == [
        Problem(id="game24-1", question="Input: 1 1 4 6", gold="1 1 4 6", level="ranks 1-100"),
        Problem(id="game24-2", question="Input: 1 1 11 11", gold="1 1 11 11", level="ranks 1-100"),
    ]
    [second] = load_game24_puzzles(csv_path, ranks=[2])
    assert second.question == GAME24_QUESTION.format(numbers="1 1 11 11")
    assert "1 1 11 11" in second.question and "Answer:" in second.question


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["1,1 1 4,4.4"], "line 2: a puzzle has 4 numbers"),
        (["1,1 1 4 6,4.4", "x,1 1 4 6,4.4"], "line 3: bad Rank or Puzzles"),
        (["1,1 1 4 six,4.4"], "line 2: bad Rank or Puzzles"),
        (["1,1 1 4 6,4.4", "1,1 1 4 8,4.4"], "line 3: rank 1 repeats"),
    ],
)
def test_load_game24_puzzles_names_the_bad_line(
    tmp_path: Path, rows: list[str], message: str
) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)) as caught:
        load_game24_puzzles(_small_csv(tmp_path / "24.csv", rows))
    assert caught.value.path is not None and caught.value.path.endswith("24.csv")


def test_load_game24_puzzles_refuses_unknown_ranks_and_columns(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no puzzles of rank \[3\]"):
        load_game24_puzzles(_small_csv(tmp_path / "24.csv", ["1,1 1 4 6,4.4"]), ranks=[1, 3])
    other = tmp_path / "other.csv"
    other.write_text("id,numbers\n1,1 1 4 6\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="column"):
        load_game24_puzzles(other)


def _samples(path: Path, records: object) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_load_game24_recorded_pairs_idx_with_rank(tmp_path: Path) -> None:
    csv_path = _small_csv(tmp_path / "24.csv", ["1,1 1 4 6,4.4", "2,1 1 11 11,4.41"])
    record = {"idx": 1, "ys": ["Answer: (1 + 1) * 11 + 11 = 24"], "infos": [{"r": 0}]}
    [puzzle] = load_game24_recorded(_samples(tmp_path / "s.json", [record]), csv_path)
    assert (puzzle.idx, puzzle.rank, puzzle.numbers) == (1, 2, (1, 1, 11, 11))
    assert puzzle.r == (0,) and puzzle.ys == tuple(record["ys"])


def test_load_game24_recorded_reads_the_accs_form(tmp_path: Path) -> None:
    # The standard-prompt logs store verdicts as "accs" booleans, not "infos".
    csv_path = _small_csv(tmp_path / "24.csv", ["1,1 1 4 6,4.4", "2,1 1 11 11,4.41"])
    record = {"idx": 0, "ys": ["Answer: (1 + 1 + 4) * 6 = 24", "6 * 4 = 24"], "accs": [True, False]}
    [puzzle] = load_game24_recorded(_samples(tmp_path / "s.json", [record]), csv_path)
    assert puzzle.r == (1, 0) and puzzle.numbers == (1, 1, 4, 6)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"idx": 0}, "expected a JSON list"),
        ([{"idx": 5, "ys": [], "infos": []}], "item 1: no puzzle of rank 6"),
        ([{"idx": 0, "ys": ["a"], "infos": []}], "item 1: "),
        ([{"idx": 0, "ys": "a", "infos": []}], "item 1: 'ys' and 'infos' must be lists"),
        ([{"ys": [], "infos": []}], "item 1: 'idx' must be an integer"),
        (
            [{"idx": 0, "ys": [], "infos": []}, {"idx": 0, "ys": [], "infos": []}],
            "item 2: idx 0 repeats item 1",
        ),
    ],
)
def test_load_game24_recorded_names_the_bad_item(
    tmp_path: Path, records: object, message: str
) -> None:
    csv_path = _small_csv(tmp_path / "24.csv", ["1,1 1 4 6,4.4"])
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_game24_recorded(_samples(tmp_path / "s.json", records), csv_path)


# -- the real data ---------------------------------------------------------------------


@needs_shared
def test_load_game24_puzzles_reads_all_of_24_csv() -> None:
    problems = load_game24_puzzles(CSV)
    assert len(problems) == 1362
    assert problems[900].id == "game24-901" and problems[900].gold == "4 5 6 10"
    assert len({p.id for p in problems}) == 1362
    test_set = load_game24_puzzles(CSV, ranks=range(901, 1001))
    assert [p.id for p in test_set] == [f"game24-{rank}" for rank in range(901, 1001)]
    assert {p.level for p in test_set} == {"ranks 901-1000"}


@needs_shared
def test_verifier_agrees_with_every_recorded_verdict() -> None:
    puzzles = load_game24_recorded(SAMPLES, CSV)
    assert [p.idx for p in puzzles] == list(range(900, 1000))
    assert puzzles[0].numbers == (4, 5, 6, 10)
    assert sum(len(p.ys) for p in puzzles) == 10_000

    disagreements = [
        (puzzle.idx, i)
        for puzzle in puzzles
        for i, (sample, verdict) in enumerate(zip(puzzle.ys, puzzle.r, strict=True))
        if game24_matches(puzzle.gold, sample) != bool(verdict)
    ]
    assert disagreements == []
    assert sum(sum(p.r) for p in puzzles) == 403
    assert sum(p.success_rate == 0 for p in puzzles) == 51
    assert max(p.success_rate for p in puzzles) == 0.52


@needs_shared
def test_recorded_correct_answers_are_right_and_tampering_breaks_them() -> None:
    # Guards the agreement test: a verifier that said "yes" to anything would fail here.
    puzzles = load_game24_recorded(SAMPLES, CSV)
    checked = 0
    for puzzle in puzzles:
        for sample, verdict in zip(puzzle.ys, puzzle.r, strict=True):
            if not verdict:
                continue
            expression = game24_answer(sample)
            assert expression is not None
            assert evaluate_expression(expression) == 24
            assert not check_game24(puzzle.numbers, f"({expression}) + 1 - 1")
            assert not check_game24(puzzle.numbers, f"({expression}) * 1")
            checked += 1
    assert checked == 403
