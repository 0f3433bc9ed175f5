"""Tests for langchain_adaptive.prm._split: question and step scores from two PRMs."""

from __future__ import annotations

import asyncio

from langchain_core.tracers.context import collect_runs

from langchain_adaptive import AdaptiveReasoningRunnable, BestOfN, SplitPRM
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

QUESTION = "What is 7 + 8?"


def _split() -> tuple[SplitPRM, ScriptedPRM, ScriptedPRM]:
    question_prm = ScriptedPRM(question_p={QUESTION: 0.8}, step_score=lambda s: 0.0)
    step_prm = ScriptedPRM(default_p=0.0, step_score=lambda s: 0.9 if "15" in s else 0.2)
    return SplitPRM(question_prm=question_prm, step_prm=step_prm), question_prm, step_prm


def test_each_prm_scores_only_its_part_and_rows_keep_their_order() -> None:
    prm, question_prm, step_prm = _split()
    solutions = [["7 + 8 = 15", "The answer is 15."], [], ["The answer is 16."]]
    scores = prm.score(QUESTION, solutions)
    assert [[e.median for e in row] for row in scores] == [[0.9, 0.9], [0.8], [0.2]]
    assert question_prm.calls == [(QUESTION, [[]])]
    assert step_prm.calls == [(QUESTION, [solutions[0], solutions[2]])]


def test_a_call_without_the_question_alone_leaves_the_question_prm_idle() -> None:
    prm, question_prm, _ = _split()
    assert prm.score(QUESTION, [["7 + 8 = 15"]])[0][0].median == 0.9
    assert question_prm.calls == []
    assert prm.estimate_question(QUESTION).median == 0.8


def test_async_scoring_matches_sync() -> None:
    prm, _, _ = _split()
    solutions = [[], ["7 + 8 = 15"]]
    assert asyncio.run(prm.ascore(QUESTION, solutions)) == prm.score(QUESTION, solutions)


def test_both_prms_are_child_runs_and_the_runnable_budgets_on_the_question_prm() -> None:
    prm, _, _ = _split()
    reasoner = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=["The answer is 16.", "7 + 8 = 15\n\nThe answer is 15."]),
        prm=prm,
        strategy=BestOfN(n=2, selection="prm"),
    )
    with collect_runs() as runs:
        result = prm.score(QUESTION, [[], ["7 + 8 = 15"]])
    [root] = [r for r in runs.traced_runs if r.parent_run_id is None]
    assert root.name == "SplitPRM" and len(result) == 2
    assert [child.name for child in root.child_runs] == ["ScriptedPRM", "ScriptedPRM"]
    answer = reasoner.invoke(QUESTION)
    assert answer.answer == "15"  # the step PRM's pick, not the first sample
