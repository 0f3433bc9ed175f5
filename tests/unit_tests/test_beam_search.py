"""Step-level beam search: IAS-of-K / IAS-of-M arithmetic, pruning, finished beams, budgets."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from langchain_adaptive import AdaptiveReasoningRunnable, BeamSearch
from langchain_adaptive._sampling import draw_steps, step_prefix
from langchain_adaptive.answers import split_steps
from langchain_adaptive.errors import ModelError, PRMError
from langchain_adaptive.evaluation.datasets import arithmetic_suite
from langchain_adaptive.evaluation.live import live_policy, run_live
from langchain_adaptive.inputs import parse_input
from langchain_adaptive.results import AdaptiveResult, Beam, SuccessEstimate
from langchain_adaptive.strategies import (
    build_strategy,
    first_steps_confidence,
    ias_beams_kept,
    ias_samples_per_beam,
)
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedLLM, ScriptedPRM

QUESTION = "What is (3 + 4) * 2?"


def n_ias(p: float, confidence: float) -> int:
    """The IAS formula written out independently of the package."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - p) - 1e-9)


# -- the IAS-of-K / IAS-of-M arithmetic ------------------------------------------------


@pytest.mark.parametrize(
    ("lowers", "m_max", "expected"),
    [
        ([0.9, 0.8, 0.2], 4, 1),  # N_IAS(0.9) = 2 <= 1 * 4
        ([0.6, 0.5, 0.1], 4, 2),  # N_IAS(0.6) = 6 > 4; N_IAS(0.5) = 7 <= 8
        ([0.3, 0.2], 4, 2),  # 13 > 4 and 21 > 8: unreachable, the cap
        ([0.5, 0.9], 4, 2),  # p_K is the weakest of the first K: 7 <= 8
    ],
)
def test_ias_of_k_keeps_the_fewest_beams_that_reach_the_target(
    lowers: list[float], m_max: int, expected: int
) -> None:
    assert ias_beams_kept(lowers, m_max, 0.99) == expected
    reachable = [k for k in range(1, len(lowers) + 1) if k * m_max >= n_ias(min(lowers[:k]), 0.99)]
    assert expected == (reachable[0] if reachable else len(lowers))


@pytest.mark.parametrize(
    ("p", "k_max", "m_max", "expected"),
    [(0.5, 4, 4, 2), (0.9, 4, 8, 1), (0.1, 4, 4, 4), (0.3, 2, 16, 7)],
)
def test_ias_of_m_gives_each_beam_what_the_weakest_needs(
    p: float, k_max: int, m_max: int, expected: int
) -> None:
    assert ias_samples_per_beam(p, k_max, m_max, 0.99) == expected
    assert expected == min(m_max, math.ceil(n_ias(p, 0.99) / k_max))


def _scored(beam_id: int, lower: float, median: float) -> Beam:
    estimate = SuccessEstimate(quantiles={0.1: lower, 0.5: median, 0.9: min(1.0, median + 0.05)})
    return Beam(id=beam_id, steps=[f"step {beam_id}"], step_estimates=[estimate])


@pytest.mark.parametrize(
    ("adaptive_k", "adaptive_m", "k", "m"),
    [(False, False, 3, 4), (True, False, 2, 4), (False, True, 3, 3), (True, True, 2, 3)],
)
def test_widths_combine_ias_of_k_and_ias_of_m(
    adaptive_k: bool, adaptive_m: bool, k: int, m: int
) -> None:
    ranked = [_scored(0, 0.6, 0.8), _scored(1, 0.5, 0.7), _scored(2, 0.45, 0.6)]
    ranked.append(_scored(3, 0.1, 0.2))
    strategy = BeamSearch(
        beams_kept=3, samples_per_beam=4, adaptive_k=adaptive_k, adaptive_m=adaptive_m
    )
    widths = strategy.widths(ranked, width=16, target_confidence=0.99)
    assert ([b.id for b in widths.kept], widths.m) == (list(range(k)), m)
    # IAS-of-K: 1 * 4 < N(0.6) = 6 but 2 * 4 >= N(0.5) = 7. IAS-of-M, K_max = 3:
    # ceil(N(0.45) / 3) = ceil(8 / 3) = 3 of all three, ceil(N(0.5) / 3) = 3 of the first two.
    weakest = min(b.step_estimates[-1].at(0.1) for b in widths.kept)  # type: ignore[index]
    if adaptive_m:
        assert m == min(4, math.ceil(n_ias(weakest, 0.99) / 3))
    assert widths.reachable == (k * m >= n_ias(weakest, 0.99))


