"""JsonlTraceWriter: one line per event, grouped by run, question and strategy; redaction."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from uuid import uuid4

import pytest

from langchain_adaptive import JsonlTraceWriter
from langchain_adaptive.callbacks import AdaptiveFinished, read_trace
from tests.tracing import RunCollector
from tests.unit_tests.callbacks.recording import reasoner
from tests.unit_tests.fakes import ScriptedChatModel


def test_each_event_is_one_line_with_run_tags_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "run.jsonl"
    writer, tracer = JsonlTraceWriter(path), RunCollector()
    result = reasoner().invoke(
        {"question": "easy", "id": "q1"}, config={"callbacks": [writer, tracer]}
    )
    lines = path.read_text().splitlines()
    records = read_trace(path)
    assert len(lines) == len(records) == 6  # budget, 2 generated, 2 scored, finished
    assert [json.loads(line)["event"] for line in lines] == [r.event for r in records]
    root = tracer.root()
    for record in records:
        assert record.run_id == root.id and record.parent_run_id is None
        assert "adaptive:adaptive_best_of_n" in record.tags
        assert record.metadata["adaptive_question_id"] == "q1"
        assert record.metadata["adaptive_strategy"] == "adaptive_best_of_n"
    finished = records[-1].parsed()
    assert isinstance(finished, AdaptiveFinished)
    assert finished.samples_used == result.budget.samples_used
    answers = [r.data["answer"] for r in records if r.event == "adaptive_candidate_generated"]
    assert answers == [c.answer for c in result.candidates]


def test_a_batch_appends_whole_lines_and_groups_by_question(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    writer = JsonlTraceWriter(path)
    inputs = [{"question": q, "id": f"id-{i}"} for i, q in enumerate(["easy", "hard"] * 3)]
    results = reasoner().batch(inputs, config={"callbacks": [writer], "max_concurrency": 6})
    JsonlTraceWriter(path).on_adaptive_event(  # a second writer appends to the same file
        AdaptiveFinished(
            strategy="s",
            stop_reason="consensus",
            decided_samples=1,
            samples_used=1,
            generated_tokens=1,
            max_samples=1,
        ),
        run_id=uuid4(),
    )
    records = read_trace(path)
    assert len(records) == len(path.read_text().splitlines())
    for i, result in enumerate(results):
        mine = [r for r in records if r.metadata.get("adaptive_question_id") == f"id-{i}"]
        assert len({r.run_id for r in mine}) == 1
        generated = [r for r in mine if r.event == "adaptive_candidate_generated"]
        assert len(generated) == result.budget.samples_used
    assert records[-1].event == "adaptive_finished" and records[-1].data["strategy"] == "s"


@pytest.mark.parametrize("redact", [False, True])
def test_redact_writes_no_answer_text(tmp_path: Path, redact: bool) -> None:
    path = tmp_path / "trace.jsonl"
    runnable = reasoner(model=ScriptedChatModel(responses=["Think.\n\nThe answer is zebra."]))
    runnable.invoke("easy", config={"callbacks": [JsonlTraceWriter(path, redact=redact)]})
    generated = [r for r in read_trace(path) if r.event == "adaptive_candidate_generated"]
    assert len(generated) == 2
    assert [r.data["answer"] for r in generated] == ([None, None] if redact else ["zebra"] * 2)
    assert ("zebra" in path.read_text()) is not redact


def test_reading_skips_a_truncated_line_and_writing_starts_a_fresh_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "crashed.jsonl"
    writer = JsonlTraceWriter(path)
    reasoner().invoke("easy", config={"callbacks": [writer]})
    complete = len(read_trace(path))
    with path.open("a") as handle:
        handle.write('{"event": "adaptive_fini')  # a crash mid-line
    reasoner().invoke("easy", config={"callbacks": [writer]})
    with caplog.at_level(logging.WARNING):
        records = read_trace(path)
    assert len(records) == 2 * complete
    assert "skipped 1 malformed line" in caplog.text
