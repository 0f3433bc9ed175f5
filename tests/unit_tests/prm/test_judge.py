"""LLMJudgePRM against a scripted chat model: prompts, the Yes/No math, errors, runs."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import Field, ValidationError

from langchain_adaptive.errors import PRMError
from langchain_adaptive.prm._base import ProcessRewardModel
from langchain_adaptive.prm._judge import (
    DEFAULT_QUESTION_PROMPT,
    DEFAULT_SOLUTION_PROMPT,
    LLMJudgePRM,
)
from langchain_adaptive.results import SuccessEstimate

Alternatives = list[tuple[str, float]] | None
"""A scripted first token's top alternatives as (token, probability); ``None``: no logprobs."""


def yes_no(p_yes: float, p_no: float | None = None) -> Alternatives:
    """Alternatives with " Yes" at ``p_yes`` and "No" at ``p_no`` (default ``1 - p_yes``)."""
    return [(" Yes", p_yes), ("No", 1.0 - p_yes if p_no is None else p_no), (" The", 0.01)]


class ScriptedJudge(BaseChatModel):
    """Answers each prompt with the alternatives ``script(prompt_text)`` gives; records calls.

    Threads of ``batch`` may run prompts in any order, so the script keys on the
    prompt text, never on call order.
    """

    script: Callable[[str], Alternatives] = lambda _: yes_no(0.75)
    calls: list[tuple[list[BaseMessage], dict[str, Any]]] = Field(default_factory=list)
    batches: list[str] = Field(default_factory=list)
    """``"batch"`` or ``"abatch"`` for each batch call received."""

    @property
    def _llm_type(self) -> str:
        return "scripted-judge"

    def batch(self, inputs: Any, config: Any = None, **kwargs: Any) -> Any:
        self.batches.append("batch")
        return super().batch(inputs, config, **kwargs)

    async def abatch(self, inputs: Any, config: Any = None, **kwargs: Any) -> Any:
        self.batches.append("abatch")
        return await super().abatch(inputs, config, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append((messages, kwargs))
        alternatives = self.script(messages[-1].text)
        metadata: dict[str, Any] = {}
        content = "?"
        if alternatives is not None:
            top = [
                {
                    "token": token,
                    "logprob": _log(p),
                    "bytes": list(token.encode()),
                }
                for token, p in alternatives
            ]
            if top:
                content = top[0]["token"]
            first = {**(top[0] if top else {"token": "?", "logprob": 0.0}), "top_logprobs": top}
            metadata["logprobs"] = {"content": [first]}
        message = AIMessage(content=content, response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _log(p: float) -> float:
    """``log(p)``, with ``-inf`` for zero and NaN kept as NaN."""
    if math.isnan(p):
        return p
    return math.log(p) if p > 0 else -math.inf


def judge_with(script: Callable[[str], Alternatives], **fields: Any) -> LLMJudgePRM:
    return LLMJudgePRM(model=ScriptedJudge(script=script), **fields)


def the_model(prm: LLMJudgePRM) -> ScriptedJudge:
    assert isinstance(prm.model, ScriptedJudge)
    return prm.model


def steps_in(prompt: str) -> int:
    """How many ``S<i>`` steps a prompt shows (the test solutions name their steps so)."""
    return len(re.findall(r"\bS\d\b", prompt))


# -- the Yes/No probability ------------------------------------------------------------


@pytest.mark.parametrize(
    ("alternatives", "expected"),
    [
        ([(" Yes", 0.3), ("yes", 0.1), ("No", 0.2), ("The", 0.3)], 0.4 / 0.6),
        ([("YES", 0.2), (" no", 0.1), ("\nNo", 0.1), ("I", 0.5)], 0.2 / 0.4),
        ([("▁Yes", 0.05), ("ĠNo", 0.15), ("▁yes", 0.05)], 0.1 / 0.25),
        ([(" Yes", 0.6), ("Maybe", 0.3)], 1.0),
        ([(" No", 0.6), ("Yesterday", 0.3), ("Nope", 0.05)], 0.0),
    ],
)
def test_score_is_yes_share_of_yes_and_no(alternatives: Alternatives, expected: float) -> None:
    prm = judge_with(lambda _: alternatives)

    estimate = prm.estimate_question("Is 7 prime?")

    assert isinstance(estimate, SuccessEstimate)
    assert estimate.median == pytest.approx(expected)
    assert estimate.lower == estimate.median  # an uncalibrated point estimate
    assert estimate.raw_score == pytest.approx(expected)


def test_tiny_probabilities_keep_their_ratio() -> None:
    prm = judge_with(lambda _: [("The", 0.999), ("Yes", 1e-300), ("No", 3e-300)])

    assert prm.estimate_question("q").median == pytest.approx(0.25)


def test_is_a_process_reward_model() -> None:
    prm = judge_with(lambda _: yes_no(0.5))

    assert isinstance(prm, ProcessRewardModel)
    assert prm.top_logprobs == 20
    assert prm.question_prompt == DEFAULT_QUESTION_PROMPT
    assert prm.solution_prompt == DEFAULT_SOLUTION_PROMPT
    assert prm.system_prompt is None


# -- prompts and shapes ----------------------------------------------------------------


def test_one_estimate_per_step_in_order() -> None:
    prm = judge_with(lambda prompt: yes_no(0.1 * (steps_in(prompt) + 1)))
    solutions = [["S1 a", "S2 b", "S3 c"], ["S1 d"], ["S1 e", "S2 f"]]

    scores = prm.score("What is x?", solutions)

    assert [len(s) for s in scores] == [3, 1, 2]
    assert [[round(e.median, 6) for e in s] for s in scores] == [
        [0.2, 0.3, 0.4],
        [0.2],
        [0.2, 0.3],
    ]
    assert len(the_model(prm).calls) == 6


def test_prefixes_are_joined_with_blank_lines() -> None:
    prm = judge_with(lambda _: yes_no(0.5), solution_prompt="Q={question}|S={solution}")

    prm.score("Q1", [["S1 one", "S2 two", "S3 three"]])

    prompts = sorted(messages[-1].text for messages, _ in the_model(prm).calls)
    assert prompts == [
        "Q=Q1|S=S1 one",
        "Q=Q1|S=S1 one\n\nS2 two",
        "Q=Q1|S=S1 one\n\nS2 two\n\nS3 three",
    ]


def test_question_alone_gives_one_estimate_from_the_question_prompt() -> None:
    prm = judge_with(lambda _: yes_no(0.8))

    scores = prm.score("What is 2 + 3?", [[]])

    assert len(scores) == 1 and len(scores[0]) == 1
    assert scores[0][0].median == pytest.approx(0.8 / 1.0)
    [(messages, _)] = the_model(prm).calls
    assert messages == [HumanMessage(DEFAULT_QUESTION_PROMPT.format(question="What is 2 + 3?"))]


def test_question_and_solutions_mix() -> None:
    prm = judge_with(lambda prompt: yes_no(0.9 if steps_in(prompt) else 0.3))

    scores = prm.score("q", [[], ["S1 x", "S2 y"], []])

    assert [[round(e.median, 6) for e in s] for s in scores] == [[0.3], [0.9, 0.9], [0.3]]


def test_no_solutions_makes_no_call() -> None:
    prm = judge_with(lambda _: yes_no(0.5))

    assert prm.score("q", []) == []
    assert the_model(prm).batches == []


def test_system_prompt_comes_first() -> None:
    prm = judge_with(lambda _: yes_no(0.5), system_prompt="You are a strict grader.")

    prm.score("q", [["S1 x"]])

    [(messages, _)] = the_model(prm).calls
    assert messages[0] == SystemMessage("You are a strict grader.")
    assert isinstance(messages[1], HumanMessage)
    assert messages[1].text == DEFAULT_SOLUTION_PROMPT.format(question="q", solution="S1 x")


def test_braces_in_the_question_are_not_placeholders() -> None:
    prm = judge_with(lambda _: yes_no(0.5))

    prm.score("Solve {x}: f({0}) = {}", [["Let {y} = 1."]])

    [(messages, _)] = the_model(prm).calls
    assert "Solve {x}: f({0}) = {}" in messages[-1].text
    assert "Let {y} = 1." in messages[-1].text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"question_prompt": "Is it easy?"}, "must contain {question}"),
        ({"solution_prompt": "{question} ok?"}, "must contain {solution}"),
        ({"question_prompt": "{question} {answer}"}, "placeholders"),
        ({"question_prompt": "{question} {"}, "not a valid format template"),
        ({"top_logprobs": 0}, "top_logprobs"),
    ],
)
def test_bad_configuration_is_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        LLMJudgePRM(model=ScriptedJudge(), **fields)