@pytest.mark.parametrize(
    ("adaptive_k", "adaptive_m", "k", "m"),
    [(True, False, 1, 4), (False, True, 3, 2), (True, True, 1, 2)],
)
def test_unreachable_floor_drops_each_adaptive_width_to_its_floor(
    adaptive_k: bool, adaptive_m: bool, k: int, m: int
) -> None:
    # N_IAS(0.05) = 90 at C = 0.99: far beyond 3 beams of 4 samples.
    ranked = [_scored(i, 0.05, 0.3 - i / 100) for i in range(4)]
    beam = {"beams_kept": 3, "samples_per_beam": 4, "adaptive_k": adaptive_k}
    spend = BeamSearch(**beam, adaptive_m=adaptive_m).widths(ranked, 16, 0.99)
    assert (len(spend.kept), spend.m, spend.reachable, spend.floored) == (3, 4, False, False)
    floored = BeamSearch(**beam, adaptive_m=adaptive_m, unreachable="floor").widths(
        ranked, 16, 0.99
    )
    assert ([b.id for b in floored.kept], floored.m) == (list(range(k)), m)
    assert floored.floored and not floored.reachable


def test_floor_leaves_reachable_selections_alone() -> None:
    ranked = [_scored(0, 0.6, 0.8), _scored(1, 0.5, 0.7), _scored(2, 0.45, 0.6)]
    strategy = BeamSearch(
        beams_kept=3, samples_per_beam=4, adaptive_k=True, adaptive_m=True, unreachable="floor"
    )
    widths = strategy.widths(ranked, width=16, target_confidence=0.99)
    assert (len(widths.kept), widths.m, widths.floored) == (2, 3, False)


def test_floor_without_an_adaptive_width_is_refused() -> None:
    with pytest.raises(ValueError, match="adaptive_k or adaptive_m"):
        BeamSearch(unreachable="floor")


def test_widths_never_exceed_the_open_paths() -> None:
    ranked = [_scored(i, 0.2, 0.5 - i / 100) for i in range(6)]
    widths = BeamSearch(beams_kept=4, samples_per_beam=4).widths(ranked, 6, 0.9)
    assert len(widths.kept) * widths.m <= 6 and (len(widths.kept), widths.m) == (1, 4)
    widths = BeamSearch(beams_kept=4, samples_per_beam=4).widths(ranked, 3, 0.9)
    assert (len(widths.kept), widths.m) == (1, 3)


def test_registry_names_switch_the_adaptive_widths() -> None:
    assert build_strategy("beam_search") == BeamSearch()
    assert build_strategy("ias_of_k").adaptive_k  # type: ignore[attr-defined]
    assert build_strategy("ias_of_m").adaptive_m  # type: ignore[attr-defined]
    assert BeamSearch().stepwise and BeamSearch.requires_prm


# -- a step-wise fake policy ---------------------------------------------------------


class StepChatModel(BaseChatModel):
    """Continues a prefilled partial solution; draws ``n`` together, as ChatLlamaCpp does.

    ``next_step(steps, i)`` gives the ``i``-th of ``n`` next steps after ``steps``,
    so outputs depend only on the prompt: sync and async runs see the same text.
    One token per word; ``max_tokens`` truncates.
    """

    supports_n_samples: ClassVar[bool] = True
    next_step: Callable[[list[str], int], str]
    fail_after: int | None = None
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "step-chat"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("scripted step failure")
        last = messages[-1]
        prefix = str(last.content) if isinstance(last, AIMessage) else ""
        steps = split_steps(prefix)
        n = kwargs.get("n", 1)
        self.calls.append({"prefix": prefix, "n": n, "stop": stop, **kwargs})
        generations = []
        for i in range(n):
            words = self.next_step(steps, i).split()
            max_tokens = kwargs.get("max_tokens")
            finish = "stop"
            if max_tokens is not None and len(words) > max_tokens:
                words, finish = words[:max_tokens], "length"
            usage = {"input_tokens": 10, "output_tokens": len(words), "total_tokens": 10}
            message = AIMessage(
                content=" ".join(words),
                usage_metadata=usage,
                response_metadata={"finish_reason": finish},
            )
            generations.append(ChatGeneration(message=message))
        return ChatResult(generations=generations)


