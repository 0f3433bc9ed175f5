"""``langchain-adaptive bench import``: anyone's recorded samples into a pool file.

The generic form (sample objects, parallel lists, a joined samples file, dotted
paths, step scores, squashing, estimated tokens), every bad input's error, and
one command per shared pool with its counts and correct rates checked against
the source's own numbers.
"""

from __future__ import annotations

import doctest
import json
import math
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from langchain_adaptive._selection import aggregate
from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.calibration._records import prefix_features
from langchain_adaptive.cli import _build_parser, main
from langchain_adaptive.errors import ConfigurationError, DatasetError
from langchain_adaptive.evaluation import importing, read_pools
from langchain_adaptive.evaluation.game24 import load_game24_recorded
from langchain_adaptive.evaluation.importing import (
    ImportSpec,
    ScoreField,
    import_pools,
    preset_spec,
)
from langchain_adaptive.prm._calibrated import calibrate_scores
from langchain_adaptive.prm._self_confidence import lowest_window_mean
from langchain_adaptive.results import SuccessEstimate

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
needs = {
    name: pytest.mark.skipif(
        not (SHARED / name).is_dir(),
        reason=f"the shared {name} data is not at {SHARED / name} (it sits beside the repository)",
    )
    for name in ("game24", "gsm8k-qwen05b", "crucible")
}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def bench_import(*argv: str) -> int:
    return main(["bench", "import", *argv])


# -- the generic form ------------------------------------------------------------------

OBJECTS = [
    {
        "uid": "q1",
        "prompt": {"text": "Half of one?"},
        "meta": {"gold": "0.5", "level": 2},
        "completions": [
            {
                "out": {"text": "Half of one is 1/2.\n\nThe answer is 1/2."},
                "usage": {"completion_tokens": 12},
                "reward": 2.0,
                "step_rm": [0.9, 0.8],
            },
            {
                "out": {"text": "It is 2.\n\nThe answer is 2."},
                "usage": {"completion_tokens": 9},
                "reward": -1.5,
                "step_rm": [0.7, 0.1],
            },
        ],
    },
    {
        "uid": "q2",
        "prompt": {"text": "Three times two?"},
        "meta": {"gold": 6},
        "completions": [
            {
                "out": {"text": "The answer is 6."},
                "usage": {"completion_tokens": 5},
                "reward": 0.0,
                "step_rm": [0.6],
            }
        ],
    },
]

OBJECT_FLAGS = [
    "--id-field",
    "uid",
    "--question-field",
    "prompt.text",
    "--gold-field",
    "meta.gold",
    "--level-field",
    "meta.level",
    "--samples-field",
    "completions",
    "--text-field",
    "out.text",
    "--tokens-field",
    "usage.completion_tokens",
    "--score",
    "rm=reward:sigmoid",
    "--score",
    "steps=step_rm",
    "--model",
    "my-model",
]


def test_sample_objects_with_dotted_paths_step_scores_and_sigmoid(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "runs.jsonl", OBJECTS)
    out = tmp_path / "pools" / "mine.jsonl"
    assert bench_import("--questions", str(source), *OBJECT_FLAGS, "--out", str(out)) == 0

    pool_file = read_pools(out, model="my-model", prms=["rm", "steps"])
    header = pool_file.header
    assert header.prms == ["rm", "steps"] and header.samples_per_question == 2
    assert header.max_tokens_per_sample == 12 and header.equivalence == "math"
    assert header.settings["tokens_estimated"] is False
    assert header.settings["source"] == [str(source)]
    assert header.settings["mapping"]["scores"][0] == {
        "name": "rm",
        "field": "reward",
        "transform": "sigmoid",
    }
    first, second = pool_file.pools
    assert (first.id, first.question, first.gold, first.level) == ("q1", "Half of one?", "0.5", "2")
    assert second.gold == "6"  # a number in the file becomes text
    right, wrong = first.samples
    # Extracted from the text and graded by the library's equivalence: 1/2 == 0.5.
    assert (right.answer, right.correct, wrong.answer, wrong.correct) == ("1/2", True, "2", False)
    assert [s.output_tokens for s in first.samples] == [12, 9]

    [rm] = wrong.step_estimates["rm"]  # a whole-solution score: one estimate
    assert rm.raw_score == -1.5 and rm.median == pytest.approx(sigmoid(-1.5))
    # Two per-step scores and two blank-line steps in the text: the steps are the text's.
    assert right.steps == ["Half of one is 1/2.", "The answer is 1/2."]
    assert [e.median for e in right.step_estimates["steps"]] == [0.9, 0.8]
    assert [e.raw_score for e in right.step_estimates["steps"]] == [0.9, 0.8]
    # One text, one step: a one-element list is the whole solution's score.
    only = second.samples[0]
    assert only.steps == ["The answer is 6."] and len(only.step_estimates["steps"]) == 1


