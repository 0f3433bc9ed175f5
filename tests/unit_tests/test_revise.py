"""Sequential revisions: chains, revision prompts, stop rules, the C:L choice, token accounting,
hard limits, replay's refusal, and the same run in invoke, ainvoke, batch, abatch and
astream_events."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from pydantic import Field

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.replay import Policy, prepare_pools, replay, replay_question
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION
from langchain_adaptive.results import AdaptiveResult, SuccessEstimate
from langchain_adaptive.strategies import (
    STRATEGIES,
    AdaptiveRevisions,
    Draw,
    EstimateQuestion,
    Revise,
    SequentialRevisions,
    build_strategy,
)
from langchain_adaptive.strategies._revise import fit_sequential_threshold, split_budget
from tests.unit_tests.evaluation.test_replay import _pool
from tests.unit_tests.fakes import ScriptedPRM
from tests.unit_tests.test_beam_search import EventRecorder

QUESTION = "What is 7 + 8?"
ANSWER = re.compile(r"The answer is (-?\d+)\.")


class RevisingModel(BaseChatModel):
    """First answers come from ``first`` (by call order); a revision adds ``step`` to the
    answer of the last attempt its prompt shows. One token per word; usage reported
    unless ``report_usage`` is off; ``max_tokens`` truncates."""

    first: list[int] = Field(default_factory=lambda: [10])
    step: int = 1
    words: int = 3
    """Filler words before the answer sentence."""
    report_usage: bool = True
    prompts: list[str] = Field(default_factory=list)
    firsts: int = 0

    @property
    def _llm_type(self) -> str:
        return "revising"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = "\n".join(str(m.content) for m in messages)
        self.prompts.append(prompt)
        shown = ANSWER.findall(prompt.split("Here are earlier attempts", 1)[-1])
        if "Here are earlier attempts" in prompt and shown:
            answer = int(shown[-1]) + self.step
        else:
            answer = self.first[self.firsts % len(self.first)]
            self.firsts += 1
        words = ["work"] * self.words + ["The", "answer", "is", f"{answer}."]
        cap = kwargs.get("max_tokens")
        finish = "stop"
        if cap is not None and len(words) > cap:
            words, finish = words[:cap], "length"
        usage = {
            "input_tokens": len(prompt.split()),
            "output_tokens": len(words),
            "total_tokens": len(prompt.split()) + len(words),
        }
        message = AIMessage(
            content=" ".join(words),
            usage_metadata=usage if self.report_usage else None,
            response_metadata={"finish_reason": finish},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def run(
    strategy: SequentialRevisions | str,
    model: RevisingModel | None = None,
    prm: ScriptedPRM | None = None,
    config: dict[str, Any] | None = None,
    **settings: Any,
) -> AdaptiveResult:
    reasoner = AdaptiveReasoningRunnable(
        model=model or RevisingModel(),
        prm=prm if prm is not None else ScriptedPRM(),
        strategy=strategy,
        **{"max_samples": 8, **settings},
    )
    return reasoner.invoke(QUESTION, config)  # type: ignore[arg-type]


def chains_of(recorder: EventRecorder, result: AdaptiveResult) -> dict[int, list[str | None]]:
    """Each chain's answers, first answer then revisions, from the revision events."""
    revisions = recorder.named("adaptive_revision")
    firsts: dict[int, int] = {}
    for event in revisions:
        if event["revision"] == 1:
            firsts[event["chain"]] = event["shown"][0]
    chains: dict[int, list[str | None]] = defaultdict(list)
    for chain, index in firsts.items():
        chains[chain].append(result.candidates[index].answer)
    for event in revisions:
        chains[event["chain"]].append(event["answer"])
    return dict(chains)


# -- the budget split ----------------------------------------------------------------


def test_split_budget_divides_n_into_chains_of_equal_length() -> None:
    assert split_budget(8, 2) == (2, 3)
    assert split_budget(8, 1) == (1, 7)
    assert split_budget(8, 8) == (8, 0)
    assert split_budget(9, 2) == (2, 3)  # 2 x 4 = 8 of the 9 attempts
    assert split_budget(3, 5) == (3, 0)
    for n in range(1, 20):
        for c in range(1, 10):
            chains, revisions = split_budget(n, c)
            assert chains * (1 + revisions) <= n


