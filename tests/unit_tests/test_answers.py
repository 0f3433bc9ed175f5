"""Tests for langchain_adaptive.answers: steps, answer extraction, equivalence, grouping."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_adaptive.answers import (
    DEFAULT_STEP_DELIMITER,
    answers_match,
    extract_answer,
    group_answers,
    split_steps,
    states_final_answer,
)

# -- split_steps ---------------------------------------------------------------


def test_split_steps_splits_on_blank_lines_and_strips() -> None:
    text = "  Step one.\nstill one\n\nStep two.  \n \t \nStep three.\n\n\n"
    assert split_steps(text) == ["Step one.\nstill one", "Step two.", "Step three."]


def test_split_steps_single_newline_does_not_split() -> None:
    assert split_steps("a\nb\nc") == ["a\nb\nc"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", " \n \n "])
def test_split_steps_empty_text_gives_no_steps(text: str) -> None:
    assert split_steps(text) == []


def test_split_steps_custom_delimiter() -> None:
    assert split_steps("a ; b;;c", delimiter=r";") == ["a", "b", "c"]
    # The default delimiter is not applied when a custom one is given.
    assert split_steps("a\n\nb", delimiter=r";") == ["a\n\nb"]


def test_default_delimiter_is_a_blank_line_regex() -> None:
    assert split_steps("x\n   \ny", DEFAULT_STEP_DELIMITER) == ["x", "y"]


# -- extract_answer: precedence --------------------------------------------------


def test_boxed_beats_answer_is_and_last_number() -> None:
    text = "So \\boxed{\\frac{1}{2}} and the answer is 3. Also 99"
    assert extract_answer(text) == "\\frac{1}{2}"


def test_last_boxed_wins() -> None:
    assert extract_answer("\\boxed{a} then later \\boxed{\\frac{2}{3}}") == "\\frac{2}{3}"


def test_boxed_balances_nested_braces() -> None:
    assert extract_answer("\\boxed{\\text{{x}} + \\frac{1}{2}}") == "\\text{{x}} + \\frac{1}{2}"


def test_unbalanced_boxed_falls_back_to_nothing_without_numbers() -> None:
    assert extract_answer("\\boxed{unbalanced") is None


def test_boxed_number_loses_thousands_separators() -> None:
    assert extract_answer("\\boxed{ 1,234 }") == "1234"


def test_boxed_answer_is_truncated() -> None:
    answer = extract_answer("\\boxed{" + "x" * 300 + "}")
    assert answer == "x" * 200


def test_answer_is_beats_last_number() -> None:
    assert extract_answer("The answer is 7.\nCheck: 3 + 4 = 7, times 10 is 70") == "7"


# -- extract_answer: "the answer is X" -------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 15 apples.", "15"),
        ("The answer is 1,234.", "1234"),
        ("Final answer: x^2 + 1", "x^2 + 1"),
        ("Answer = 42", "42"),
        ("THE ANSWER IS 9", "9"),
        ("The answer is **12**.", "12"),
        ("The answer is \\(7\\).", "7"),
        ("the answer is -3.5", "-3.5"),
        ("The answer is 1.5.", "1.5"),
        ("The answer is 3/4", "3/4"),
        ("The answer is 12.\nThen something 99", "12"),
    ],
)
def test_answer_is_forms(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


def test_last_stated_answer_wins() -> None:
    assert extract_answer("answer: 7\nanswer: 8") == "8"


def test_empty_stated_answer_is_skipped() -> None:
    assert extract_answer("The answer is 5.\nThe answer is.") == "5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("The answer is \\(\\sqrt{2}\\).", "\\sqrt{2}"),
        ("The answer is $x = 3/4$", "x = 3/4"),
    ],
)
def test_answer_is_keeps_latex_intact(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 12. So we are done.",
        "First I thought 3. Actually, the answer is 12. Done.",
        "The answer is simply 12, and that is it",
    ],
)
def test_answer_is_stops_at_sentence_end(text: str) -> None:
    assert extract_answer(text) == "12"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 5.\nFinal answer: X", "5"),
        ("The answer is 5.\nThe answer is <answer>.", "5"),
        ("The answer is <number>", None),
    ],
)
def test_echoed_template_placeholders_are_skipped(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_answer_is_number_then_justification() -> None:
    assert extract_answer("the answer is 7 because 3+4 = 7") == "7"


@pytest.mark.parametrize("text", ["\\boxed{5}. Check: \\boxed{}", "\\boxed{} The answer is 5"])
def test_empty_boxed_is_skipped(text: str) -> None:
    assert extract_answer(text) == "5"


# -- extract_answer: last number -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We have 3 and then 5 and 1,000 things", "1000"),
        ("Therefore 2+2 = 4", "4"),
        ("It costs 3.50 dollars", "3.50"),
        ("the temperature fell to -7 overnight", "-7"),
        ("a ratio of 2/3 remains", "2/3"),
    ],
)
def test_last_number_fallback(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "no numbers here", "   \n  "])
def test_no_answer_gives_none(text: str) -> None:
    assert extract_answer(text) is None


# -- answers_match ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("3", " 3 "),
        ("1/2", "0.5"),
        ("0.50", "1/2"),
        ("1,000", "1000"),
        ("-2", "-4/2"),
        ("\\frac{1}{2}", "0.5"),
        ("1/2", "\\frac{1}{2}"),
        ("\\frac{3}{4}", "0.75"),
        ("x+1", "1+x"),
        ("x^2 + 1", "1 + x^2"),
        ("$\\sqrt{4}$", "2"),
    ],
)
def test_equivalent_answers_match_both_ways(a: str, b: str) -> None:
    assert answers_match(a, b)
    assert answers_match(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2", "3"),
        ("1/2", "0.51"),
        ("abc", "abd"),
        ("(1, 2)", "(2, 1)"),
        ("1/3", "0.333"),
        ("1/0", "2/0"),
        ("\\frac{", "}}"),
    ],
)
def test_different_answers_do_not_match(a: str, b: str) -> None:
    assert not answers_match(a, b)
    assert not answers_match(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [("\\sqrt{4}", "2"), ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("2\\sqrt{2}", "\\sqrt{8}")],
)
def test_bare_latex_answers_match(a: str, b: str) -> None:
    assert answers_match(a, b)


def test_answers_match_works_off_the_main_thread() -> None:
    # Distinct inputs so the lru_cache cannot answer from a main-thread call.
    with ThreadPoolExecutor(max_workers=2) as pool:
        same = pool.submit(answers_match, "y+2", "2+y").result()
        different = pool.submit(answers_match, "y+2", "2+z").result()
    assert same is True
    assert different is False


# -- group_answers ---------------------------------------------------------------


def test_group_answers_numbers_classes_in_order_of_first_appearance() -> None:
    answers = ["1/2", None, "0.5", "3", "\\frac{1}{2}", "3.0", None, "7"]
    assert group_answers(answers) == [0, None, 0, 1, 0, 1, None, 2]


def test_group_answers_empty() -> None:
    assert group_answers([]) == []
    assert group_answers([None, None]) == [None, None]


def test_group_answers_custom_equivalence() -> None:
    labels = group_answers(["A", "b", "a", "B"], equivalent=lambda x, y: x.lower() == y.lower())
    assert labels == [0, 1, 0, 1]


def test_group_answers_compares_only_with_representatives() -> None:
    calls: list[tuple[str, str]] = []

    def eq(rep: str, ans: str) -> bool:
        calls.append((rep, ans))
        return rep == ans

    group_answers(["a", "a", "b", "b", "a"], equivalent=eq)
    # Representatives come first; each answer stops at its first matching class.
    assert calls == [("a", "a"), ("a", "b"), ("a", "b"), ("b", "b"), ("a", "a")]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["p", "q", "r", "s"])), max_size=12))
def test_group_answers_labels_agree_with_equality(answers: list[str | None]) -> None:
    labels = group_answers(answers, equivalent=lambda x, y: x == y)
    for i, (a, la) in enumerate(zip(answers, labels, strict=True)):
        assert (a is None) == (la is None)
        for b, lb in zip(answers[:i], labels[:i], strict=True):
            if a is not None and b is not None:
                assert (a == b) == (la == lb)
    seen = [label for label in labels if label is not None]
    # First appearances are numbered 0, 1, 2, ...
    firsts = list(dict.fromkeys(seen))
    assert firsts == list(range(len(firsts)))


# -- states_final_answer ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "final"),
    [
        ("The answer is 14.", True),
        ("So the final answer is \\boxed{14}", True),
        ("The answer is (B).", True),
        ("7 * 2 = 14", False),  # an intermediate result, however numeric
        ("We iterate until the given answer is reached.", False),
        ("The answer is X.", False),  # the prompt's template echoed
    ],
)
def test_states_final_answer_tells_an_ending_step_from_an_intermediate_one(
    step: str, final: bool
) -> None:
    assert states_final_answer(step) is final
