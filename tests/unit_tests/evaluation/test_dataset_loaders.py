"""The dataset loaders of langchain_adaptive.evaluation.datasets: generic, GSM8K and MATH."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from langchain_adaptive.answers import answers_match
from langchain_adaptive.errors import AdaptiveInputError, ConfigurationError, DatasetError
from langchain_adaptive.evaluation.datasets import (
    Problem,
    boxed_answer,
    gsm8k_gold,
    load_dataset,
    load_gsm8k,
    load_jsonl,
    load_math,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
GSM8K = SHARED / "data" / "gsm8k"
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K / "train.jsonl").is_file(),
    reason=f"the shared GSM8K data is not at {GSM8K} (it sits beside the repository in CI)",
)


def _jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the generic loader ----------------------------------------------------------------


def test_load_dataset_maps_fields_and_numbers_ids_by_line(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "d.jsonl",
        [
            {"q": " What is 2 + 2? ", "meta": {"answer": 4, "difficulty": "easy"}},
            "",
            {"q": "Half of 1?", "meta": {"answer": 0.5}},
        ],
    )
    problems = load_dataset(
        path, question_field="q", gold_field="meta.answer", level_field="meta.difficulty"
    )
    assert problems == [
        Problem(id="line-1", question="What is 2 + 2?", gold="4", level="easy"),
        Problem(id="line-3", question="Half of 1?", gold="0.5"),
    ]


def test_dotted_paths_reach_into_lists_and_literal_dotted_keys_win(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "d.jsonl",
        [{"question": "Q?", "answers": [{"text": "7"}], "a.b": "literal", "a": {"b": "nested"}}],
    )
    [problem] = load_dataset(path, gold_field="answers.0.text", level_field="a.b")
    assert (problem.gold, problem.level) == ("7", "literal")


def test_load_dataset_ids_prefix_limit_and_gold_parser(tmp_path: Path) -> None:
    rows = [{"uid": f"u{i}", "question": f"Q{i}?", "gold": f"<{i}>"} for i in range(5)]
    path = _jsonl(tmp_path / "d.jsonl", rows)

    by_field = load_dataset(path, id_field="uid", limit=2, gold_parser=lambda g: g.strip("<>"))
    assert [(p.id, p.gold) for p in by_field] == [("u0", "0"), ("u1", "1")]
    by_line = load_dataset(path, id_prefix="mine-", limit=3)
    assert [p.id for p in by_line] == ["mine-1", "mine-2", "mine-3"]
    assert load_dataset(path, limit=0) == []
    with pytest.raises(ConfigurationError, match="limit"):
        load_dataset(path, limit=-1)


@pytest.mark.parametrize("suffix", [".json", ".txt", ""])
def test_a_json_list_is_read_whatever_the_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"d{suffix}"
    rows = [{"question": "A?", "gold": "1"}, {"question": "B?", "gold": 2, "level": 3}]
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    assert load_dataset(path, level_field="level") == [
        Problem(id="item-1", question="A?", gold="1"),
        Problem(id="item-2", question="B?", gold="2", level="3"),
    ]


def test_a_json_file_holding_json_lines_is_read_as_lines(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.json", [{"question": "A?", "gold": "1"}] * 2)
    assert [p.id for p in load_dataset(path)] == ["line-1", "line-2"]


def test_file_format_can_be_forced(tmp_path: Path) -> None:
    path = tmp_path / "d.data"
    path.write_text(json.dumps([{"question": "A?", "gold": "1"}]), encoding="utf-8")
    assert load_dataset(path, file_format="json")[0].id == "item-1"
    with pytest.raises(DatasetError, match="line 1: expected a JSON object, got a list"):
        load_dataset(path, file_format="jsonl")
    with pytest.raises(ConfigurationError, match="file_format"):
        load_dataset(path, file_format="csv")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"question": "Q?", "gold": ', "line 3: not valid JSON"),
        ("[1, 2]", "line 3: expected a JSON object, got a list"),
        ('"Q?"', "line 3: expected a JSON object, got a string"),
        (
            '{"text": "Q?", "gold": "1"}',
            "line 3: 'question' must be a non-empty string, but the record has no such field "
            "(it has fields 'gold', 'text')",
        ),
        ('{"question": 5, "gold": "1"}', "line 3: 'question' must be a non-empty string, got 5"),
        ('{"question": "Q?"}', "line 3: no gold answer in 'gold': the record has no such field"),
        ('{"question": "Q?", "gold": ""}', "line 3: no gold answer in 'gold': it is empty"),
        ('{"question": "Q?", "gold": {"x": 1}}', "line 3: 'gold' must be a string or a number"),
        ('{"question": "Q?", "gold": NaN}', "line 3: 'gold' is not a finite number"),
        ('{"question": "Q?", "gold": "1", "id": "a"}', "line 3: id 'a' repeats line 1"),
        ('{"question": "Q?", "gold": "1", "id": " "}', "line 3: 'id' is empty"),
        ('{"question": "Q?", "gold": "1", "id": [1]}', "line 3: 'id' must be a string or a number"),
        ('{"question": "Q?", "gold": "1"}', "line 3: no id in 'id'"),
    ],
)
def test_bad_records_name_the_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    good = [
        '{"id": "a", "question": "Q?", "gold": "1"}',
        '{"id": "b", "question": "R?", "gold": 2}',
    ]
    path = _jsonl(tmp_path / "bad.jsonl", [*good, bad])
    with pytest.raises(DatasetError, match=re.escape(message)) as caught:
        load_dataset(path, id_field="id")
    error = caught.value
    assert str(error).startswith(f"{path}, line 3: ")
    assert (error.path, error.line) == (str(path), 3)
    assert isinstance(error, AdaptiveInputError) and isinstance(error, ValueError)


def test_dataset_error_pickles_with_its_location() -> None:
    error = DatasetError("d.jsonl, line 3: bad", path="d.jsonl", line=3)
    restored = pickle.loads(pickle.dumps(error))
    assert (type(restored), str(restored), restored.path, restored.line) == (
        DatasetError,
        "d.jsonl, line 3: bad",
        "d.jsonl",
        3,
    )
    assert DatasetError("no location").line is None


def test_bad_items_of_a_json_list_are_named_by_item(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    rows = [{"id": "a", "question": "Q?", "gold": "1"}, {"question": "R?", "gold": "2"}]
    path.write_text(json.dumps([*rows, {"id": "a", "question": "S?", "gold": "3"}]), "utf-8")
    with pytest.raises(DatasetError, match=re.escape("item 2: no id in 'id'")):
        load_dataset(path, id_field="id")
    path.write_text(json.dumps([rows[0], rows[0]]), "utf-8")
    with pytest.raises(DatasetError, match=re.escape("item 2: id 'a' repeats item 1")) as caught:
        load_dataset(path, id_field="id")
    assert caught.value.line == 2


def test_malformed_json_lists_and_other_documents(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"question": "Q?", "gold": "1"},\n  {"question": \n]', "utf-8")
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 4: not valid JSON")):
        load_dataset(path)
    path.write_text('{"a": 1}', "utf-8")
    with pytest.raises(DatasetError, match="expected a JSON list of objects"):
        load_dataset(path, file_format="json")
    with pytest.raises(DatasetError, match="is a directory"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "absent.jsonl")


def test_gold_parser_failures_and_misses_name_the_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"question": "Q?", "gold": "x"}])

    def strict(text: str) -> str:
        raise ValueError(f"cannot read {text!r}")

    with pytest.raises(DatasetError, match=r"line 1: could not parse .*ValueError: cannot read"):
        load_dataset(path, gold_parser=strict)
    with pytest.raises(DatasetError, match="line 1: no gold answer in 'gold': gsm8k_gold found"):
        load_dataset(path, gold_parser=gsm8k_gold)
    assert load_dataset(path, gold_parser=gsm8k_gold, require_gold=False)[0].gold is None


def test_questions_alone_load_without_gold(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"question": "Q?"}])
    assert load_dataset(path, require_gold=False) == [Problem(id="line-1", question="Q?")]


def test_load_jsonl_keeps_its_own_defaults(tmp_path: Path) -> None:
    # load_jsonl numbers a record without an id instead of refusing it, and stays JSON Lines.
    path = _jsonl(
        tmp_path / "d.json",
        [{"id": "x", "question": "A?", "gold": 1, "level": "l"}, {"question": "B?", "gold": 2}],
    )
    assert load_jsonl(path) == [
        Problem(id="x", question="A?", gold="1", level="l"),
        Problem(id="line-2", question="B?", gold="2"),
    ]
    path.write_text(json.dumps([{"question": "A?", "gold": 1}]), "utf-8")
    with pytest.raises(DatasetError, match="line 1: expected a JSON object"):
        load_jsonl(path)


# -- GSM8K -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("16 - 3 - 4 = <<16-3-4=9>>9\n9 * 2 = $<<9*2=18>>18\n#### 18", "18"),
        ("... #### 1,200", "1200"),
        ("#### -3", "-3"),
        ("a #### b\n#### 7", "7"),
        ("no marker", None),
        ("####   ", None),
    ],
)
def test_gsm8k_gold(answer: str, gold: str | None) -> None:
    assert gsm8k_gold(answer) == gold


def test_load_gsm8k_on_a_small_file(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "test.jsonl",
        [{"question": "Q1?", "answer": "1+1=2\n#### 2"}, {"question": "Q2?", "answer": "#### 3"}],
    )
    assert load_gsm8k(path) == [
        Problem(id="gsm8k-test-1", question="Q1?", gold="2"),
        Problem(id="gsm8k-test-2", question="Q2?", gold="3"),
    ]
    assert [p.id for p in load_gsm8k(path, limit=1, id_prefix="g")] == ["g1"]
    _jsonl(path, [{"question": "Q1?", "answer": "no gold"}])
    with pytest.raises(DatasetError, match=r"test.jsonl, line 1: no gold answer in 'answer'"):
        load_gsm8k(path)


@needs_gsm8k
@pytest.mark.parametrize(("split", "count"), [("train", 7473), ("test", 1319)])
def test_load_gsm8k_reads_every_problem_with_a_numeric_gold(split: str, count: int) -> None:
    problems = load_gsm8k(GSM8K / f"{split}.jsonl")

    assert len(problems) == count
    assert len({p.id for p in problems}) == count
    assert problems[0].id == f"gsm8k-{split}-1"
    for problem in problems:
        assert problem.gold is not None and re.fullmatch(r"-?\d+(\.\d+)?", problem.gold), problem
        assert "####" not in problem.question
    if split == "test":  # Janet's ducks: 16 - 3 - 4 = 9 eggs at $2
        assert problems[0].question.startswith("Janet") and problems[0].gold == "18"
        assert answers_match(problems[0].gold, "18.0")


# -- MATH ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (r"so $x = \boxed{5}$.", "5"),
        (r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
        (r"$\boxed{\left\{ \frac{a}{b} \right\}}$", r"\left\{ \frac{a}{b} \right\}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces are not structure
        (r"\boxed{\left\{ x \right.} = 1", r"\left\{ x \right."),  # nor is a lone \{
        (r"first \boxed{1}, then \boxed{ 2 }", "2"),  # the last box
        (r"\fbox{7}", "7"),
        (r"The answer is $\boxed 5$.", "5"),
        (r"\boxed{3} and an empty \boxed{}", "3"),
        (r"\boxed{x^{2}", None),  # never closes
        (r"\boxedfoo{1}", None),
        ("no box here", None),
        (r"\boxed{\text{(C)}}", r"\text{(C)}"),
    ],
)
def test_boxed_answer(text: str, answer: str | None) -> None:
    assert boxed_answer(text) == answer


def test_load_math_takes_the_last_box_and_the_level(tmp_path: Path) -> None:
    rows = [
        {
            "problem": "Compute $1/2 + 0$.",
            "solution": r"First $\boxed{1}$, no: $\boxed{\frac{1}{2}}$.",
            "level": "Level 2",
            "type": "Algebra",
        },
        {"problem": "Two?", "solution": r"$\boxed{2}$", "type": "Geometry"},
        {"problem": "Three?", "solution": r"$\boxed{3}$"},
    ]
    path = _jsonl(tmp_path / "test.jsonl", rows)
    assert load_math(path) == [
        Problem(
            id="math-test-1", question="Compute $1/2 + 0$.", gold=r"\frac{1}{2}", level="Level 2"
        ),
        Problem(id="math-test-2", question="Two?", gold="2", level="Geometry"),
        Problem(id="math-test-3", question="Three?", gold="3"),
    ]
    listed = tmp_path / "math.json"
    listed.write_text(
        json.dumps([{**row, "unique_id": f"t/{i}.json"} for i, row in enumerate(rows)])
    )
    assert [p.id for p in load_math(listed, id_field="unique_id")] == [
        "t/0.json",
        "t/1.json",
        "t/2.json",
    ]
    assert len(load_math(listed, limit=2)) == 2


def test_load_math_names_a_solution_without_a_box(tmp_path: Path) -> None:
    rows = [{"problem": "One?", "solution": r"\boxed{1}"}, {"problem": "Two?", "solution": "2"}]
    with pytest.raises(
        DatasetError, match=re.escape("line 2: no gold answer in 'solution': boxed_answer found")
    ):
        load_math(_jsonl(tmp_path / "m.jsonl", rows))