def test_two_chains_of_three_revisions_use_eight_attempts() -> None:
    recorder = EventRecorder()
    model = RevisingModel(first=[10, 20])
    strategy = SequentialRevisions(chains=2, revisions=3)
    result = run(strategy, model, config={"callbacks": [recorder]})

    assert result.budget.samples_used == 8 == result.budget.decided_samples
    assert result.stop_reason == "fixed_budget"
    chains = chains_of(recorder, result)
    assert sorted(chains.values()) == [["10", "11", "12", "13"], ["20", "21", "22", "23"]]
    revisions = recorder.named("adaptive_revision")
    assert [e["revision"] for e in revisions] == [1, 1, 2, 2, 3, 3]
    decided = recorder.named("adaptive_budget_decided")
    assert [(e["n"], e["reason"]) for e in decided] == [(8, "fixed")]


def test_zero_revisions_is_parallel_sampling() -> None:
    model = RevisingModel(first=[10, 20, 30])
    result = run(SequentialRevisions(chains=3, revisions=0), model)
    assert sorted(c.answer for c in result.candidates) == ["10", "20", "30"]  # type: ignore[type-var]
    assert not any("earlier attempts" in p for p in model.prompts)


# -- the revision prompt -------------------------------------------------------------


def test_a_revision_prompt_shows_the_question_its_chain_and_at_most_four_attempts() -> None:
    model = RevisingModel(first=[10, 50])
    run(SequentialRevisions(chains=2, revisions=6), model, max_samples=14)

    revisions = [p for p in model.prompts if "Here are earlier attempts" in p]
    assert len(revisions) == 12
    for prompt in revisions:
        assert prompt.startswith(QUESTION)
        assert prompt.endswith(DEFAULT_INSTRUCTION)  # the same answer format as a first answer
        shown = [int(a) for a in ANSWER.findall(prompt)]
        assert 1 <= len(shown) <= 4
        assert shown == list(range(shown[0], shown[0] + len(shown)))  # own chain, oldest first
        assert re.findall(r"Attempt (\d+):", prompt) == [str(i + 1) for i in range(len(shown))]
    longest = [p for p in revisions if len(ANSWER.findall(p)) == 4]
    assert longest  # chains of 7 attempts: the last revisions see only the latest four
    last = max(revisions, key=lambda p: max(int(a) for a in ANSWER.findall(p)))
    assert [int(a) for a in ANSWER.findall(last)] == [52, 53, 54, 55]


def test_the_revision_prompt_is_a_template_the_user_can_replace() -> None:
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You fix arithmetic."),
            ("human", "Problem: {question}\nTries:\n{attempts}\nFix it."),
        ]
    )
    model = RevisingModel()
    run(SequentialRevisions(chains=1, revisions=1, prompt=prompt), model, max_samples=2)
    assert model.prompts[1].startswith("You fix arithmetic.\nProblem: What is 7 + 8?\nTries:")
    assert "Attempt 1:" in model.prompts[1] and DEFAULT_INSTRUCTION not in model.prompts[1]


def test_the_question_system_prompt_leads_the_default_revision_prompt() -> None:
    model = RevisingModel()
    run(SequentialRevisions(chains=1, revisions=1), model, max_samples=2, system_prompt="Be terse.")
    assert model.prompts[1].startswith("Be terse.\nWhat is 7 + 8?")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{question} {attempts} {tone}", "uses \\['tone'\\]"),
        ("{question} only", "must show the earlier \\{attempts\\}"),
    ],
)
def test_a_prompt_with_unknown_or_missing_variables_is_refused(template: str, problem: str) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", template)])
    with pytest.raises(ConfigurationError, match=problem):
        build_strategy("revise", prompt=prompt)


# -- selection -----------------------------------------------------------------------


def test_majority_votes_over_each_chains_last_attempt() -> None:
    model = RevisingModel(first=[5])  # every chain: 5, 6, 7
    strategy = SequentialRevisions(chains=3, revisions=2, selection="majority_vote")
    result = run(strategy, model, max_samples=9)
    assert result.answer == "7"  # over every attempt 5, 6 and 7 tie and 5 came first
    assert result.selection == "majority_vote"


def test_weighted_vote_reads_every_attempt() -> None:
    model = RevisingModel(first=[15], step=1)  # 15, 16, 17: only the first is right
    prm = ScriptedPRM(step_score=lambda step: 0.9 if "15" in step else 0.2)
    result = run(SequentialRevisions(chains=2, revisions=2), model, prm)
    assert result.answer == "15"  # 2 x 0.9 against 2 x 0.2 each for 16 and 17
    assert all(c.score is not None for c in result.candidates)
    assert result.budget.prm_calls == 1  # scored once, after the last round


# -- the adaptive variant ------------------------------------------------------------