def test_a_whole_solution_score_reads_as_a_last_step_score(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "runs.jsonl", OBJECTS)
    spec = preset_spec(
        None,
        questions=[source],
        id_field="uid",
        question_field="prompt.text",
        gold_field="meta.gold",
        samples_field="completions",
        text_field="out.text",
        scores=[ScoreField.parse("rm=reward:sigmoid")],
        model="m",
    )
    _, header, pools = import_pools(spec, tmp_path / "p.jsonl")
    assert header.settings["tokens_estimated"] is True
    for sample in (s for p in pools for s in p.samples):
        estimates = sample.step_estimates["rm"]
        # As a live PRM scores a one-step solution: one step, one estimate, scoring it all.
        assert sample.steps == [sample.text] and len(estimates) == 1
        assert aggregate(estimates, "last") == estimates[0].median
        # A calibrator is fed the number as recorded, with the whole solution's features.
        echo = _RawEcho()
        [[calibrated]] = calibrate_scores(echo, [sample.steps], [estimates])  # type: ignore[arg-type]
        assert echo.seen == [(estimates[0].raw_score, prefix_features(1, sample.text))]
        assert calibrated.median == pytest.approx(estimates[0].median)


class _RawEcho:
    """A calibrator that squashes what it is fed, and remembers it."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, list[float]]] = []

    def predict(self, raw: list[float], features: list[list[float]]) -> list[SuccessEstimate]:
        self.seen.extend(zip(raw, features, strict=True))
        return [SuccessEstimate.point(sigmoid(r)) for r in raw]


def test_parallel_lists_as_tree_of_thoughts_logs_store_them(tmp_path: Path) -> None:
    # No samples field: "ys" is one list per question, "infos.r" maps over a list of objects.
    records = [
        {
            "idx": 7,
            "question": "2 + 2?",
            "gold": "4",
            "ys": ["so 4", "so 5", "The answer is 4"],
            "infos": [{"r": 1}, {"r": 0}, {"r": 1}],
            "scores": [[0.2, 0.9], 0.1, [0.8]],
        }
    ]
    source = write_json(tmp_path / "log.json", records)
    out = tmp_path / "p.jsonl"
    code = bench_import(
        "--questions",
        str(source),
        "--id-field",
        "idx",
        "--text-field",
        "ys",
        "--correct-field",
        "infos.r",
        "--score",
        "v=scores",
        "--model",
        "tot",
        "--out",
        str(out),
    )
    assert code == 0
    pool_file = read_pools(out)
    [pool] = pool_file.pools
    assert pool.id == "7" and [s.correct for s in pool.samples] == [True, False, True]
    # Extracted anyway, for votes; graded by the recorded verdicts.
    assert [s.answer for s in pool.samples] == ["4", "5", "4"]
    # Estimated tokens: ceil(characters / 4), and the header says so.
    assert [s.output_tokens for s in pool.samples] == [math.ceil(len(t) / 4) for t in pool_ys()]
    assert pool_file.header.settings["tokens_estimated"] is True
    assert pool_file.header.settings["tokens_rule"] == "ceil(characters / 4)"
    # Two step scores that the one-line text cannot be split into: the text stays one step.
    two_steps = pool.samples[0]
    assert two_steps.steps == ["so 4"] and len(two_steps.step_estimates["v"]) == 2
    assert pool_file.header.settings["steps_unsplit"] == 1


def pool_ys() -> list[str]:
    return ["so 4", "so 5", "The answer is 4"]


def test_a_separate_samples_file_joined_by_question_id(tmp_path: Path) -> None:
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "a", "question": "1 + 1?", "gold": "2"},
            {"id": "b", "question": "2 + 2?", "gold": "4"},
        ],
    )
    samples = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"qid": "b", "completion": "The answer is 4", "lp": [-0.1, -3.0, -3.0, -0.1]},
            {"qid": "a", "completion": "The answer is 3", "lp": [-0.5, -0.5]},
            {"qid": "b", "completion": "The answer is 5", "lp": [-1.0]},
        ],
    )
    spec = preset_spec(
        None,
        questions=[questions],
        samples=samples,
        id_field="id",
        join_field="qid",
        text_field="completion",
        logprob_field="lp",
        logprob_window=2,
        model="m",
    )
    _, header, pools = import_pools(spec, tmp_path / "p.jsonl")
    assert header.prms == ["logprob", "logprob-window"]
    a, b = pools
    assert [s.text for s in b.samples] == ["The answer is 4", "The answer is 5"]
    assert [s.correct for s in b.samples] == [True, False] and not a.samples[0].correct
    first = b.samples[0]
    [mean] = first.step_estimates["logprob"]
    [window] = first.step_estimates["logprob-window"]
    # exp(mean logprob) = the geometric-mean token probability; the raw score is the logprob.
    assert mean.raw_score == pytest.approx(-1.55) and mean.median == pytest.approx(math.exp(-1.55))
    assert window.raw_score == pytest.approx(-3.0) and window.median == pytest.approx(math.exp(-3))
    # Fewer tokens than the window: the window is the whole sample.
    assert b.samples[1].step_estimates["logprob-window"][0].raw_score == pytest.approx(-1.0)


def test_a_mean_logprob_and_exp_scores(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {
                "question": "x?",
                "gold": "1",
                "samples": [{"text": "1", "lp": -0.25, "conf": -2.0, "answer": ""}],
            }
        ],
    )
    spec = preset_spec(
        None,
        questions=[source],
        logprob_field="lp",
        answer_field="answer",
        scores=[ScoreField.parse("conf=conf:exp")],
        model="m",
    )
    _, header, [pool] = import_pools(spec, tmp_path / "p.jsonl")
    assert header.prms == ["conf", "logprob"]  # no per-token logprobs: no window scorer
    [sample] = pool.samples
    assert sample.step_estimates["logprob"][0].median == pytest.approx(math.exp(-0.25))
    assert sample.step_estimates["conf"][0].median == pytest.approx(math.exp(-2.0))
    assert sample.step_estimates["conf"][0].raw_score == -2.0
    # An empty recorded answer is an abstention: no answer, and wrong, though the text says 1.
    assert pool.id == "0" and sample.answer is None and not sample.correct


def test_exact_equivalence_grades_text_not_values(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "q.jsonl",
        [{"question": "x?", "gold": "0.5", "samples": [{"text": "The answer is 1/2"}]}],
    )
    for equivalence, correct in (("math", True), ("exact", False)):
        spec = preset_spec(None, questions=[source], equivalence=equivalence, model="m")
        _, header, [pool] = import_pools(spec, tmp_path / f"{equivalence}.jsonl")
        assert header.equivalence == equivalence and pool.samples[0].correct is correct


def test_question_files_pool_by_id_in_file_order(tmp_path: Path) -> None:
    def run(seed: int) -> dict[str, Any]:
        return {
            "meta": {"model": "qwen", "seed": seed},
            "records": [
                {"pid": "p1", "gold": "3", "traces": [{"text": f"The answer is {seed}"}]},
            ],
        }

    files = [write_json(tmp_path / f"seed{s}.json", run(s)) for s in (3, 4)]
    spec = preset_spec(
        None,
        questions=files,
        records_field="records",
        id_field="pid",
        question_field="none",
        samples_field="traces",
        model_field="meta.model",
    )
    _, header, [pool] = import_pools(spec, tmp_path / "p.jsonl")
    assert header.model == "qwen" and header.samples_per_question == 2
    assert pool.question == "p1"  # no question text: the id stands in (replay keys by text)
    assert [s.correct for s in pool.samples] == [True, False]


# -- bad input ---------------------------------------------------------------------------


def _generic(tmp_path: Path, rows: Any, **fields: Any) -> ImportSpec:
    name = "q.json" if not isinstance(rows, str) else "q.jsonl"
    source = tmp_path / name
    source.write_text(rows if isinstance(rows, str) else json.dumps(rows), encoding="utf-8")
    return preset_spec(None, questions=[source], model="m", **{"id_field": "id", **fields})


SAMPLE = {"text": "The answer is 1", "s": 0.5, "ok": True, "n": 3, "lp": -0.5}
GOOD = {"id": "a", "question": "q?", "gold": "1", "samples": [SAMPLE]}


def _with_sample(**bad: Any) -> list[dict[str, Any]]:
    """Two good questions, the second's second sample spoilt by ``bad``."""
    spoilt = {k: v for k, v in {**SAMPLE, **bad}.items() if v is not ...}
    return [GOOD, {**GOOD, "id": "b", "samples": [SAMPLE, spoilt]}]