def arithmetic_steps(steps: list[str], i: int) -> str:
    """Right first steps for even ``i``, a wrong one for odd; then on to the answer."""
    if not steps:
        return "3 + 4 = 7" if i % 2 == 0 else "3 + 4 = 8"
    if len(steps) == 1:
        product = int(steps[0].split(" = ")[1]) * 2
        return f"{steps[0].split(' = ')[1]} * 2 = {product}"
    return f"The answer is {steps[-1].split(' = ')[1]}."


def right_steps(step: str) -> float:
    """The PRM likes steps whose arithmetic is right."""
    if "=" in step:
        left, right = step.split(" = ")
        return 0.9 if str(eval(left)) == right else 0.1  # only digits and operators
    return 0.9 if "14" in step else 0.1


class EventRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(
        self, name: str, data: Any, *, run_id: UUID, tags: Any = None, **kwargs: Any
    ) -> None:
        self.events.append((name, data))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]


def reasoner(
    model: BaseChatModel | None = None, prm: ScriptedPRM | None = None, **settings: Any
) -> AdaptiveReasoningRunnable:
    strategy = BeamSearch(
        **{"n_paths": 4, "beams_kept": 2, "samples_per_beam": 2, "max_steps": 4, **settings}
    )
    return AdaptiveReasoningRunnable(
        model=model or StepChatModel(next_step=arithmetic_steps),
        prm=prm or ScriptedPRM(step_score=right_steps),
        strategy=strategy,
    )


def _shape(result: AdaptiveResult) -> list[tuple[Any, ...]]:
    return [
        (b.id, b.parent_id, tuple(b.steps), b.finished, b.pruned, b.answer)
        for b in result.beams or []
    ]


# -- the search, live through the runnable -------------------------------------------


def test_beam_search_prunes_to_the_best_beams_and_keeps_their_lineage() -> None:
    recorder = EventRecorder()
    result = reasoner().invoke(QUESTION, {"callbacks": [recorder]})

    assert result.answer == "14" and result.strategy == "beam_search"
    beams = {b.id: b for b in result.beams or []}
    first = [b for b in beams.values() if b.parent_id is None]
    assert [b.steps for b in first] == [["3 + 4 = 7"], ["3 + 4 = 8"]] * 2
    [pruned] = recorder.named("adaptive_beams_pruned")[:1]
    assert pruned == {
        "step_index": 0,
        "kept": [0, 2],
        "dropped": [1, 3],
        "k": 2,
        "m": 2,
        "floored": False,
    }
    assert [beams[i].pruned for i in (0, 1, 2, 3)] == [False, True, False, True]
    for beam in beams.values():  # every child extends its parent by exactly one step
        if beam.parent_id is not None:
            parent = beams[beam.parent_id]
            assert beam.steps[:-1] == parent.steps and not parent.pruned
    assert all(beams[c.beam_id].finished for c in result.candidates)  # type: ignore[index]
    assert len(result.candidates) <= 4 == result.budget.decided_samples
    assert result.budget.samples_used == len(result.candidates)


def test_prefix_is_sent_as_an_assistant_prefill_with_the_step_stop() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    reasoner(model=model, n_paths=2, beams_kept=1, samples_per_beam=2).invoke(QUESTION)
    assert model.calls[0]["prefix"] == "" and model.calls[0]["n"] == 2
    assert model.calls[1]["prefix"] == step_prefix(["3 + 4 = 7"]) == "3 + 4 = 7\n\n"
    assert all(call["stop"] == ["\n\n"] for call in model.calls)


def test_finished_beams_are_kept_and_selection_is_by_median_estimate() -> None:
    def steps(done: list[str], i: int) -> str:
        if not done:  # one beam answers at once (wrongly), the others reason
            return "The answer is 15." if i == 0 else "3 + 4 = 7"
        return arithmetic_steps(done, i)

    recorder = EventRecorder()
    result = reasoner(model=StepChatModel(next_step=steps)).invoke(
        QUESTION, {"callbacks": [recorder]}
    )
    early = (result.beams or [])[0]
    assert early.finished and early.answer == "15" and not early.pruned
    assert early.id in {c.beam_id for c in result.candidates}
    assert all(b.parent_id != early.id for b in result.beams or [])  # never extended
    best = max(result.candidates, key=lambda c: c.step_estimates[-1].median)  # type: ignore[index]
    assert result.selected_index == best.index and result.answer == "14"
    scored = recorder.named("adaptive_step_scored")
    assert scored and set(scored[0]) == {"beam_id", "step_index", "lower", "median", "finished"}


