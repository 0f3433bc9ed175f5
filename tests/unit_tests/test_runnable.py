"""AdaptiveReasoningRunnable with scripted models: budgets, selection, errors, Runnable plumbing."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField

from langchain_adaptive import (
    AdaptiveAnswerParser,
    AdaptiveBestOfN,
    AdaptiveReasoningRunnable,
    AdaptiveResult,
    BestOfN,
    FewShotExample,
)
from langchain_adaptive.errors import (
    ConfigurationError,
    EmptyGenerationError,
    EmptyQuestionError,
    ModelError,
    PRMError,
    UnknownStrategyError,
    UnsupportedInputError,
)
from tests.tracing import RunCollector, run_usage, walk
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedLLM, ScriptedPRM, nan_score

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."


def reasoner(**kwargs: object) -> AdaptiveReasoningRunnable:
    kwargs.setdefault("model", ScriptedChatModel(responses=[RIGHT, WRONG, RIGHT]))
    kwargs.setdefault("prm", ScriptedPRM(question_p={"easy": 0.9, "hard": 0.1}))
    return AdaptiveReasoningRunnable(**kwargs)  # type: ignore[arg-type]


# -- instance-adaptive budgets ---------------------------------------------------------


@pytest.mark.parametrize(("p", "expected"), [(0.9, 2), (0.5, 7), (0.1, 44)])
def test_ias_draws_the_formula_budget(p: float, expected: int) -> None:
    result = reasoner(prm=ScriptedPRM(default_p=p), max_samples=64).invoke("q")
    assert result.budget.decided_samples == expected == result.budget.samples_used
    assert expected == math.ceil(math.log(1 - 0.99) / math.log(1 - p) - 1e-9)
    assert result.stop_reason == "adaptive_budget"
    assert result.confidence is not None and result.confidence >= 0.99
    assert not result.low_confidence


def test_easy_question_gets_fewer_samples_than_hard() -> None:
    runnable = reasoner(max_samples=64)
    easy, hard = runnable.batch(["easy", "hard"])
    assert easy.budget.samples_used < hard.budget.samples_used
    assert easy.question_estimate.lower == 0.9 and hard.question_estimate.lower == 0.1


def test_budget_uses_the_lower_quantile() -> None:
    prm = ScriptedPRM(default_p=0.5, quantiles=(0.2, 1.0, 1.6))  # lower 0.1, median 0.5
    assert reasoner(prm=prm, max_samples=64).invoke("q").budget.decided_samples == 44
    median = reasoner(prm=prm, max_samples=64, strategy=AdaptiveBestOfN(quantile=0.5))
    assert median.invoke("q").budget.decided_samples == 7


def test_unreachable_target_spends_the_cap_and_flags_it() -> None:
    result = reasoner(max_samples=8).invoke("hard")
    assert result.budget.samples_used == 8
    assert result.stop_reason == "max_samples" and result.low_confidence


def test_unreachable_target_with_floor_spends_only_the_floor() -> None:
    strategy = AdaptiveBestOfN(unreachable="floor", floor_samples=3)
    result = reasoner(max_samples=8, strategy=strategy).invoke("hard")
    assert result.budget.samples_used == 3
    assert result.stop_reason == "low_confidence_floor" and result.low_confidence


def test_target_confidence_is_configurable_per_call() -> None:
    runnable = reasoner(max_samples=64).configurable_fields(
        target_confidence=ConfigurableField(id="target_confidence"),
        max_samples=ConfigurableField(id="max_samples"),
        strategy=ConfigurableField(id="strategy"),
    )
    low = runnable.invoke("q", config={"configurable": {"target_confidence": 0.5}})
    high = runnable.invoke("q", config={"configurable": {"target_confidence": 0.999}})
    capped = runnable.invoke("q", config={"configurable": {"max_samples": 3}})
    fixed = runnable.invoke("q", config={"configurable": {"strategy": "best_of_n"}})
    assert low.budget.samples_used == 1 < high.budget.samples_used == 10
    assert capped.budget.samples_used == 3
    assert fixed.strategy == "best_of_n" and fixed.budget.samples_used == 64


# -- hard limits ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    max_samples=st.integers(1, 20),
    per_sample=st.integers(1, 30),
    total_extra=st.integers(0, 200),
    strategy=st.sampled_from(["best_of_n", "adaptive_best_of_n", "adaptive_consistency"]),
)
def test_budgets_are_hard_limits(
    lengths: list[int], max_samples: int, per_sample: int, total_extra: int, strategy: str
) -> None:
    responses = [" ".join(["word"] * (n - 1) + [str(n)]) for n in lengths]
    total = per_sample + total_extra
    result = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=responses),
        prm=ScriptedPRM(default_p=0.05, step_score=lambda s: 0.5),
        strategy=strategy,
        max_samples=max_samples,
        max_tokens_per_sample=per_sample,
        max_total_tokens=total,
    ).invoke("q")
    assert result.budget.samples_used <= max_samples
    assert result.budget.generated_tokens <= total
    assert all(c.usage.output_tokens <= per_sample for c in result.candidates)
    if result.budget.samples_used < min(max_samples, result.budget.decided_samples):
        assert result.stop_reason in {"token_budget", "consensus"}


def test_token_budget_stop_reason() -> None:
    model = ScriptedChatModel(responses=[" ".join(["x"] * 10)])
    result = reasoner(
        model=model, strategy=BestOfN(n=10), max_tokens_per_sample=10, max_total_tokens=35
    ).invoke("q")
    assert result.budget.samples_used == 3 and result.stop_reason == "token_budget"
    assert result.budget.generated_tokens == 30
    assert all(call["max_tokens"] == 10 for call in model.calls)


def test_max_total_tokens_smaller_than_one_sample_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="max_total_tokens"):
        reasoner(max_tokens_per_sample=100, max_total_tokens=50).invoke("q")


# -- selection -------------------------------------------------------------------------


def test_prm_selection_picks_the_best_scored_candidate() -> None:
    model = ScriptedChatModel(responses=[WRONG, WRONG, RIGHT])
    result = reasoner(model=model, strategy=BestOfN(n=3)).invoke({"question": "q", "gold": "15"})
    assert result.answer == "15" and result.selected_index == 2
    assert result.correct is True
    assert [c.correct for c in result.candidates] == [False, False, True]
    assert result.candidates[2].score == pytest.approx(0.9)
    assert len(result.candidates[2].step_estimates or []) == 2


def test_majority_vote_needs_no_prm() -> None:
    model = ScriptedChatModel(responses=[WRONG, WRONG, RIGHT])
    result = AdaptiveReasoningRunnable(model=model, strategy="majority_vote", max_samples=3).invoke(
        "q"
    )
    assert result.answer == "14" and result.selection == "majority_vote"
    assert result.question_estimate is None


def test_weighted_vote_outweighs_a_bare_majority() -> None:
    model = ScriptedChatModel(responses=[WRONG, WRONG, RIGHT])
    strategy = BestOfN(n=3, selection="weighted_vote")
    assert reasoner(model=model, strategy=strategy).invoke("q").answer == "15"  # 0.9 > 0.1 + 0.1


def test_adaptive_consistency_stops_on_consensus() -> None:
    model = ScriptedChatModel(responses=[RIGHT])
    result = AdaptiveReasoningRunnable(model=model, strategy="adaptive_consistency").invoke("q")
    assert result.budget.samples_used == 4 and result.stop_reason == "consensus"
    assert result.answer == "15"


# -- inputs -----------------------------------------------------------------------------


def test_messages_and_prompt_values_are_accepted() -> None:
    model = ScriptedChatModel(responses=[RIGHT])
    runnable = reasoner(model=model, strategy=BestOfN(n=1))
    messages = [SystemMessage("be brief"), HumanMessage("What is 7 + 8?")]
    assert runnable.invoke(messages).question == "What is 7 + 8?"
    asked = HumanMessage(f"What is 7 + 8?\n\n{runnable.instruction}")
    assert model.calls[-1]["messages"] == [messages[0], asked]
    prompt = ChatPromptTemplate.from_messages([("human", "What is {a} + {b}?")])
    assert runnable.invoke(prompt.invoke({"a": 7, "b": 8})).question == "What is 7 + 8?"
    assert model.calls[-1]["messages"] == [asked]  # the same treatment as a string
    runnable.model_copy(update={"instruction": None}).invoke(messages)
    assert model.calls[-1]["messages"] == messages


def test_few_shot_examples_come_before_a_plain_question_as_chat_turns() -> None:
    model = ScriptedChatModel(responses=[RIGHT])
    example = FewShotExample(question="What is 2 + 5?", solution="2 + 5 = 7\n\nThe answer is 7.")
    runnable = reasoner(
        model=model, strategy=BestOfN(n=1), examples=[example], system_prompt="be brief"
    )
    result = runnable.invoke({"question": "What is 7 + 8?", "gold": "15"})
    assert result.question == "What is 7 + 8?"
    assert result.correct
    sent = model.calls[-1]["messages"]
    assert [m.type for m in sent] == ["system", "human", "ai", "human"]
    assert sent[1].content == f"What is 2 + 5?\n\n{runnable.instruction}"
    assert sent[2] == AIMessage(example.solution)
    assert sent[3].content == f"What is 7 + 8?\n\n{runnable.instruction}"
    # A conversation the caller built gets the same examples and instruction.
    runnable.invoke([HumanMessage("What is 7 + 8?")])
    assert model.calls[-1]["messages"] == sent


def test_lcel_chain_with_parser() -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "What is {a} + {b}?")])
    chain = prompt | reasoner(strategy=BestOfN(n=3)) | AdaptiveAnswerParser()
    assert chain.invoke({"a": 7, "b": 8}) == "15"
    assert (reasoner(strategy=BestOfN(n=1)) | AdaptiveAnswerParser(field="solution")).invoke(
        "q"
    ) == RIGHT


def test_completion_llms_work_and_mark_estimated_tokens() -> None:
    llm = ScriptedLLM(responses=[RIGHT])
    result = reasoner(model=llm, strategy=BestOfN(n=2)).invoke("q")
    assert result.answer == "15" and result.budget.samples_used == 2
    assert result.budget.tokens_estimated and result.budget.generated_tokens > 0


def test_completion_llm_usage_comes_from_llm_output() -> None:
    llm = ScriptedLLM(responses=[RIGHT, "The answer is 15."], report_usage=True)
    result = reasoner(model=llm, strategy=BestOfN(n=3)).invoke("q")
    assert not result.budget.tokens_estimated
    reported = len(RIGHT.split()) * 2 + 4  # "The answer is 15." is four words
    assert result.budget.generated_tokens == reported


def test_models_without_usage_metadata_are_estimated() -> None:
    model = ScriptedChatModel(responses=[RIGHT], report_usage=False)
    result = reasoner(model=model, strategy=BestOfN(n=2)).invoke("q")
    assert result.budget.tokens_estimated
    assert result.budget.generated_tokens == 2 * round(len(RIGHT) / 4)


@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_empty_question(question: str) -> None:
    with pytest.raises(EmptyQuestionError):
        reasoner().invoke(question)


@pytest.mark.parametrize("value", [42, None, {"prompt": "x"}, [1, 2], {"question": 3}])
def test_non_text_input(value: object) -> None:
    with pytest.raises(UnsupportedInputError):
        reasoner().invoke(value)  # type: ignore[arg-type]


# -- errors keep what was computed ------------------------------------------------------------


def test_invoke_keyword_arguments_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="no keyword arguments"):
        reasoner().invoke("q", stop=["\n"])


def test_unknown_strategy() -> None:
    with pytest.raises(UnknownStrategyError, match="unknown strategy 'bogus'"):
        reasoner(strategy="bogus").invoke("q")


def test_prm_strategy_without_prm() -> None:
    with pytest.raises(ConfigurationError, match="needs a PRM"):
        AdaptiveReasoningRunnable(model=ScriptedChatModel(responses=[RIGHT])).invoke("q")


def test_prm_nan_keeps_the_candidates() -> None:
    prm = ScriptedPRM(step_score=nan_score)
    with pytest.raises(PRMError) as caught:
        reasoner(prm=prm, strategy=BestOfN(n=3)).invoke("q")
    partial = caught.value.partial
    assert partial is not None and len(partial.candidates) == 3
    assert partial.budget.generated_tokens > 0


def test_prm_wrong_shape_is_a_prm_error() -> None:
    with pytest.raises(PRMError, match="score lists"):
        reasoner(prm=ScriptedPRM(fail_questions=True)).invoke("q")


def test_prm_failure_falls_back_to_voting_when_configured() -> None:
    model = ScriptedChatModel(responses=[WRONG, RIGHT, RIGHT])
    scoring = reasoner(model=model, prm=ScriptedPRM(fail_steps=True), strategy=BestOfN(n=3))
    result = scoring.model_copy(update={"on_prm_error": "vote"}).invoke("q")
    assert result.selection == "majority_vote" and result.answer == "15"
    assert any("PRM failed" in w for w in result.warnings)

    estimating = reasoner(prm=ScriptedPRM(fail_questions=True), on_prm_error="vote")
    result = estimating.invoke("q")
    assert result.strategy == "adaptive_consistency" and result.budget.samples_used >= 1


def test_empty_generations() -> None:
    with pytest.raises(EmptyGenerationError) as caught:
        reasoner(model=ScriptedChatModel(responses=[""]), strategy=BestOfN(n=2)).invoke("q")
    assert caught.value.partial is not None and len(caught.value.partial.candidates) == 2


def test_model_failure_keeps_samples_already_drawn() -> None:
    model = ScriptedChatModel(responses=[RIGHT], fail_on_calls={3})
    with pytest.raises(ModelError) as caught:
        reasoner(model=model, strategy=BestOfN(n=5)).invoke("q", config={"max_concurrency": 1})
    partial = caught.value.partial
    assert partial is not None and len(partial.candidates) == 4
    assert isinstance(caught.value.__cause__, RuntimeError)


# -- Runnable plumbing -------------------------------------------------------------------------


def test_child_runs_are_traced_with_config() -> None:
    tracer = RunCollector()
    runnable = reasoner(strategy=BestOfN(n=2))
    runnable.invoke("q", config={"callbacks": [tracer], "tags": ["t1"], "run_name": "thinker"})
    root = tracer.root()
    assert root.name == "thinker" and "t1" in root.tags
    kinds = [r.run_type for r in walk(root)[1:]]
    assert kinds.count("llm") == 2 and kinds.count("prm") == 1  # BestOfN only scores
    assert all("t1" in r.tags for r in walk(root))


def test_usage_equals_the_sum_over_model_child_runs() -> None:
    tracer = RunCollector()
    result = reasoner(strategy=BestOfN(n=3)).invoke("q", config={"callbacks": [tracer]})
    root = tracer.root()
    llm_runs = [r for r in root.child_runs if r.run_type == "llm"]
    total = sum(run_usage(r)[1] for r in llm_runs)
    assert total == result.budget.generated_tokens > 0


async def test_async_verbs_and_events() -> None:
    runnable = reasoner(max_samples=64)
    result = await runnable.ainvoke("easy")
    assert isinstance(result, AdaptiveResult) and result.budget.samples_used == 2
    results = await runnable.abatch(["easy", "hard"], config={"max_concurrency": 2})
    assert [r.budget.samples_used for r in results] == [2, 44]
    events = [e async for e in runnable.astream_events("easy", version="v2")]
    names = {(e["event"], e["name"]) for e in events}
    assert ("on_custom_event", "adaptive_budget_decided") in names
    assert ("on_custom_event", "adaptive_finished") in names
    assert ("on_chat_model_start", "ScriptedChatModel") in names
    assert ("on_prm_start", "ScriptedPRM") in names
    chunks = [c async for c in runnable.astream("easy")]
    assert len(chunks) == 1 and chunks[0].answer == "15"


def test_stream_yields_the_result() -> None:
    (result,) = list(reasoner(strategy=BestOfN(n=1)).stream("q"))
    assert result.answer == "15"
