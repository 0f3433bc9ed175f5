"""``AdaptiveSamplingMiddleware``: calibrated adaptive sampling for every model call of an agent.

``langchain.agents.create_agent`` calls its model once per step of the agent
loop; this middleware wraps each of those calls (``wrap_model_call`` /
``awrap_model_call``). The data path of one call reads top to bottom:

the request's question (its last human message) → a success estimate: a
:class:`~langchain_adaptive.ProcessRewardModel`'s calibrated lower bound ``p``
(IAS budget ``N = ceil(log(1 - C) / log(1 - p))``, capped), or, without a PRM,
the samples' own agreement (adaptive consistency: sample until the leading reply
is settled) → budget: the call's and the run's sample and token limits, by
reservation → samples, each one call of the ``handler`` (the agent's own model
call, tools bound) → a vote over normalised replies: a tool call is its name plus
its arguments as canonical JSON, a final answer is its extracted answer → the
first sample of the winning group, returned whole (tool calls and their ids
intact) with the decision in ``response_metadata["adaptive"]``.

The run's spending lives in the agent state (``adaptive_usage``, untracked: a
new run starts from zero), so adaptive sampling cannot spend past the run's
budget: an extra sample is only started when a worst-case sample still fits.
The budget bounds the *extra* samples, not the agent: a call that finds the
budget spent does what the agent would do without the middleware, one plain
sample, marked ``fallback`` in its metadata and in the
``adaptive_budget_decided`` event (an agent that keeps looping keeps paying
one sample a call, as it would without the middleware). Decisions are the
runnable's custom events (:mod:`langchain_adaptive.callbacks`), and sample calls
carry its metadata (``adaptive_role="policy"``...), so a trace shows each one.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, var_child_runnable_config
from langgraph.channels.untracked_value import UntrackedValue
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict

from langchain_adaptive.answers import (
    AnswerEquivalence,
    AnswerExtractor,
    answers_match,
    extract_answer,
    group_answers,
)
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.callbacks._emitter import EventEmitter
from langchain_adaptive.callbacks._events import (
    AdaptiveFinished,
    BudgetDecided,
    CandidateGenerated,
    EarlyStop,
    EstimateSummary,
)
from langchain_adaptive.callbacks._metadata import (
    QUESTION_ID_KEY,
    ROLE_KEY,
    STRATEGY_KEY,
    TAG_PREFIX,
)
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.prm._base import ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies._consistency import leader_probability

IAS_STRATEGY = "agent_ias_vote"
"""Strategy name in events and metadata when a PRM sets each call's budget."""
CONSENSUS_STRATEGY = "agent_adaptive_consistency"
"""Strategy name when the samples' agreement decides (no PRM)."""


class AdaptiveRunUsage(TypedDict):
    """What one agent run has spent on model calls through the middleware."""

    samples: int
    output_tokens: int
    input_tokens: int
    model_calls: int
    """Model calls of the agent (each drew one or more samples)."""
    fallbacks: int
    """Calls that found the run budget spent and drew a single plain sample."""


def _no_usage() -> AdaptiveRunUsage:
    return AdaptiveRunUsage(samples=0, output_tokens=0, input_tokens=0, model_calls=0, fallbacks=0)


class AdaptiveSamplingState(AgentState[Any]):
    """Agent state with the run's adaptive spending (never checkpointed: per run)."""

    adaptive_usage: NotRequired[Annotated[AdaptiveRunUsage, UntrackedValue, PrivateStateAttr]]