def test_max_steps_finishes_open_beams() -> None:
    result = reasoner(max_steps=1).invoke(QUESTION)
    assert result.stop_reason == "max_steps"
    assert all(len(b.steps) == 1 and b.finished for b in result.beams or [])
    assert len(result.candidates) == 4


def test_ias_of_k_keeps_one_beam_when_the_best_is_sure() -> None:
    recorder = EventRecorder()
    prm = ScriptedPRM(step_score=lambda step: 0.999 if "7" in step else 0.5)
    reasoner(prm=prm, n_paths=8, beams_kept=4, samples_per_beam=2, adaptive_k=True).invoke(
        QUESTION, {"callbacks": [recorder]}
    )
    first = recorder.named("adaptive_beams_pruned")[0]
    assert (first["k"], first["m"]) == (1, 2)  # N_IAS(0.999) = 1 <= 1 * 2


def test_ias_of_m_spends_less_on_sure_beams() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    prm = ScriptedPRM(step_score=lambda step: 0.95)
    result = reasoner(
        model=model, prm=prm, n_paths=8, beams_kept=2, samples_per_beam=4, adaptive_m=True
    ).invoke(QUESTION)
    # N_IAS(0.95) = 2 at C = 0.99: ceil(2 / K_max) = 1 continuation per kept beam.
    assert [call["n"] for call in model.calls][:3] == [8, 1, 1]
    assert not result.low_confidence


def test_unreachable_target_is_flagged_low_confidence() -> None:
    prm = ScriptedPRM(step_score=lambda step: 0.05)
    result = reasoner(prm=prm, adaptive_k=True, adaptive_m=True).invoke(QUESTION)
    assert result.low_confidence


def test_floored_search_narrows_when_every_beam_is_unlikely() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    recorder = EventRecorder()
    prm = ScriptedPRM(step_score=lambda step: 0.05)
    result = reasoner(
        model=model,
        prm=prm,
        n_paths=8,
        beams_kept=2,
        samples_per_beam=4,
        adaptive_k=True,
        adaptive_m=True,
        unreachable="floor",
    ).invoke(QUESTION, {"callbacks": [recorder]})
    first = recorder.named("adaptive_beams_pruned")[0]
    assert (first["k"], first["m"], first["floored"]) == (1, 2, True)
    assert [call["n"] for call in model.calls][:2] == [8, 2]
    assert result.low_confidence and result.candidates


def test_token_budget_is_a_hard_limit_and_keeps_the_beams() -> None:
    runnable = reasoner(n_paths=4).model_copy(
        update={"max_tokens_per_sample": 5, "max_total_tokens": 40}
    )
    result = runnable.invoke(QUESTION)
    assert result.budget.generated_tokens <= 40
    assert result.stop_reason == "token_budget"
    assert result.candidates and result.beams
    assert all(b.usage.output_tokens <= 5 for b in result.beams)


def test_max_samples_caps_the_paths() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    runnable = reasoner(model=model, n_paths=16).model_copy(update={"max_samples": 3})
    result = runnable.invoke(QUESTION)
    assert model.calls[0]["n"] == 3 and result.budget.decided_samples == 3
    assert len(result.candidates) <= 3


def test_freq_selects_every_other_step() -> None:
    recorder = EventRecorder()
    reasoner(freq=2, max_steps=4).invoke(QUESTION, {"callbacks": [recorder]})
    assert [e["step_index"] for e in recorder.named("adaptive_beams_pruned")] == [1]


# -- a sequential first round --------------------------------------------------------


def test_first_steps_confidence_is_one_minus_the_product_of_misses() -> None:
    beams = [_scored(0, 0.4, 0.5), _scored(1, 0.5, 0.6), Beam(id=2, steps=[], step_estimates=[])]
    assert first_steps_confidence(beams, 0.1) == pytest.approx(1 - 0.6 * 0.5)
    assert first_steps_confidence([], 0.1) == 0.0