def test_a_chain_stops_once_its_latest_attempt_scores_the_target() -> None:
    model = RevisingModel(first=[10, 30])
    prm = ScriptedPRM(step_score=lambda step: 0.95 if "12." in step else 0.2)
    strategy = AdaptiveRevisions(easy_chains=2, stop_score=0.9, stop_on=("score",))
    recorder = EventRecorder()
    result = run(strategy, model, prm, config={"callbacks": [recorder]}, max_samples=10)

    chains = chains_of(recorder, result)
    assert sorted(chains.values()) == [["10", "11", "12"], ["30", "31", "32", "33", "34"]]
    assert result.budget.samples_used == 8 < result.budget.decided_samples == 10
    assert result.answer == "12"


def test_the_target_confidence_is_the_default_stop_score() -> None:
    model = RevisingModel(first=[10])
    prm = ScriptedPRM(step_score=lambda step: 0.95 if "11." in step else 0.2)
    strategy = AdaptiveRevisions(stop_on=("score",))
    assert run(strategy, model, prm, target_confidence=0.9).budget.samples_used == 2
    assert run(strategy, model, prm, target_confidence=0.99).budget.samples_used == 8


def test_a_chain_stops_when_two_revisions_in_a_row_agree() -> None:
    model = RevisingModel(first=[10], step=0)  # every revision repeats the answer
    strategy = AdaptiveRevisions(stop_on=("stable",))
    recorder = EventRecorder()
    result = run(strategy, model, config={"callbacks": [recorder]})
    assert list(chains_of(recorder, result).values()) == [["10", "10", "10"]]
    assert result.stop_reason == "consensus"
    three = run(AdaptiveRevisions(stop_on=("stable",), stable_revisions=3), RevisingModel(step=0))
    assert three.budget.samples_used == 4


def test_answers_that_keep_changing_run_the_chain_to_its_end() -> None:
    result = run(AdaptiveRevisions(stop_on=("stable",)), RevisingModel(step=1))
    assert result.budget.samples_used == 8 and result.stop_reason == "adaptive_budget"


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.8, (1, 7, True)), (0.3, (1, 7, True)), (0.29, (4, 1, False)), (0.05, (4, 1, False))],
)
def test_the_ratio_follows_the_calibrated_estimate(
    p: float, expected: tuple[int, int, bool]
) -> None:
    strategy = AdaptiveRevisions(sequential_above=0.3)
    assert strategy.ratio(SuccessEstimate.point(p), 8) == expected


def test_the_ratio_reads_the_lower_quantile() -> None:
    estimate = SuccessEstimate(quantiles={0.1: 0.2, 0.5: 0.6, 0.9: 0.8})
    assert not AdaptiveRevisions(sequential_above=0.5).ratio(estimate, 8)[2]
    assert AdaptiveRevisions(sequential_above=0.5, quantile=0.5).ratio(estimate, 8)[2]
    hard = AdaptiveRevisions(hard_chain_length=4, easy_chains=2)
    assert hard.ratio(SuccessEstimate.point(0.1), 8) == (2, 3, False)
    assert hard.ratio(SuccessEstimate.point(0.9), 8) == (2, 3, True)


def test_an_easy_question_gets_one_long_chain_a_hard_one_many_short_ones() -> None:
    prm = ScriptedPRM(question_p={QUESTION: 0.9}, step_score=lambda step: 0.2)
    recorder = EventRecorder()
    easy = run("adaptive_revise", RevisingModel(first=[1, 2, 3, 4]), prm, {"callbacks": [recorder]})
    assert len(chains_of(recorder, easy)) == 1 and easy.budget.samples_used == 8
    decided = recorder.named("adaptive_budget_decided")
    assert [(e["reason"], e["estimate"]["lower"]) for e in decided] == [("revise_sequential", 0.9)]

    prm = ScriptedPRM(question_p={QUESTION: 0.1}, step_score=lambda step: 0.2)
    recorder = EventRecorder()
    hard = run("adaptive_revise", RevisingModel(first=[1, 2, 3, 4]), prm, {"callbacks": [recorder]})
    assert len(chains_of(recorder, hard)) == 4 and hard.budget.samples_used == 8
    assert recorder.named("adaptive_budget_decided")[0]["reason"] == "revise_parallel"


