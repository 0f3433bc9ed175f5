"""Escalation: the cheap run's calibrated confidence decides whether a stronger run is needed."""

from __future__ import annotations

import pytest
from langchain_core.prompts import ChatPromptTemplate

from langchain_adaptive import AdaptiveAnswerParser, AdaptiveReasoningRunnable, escalate_when_unsure
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.escalation import needs_escalation
from tests.tracing import RunCollector, walk
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."


def pair(**first: object) -> tuple[AdaptiveReasoningRunnable, AdaptiveReasoningRunnable]:
    cheap_model = ScriptedChatModel(responses=[RIGHT])
    strong_model = ScriptedChatModel(responses=[RIGHT])
    prm = ScriptedPRM(question_p={"easy": 0.9, "hard": 0.1})
    settings = {"max_samples": 3, **first}
    cheap = AdaptiveReasoningRunnable(model=cheap_model, prm=prm, **settings)  # type: ignore[arg-type]
    strong = AdaptiveReasoningRunnable(model=strong_model, prm=prm, max_samples=64)
    return cheap, strong


def test_confident_cheap_answer_is_returned_as_is() -> None:
    cheap, strong = pair()
    result = escalate_when_unsure(cheap, strong).invoke("easy")
    assert result.budget.samples_used == ias_sample_count(0.9, 0.99) and not result.warnings
    assert strong.model.calls == []  # type: ignore[attr-defined]


def test_unsure_cheap_answer_escalates_and_names_the_first_spend() -> None:
    cheap, strong = pair()
    result = escalate_when_unsure(cheap, strong).invoke("hard")
    assert len(cheap.model.calls) >= 1  # type: ignore[attr-defined]
    assert result.budget.samples_used == ias_sample_count(0.1, 0.99)
    (note,) = result.warnings
    assert note.startswith("escalated: the first reasoner answered '15'")
    assert "after 3 sample(s)" in note


async def test_async_and_min_confidence() -> None:
    cheap, strong = pair(target_confidence=0.5, max_samples=64)
    chain = escalate_when_unsure(cheap, strong, min_confidence=0.9)
    easy, hard = await chain.abatch(["easy", "hard"])
    # at C = 0.5 both cheap runs reach their target; only the hard one is below 0.9
    assert easy.budget.samples_used == ias_sample_count(0.9, 0.5) and not easy.warnings
    assert hard.budget.samples_used == ias_sample_count(0.1, 0.99) and hard.warnings


def test_in_an_lcel_chain_with_child_runs() -> None:
    cheap, strong = pair()
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    chain = prompt | escalate_when_unsure(cheap, strong) | AdaptiveAnswerParser()
    tracer = RunCollector()
    assert chain.invoke({"q": "hard"}, config={"callbacks": [tracer]}) == "15"
    names = [r.name for r in walk(tracer.root())]
    assert names.count("AdaptiveReasoningRunnable") == 2 and "escalating_reasoner" in names


def test_needs_escalation_rules() -> None:
    cheap, _ = pair(max_samples=64)
    confident = cheap.invoke("easy")
    assert confident.confidence is not None and not needs_escalation(confident)
    assert needs_escalation(confident, min_confidence=min(0.999, confident.confidence + 1e-3))
    assert needs_escalation(pair(max_samples=2)[0].invoke("hard"))
    with pytest.raises(ConfigurationError, match=r"\(0, 1\)"):
        escalate_when_unsure(cheap, cheap, min_confidence=0.0)