class AdaptiveSamplingBudget(BaseModel):
    """Hard limits of the middleware: per model call and per agent run, in samples and tokens.

    Token limits count generated tokens and hold by reservation: a sample is
    only started when ``max_tokens_per_sample`` more still fit.
    """

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    max_samples_per_call: int = Field(default=8, ge=1)
    """Most samples one model call of the agent may draw."""
    max_tokens_per_call: int | None = Field(default=None, ge=1)
    """Most generated tokens the samples of one model call may spend together."""
    max_samples_per_run: int | None = Field(default=None, ge=1)
    """Most samples one agent run may draw over all its model calls."""
    max_tokens_per_run: int | None = Field(default=None, ge=1)
    """Most generated tokens one agent run may spend over all its model calls."""
    max_tokens_per_sample: int | None = Field(default=None, ge=1)
    """Each sample's output cap, passed to the model as ``max_tokens`` (see the middleware's
    ``max_tokens_kwarg``); ``None`` reads the model's own ``max_tokens`` field. Needed
    whenever a token limit is set, since reservations are in worst-case samples."""

    @model_validator(mode="after")
    def _check(self) -> AdaptiveSamplingBudget:
        for name in ("max_tokens_per_call", "max_tokens_per_run"):
            limit = getattr(self, name)
            cap = self.max_tokens_per_sample
            if limit is not None and cap is not None and limit < cap:
                raise ValueError(
                    f"{name}={limit} is smaller than one sample's max_tokens_per_sample={cap}: "
                    "no sample could be drawn"
                )
        return self

    @property
    def limits_tokens(self) -> bool:
        """Whether a token limit is set (so the per-sample cap must be known)."""
        return self.max_tokens_per_call is not None or self.max_tokens_per_run is not None


@dataclass
class _Sample:
    """One draw: the handler's response, its reply message and what it cost."""

    response: ModelResponse
    message: AIMessage
    output_tokens: int
    input_tokens: int
    key: str
    """The normalised reply: ``call:<name>(<canonical JSON args>)...`` or ``answer:<answer>``."""
    answer: str | None = None
    """The extracted final answer of a text reply (``None`` for tool calls)."""


@dataclass
class _CallState:
    """The spending and the samples of one model call."""

    run: AdaptiveRunUsage
    samples: list[_Sample] = field(default_factory=list)

    @property
    def output_tokens(self) -> int:
        return sum(s.output_tokens for s in self.samples)