def test_the_threshold_is_fitted_on_a_calibration_split() -> None:
    estimates = [0.05, 0.1, 0.2, 0.4, 0.6, 0.9]
    sequential = [False, False, False, True, True, True]
    parallel = [True, True, False, False, True, False]
    threshold = fit_sequential_threshold(estimates, sequential, parallel)
    assert threshold == 0.4  # 2 + 3 right; any other threshold gets fewer

    def right(t: float) -> int:
        return sum(
            s if p >= t else q for p, s, q in zip(estimates, sequential, parallel, strict=True)
        )

    assert all(right(other) <= right(threshold) for other in [*estimates, 1.5])
    assert fit_sequential_threshold([0.2, 0.8], [False, False], [True, True]) == float("inf")
    with pytest.raises(ValueError, match="one entry per question"):
        fit_sequential_threshold([0.2], [True, False], [True])


# -- tokens and limits ---------------------------------------------------------------


def test_revision_prompts_count_as_prompt_tokens() -> None:
    model = RevisingModel(first=[10])
    result = run(SequentialRevisions(chains=1, revisions=3), model, max_samples=4)
    inputs = [c.usage.input_tokens for c in result.candidates]
    assert inputs == [len(p.split()) for p in model.prompts]
    assert inputs[0] < inputs[1] < inputs[2] < inputs[3]  # each shows one more attempt
    assert result.budget.prompt_tokens == sum(inputs)
    assert result.budget.generated_tokens == sum(c.usage.output_tokens for c in result.candidates)
    assert not result.budget.tokens_estimated


def test_unreported_revision_prompts_are_counted_by_estimate() -> None:
    model = RevisingModel(first=[10], report_usage=False)
    result = run(SequentialRevisions(chains=1, revisions=2), model, max_samples=3)
    first, *revisions = result.candidates
    assert first.usage.input_tokens == 0  # a first answer's prompt: the model's report only
    assert all(c.usage.input_tokens > 20 and c.usage.estimated for c in revisions)
    assert result.budget.prompt_tokens == sum(c.usage.input_tokens for c in revisions)
    assert result.budget.tokens_estimated


def test_the_sample_cap_cuts_the_last_rounds_first() -> None:
    recorder = EventRecorder()
    result = run(
        SequentialRevisions(chains=2, revisions=3),
        RevisingModel(first=[10, 20]),
        config={"callbacks": [recorder]},
        max_samples=5,
    )
    assert result.budget.samples_used == 5 and result.budget.decided_samples == 8
    assert result.stop_reason == "max_samples" and result.low_confidence
    assert sorted(len(chain) for chain in chains_of(recorder, result).values()) == [2, 3]


def test_the_token_cap_is_hard_by_reservation() -> None:
    model = RevisingModel(first=[10, 20], words=12)  # 16 words a sample, cut to 10
    result = run(
        SequentialRevisions(chains=2, revisions=3),
        model,
        max_tokens_per_sample=10,
        max_total_tokens=35,
    )
    assert result.budget.generated_tokens <= 35
    assert result.budget.samples_used == 3  # 3 x 10 fit; a fourth could not be reserved
    assert result.stop_reason == "token_budget" and result.low_confidence


def test_a_failing_revision_keeps_the_attempts_already_made() -> None:
    class Fails(RevisingModel):
        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            if len(self.prompts) >= 3:
                raise RuntimeError("model down")
            return super()._generate(messages, *args, **kwargs)

    with pytest.raises(Exception, match="model down") as caught:
        run(SequentialRevisions(chains=1, revisions=4), Fails())
    partial = caught.value.partial  # type: ignore[attr-defined]
    assert [c.answer for c in partial.candidates] == ["10", "11", "12"]


# -- every runnable verb -------------------------------------------------------------


def _shape(result: AdaptiveResult) -> list[tuple[Any, ...]]:
    return [(c.index, c.answer, c.usage.input_tokens, c.score) for c in result.candidates]


def test_sync_async_batch_and_abatch_give_the_same_chains() -> None:
    def reasoner() -> AdaptiveReasoningRunnable:
        return AdaptiveReasoningRunnable(
            model=RevisingModel(first=[10]),
            prm=ScriptedPRM(step_score=lambda step: 0.95 if "13." in step else 0.3),
            strategy=AdaptiveRevisions(stop_score=0.9),
            max_samples=8,
        )

    sync_events, async_events = EventRecorder(), EventRecorder()
    sync = reasoner().invoke(QUESTION, {"callbacks": [sync_events]})
    asynchronous = asyncio.run(reasoner().ainvoke(QUESTION, {"callbacks": [async_events]}))
    assert _shape(sync) == _shape(asynchronous)
    assert [c.answer for c in sync.candidates] == ["10", "11", "12", "13"]
    assert sync.budget.model_dump() == asynchronous.budget.model_dump()
    assert sync_events.events == async_events.events
    batched = reasoner().batch([QUESTION, QUESTION])
    abatched = asyncio.run(reasoner().abatch([QUESTION, QUESTION]))
    assert [_shape(r) for r in batched] == [_shape(r) for r in abatched]
    assert [c.answer for c in batched[1].candidates] == ["10", "11", "12", "13"]