BAD_SAMPLE = "item 2 (question 'b'), sample 2"
RM = {"scores": [ScoreField.parse("rm=s")]}


@pytest.mark.parametrize(
    ("rows", "fields", "where", "field"),
    [
        (
            '{"id": "a", "question": "q", "gold": "1", "samples": [{"text": "1"}]}\n{"id":\n',
            {},
            "q.jsonl, line 2",
            None,
        ),
        (_with_sample(text=None), {}, BAD_SAMPLE, "text"),
        (_with_sample(text=...), {}, BAD_SAMPLE, "text"),
        (_with_sample(s="high"), RM, BAD_SAMPLE, "s"),
        (_with_sample(s=3.5), RM, BAD_SAMPLE, "s"),
        (_with_sample(s=[0.5, "x"]), RM, BAD_SAMPLE, "s"),
        (_with_sample(s=[]), RM, BAD_SAMPLE, "s"),
        (_with_sample(s=...), RM, BAD_SAMPLE, "s"),
        (_with_sample(), {"scores": [ScoreField.parse("rm=s:exp")]}, "sample 1", "s"),
        (_with_sample(ok="yes"), {"correct_field": "ok"}, BAD_SAMPLE, "ok"),
        (_with_sample(n=-3), {"tokens_field": "n"}, BAD_SAMPLE, "n"),
        (_with_sample(n=2.5), {"tokens_field": "n"}, BAD_SAMPLE, "n"),
        (_with_sample(lp="x"), {"logprob_field": "lp"}, BAD_SAMPLE, "lp"),
        (_with_sample(lp=[]), {"logprob_field": "lp"}, BAD_SAMPLE, "lp"),
        (
            [{"id": "a", "gold": "1", "ys": ["1", "2"], "r": [1]}],
            {"text_field": "ys", "correct_field": "r", "question_field": "none"},
            "item 1 (question 'a')",
            "r",
        ),
        ([GOOD, {**GOOD, "id": "b", "gold": None}], {}, "item 2 (question 'b')", "gold"),
        ([GOOD, GOOD], {}, "item 2", "id"),
        ([GOOD, {**GOOD, "id": None}], {}, "item 2", "id"),
        ([{"id": "a", "gold": "1", "question": "q"}], {}, "item 1 (question 'a')", "text"),
        ([{**GOOD, "samples": {"text": "1"}}], {}, "item 1 (question 'a')", "samples"),
        ([{**GOOD, "samples": []}], {}, "item 1 (question 'a')", "samples"),
        ([{**GOOD, "samples": ["text"]}], {}, "item 1 (question 'a'), sample 1", "samples"),
        ([GOOD, "text"], {}, "item 2", None),
        ([{**GOOD, "question": ["q"]}], {}, "item 1", "question"),
        ([{**GOOD, "question": ...}], {}, "item 1", "question"),
        ({"records": [GOOD]}, {}, "q.json", None),
        ({"rows": [GOOD]}, {"records_field": "records"}, "q.json", "records"),
    ],
)
def test_bad_input_names_the_file_the_item_and_the_field(
    tmp_path: Path, rows: Any, fields: dict[str, Any], where: str, field: str | None
) -> None:
    if isinstance(rows, list):  # ... marks a field left out
        rows = [
            {k: v for k, v in row.items() if v is not ...} if isinstance(row, dict) else row
            for row in rows
        ]
    spec = _generic(tmp_path, rows, **fields)
    out = tmp_path / "out.jsonl"
    with pytest.raises(DatasetError) as caught:
        import_pools(spec, out)
    message = str(caught.value)
    assert message.startswith(str(tmp_path)) and caught.value.path is not None
    assert where in message, message
    if field is not None:
        assert f"field {field!r}" in message, message
    assert list(tmp_path.glob("out*")) == []  # nothing half-written