# -- what reaches the model ------------------------------------------------------------


def test_bound_kwargs_reach_the_model() -> None:
    prm = judge_with(lambda _: yes_no(0.5), top_logprobs=7)

    prm.score("q", [["S1 a", "S2 b"], []])

    calls = the_model(prm).calls
    assert len(calls) == 3
    for _, kwargs in calls:
        assert kwargs["logprobs"] is True
        assert kwargs["top_logprobs"] == 7
        assert kwargs["max_tokens"] == 1
        assert kwargs["temperature"] == 0.0


def test_one_batch_call_per_score() -> None:
    prm = judge_with(lambda _: yes_no(0.5))

    prm.score("q", [["S1 a", "S2 b", "S3 c"], ["S1 d", "S2 e"], []])
    assert the_model(prm).batches == ["batch"]
    assert len(the_model(prm).calls) == 6

    prm.estimate_question("q")
    assert the_model(prm).batches == ["batch", "batch"]


async def test_async_scoring_uses_abatch_and_matches_sync() -> None:
    prm = judge_with(lambda prompt: yes_no(0.1 * (steps_in(prompt) + 1)))
    solutions = [["S1 a", "S2 b", "S3 c"], []]

    scores = await prm.ascore("q", solutions)
    question = await prm.aestimate_question("q")

    assert the_model(prm).batches == ["abatch", "abatch"]
    assert scores == prm.score("q", solutions)
    assert [round(e.median, 6) for e in scores[0]] == [0.2, 0.3, 0.4]
    assert question.median == pytest.approx(0.1)