def test_sequential_first_round_stops_once_the_first_steps_reach_the_target() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    prm = ScriptedPRM(step_score=right_steps)
    recorder = EventRecorder()
    runnable = reasoner(
        model=model, prm=prm, n_paths=8, first_round="sequential", first_round_size=2
    ).model_copy(update={"target_confidence": 0.9})
    result = runnable.invoke(QUESTION, {"callbacks": [recorder]})
    # Round one: a right first step (0.9) and a wrong one (0.1): 1 - 0.1 * 0.9 = 0.91 >= 0.9.
    assert [call["n"] for call in model.calls][:2] == [2, 2]
    assert model.calls[1]["prefix"] == "3 + 4 = 7\n\n"  # the second call continues a kept beam
    first = [b for b in result.beams or [] if b.parent_id is None]
    assert len(first) == 2 and result.answer == "14"
    # Each first step was scored once, in its round, not again at the selection.
    first_scored = [s for _, solutions in prm.calls for s in solutions if len(s) == 1]
    assert sorted(map(tuple, first_scored)) == [("3 + 4 = 7",), ("3 + 4 = 8",)]
    assert recorder.named("adaptive_beams_pruned")[0]["step_index"] == 0


def test_sequential_first_round_draws_every_path_when_the_target_is_out_of_reach() -> None:
    model = StepChatModel(next_step=arithmetic_steps)
    prm = ScriptedPRM(step_score=lambda step: 0.05)
    reasoner(model=model, prm=prm, n_paths=8, first_round="sequential", first_round_size=3).invoke(
        QUESTION
    )
    # 1 - 0.95 ** 8 = 0.34 < 0.99: rounds of 3, 3 and the last 2 paths, then the selection.
    assert [call["n"] for call in model.calls][:3] == [3, 3, 2]
    assert all(call["prefix"] == "" for call in model.calls[:3])
    assert model.calls[3]["prefix"] != ""


def test_sequential_first_round_matches_the_paper_when_the_rounds_cover_n() -> None:
    """A round as large as N is one blind first round: the search is the paper's."""
    fixed = reasoner(adaptive_m=True).invoke(QUESTION)
    rounds = reasoner(adaptive_m=True, first_round="sequential", first_round_size=4).invoke(
        QUESTION
    )
    assert _shape(fixed) == _shape(rounds)
    assert fixed.budget.generated_tokens == rounds.budget.generated_tokens


def test_sequential_first_round_keeps_to_the_token_budget() -> None:
    runnable = reasoner(n_paths=8, first_round="sequential", first_round_size=2).model_copy(
        update={"max_tokens_per_sample": 5, "max_total_tokens": 12, "target_confidence": 0.999}
    )
    result = runnable.invoke(QUESTION)
    assert result.budget.generated_tokens <= 12
    assert result.stop_reason == "token_budget" and result.beams


def test_sequential_first_round_is_the_same_sync_and_async() -> None:
    settings = {"n_paths": 8, "first_round": "sequential", "adaptive_k": True}
    sync_events, async_events = EventRecorder(), EventRecorder()
    sync = reasoner(**settings).invoke(QUESTION, {"callbacks": [sync_events]})
    asynchronous = asyncio.run(
        reasoner(**settings).ainvoke(QUESTION, {"callbacks": [async_events]})
    )
    assert _shape(sync) == _shape(asynchronous)
    assert sync_events.events == async_events.events


def test_sequential_first_round_needs_a_known_mode() -> None:
    with pytest.raises(ValueError, match="first_round"):
        BeamSearch(first_round="adaptive")  # type: ignore[arg-type]


def test_sync_and_async_give_the_same_search() -> None:
    sync_events, async_events = EventRecorder(), EventRecorder()
    sync = reasoner(adaptive_m=True).invoke(QUESTION, {"callbacks": [sync_events]})
    asynchronous = asyncio.run(
        reasoner(adaptive_m=True).ainvoke(QUESTION, {"callbacks": [async_events]})
    )
    assert _shape(sync) == _shape(asynchronous)
    assert sync.answer == asynchronous.answer
    assert sync.budget.model_dump() == asynchronous.budget.model_dump()
    assert sync_events.events == async_events.events


def test_model_failure_keeps_the_beams_already_generated() -> None:
    model = StepChatModel(next_step=arithmetic_steps, fail_after=1)
    with pytest.raises(ModelError, match="generating steps") as caught:
        reasoner(model=model).invoke(QUESTION)
    partial = caught.value.partial
    assert partial is not None and [b.steps for b in partial.beams or []][:1] == [["3 + 4 = 7"]]
    assert partial.budget.generated_tokens > 0


def test_a_failing_prm_stops_the_search_even_when_voting_is_allowed() -> None:
    runnable = reasoner(prm=ScriptedPRM(fail_steps=True)).model_copy(
        update={"on_prm_error": "vote"}
    )
    with pytest.raises(PRMError) as caught:
        runnable.invoke(QUESTION)
    assert caught.value.partial is not None and caught.value.partial.beams