def test_a_missing_or_binary_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nowhere\.json: no such file"):
        import_pools(preset_spec(None, questions=[tmp_path / "nowhere.json"], model="m"), "p")
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00[")
    with pytest.raises(DatasetError, match=r"b\.json: not UTF-8"):
        import_pools(preset_spec(None, questions=[binary], model="m"), tmp_path / "p.jsonl")
    with pytest.raises(ConfigurationError, match="would overwrite an input"):
        import_pools(preset_spec(None, questions=[binary], model="m"), binary)


def test_a_joined_sample_with_an_unknown_question_is_named(tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "question": "q", "gold": "1"}])
    samples = write_jsonl(
        tmp_path / "s.jsonl", [{"qid": "a", "text": "1"}, {"qid": "zz", "text": "2"}]
    )
    spec = preset_spec(
        None, questions=[questions], samples=samples, id_field="id", join_field="qid", model="m"
    )
    with pytest.raises(DatasetError, match=r"s\.jsonl, line 2: field 'qid': no question has"):
        import_pools(spec, tmp_path / "p.jsonl")


def test_pooled_files_must_agree_on_the_gold(tmp_path: Path) -> None:
    one = write_json(tmp_path / "one.json", [GOOD])
    two = write_json(tmp_path / "two.json", [{**GOOD, "gold": "2"}])
    spec = preset_spec(None, questions=[one, two], id_field="id", model="m")
    with pytest.raises(DatasetError, match=r"two\.json, item 1 \(question 'a'\): field 'gold'"):
        import_pools(spec, tmp_path / "p.jsonl")