async def test_astream_events_report_each_revision() -> None:
    reasoner = AdaptiveReasoningRunnable(
        model=RevisingModel(first=[10, 20]),
        prm=ScriptedPRM(),
        strategy=SequentialRevisions(chains=2, revisions=2),
        max_samples=6,
    )
    events = [e async for e in reasoner.astream_events(QUESTION, version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    revisions = [e["data"] for e in custom if e["name"] == "adaptive_revision"]
    assert len(revisions) == 4
    assert {r["revision"] for r in revisions} == {1, 2}
    assert all(r["prompt_tokens"] > 0 and len(r["shown"]) == r["revision"] for r in revisions)
    assert custom[-1]["name"] == "adaptive_finished"
    assert custom[-1]["data"]["strategy"] == "revise"


# -- the plan, the registry, replay --------------------------------------------------


def test_the_plan_draws_first_answers_then_revises_with_the_latest_attempts() -> None:
    from langchain_adaptive.budget import BudgetLimits, BudgetTracker
    from langchain_adaptive.results import Candidate
    from langchain_adaptive.strategies import RunState

    state = RunState(
        question=QUESTION,
        target_confidence=0.9,
        tracker=BudgetTracker(BudgetLimits(max_samples=20)),
        has_prm=False,
    )
    plan = SequentialRevisions(chains=2, revisions=5, shown_attempts=2).plan(state)
    action = next(plan)
    assert action == Draw(2)
    made: list[Candidate] = []

    def attempts(k: int) -> list[Candidate]:
        new = [Candidate(index=len(made) + i, text=f"t{len(made) + i}") for i in range(k)]
        made.extend(new)
        state.candidates.extend(new)
        state.tracker.record_samples([c.usage for c in new])
        return new

    action = plan.send(attempts(2))
    revisions = 0
    while isinstance(action, Revise):
        revisions += 1
        assert action.chains == (0, 1) and action.revision == revisions
        assert all(len(shown) == min(2, revisions) for shown in action.chain_attempts)
        try:
            action = plan.send(attempts(2))
        except StopIteration as stop:
            assert stop.value.decided_samples == 12
            break
    assert revisions == 5
    assert [c.index for c in action.chain_attempts[0]] == [6, 8]  # type: ignore[union-attr]


def test_both_names_are_registered_and_accepted_by_the_cli() -> None:
    from langchain_adaptive.cli import _build_parser

    assert STRATEGIES["revise"][0] is SequentialRevisions
    assert isinstance(build_strategy("adaptive_revise"), AdaptiveRevisions)
    assert AdaptiveRevisions.requires_prm and not SequentialRevisions.requires_prm
    assert SequentialRevisions.revises and not SequentialRevisions.stepwise
    with pytest.raises(ConfigurationError, match="invalid settings"):
        build_strategy("revise", chains=0)
    parser = _build_parser()
    for name in ("revise", "adaptive_revise"):
        assert parser.parse_args(["ask", "What is 2 + 3?", "--strategy", name]).strategy == name


def test_the_adaptive_plan_asks_for_the_estimate_first() -> None:
    from langchain_adaptive.budget import BudgetLimits, BudgetTracker
    from langchain_adaptive.strategies import RunState

    state = RunState(
        question=QUESTION,
        target_confidence=0.9,
        tracker=BudgetTracker(BudgetLimits(max_samples=6)),
        has_prm=True,
    )
    plan = AdaptiveRevisions().plan(state)
    assert next(plan) == EstimateQuestion()
    draw = plan.send(SuccessEstimate.point(0.1))
    assert draw == Draw(3) and draw.planned == 6 and draw.reason == "revise_parallel"


def test_replay_refuses_revisions_with_a_clear_error() -> None:
    pools = prepare_pools([_pool("a", [True, False])])
    policy = Policy(name="rev", family="rev", strategy=SequentialRevisions(), max_samples=2)
    with pytest.raises(ConfigurationError, match=r"revises earlier attempts.*run it live"):
        replay(pools, [policy], replicates=0)
    with pytest.raises(ConfigurationError, match="independent samples"):
        replay_question(policy, pools[0])