async def test_async_errors_are_prm_errors() -> None:
    prm = judge_with(lambda _: None)

    with pytest.raises(PRMError, match="no log-probabilities"):
        await prm.ascore("q", [["S1 a"]])


# -- errors ----------------------------------------------------------------------------


def test_missing_logprobs_is_a_prm_error() -> None:
    prm = judge_with(lambda _: None)

    with pytest.raises(PRMError) as caught:
        prm.score("q", [["S1 a"]])

    text = str(caught.value)
    assert "no log-probabilities" in text
    assert "ChatOpenAI" in text and "ChatLlamaCpp" in text
    assert "solution 0, step 1" in text


def test_empty_top_logprobs_is_a_prm_error() -> None:
    prm = judge_with(lambda _: [])

    with pytest.raises(PRMError, match="no top_logprobs"):
        prm.estimate_question("q")


def test_neither_yes_nor_no_names_the_tokens_that_came() -> None:
    prm = judge_with(lambda _: [("The", 0.5), (" answer", 0.2), ("Maybe", 0.1)], top_logprobs=3)

    with pytest.raises(PRMError) as caught:
        prm.estimate_question("q")

    text = str(caught.value)
    assert "neither Yes nor No" in text
    assert "'The'" in text and "' answer'" in text and "'Maybe'" in text
    assert "larger top_logprobs (now 3)" in text


def test_nan_logprob_is_a_prm_error() -> None:
    prm = judge_with(lambda _: [(" Yes", math.nan), ("No", 0.2)])

    with pytest.raises(PRMError, match="nan"):
        prm.estimate_question("q")


def test_zero_probability_for_both_is_a_prm_error() -> None:
    prm = judge_with(lambda _: [("Yes", 0.0), ("No", 0.0), ("The", 1.0)])

    with pytest.raises(PRMError, match="probability zero"):
        prm.estimate_question("q")


def test_one_bad_reply_fails_the_whole_call() -> None:
    prm = judge_with(lambda prompt: None if "S2" in prompt else yes_no(0.5))

    with pytest.raises(PRMError, match="solution 1, step 2"):
        prm.score("q", [["S1 a"], ["S1 b", "S2 c"]])


# -- runs and callbacks ----------------------------------------------------------------


class RunRecorder(BaseCallbackHandler):
    """Records (kind, run id, parent run id, tags) of every run started."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, UUID, UUID | None, list[str]]] = []

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.append(("chain", run_id, parent_run_id, tags or []))

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.append(("chat_model", run_id, parent_run_id, tags or []))

    def of_kind(self, kind: str) -> list[tuple[str, UUID, UUID | None, list[str]]]:
        return [run for run in self.runs if run[0] == kind]


def _config(recorder: RunRecorder) -> RunnableConfig:
    return {"callbacks": [recorder], "tags": ["judge-test"]}


def test_model_calls_are_child_runs_of_the_prm_run() -> None:
    recorder = RunRecorder()
    prm = judge_with(lambda _: yes_no(0.5))

    prm.score("q", [["S1 a", "S2 b"], []], config=_config(recorder))

    [(_, prm_run, parent, tags)] = recorder.of_kind("chain")
    assert parent is None and "judge-test" in tags
    chat_runs = recorder.of_kind("chat_model")
    assert len(chat_runs) == 3
    assert all(run[2] == prm_run for run in chat_runs)
    assert all("judge-test" in run[3] for run in chat_runs)


async def test_async_model_calls_are_child_runs_of_the_prm_run() -> None:
    recorder = RunRecorder()
    prm = judge_with(lambda _: yes_no(0.5))

    await prm.ascore("q", [["S1 a"], []], config=_config(recorder))

    [(_, prm_run, _, _)] = recorder.of_kind("chain")
    chat_runs = recorder.of_kind("chat_model")
    assert len(chat_runs) == 2
    assert all(run[2] == prm_run for run in chat_runs)


def test_judge_messages_is_what_the_model_sees() -> None:
    prm = judge_with(lambda _: yes_no(0.5), system_prompt="sys")
    steps: Sequence[str] = ["S1 a", "S2 b"]

    prm.score("q", [steps])

    seen = sorted((m for m, _ in the_model(prm).calls), key=lambda m: len(m[-1].text))
    assert seen == [prm.judge_messages("q", steps[:1]), prm.judge_messages("q", steps)]