def test_a_failed_import_keeps_the_previous_pool_file(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    import_pools(_generic(tmp_path, [GOOD]), out)
    before = out.read_bytes()
    with pytest.raises(DatasetError):
        import_pools(_generic(tmp_path, [{**GOOD, "samples": [{"txt": "1"}]}]), out)
    assert out.read_bytes() == before


def test_the_cli_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_json(tmp_path / "q.json", [{**GOOD, "samples": [{"text": "1", "s": 7}]}])
    out = tmp_path / "p.jsonl"
    args = ["--questions", str(source), "--model", "m", "--score", "rm=s", "--out", str(out)]
    assert bench_import(*args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: DatasetError: ")
    assert "q.json, item 1 (question '0'), sample 1: field 's'" in err and ":sigmoid" in err
    # No model label anywhere: said, not guessed.
    assert bench_import("--questions", str(source), "--out", str(out)) == 2
    assert "--model LABEL" in capsys.readouterr().err
    assert not out.exists()


def test_mapping_errors_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="NAME=FIELD"):
        ScoreField.parse("no-field")
    with pytest.raises(ConfigurationError, match="unknown score transform 'tanh'"):
        ScoreField.parse("rm=x:tanh")
    with pytest.raises(ConfigurationError, match="unknown preset"):
        preset_spec("nope", questions=[Path("x.json")])
    with pytest.raises(ConfigurationError, match="repeat"):
        preset_spec(None, questions=[Path("x")], scores=[ScoreField.parse("a=x")] * 2)
    with pytest.raises(ConfigurationError, match="oracle"):
        preset_spec(None, questions=[Path("x")], scores=[ScoreField.parse("oracle=x")])
    with pytest.raises(ConfigurationError, match="taken by logprob_field"):
        preset_spec(
            None, questions=[Path("x")], logprob_field="lp", scores=[ScoreField.parse("logprob=s")]
        )


def test_lowest_window_mean_and_the_doc_examples() -> None:
    assert lowest_window_mean([-1.0, -1.0, -5.0, -1.0], 2) == -3.0
    assert lowest_window_mean([-1.0, -2.0], 64) == -1.5
    assert doctest.testmod(importing).failed == 0


# -- the shared pools, one command each ------------------------------------------------


@needs["gsm8k-qwen05b"]
def test_gsm8k_qwen_pool_in_one_command(tmp_path: Path) -> None:
    source = SHARED / "gsm8k-qwen05b" / "gsm8k_trajectories.jsonl"
    out = tmp_path / "gsm8k.jsonl"
    assert (
        bench_import("--preset", "gsm8k-qwen", "--questions", str(source), "--out", str(out)) == 0
    )
    pool_file = read_pools(out, prms=["logprob"])
    samples = [s for p in pool_file.pools for s in p.samples]
    assert len(pool_file.pools) == 200 and {len(p.samples) for p in pool_file.pools} == {16}
    assert pool_file.header.model == "Qwen2.5-0.5B-Instruct"
    assert pool_file.header.settings["tokens_estimated"] is False

    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    trajectories = [t for row in rows for t in row["trajectories"]]
    assert [s.output_tokens for s in samples] == [t["n_tokens"] for t in trajectories]
    # Abstentions ("") are no answer and wrong.
    abstained = [s for s in samples if s.answer is None]
    assert len(abstained) == sum(t["answer"] == "" for t in trajectories) > 0
    assert not any(s.correct for s in abstained)
    # The source's own figures (gsm8k_summary.json), in percent with two decimals.
    summary = json.loads((source.parent / "gsm8k_summary.json").read_text())
    accuracy = 100 * sum(s.correct for s in samples) / len(samples)
    assert accuracy == pytest.approx(summary["per_trajectory_accuracy"], abs=0.005)
    coverage = 100 * sum(p.success_rate > 0 for p in pool_file.pools) / len(pool_file.pools)
    curve16 = next(point for point in summary["curve"] if point["n"] == 16)
    assert coverage == pytest.approx(curve16["coverage"], abs=0.05)
    # The logprob scorer: exp of the recorded mean logprob, the logprob kept as raw score.
    first = samples[0].step_estimates["logprob"][0]
    assert first.raw_score == trajectories[0]["logprob"]
    assert first.median == pytest.approx(math.exp(trajectories[0]["logprob"]))


@needs["crucible"]
def test_crucible_math500_seeds_pool_in_one_command(tmp_path: Path) -> None:
    seeds = [SHARED / "crucible" / f"math500-bestofn-seed{s}.json" for s in range(3)]
    out = tmp_path / "math500.jsonl"
    argv = ["--preset", "crucible", "--questions", *map(str, seeds), "--out", str(out)]
    assert bench_import(*argv) == 0
    pool_file = read_pools(out, prms=["prm"])
    assert len(pool_file.pools) == 40 and {len(p.samples) for p in pool_file.pools} == {24}
    documents = [json.loads(path.read_text()) for path in seeds]
    assert pool_file.header.model == documents[0]["meta"]["model"]
    assert pool_file.header.temperature == documents[0]["meta"]["temperature"]
    traces = {
        record["problem_id"]: [
            t
            for d in documents
            for r in d["records"]
            for t in r["traces"]
            if r["problem_id"] == record["problem_id"]
        ]
        for record in documents[0]["records"]
    }
    for pool in pool_file.pools:
        source = traces[pool.id]
        assert [s.correct for s in pool.samples] == [t["correct"] for t in source]
        assert [s.output_tokens for s in pool.samples] == [t["tokens"] for t in source]
        assert [s.step_estimates["prm"][0].median for s in pool.samples] == [
            t["prm_score"] for t in source
        ]
    samples = [s for p in pool_file.pools for s in p.samples]
    accuracy = sum(s.correct for s in samples) / len(samples)
    assert accuracy == pytest.approx(0.38, abs=0.01)  # the README: "about 0.38"
    assert {p.level for p in pool_file.pools} <= {f"level-{n}" for n in range(1, 6)}


@needs["game24"]
@pytest.mark.parametrize("command", ["import", "import-game24"])
def test_game24_tot_log_in_one_command(tmp_path: Path, command: str) -> None:
    log = SHARED / "game24" / "gpt-4_cot_samples_puzzles900-999.json"
    out = tmp_path / "game24.jsonl"
    if command == "import":
        argv = ["import", "--preset", "game24-tot", "--questions", str(log), "--out", str(out)]
    else:
        argv = ["import-game24", "--samples", str(log), "--puzzles", str(log.parent / "24.csv")]
        argv += ["--out", str(out)]
    assert main(["bench", *argv]) == 0
    pool_file = read_pools(out)
    header = pool_file.header
    assert len(pool_file.pools) == 100 and {len(p.samples) for p in pool_file.pools} == {100}
    assert header.model == log.stem and header.equivalence == "exact"  # not a hard-coded label
    recorded = load_game24_recorded(log, log.parent / "24.csv")
    verdicts = [bool(r) for puzzle in recorded for r in puzzle.r]
    grades = [s.correct for p in pool_file.pools for s in p.samples]
    assert grades == verdicts  # the exact verifier agrees with every recorded verdict
    assert header.settings["source_verdicts"] == {
        "field": "infos.r",
        "agree": len(verdicts),
        "disagree": 0,
        "first_disagreements": [],
    }
    assert sum(p.success_rate == 0 for p in pool_file.pools) == sum(
        p.success_rate == 0 for p in recorded
    )
    # Reported usage, the run's running counter taken apart per puzzle.
    entries = json.loads(log.read_text())
    first_total = entries[0]["usage_so_far"]["completion_tokens"]
    assert sum(s.output_tokens for s in pool_file.pools[0].samples) == first_total


@needs["game24"]
def test_game24_tot_accs_form_with_bare_equations(tmp_path: Path) -> None:
    # The standard-prompt log's shape: "accs" booleans, answers with or without "Answer:".
    log = write_json(
        tmp_path / "gpt-4_0.7_naive_standard_sample_3_start900_end902.json",
        [
            {
                "idx": 900,  # 4 5 6 10
                "ys": ["Answer: (5 * (10 - 4)) - 6 = 24", "(10 - 6) * (5 + 4) = 24", "4 * 6 = 24"],
                "accs": [True, False, False],
                "usage_so_far": {"completion_tokens": 30},
            },
            {
                "idx": 901,  # 1 2 4 7
                "ys": ["(7 - 1) * (4 - 2) = 24", "(1 + 2) * (7 + 1) = 24", "4 * (7 - 2 + 1) = 24"],
                "accs": [False, False, True],
                "usage_so_far": {"completion_tokens": 55},
            },
        ],
    )
    out = tmp_path / "std.jsonl"
    puzzles = str(SHARED / "game24" / "24.csv")
    argv = ["--questions", str(log), "--puzzles", puzzles, "--out", str(out)]
    assert bench_import("--preset", "game24-tot", *argv, "--model", "gpt-4 standard") == 0
    pool_file = read_pools(out)
    assert pool_file.header.model == "gpt-4 standard"
    first, second = pool_file.pools
    assert (first.id, first.gold) == ("game24-901", "4 5 6 10")
    assert [s.correct for s in first.samples] == [True, False, False]
    assert [s.answer for s in second.samples] == [
        "(7 - 1) * (4 - 2)",
        "(1 + 2) * (7 + 1)",
        "4 * (7 - 2 + 1)",
    ]
    assert [s.correct for s in second.samples] == [False, False, True]
    assert [sum(s.output_tokens for s in p.samples) for p in pool_file.pools] == [30, 25]
    assert pool_file.header.settings["source_verdicts"]["field"] == "accs"
    assert pool_file.header.settings["source_verdicts"]["disagree"] == 0
    # Without --model the label is the log's own name.
    assert bench_import("--preset", "game24-tot", *argv) == 0
    assert read_pools(out).header.model == log.stem


def test_steps_joiner_matches_the_library() -> None:
    # Per-step scores are matched to text split where the library joins steps.
    text = STEP_JOINER.join(["a", "b", "c"])
    steps, unsplit = importing._steps_for(
        text, [3], ImportSpec.model_fields["step_delimiter"].default
    )
    assert steps == ["a", "b", "c"] and not unsplit


# -- examples/benchmarks/real_pools.sh ---------------------------------------------------

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "benchmarks" / "real_pools.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_real_pools_script_imports_each_shared_pool_with_one_command() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "import"],
        env={**os.environ, "DRY_RUN": "1", "OUT": "out dir", "SHARED": "/data/shared"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    parser = _build_parser()
    parsed = [parser.parse_args(argv[1:]) for argv in commands]
    assert [(a.bench_command, a.preset) for a in parsed] == [
        ("import", "game24-tot"),
        ("import", "gsm8k-qwen"),
        ("import", "crucible"),
    ]
    assert [a.out for a in parsed] == [
        Path("out dir/game24-cot.jsonl"),
        Path("out dir/gsm8k-qwen05b.jsonl"),
        Path("out dir/math500-qwen15b.jsonl"),
    ]
    assert len(parsed[2].questions) == 3  # the three MATH500 seeds, pooled
    assert all(str(q).startswith("/data/shared/data/") for a in parsed for q in a.questions)
    unknown = subprocess.run(["bash", str(SCRIPT), "imprt"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown stage 'imprt'" in unknown.stderr