class AdaptiveSamplingMiddleware(AgentMiddleware[AdaptiveSamplingState, Any]):
    """Turns each model call of a ``create_agent`` agent into calibrated adaptive sampling.

    With a ``prm``, each call asks it how likely one sample is to be right for
    the conversation's question (a calibrated lower bound ``p``) and draws the
    IAS number of samples ``ceil(log(1 - C) / log(1 - p))`` for
    ``C = target_confidence``, capped by the budget. Without one, samples are
    drawn one at a time until the leading reply is settled (adaptive
    consistency: the posterior probability that it stays ahead reaches
    ``consensus_threshold``; three agreeing samples reach the default 0.9). The
    replies are then voted on, tool calls by name and canonical JSON
    arguments, final answers by their extracted answer, and the first sample of
    the winning group is returned unchanged (tool calls and ids intact).

    Every sample is the agent's own model call (the ``handler``), so any chat
    model that supports tools works, and tracers see each sample as a model run
    with ``adaptive_role="policy"`` metadata. Decisions are the runnable's
    custom events: ``adaptive_budget_decided``, ``adaptive_candidate_generated``,
    ``adaptive_early_stop`` and ``adaptive_finished``.

    Args:
        prm: Budgets each call by IAS on its estimate; ``None``: by agreement.
        target_confidence: IAS's ``C``.
        consensus_threshold: Without a PRM, the posterior probability that the
            leading reply stays ahead at which sampling stops.
        budget: Per-call and per-run limits in samples and tokens.
        temperature: Passed to the model for every sample (samples of a greedy
            model all agree); ``None`` keeps the model's own setting.
        max_tokens_kwarg: The keyword the model takes for its output cap, used
            when ``budget.max_tokens_per_sample`` is set; ``None`` passes none.
        max_concurrency: Async samples of one IAS decision drawn at once.
        answer_extractor: Finds the final answer in a text reply for the vote.
        answers_match: Decides whether two final answers are the same.
        question_from: The text the PRM estimates, from the request; the
            default is the last human message.
        redact_events: Leave answer text out of event payloads.

    Example:
        ```python
        from langchain.agents import create_agent
        from langchain_core.tools import tool

        from langchain_adaptive.integrations.langgraph import (
            AdaptiveSamplingBudget,
            AdaptiveSamplingMiddleware,
        )
        from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp


        @tool
        def add(a: int, b: int) -> int:
            '''Add two integers.'''
            return a + b


        middleware = AdaptiveSamplingMiddleware(
            budget=AdaptiveSamplingBudget(max_samples_per_call=3, max_tokens_per_run=400),
            temperature=0.7,
        )
        agent = create_agent(ChatLlamaCpp(max_tokens=48), tools=[add], middleware=[middleware])
        state = agent.invoke({"messages": [("user", "What is 2 + 3?")]})
        print(state["messages"][-1].response_metadata["adaptive"]["samples_used"])
        ```
    """

    state_schema = AdaptiveSamplingState

    def __init__(
        self,
        *,
        prm: ProcessRewardModel | None = None,
        target_confidence: float = 0.9,
        consensus_threshold: float = 0.9,
        budget: AdaptiveSamplingBudget | None = None,
        temperature: float | None = None,
        max_tokens_kwarg: str | None = "max_tokens",
        max_concurrency: int = 4,
        answer_extractor: AnswerExtractor = extract_answer,
        answers_match: AnswerEquivalence = answers_match,
        question_from: Callable[[ModelRequest[Any]], str] | None = None,
        redact_events: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < target_confidence < 1.0:
            raise ConfigurationError(
                f"target_confidence must be in (0, 1); got {target_confidence}."
            )
        if not 0.5 < consensus_threshold < 1.0:
            raise ConfigurationError(
                f"consensus_threshold must be in (0.5, 1); got {consensus_threshold}."
            )
        if temperature is not None and temperature < 0:
            raise ConfigurationError(f"temperature must be at least 0; got {temperature}.")
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1; got {max_concurrency}.")
        if max_tokens_kwarg is not None and not max_tokens_kwarg.isidentifier():
            raise ConfigurationError(
                f"max_tokens_kwarg {max_tokens_kwarg!r} is not a keyword name."
            )
        self.prm = prm
        self.target_confidence = target_confidence
        self.consensus_threshold = consensus_threshold
        self.budget = budget or AdaptiveSamplingBudget()
        self.temperature = temperature
        self.max_tokens_kwarg = max_tokens_kwarg
        self.max_concurrency = max_concurrency
        self.answer_extractor = answer_extractor
        self.answers_match = answers_match
        self.question_from = question_from or _last_human_text
        self.redact_events = redact_events
        self.tools = []

    @property
    def strategy(self) -> str:
        """The strategy name events and metadata carry."""
        return IAS_STRATEGY if self.prm is not None else CONSENSUS_STRATEGY

    # -- the hooks -----------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse],
    ) -> ExtendedModelResponse:
        """Draw the call's samples through ``handler`` and return the winning reply."""
        call = self._start(request)
        request, cap = self._prepared(request)
        config = ensure_config()
        emitter = EventEmitter(config, redact=self.redact_events)
        question = self.question_from(request)
        sample_config = self._sample_config(config, question)

        def draw() -> None:
            context = contextvars.copy_context()
            context.run(var_child_runnable_config.set, sample_config)
            response = context.run(handler, request)
            self._record(call, response, request, emitter)
            emitter.flush()

        room = self._room(call, cap)
        if room == 0:
            self._decide_fallback(call, emitter)
            emitter.flush()
            draw()
            return self._finish(
                call, emitter, "token_budget", 1, fallback=True, flush=emitter.flush
            )
        if self.prm is not None:
            estimate = self.prm.estimate_question(question, self._prm_config(config, question))
            planned, reason, low = self._ias(estimate, emitter)
            emitter.flush()
            for _ in range(min(planned, room)):
                if self._room(call, cap) == 0:
                    break
                draw()
            stop = _stop_reason(len(call.samples), planned, reason)
            return self._finish(
                call, emitter, stop, planned, low=low, estimate=estimate, flush=emitter.flush
            )
        self._decide_consensus(emitter)
        emitter.flush()
        stop = "max_samples"
        while self._room(call, cap) > 0:
            draw()
            if self._settled(call):
                stop = "consensus"
                break
        else:
            stop = self._exhausted_reason(call, cap)
        return self._finish(call, emitter, stop, len(call.samples), flush=emitter.flush)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse]],
    ) -> ExtendedModelResponse:
        """Async twin of :meth:`wrap_model_call`; one IAS decision's samples run concurrently."""
        call = self._start(request)
        request, cap = self._prepared(request)
        config = ensure_config()
        emitter = EventEmitter(config, redact=self.redact_events)
        question = self.question_from(request)
        sample_config = self._sample_config(config, question)

        async def draw() -> ModelResponse:
            context = contextvars.copy_context()
            context.run(var_child_runnable_config.set, sample_config)
            return await asyncio.create_task(handler(request), context=context)  # type: ignore[arg-type]

        async def draw_many(n: int) -> None:
            for response in await asyncio.gather(*(draw() for _ in range(n))):
                self._record(call, response, request, emitter)
            await emitter.aflush()

        room = self._room(call, cap)
        if room == 0:
            self._decide_fallback(call, emitter)
            await emitter.aflush()  # the decision before the sample it asks for, as in sync
            await draw_many(1)
            return await self._afinish(call, emitter, "token_budget", 1, fallback=True)
        if self.prm is not None:
            estimate = await self.prm.aestimate_question(
                question, self._prm_config(config, question)
            )
            planned, reason, low = self._ias(estimate, emitter)
            await emitter.aflush()
            while len(call.samples) < planned and (room := self._room(call, cap)) > 0:
                await draw_many(min(planned - len(call.samples), room, self.max_concurrency))
            stop = _stop_reason(len(call.samples), planned, reason)
            return await self._afinish(call, emitter, stop, planned, low=low, estimate=estimate)
        self._decide_consensus(emitter)
        await emitter.aflush()
        stop = "max_samples"
        while self._room(call, cap) > 0:
            await draw_many(1)
            if self._settled(call):
                stop = "consensus"
                break
        else:
            stop = self._exhausted_reason(call, cap)
        return await self._afinish(call, emitter, stop, len(call.samples))

    # -- budget ----------------------------------------------------------------------------

    def _start(self, request: ModelRequest[Any]) -> _CallState:
        spent = request.state.get("adaptive_usage") or _no_usage()
        return _CallState(run=AdaptiveRunUsage(**spent))  # type: ignore[typeddict-item]

    def _prepared(self, request: ModelRequest[Any]) -> tuple[ModelRequest[Any], int | None]:
        """The request with the sampling settings, and the per-sample token cap."""
        settings = dict(request.model_settings)
        if self.temperature is not None:
            settings["temperature"] = self.temperature
        cap = self.budget.max_tokens_per_sample
        if cap is not None and self.max_tokens_kwarg is not None:
            settings[self.max_tokens_kwarg] = cap
        if cap is None:
            own = getattr(request.model, self.max_tokens_kwarg or "max_tokens", None)
            cap = own if isinstance(own, int) and own > 0 else None
        if cap is None and self.budget.limits_tokens:
            raise ConfigurationError(
                "AdaptiveSamplingMiddleware has a token budget but cannot tell how many tokens "
                f"one sample of {type(request.model).__name__} may take: set "
                "budget.max_tokens_per_sample (it is passed to the model as max_tokens)."
            )
        if settings != request.model_settings:
            request = request.override(model_settings=settings)
        return request, cap

    def _room(self, call: _CallState, cap: int | None) -> int:
        """How many more samples may start now, by the call's and the run's limits."""
        budget, run = self.budget, call.run
        drawn = len(call.samples)
        room = budget.max_samples_per_call - drawn
        if budget.max_samples_per_run is not None:
            room = min(room, budget.max_samples_per_run - run["samples"] - drawn)
        if cap is not None:
            if budget.max_tokens_per_call is not None:
                room = min(room, (budget.max_tokens_per_call - call.output_tokens) // cap)
            if budget.max_tokens_per_run is not None:
                left = budget.max_tokens_per_run - run["output_tokens"] - call.output_tokens
                room = min(room, left // cap)
        return max(0, room)

    def _exhausted_reason(self, call: _CallState, cap: int | None) -> str:
        samples_left = self.budget.max_samples_per_call - len(call.samples)
        return "max_samples" if samples_left <= 0 or cap is None else "token_budget"

    # -- deciding ------------------------------------------------------------------------

    def _ias(self, estimate: SuccessEstimate, emitter: EventEmitter) -> tuple[int, str, bool]:
        wanted = ias_sample_count(estimate.lower, self.target_confidence)
        planned = min(wanted, self.budget.max_samples_per_call)
        reason = "ias" if wanted <= planned else "capped"
        emitter.queue(
            BudgetDecided(
                strategy=self.strategy,
                n=planned,
                estimate=EstimateSummary.of(estimate),
                target_confidence=self.target_confidence,
                reason=reason,
            )
        )
        return planned, reason, wanted > planned

    def _decide_consensus(self, emitter: EventEmitter) -> None:
        emitter.queue(
            BudgetDecided(
                strategy=self.strategy,
                n=self.budget.max_samples_per_call,
                target_confidence=self.consensus_threshold,
                reason="sequential_round",
            )
        )

    def _decide_fallback(self, call: _CallState, emitter: EventEmitter) -> None:
        emitter.queue(
            BudgetDecided(
                strategy=self.strategy,
                n=1,
                target_confidence=(
                    self.target_confidence if self.prm is not None else self.consensus_threshold
                ),
                reason="run_budget_exhausted",
            )
        )

    def _settled(self, call: _CallState) -> bool:
        counts = sorted(Counter(self._labels(call.samples)).values(), reverse=True)
        leader, runner_up = counts[0], counts[1] if len(counts) > 1 else 0
        return leader_probability(leader, runner_up) >= self.consensus_threshold

    # -- samples and the vote ------------------------------------------------------------

    def _record(
        self,
        call: _CallState,
        response: ModelResponse,
        request: ModelRequest[Any],
        emitter: EventEmitter,
    ) -> None:
        message = _reply_of(response)
        usage: UsageMetadata | dict[str, int] = message.usage_metadata or {}
        output = usage.get("output_tokens")
        if output is None:  # a model that reports no usage: count with its tokenizer
            output = request.model.get_num_tokens(message.text + _canonical_calls(message))
        sample = _Sample(
            response=response,
            message=message,
            output_tokens=int(output),
            input_tokens=int(usage.get("input_tokens", 0)),
            key="",
        )
        if message.tool_calls:
            sample.key = "call:" + _canonical_calls(message)
        else:
            sample.answer = self.answer_extractor(message.text)
            sample.key = "answer:" + (
                sample.answer if sample.answer is not None else " ".join(message.text.split())
            )
        call.samples.append(sample)
        emitter.queue(
            CandidateGenerated(
                index=len(call.samples) - 1,
                output_tokens=sample.output_tokens,
                finish_reason=message.response_metadata.get("finish_reason"),
                answer=sample.key,
            )
        )

    def _labels(self, samples: Sequence[_Sample]) -> list[str]:
        """Each sample's group: tool calls by their exact key, answers by ``answers_match``."""
        answers = [s.answer for s in samples]
        groups = group_answers(answers, self.answers_match)
        return [
            f"answer#{group}" if s.answer is not None and group is not None else s.key
            for s, group in zip(samples, groups, strict=True)
        ]

    def _winner(self, call: _CallState) -> tuple[_Sample, int]:
        labels = self._labels(call.samples)
        votes = Counter(labels)
        best = max(votes.values())
        first = next(i for i, label in enumerate(labels) if votes[label] == best)  # stable tie
        return call.samples[first], best

    # -- the result ----------------------------------------------------------------------

    def _result(
        self,
        call: _CallState,
        emitter: EventEmitter,
        stop_reason: str,
        decided: int,
        *,
        fallback: bool = False,
        low: bool = False,
        estimate: SuccessEstimate | None = None,
    ) -> ExtendedModelResponse:
        winner, votes = self._winner(call)
        used = len(call.samples)
        confidence = votes / used
        if stop_reason == "consensus" and used < self.budget.max_samples_per_call:
            emitter.queue(EarlyStop(reason="consensus", samples_used=used, confidence=confidence))
        emitter.queue(
            AdaptiveFinished(
                strategy=self.strategy,
                stop_reason=stop_reason,
                decided_samples=decided,
                samples_used=used,
                generated_tokens=call.output_tokens,
                max_samples=self.budget.max_samples_per_call,
                confidence=confidence,
                low_confidence=low or fallback or stop_reason in ("max_samples", "token_budget"),
            )
        )
        run = AdaptiveRunUsage(
            samples=call.run["samples"] + used,
            output_tokens=call.run["output_tokens"] + call.output_tokens,
            input_tokens=call.run["input_tokens"] + sum(s.input_tokens for s in call.samples),
            model_calls=call.run["model_calls"] + 1,
            fallbacks=call.run["fallbacks"] + int(fallback),
        )
        report = {
            "strategy": self.strategy,
            "samples_used": used,
            "decided_samples": decided,
            "stop_reason": stop_reason,
            "votes": votes,
            "confidence": confidence,
            "groups": len(set(self._labels(call.samples))),
            "question_estimate_lower": estimate.lower if estimate is not None else None,
            "low_confidence": low,
            "fallback": fallback,
            "fallback_reason": "run budget exhausted: one plain sample" if fallback else None,
            "call_output_tokens": call.output_tokens,
            "run_usage": dict(run),
            "budget": self.budget.model_dump(),
        }
        message = winner.message.model_copy(
            update={"response_metadata": {**winner.message.response_metadata, "adaptive": report}}
        )
        result = [message if m is winner.message else m for m in winner.response.result]
        structured = winner.response.structured_response
        response = ModelResponse(result=result, structured_response=structured)
        return ExtendedModelResponse(
            model_response=response, command=Command(update={"adaptive_usage": run})
        )

    def _finish(
        self,
        call: _CallState,
        emitter: EventEmitter,
        stop_reason: str,
        decided: int,
        *,
        flush: Callable[[], None],
        fallback: bool = False,
        low: bool = False,
        estimate: SuccessEstimate | None = None,
    ) -> ExtendedModelResponse:
        result = self._result(
            call, emitter, stop_reason, decided, fallback=fallback, low=low, estimate=estimate
        )
        flush()
        return result

    async def _afinish(
        self,
        call: _CallState,
        emitter: EventEmitter,
        stop_reason: str,
        decided: int,
        *,
        fallback: bool = False,
        low: bool = False,
        estimate: SuccessEstimate | None = None,
    ) -> ExtendedModelResponse:
        result = self._result(
            call, emitter, stop_reason, decided, fallback=fallback, low=low, estimate=estimate
        )
        await emitter.aflush()
        return result

    # -- configs for the calls it makes --------------------------------------------------

    def _sample_config(self, config: RunnableConfig, question: str) -> RunnableConfig:
        return _tagged(config, self.strategy, question, "policy")

    def _prm_config(self, config: RunnableConfig, question: str) -> RunnableConfig:
        return _tagged(config, self.strategy, question, "prm")


def _tagged(config: RunnableConfig, strategy: str, question: str, role: str) -> RunnableConfig:
    """``config`` with the runnable's metadata and tag, so traces group as they do for it."""
    metadata = {
        **(config.get("metadata") or {}),
        STRATEGY_KEY: strategy,
        # surrogatepass, as the runnable's question_id: a lone surrogate must not raise
        QUESTION_ID_KEY: hashlib.sha256(question.encode("utf-8", "surrogatepass")).hexdigest()[:16],
        ROLE_KEY: role,
    }
    tags = [*(config.get("tags") or []), f"{TAG_PREFIX}{strategy}"]
    return RunnableConfig(**{**config, "metadata": metadata, "tags": tags})


def _stop_reason(drawn: int, planned: int, reason: str) -> str:
    if drawn < planned:
        return "token_budget"
    return "max_samples" if reason == "capped" else "adaptive_budget"


def _reply_of(response: ModelResponse) -> AIMessage:
    for message in response.result:
        if isinstance(message, AIMessage):
            return message
    raise ConfigurationError("The model call returned no AIMessage to vote on.")


def _canonical_calls(message: AIMessage) -> str:
    """Tool calls as ``name(canonical JSON args)``, sorted: equal calls, equal keys."""
    return ";".join(
        sorted(
            f"{call['name']}({json.dumps(call['args'], sort_keys=True, separators=(',', ':'))})"
            for call in message.tool_calls
        )
    )


def _last_human_text(request: ModelRequest[Any]) -> str:
    """The question a PRM estimates: the last human message, else the last message."""
    messages: list[BaseMessage] = list(request.messages)
    for message in reversed(messages):
        if message.type == "human":
            return message.text
    return messages[-1].text if messages else ""


__all__ = [
    "CONSENSUS_STRATEGY",
    "IAS_STRATEGY",
    "AdaptiveRunUsage",
    "AdaptiveSamplingBudget",
    "AdaptiveSamplingMiddleware",
    "AdaptiveSamplingState",
]
