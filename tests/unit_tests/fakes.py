"""Deterministic stand-ins for a policy model and a PRM, built on langchain-core's base classes."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult, Generation, LLMResult
from langchain_core.runnables import RunnableConfig
from pydantic import Field, PrivateAttr

from langchain_adaptive.confidence import confidence_stop_at, token_confidence
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate


class ScriptedChatModel(BaseChatModel):
    """Cycles through ``responses``; one token per whitespace-separated word.

    Honours ``max_tokens`` (truncating the words), reports ``usage_metadata``
    unless ``report_usage`` is off, and can fail on chosen calls.
    """

    responses: list[str]
    report_usage: bool = True
    fail_on_calls: set[int] = Field(default_factory=set)
    """0-based call numbers that raise RuntimeError."""
    token_logprob: Callable[[str], float] | None = None
    """When set, every token of a response gets this logprob of the response's text,
    reported in OpenAI's ``response_metadata["logprobs"]`` shape."""
    word_top_logprobs: Callable[[str], list[float]] | None = None
    """When set, each word's top-k alternatives' logprobs (reported as ``top_logprobs``
    of its entry, with its own logprob the first of them)."""
    supports_confidence_stop: bool = False
    """Honour a ``confidence_stop`` call kwarg as ``ChatLlamaCpp`` does: cut the words where a
    full window's mean confidence falls below the threshold (needs ``word_top_logprobs``)."""
    _counter: Any = PrivateAttr(default_factory=itertools.count)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            call = next(self._counter)
            self.calls.append({"messages": messages, **kwargs})
        if call in self.fail_on_calls:
            raise RuntimeError(f"scripted failure on call {call}")
        words = self.responses[call % len(self.responses)].split(" ")
        max_tokens = kwargs.get("max_tokens")
        finish = "stop"
        if max_tokens is not None and len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        confidence = kwargs.get("confidence_stop")
        if confidence is not None and self.word_top_logprobs is not None:
            values = [
                token_confidence(self.word_top_logprobs(w)[: confidence["top_k"]]) for w in words
            ]
            if confidence["threshold"] is not None:
                cut = confidence_stop_at(values, confidence["threshold"], confidence["window"])
                if cut is not None:
                    words, finish = words[:cut], "confidence_stop"
        text = " ".join(words)
        prompt_tokens = sum(len(str(m.content).split()) for m in messages)
        output_tokens = len(text.split()) if text else 0
        usage = (
            {
                "input_tokens": prompt_tokens,
                "output_tokens": output_tokens,
                "total_tokens": prompt_tokens + output_tokens,
            }
            if self.report_usage
            else None
        )
        metadata: dict[str, Any] = {"finish_reason": finish}
        if self.token_logprob is not None:
            logprob = self.token_logprob(text)
            metadata["logprobs"] = {
                "content": [{"token": w, "logprob": logprob} for w in text.split(" ")]
            }
        elif self.word_top_logprobs is not None:
            entries = []
            for w in text.split(" "):
                top = self.word_top_logprobs(w)
                entries.append(
                    {
                        "token": w,
                        "logprob": top[0],
                        "top_logprobs": [{"token": w, "logprob": v} for v in top],
                    }
                )
            metadata["logprobs"] = {"content": entries}
        message = AIMessage(content=text, usage_metadata=usage, response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])


class ScriptedLLM(BaseLLM):
    """A completion LLM that cycles through ``responses``."""

    responses: list[str]
    report_usage: bool = False
    """Report OpenAI-style totals in ``llm_output["token_usage"]`` (one token per word)."""
    _counter: Any = PrivateAttr(default_factory=itertools.count)

    @property
    def _llm_type(self) -> str:
        return "scripted-llm"

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> LLMResult:
        texts = [self.responses[next(self._counter) % len(self.responses)] for _ in prompts]
        usage = {
            "completion_tokens": sum(len(t.split()) for t in texts),
            "prompt_tokens": sum(len(p.split()) for p in prompts),
        }
        return LLMResult(
            generations=[[Generation(text=t)] for t in texts],
            llm_output={"token_usage": usage} if self.report_usage else None,
        )


class ScriptedPRM(ProcessRewardModel):
    """Question estimates from a table; step scores from a function of the step text."""

    question_p: dict[str, float] = Field(default_factory=dict)
    default_p: float = 0.5
    step_score: Callable[[str], float] = lambda step: 0.9 if "15" in step else 0.1
    quantiles: tuple[float, float, float] | None = None
    """If set, question estimates are (p*q0, p*q1, p*q2) at levels 0.1/0.5/0.9."""
    fail_questions: bool = False
    fail_steps: bool = False
    calls: list[tuple[str, list[list[str]]]] = Field(default_factory=list)

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        self.calls.append((question, [list(s) for s in solutions]))
        scores: PRMScores = []
        for steps in solutions:
            if not steps:
                if self.fail_questions:
                    return [[SuccessEstimate.point(0.5)] for _ in solutions][:-1]  # wrong shape
                p = self.question_p.get(question, self.default_p)
                if self.quantiles:
                    levels = dict(zip((0.1, 0.5, 0.9), self.quantiles, strict=True))
                    scores.append(
                        [
                            SuccessEstimate(
                                quantiles={k: p * v for k, v in levels.items()}, raw_score=p
                            )
                        ]
                    )
                else:
                    scores.append([SuccessEstimate.point(p)])
                continue
            if self.fail_steps:
                raise ValueError("scripted PRM failure")
            scores.append([SuccessEstimate.point(self.step_score(step)) for step in steps])
        return scores


def nan_score(_: str) -> float:
    return math.nan


ScriptStep = AIMessage | Callable[[list[BaseMessage]], AIMessage]
"""One scripted agent turn: a fixed message, or one built from the conversation so far."""


class ScriptedToolCallingModel(BaseChatModel):
    """An agent's chat model that plays ``script`` turn by turn and supports ``bind_tools``.

    A step that is a callable sees the messages the agent sent (so a final turn can
    quote the tool's answer). Each call's messages and bound tool names are kept.
    """

    script: list[Any]
    """``ScriptStep``s (typed loosely: pydantic would try to build a message from a callable)."""
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[list[str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-calling"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        schemas = [convert_to_openai_tool(tool) for tool in tools]
        self.bound_tools.append([s["function"]["name"] for s in schemas])
        return self.bind(tools=schemas, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = len(self.calls)
        self.calls.append(list(messages))
        if turn >= len(self.script):
            raise RuntimeError(f"the script has {len(self.script)} turn(s); turn {turn} asked")
        step = self.script[turn]
        message = step(list(messages)) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])