def test_chat_models_without_native_n_are_batched() -> None:
    model = ScriptedChatModel(responses=["3 + 4 = 7", "7 * 2 = 14", "The answer is 14."])
    result = reasoner(model=model, n_paths=2, beams_kept=1, samples_per_beam=2).invoke(QUESTION)
    assert result.answer == "14" and result.budget.model_calls == len(model.calls)
    assert isinstance(model.calls[2]["messages"][-1], AIMessage)  # the second round


class RecordingLLM(ScriptedLLM):
    prompts: list[str] = Field(default_factory=list)
    stops: list[Sequence[str] | None] = Field(default_factory=list)

    def _generate(self, prompts: list[str], stop: list[str] | None = None, **kwargs: Any) -> Any:
        self.prompts.extend(prompts)
        self.stops.append(stop)
        return super()._generate(prompts, stop, **kwargs)


def test_completion_llms_continue_the_raw_prompt() -> None:
    llm = RecordingLLM(responses=["7 * 2 = 14"])
    question = parse_input(QUESTION)
    samples = draw_steps(llm, question, ["3 + 4 = 7"], 2, kwargs={}, config={})
    assert [s.text for s in samples] == ["7 * 2 = 14"] * 2
    assert llm.prompts[0].endswith(f"{question.prompt_text()}\n\n3 + 4 = 7\n\n")
    assert llm.stops == [["\n\n"]]
    assert all(s.usage.estimated and s.usage.output_tokens > 0 for s in samples)


def test_bench_live_runs_beam_search_policies() -> None:
    problems = arithmetic_suite(1, seed=0, levels=("steps3",))
    reference = (problems[0].solution or "").split("\n\n")  # a policy that always solves it
    prms = {"fake": ScriptedPRM(step_score=lambda step: 0.6)}
    policies = [
        live_policy(spec, prms=prms, max_samples=4, target_confidence=0.9)
        for spec in ("beam_search:fake", "ias_of_m:fake")
    ]
    assert isinstance(policies[1].policy.strategy, BeamSearch)
    assert policies[1].policy.strategy.adaptive_m
    report = run_live(
        StepChatModel(next_step=lambda steps, i: reference[len(steps)]),
        problems,
        policies,
        source="fake",
        replicates=2,
        progress=False,
    )
    assert not [note for note in report.notes if "failed" in note]
    assert [p.family for p in report.policies] == ["beam_search[fake]", "ias_of_m[fake]"]
    assert all(p.accuracy == 1.0 and 0 < p.mean_samples <= 4 for p in report.policies)


def test_an_empty_step_ends_the_beam_where_it_stands() -> None:
    def steps(done: list[str], i: int) -> str:
        return "" if done else "(3 + 4) * 2 makes 14"  # then the model has nothing to add

    result = reasoner(model=StepChatModel(next_step=steps), n_paths=2).invoke(QUESTION)
    children = [b for b in result.beams or [] if b.parent_id is not None]
    assert children and all(b.finished and len(b.steps) == 1 for b in children)
    assert result.stop_reason == "beams_finished" and result.answer == "14"


def test_completion_llms_run_beam_search_end_to_end() -> None:
    llm = RecordingLLM(responses=["3 + 4 = 7", "7 * 2 = 14", "The answer is 14."])
    result = reasoner(model=llm, n_paths=1, beams_kept=1, samples_per_beam=1).invoke(QUESTION)
    assert result.answer == "14" and result.budget.tokens_estimated
    assert [len(b.steps) for b in result.beams or []] == [1, 2, 3]
    assert llm.prompts[-1].endswith("3 + 4 = 7\n\n7 * 2 = 14\n\n")


def test_live_ias_selects_by_majority_vote_like_replay_unless_told() -> None:
    prms = {"fake": ScriptedPRM(step_score=lambda step: 0.6)}
    default = live_policy("ias:fake", prms=prms, max_samples=4, target_confidence=0.9)
    assert default.policy.strategy.selection == "majority_vote"
    assert not default.policy.strategy.needs_scores  # no PRM pass per step of every sample
    weighted = live_policy(
        "ias:fake", prms=prms, max_samples=4, target_confidence=0.9, selection="weighted_vote"
    )
    assert weighted.policy.strategy.selection == "weighted_vote"
    beam = live_policy(
        "beam_search:fake",
        prms=prms,
        max_samples=4,
        target_confidence=0.9,
        selection="weighted_vote",
    )
    assert beam.policy.strategy.selection == "prm"  # step-level search always picks by PRM
