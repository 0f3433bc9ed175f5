"""langchain_adaptive.evaluation.datasets: the arithmetic suite, the split, the JSONL loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from langchain_adaptive.answers import answers_match
from langchain_adaptive.errors import AdaptiveInputError, ConfigurationError
from langchain_adaptive.evaluation.datasets import (
    ARITHMETIC_LEVELS,
    MULTI_STEP_LEVELS,
    Problem,
    arithmetic_suite,
    check_gold,
    load_jsonl,
    train_test_split,
    worked_examples,
)

# -- the arithmetic suite --------------------------------------------------------------


def test_suite_is_deterministic_from_the_seed() -> None:
    assert arithmetic_suite(5, seed=3) == arithmetic_suite(5, seed=3)
    assert arithmetic_suite(5, seed=3) != arithmetic_suite(5, seed=4)


def test_suite_pins_its_first_questions() -> None:
    # Seeding by string is stable across Python versions and platforms.
    first = arithmetic_suite(1, seed=0, levels=("add2", "two_step"))
    assert [(p.id, p.question, p.gold, p.level) for p in first] == [
        ("add2-0", "What is 87 + 63?", "150", "add2"),
        ("two_step-0", "What is (77 - 75) * 2?", "4", "two_step"),
    ]


def test_every_level_has_stable_ids_and_correct_gold() -> None:
    suite = arithmetic_suite(6, seed=1)

    assert [p.id for p in suite] == [
        f"{level}-{i}" for level in ARITHMETIC_LEVELS for i in range(6)
    ]
    for problem in suite:
        match = re.fullmatch(r"What is (.+)\?", problem.question)
        assert match, problem.question
        assert re.fullmatch(r"[\d+\-*() ]+", match.group(1))
        assert problem.gold == str(eval(match.group(1)))  # only digits and operators
        assert int(problem.gold) >= 0


@pytest.mark.parametrize(
    ("level", "digits"),
    [("add1", 1), ("sub2", 2), ("mul3", 3), ("add3", 3), ("mul1", 1)],
)
def test_operands_have_the_level_s_digit_count(level: str, digits: int) -> None:
    for problem in arithmetic_suite(20, seed=2, levels=(level,)):
        numbers = re.findall(r"\d+", problem.question)
        assert len(numbers) == 2 and all(len(n) == digits for n in numbers)


def test_two_step_questions_have_two_operations() -> None:
    for problem in arithmetic_suite(20, seed=0, levels=("two_step",)):
        assert len(re.findall(r"[+\-*]", problem.question)) == 2


def test_multi_step_levels_pin_their_first_questions_and_solutions() -> None:
    first = arithmetic_suite(1, seed=0, levels=MULTI_STEP_LEVELS)
    assert [(p.id, p.question, p.gold, p.solution) for p in first] == [
        ("steps2-0", "What is 7 * 2 - 7?", "7", "7 * 2 = 14\n\n14 - 7 = 7\n\nThe answer is 7."),
        (
            "steps3-0",
            "What is (6 + 5) * 2 + 5?",
            "27",
            "6 + 5 = 11\n\n11 * 2 = 22\n\n22 + 5 = 27\n\nThe answer is 27.",
        ),
    ]


@pytest.mark.parametrize(("level", "operations"), [("steps2", 2), ("steps3", 3)])
def test_multi_step_solutions_are_correct_one_operation_a_step(level: str, operations: int) -> None:
    for problem in arithmetic_suite(30, seed=4, levels=(level,)):
        expression = re.fullmatch(r"What is (.+)\?", problem.question)
        assert expression, problem.question
        assert problem.gold == str(eval(expression.group(1)))  # only digits and operators
        assert all(len(n) == 1 for n in re.findall(r"\d+", expression.group(1)))
        assert problem.solution is not None
        *steps, last = problem.solution.split("\n\n")
        assert last == f"The answer is {problem.gold}."
        assert len(steps) == operations
        for step in steps:
            left, right = step.split(" = ")
            assert re.fullmatch(r"\d+ [+\-*] \d+", left) and str(eval(left)) == right
        assert steps[-1].endswith(f"= {problem.gold}")


def test_multi_step_levels_leave_the_default_suite_unchanged() -> None:
    assert not set(MULTI_STEP_LEVELS) & set(ARITHMETIC_LEVELS)
    assert all(p.solution is None for p in arithmetic_suite(2, seed=0))
    alone = arithmetic_suite(3, seed=2, levels=("two_step",))
    assert arithmetic_suite(3, seed=2, levels=("two_step", *MULTI_STEP_LEVELS))[:3] == alone


def test_levels_are_independent_and_a_larger_suite_extends_a_smaller_one() -> None:
    alone = arithmetic_suite(4, seed=5, levels=("mul2",))
    together = arithmetic_suite(4, seed=5, levels=("add1", "mul2"))
    assert [p for p in together if p.level == "mul2"] == alone
    assert arithmetic_suite(8, seed=5, levels=("mul2",))[:4] == alone


def test_questions_within_a_level_are_distinct() -> None:
    suite = arithmetic_suite(40, seed=0, levels=("sub1",))  # 45 distinct exist
    assert len({p.question for p in suite}) == 40


def test_asking_a_level_for_more_than_it_holds_fails() -> None:
    with pytest.raises(ConfigurationError, match="too few distinct"):
        arithmetic_suite(82, seed=0, levels=("add1",))


def test_unknown_or_repeated_levels_and_negative_counts_fail() -> None:
    with pytest.raises(ConfigurationError, match="unknown arithmetic levels"):
        arithmetic_suite(1, levels=("div1",))
    with pytest.raises(ConfigurationError, match="repeat"):
        arithmetic_suite(1, levels=("add1", "add1"))
    with pytest.raises(ConfigurationError, match="at least 0"):
        arithmetic_suite(-1)


def test_gold_answers_match_themselves_with_the_answer_checker() -> None:
    for problem in arithmetic_suite(2, seed=0):
        assert problem.gold is not None and answers_match(problem.gold, problem.gold)


# -- the split -------------------------------------------------------------------------


def test_split_is_disjoint_by_question_and_covers_everything() -> None:
    suite = arithmetic_suite(10, seed=0)
    train, test = train_test_split(suite, test_fraction=0.3, seed=1)

    assert {p.question for p in train}.isdisjoint({p.question for p in test})
    assert sorted(p.id for p in train + test) == sorted(p.id for p in suite)
    for level in ARITHMETIC_LEVELS:  # stratified: 3 of each level's 10 held out
        assert sum(p.level == level for p in test) == 3


def test_split_keeps_duplicate_questions_on_one_side() -> None:
    problems = [
        Problem(id=str(i), question=q, gold="1")
        for i, q in enumerate(["What is 1 + 0?", "what is 1 +  0?", "A", "B", "C", "D"])
    ]
    for seed in range(10):
        _, test = train_test_split(problems, 0.5, seed=seed)
        held_out = {p.id for p in test}
        assert ("0" in held_out) == ("1" in held_out)


def test_split_is_deterministic_and_keeps_input_order() -> None:
    suite = arithmetic_suite(5, seed=0)
    train, test = train_test_split(suite, 0.4, seed=7)
    assert (train, test) == train_test_split(suite, 0.4, seed=7)
    assert train == [p for p in suite if p in train]
    assert train_test_split(suite, 0.4, seed=8) != (train, test)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fractions_outside_the_open_interval(fraction: float) -> None:
    with pytest.raises(ConfigurationError, match="test_fraction"):
        train_test_split(arithmetic_suite(2), fraction)


# -- loading ---------------------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_jsonl_reads_fields_and_turns_numbers_into_text(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.jsonl",
        [
            json.dumps({"id": 7, "question": " What is 2 + 2? ", "gold": 4, "level": "easy"}),
            "",
            json.dumps({"question": "Half of 1?", "gold": 0.5}),
            json.dumps({"question": "Ten?", "gold": 10.0}),
        ],
    )
    problems = load_jsonl(path)

    assert problems == [
        Problem(id="7", question="What is 2 + 2?", gold="4", level="easy"),
        Problem(id="line-3", question="Half of 1?", gold="0.5"),
        Problem(id="line-4", question="Ten?", gold="10"),
    ]


def test_load_jsonl_with_custom_field_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", [json.dumps({"uid": "a", "problem": "Q?", "answer": "x"})])
    problems = load_jsonl(path, question_field="problem", gold_field="answer", id_field="uid")
    assert problems == [Problem(id="a", question="Q?", gold="x")]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"question": "Q?", "gold": ', "line 2: not valid JSON"),
        ('["Q?", "1"]', "line 2: expected a JSON object"),
        ('{"gold": "1"}', "line 2: 'question' must be a non-empty string"),
        ('{"question": "  ", "gold": "1"}', "line 2: 'question' must be a non-empty string"),
        ('{"question": "Q2?"}', "line 2: no gold answer"),
        ('{"question": "Q2?", "gold": null}', "line 2: no gold answer"),
        ('{"question": "Q2?", "gold": true}', "line 2: 'gold' must be a string or a number"),
        ('{"question": "Q2?", "gold": [1]}', "line 2: 'gold' must be a string or a number"),
        ('{"id": "a", "question": "Q2?", "gold": "1"}', "line 2: id 'a' repeats line 1"),
    ],
)
def test_load_jsonl_fails_on_the_first_bad_line_with_its_number(
    tmp_path: Path, bad_line: str, message: str
) -> None:
    path = _write(tmp_path / "d.jsonl", ['{"id": "a", "question": "Q?", "gold": "1"}', bad_line])
    with pytest.raises(AdaptiveInputError, match=re.escape(message)):
        load_jsonl(path)


def test_load_jsonl_without_gold_when_not_required(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", ['{"question": "Q?"}'])
    assert load_jsonl(path, require_gold=False) == [Problem(id="line-1", question="Q?")]


def test_load_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "absent.jsonl")


def test_check_gold_names_the_problems_without_gold() -> None:
    problems = [Problem(id=f"p{i}", question="Q?") for i in range(7)]
    with pytest.raises(AdaptiveInputError, match=r"7 problem\(s\).*'p0'.*and 2 more"):
        check_gold(problems)
    with pytest.raises(AdaptiveInputError, match="repeats"):
        check_gold([Problem(id="a", question="Q", gold="1")] * 2)
    check_gold(arithmetic_suite(1))


def test_an_empty_id_names_its_line(tmp_path) -> None:
    from langchain_adaptive.errors import AdaptiveInputError
    from langchain_adaptive.evaluation.datasets import load_jsonl

    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "question": "q1", "gold": "1"}\n{"id": "", "question": "q2", "gold": "2"}\n'
    )
    with pytest.raises(AdaptiveInputError, match="line 2"):
        load_jsonl(path)


def test_worked_examples_show_reference_solutions_and_refuse_problems_without_one() -> None:
    problems = arithmetic_suite(2, seed=3, levels=("steps2", "steps3"))
    examples = worked_examples(problems)
    assert [e.question for e in examples] == [p.question for p in problems]
    assert all(
        e.solution.endswith(f"The answer is {p.gold}.")
        for e, p in zip(examples, problems, strict=True)
    )
    with pytest.raises(ConfigurationError, match="add1-0"):
        worked_examples(arithmetic_suite(1, seed=3, levels=("add1",)))
