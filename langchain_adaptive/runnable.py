"""``AdaptiveReasoningRunnable``: calibrated instance-adaptive sampling as a LangChain runnable.

The data path of one question, top to bottom:

question (``inputs``) -> success estimate (``prm``) -> budget (``strategies`` and
``budget``) -> samples (``sampling``) -> scores (``prm``) -> selection
(``selection``) -> :class:`AdaptiveResult`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import logging
import math
import numbers
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import (
    get_config_list,
    get_executor_for_config,
    patch_config,
)
from langchain_core.runnables.utils import gather_with_concurrency
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_adaptive.answers import (
    DEFAULT_STEP_DELIMITER,
    STEP_JOINER,
    AnswerEquivalence,
    AnswerExtractor,
    answers_match,
    extract_answer,
    split_steps,
    states_final_answer,
)
from langchain_adaptive.budget import DEFAULT_MAX_SAMPLES, BudgetLimits, BudgetTracker
from langchain_adaptive.callbacks.emitter import EventEmitter
from langchain_adaptive.callbacks.events import (
    AdaptiveFinished,
    BeamsPruned,
    BudgetDecided,
    CandidateGenerated,
    CandidateScored,
    EarlyStop,
    EstimateSummary,
    Revised,
    RolloutScored,
    StepScored,
)
from langchain_adaptive.callbacks.metadata import (
    QUESTION_ID_KEY,
    ROLE_KEY,
    STRATEGY_KEY,
    TAG_PREFIX,
)
from langchain_adaptive.callbacks.usage import UsageCounter
from langchain_adaptive.errors import (
    AdaptiveError,
    AdaptiveTimeoutError,
    CallbackHandlerError,
    ConfigurationError,
    EmptyGenerationError,
    ModelError,
    PRMError,
)
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION, FewShotExample, Question, parse_input
from langchain_adaptive.prm.base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import (
    AdaptiveResult,
    Beam,
    BudgetReport,
    Candidate,
    SuccessEstimate,
)
from langchain_adaptive.sampling import (
    Sample,
    SamplingFailure,
    adraw,
    adraw_prompts,
    adraw_steps,
    call_kwargs,
    confidence_kwargs,
    draw,
    draw_prompts,
    draw_steps,
    supports_confidence_stop,
)
from langchain_adaptive.selection import aggregate, select_finalists
from langchain_adaptive.strategies import (
    BEAM_ACTIONS,
    Action,
    AdaptiveConsistency,
    CollectBeams,
    Decision,
    Draw,
    EstimateQuestion,
    ExtendBeams,
    Plan,
    PruneBeams,
    Revise,
    RunState,
    ScoreBeams,
    ScoreCandidates,
    Strategy,
    build_strategy,
)
from langchain_adaptive.strategies.allocation import (
    FixedAllocation,
    allocate_budget,
    estimate_value,
)
from langchain_adaptive.strategies.revise import revision_messages

AdaptiveInput = str | dict[str, Any] | PromptValue | Sequence[BaseMessage]
"""A question string, ``{"question": ..., "gold": ...}``, a PromptValue, or messages."""

logger = logging.getLogger(__name__)


class AdaptiveReasoningRunnable(RunnableSerializable[AdaptiveInput, AdaptiveResult]):
    """Answers a question with as many samples as it needs, chosen by a calibrated PRM.

    Wraps any LangChain chat model or completion LLM and a
    :class:`ProcessRewardModel`. The default strategy, instance-adaptive
    best-of-N, asks the PRM how likely one sample is to be correct (``p``, a
    calibrated lower bound) and draws ``N = ceil(log(1 - C) / log(1 - p))``
    samples, capped at ``max_samples``; the PRM then scores each candidate and
    the best one is selected.

    All Runnable verbs work (``invoke``, ``ainvoke``, ``batch``, ``abatch``,
    ``stream``, ``astream``, ``astream_events``); model and PRM calls are child
    runs, and ``target_confidence``, ``max_samples`` and ``strategy`` can be made
    configurable with ``configurable_fields``.

    Each decision is a LangChain custom event (``adaptive_budget_decided``,
    ``adaptive_candidate_generated``, ``adaptive_candidate_scored``,
    ``adaptive_early_stop``, ``adaptive_finished``; models in
    :mod:`langchain_adaptive.callbacks.events`), and child runs carry the
    metadata ``adaptive_strategy`` and ``adaptive_question_id`` and the tag
    ``adaptive:<strategy>``, so traces group by question and strategy.

    Example:
        .. code-block:: python

            from langchain_adaptive import AdaptiveReasoningRunnable, LLMJudgePRM
            from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp

            chat = ChatLlamaCpp()  # bundled SmolLM2-135M-Instruct, on device
            reasoner = AdaptiveReasoningRunnable(model=chat, prm=LLMJudgePRM(model=chat))
            result = reasoner.invoke("What is 7 + 8?")
            result.answer, result.budget.samples_used, result.question_estimate.lower
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, use_attribute_docstrings=True)

    model: BaseLanguageModel
    """The policy: any LangChain ``BaseChatModel`` or ``BaseLLM``."""
    prm: ProcessRewardModel | None = None
    """Scores the question and candidates; required by ``adaptive_best_of_n`` and PRM selection."""
    strategy: str | Strategy = "adaptive_best_of_n"
    """A registry name (see :mod:`langchain_adaptive.strategies`) or a strategy instance."""
    target_confidence: float = Field(default=0.99, gt=0.0, lt=1.0)
    """IAS's C: the probability that some sample is correct that the budget aims for."""
    max_samples: int = Field(default=DEFAULT_MAX_SAMPLES, ge=1)
    """Hard cap on samples per question."""
    max_tokens_per_sample: int = Field(default=256, ge=1)
    """Generated-token cap per sample, passed to the model as ``max_tokens_kwarg``."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """Hard cap on generated tokens per question (samples are only started when one fits).

    A sample longer than ``max_tokens_per_sample`` (a model that ignores the cap)
    is cut to it as it arrives, so the cap holds for every sample kept; the tokens
    cut are reported as ``budget.overshoot_tokens`` with one warning."""
    timeout_s: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    """Wall-clock deadline of one question's run, in seconds; ``None``: none.

    Past it the run ends with :class:`~langchain_adaptive.errors.AdaptiveTimeoutError`,
    whose ``partial`` holds every sample drawn so far. A sync model call still
    running then is abandoned in a background thread (its output is discarded);
    an async one is cancelled. Per call: ``configurable_fields(timeout_s=...)``."""
    temperature: float | None = Field(default=0.7, ge=0.0, allow_inf_nan=False)
    """Sampling temperature passed to the model; ``None`` keeps the model's own setting."""
    max_tokens_kwarg: str | None = "max_tokens"
    """The keyword the model takes for its output cap; ``None`` to not pass one."""
    system_prompt: str | None = None
    """Prepended as a system message when the input has none."""
    instruction: str | None = DEFAULT_INSTRUCTION
    """Appended to the question (whatever the input form) so solutions have steps and an answer."""
    examples: list[FewShotExample] = Field(default_factory=list)
    """Worked examples shown before the question as earlier chat turns (few-shot)."""
    step_delimiter: str = DEFAULT_STEP_DELIMITER
    """Regex that splits a solution into steps for the PRM (default: blank lines)."""
    answer_extractor: AnswerExtractor = extract_answer
    """Finds the final answer in a solution."""
    answers_match: AnswerEquivalence = answers_match
    """Decides whether two answers are equivalent (votes, grading against ``gold``)."""
    on_prm_error: Literal["raise", "vote"] = "raise"
    """``"raise"``: a failing PRM raises :class:`PRMError`. ``"vote"``: fall back to
    adaptive-consistency voting (and majority selection), with a warning in the result."""
    redact_events: bool = False
    """Leave answer text out of event payloads, so traces and event logs carry none."""

    @field_validator("step_delimiter")
    @classmethod
    def _check_delimiter(cls, value: str) -> str:
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise ValueError(f"step_delimiter {value!r} is not a valid regex: {error}") from None
        if pattern.fullmatch(""):
            raise ValueError(
                f"step_delimiter {value!r} matches the empty string, so it would split a "
                "solution between every character; use a pattern that needs at least one "
                r"character, such as the default r'\n\s*\n'"
            )
        return value

    @field_validator("max_tokens_kwarg")
    @classmethod
    def _check_kwarg(cls, value: str | None) -> str | None:
        if value is not None and not value.isidentifier():
            raise ValueError(
                f"max_tokens_kwarg must be a keyword name such as 'max_tokens' (or None to pass "
                f"no cap), not {value!r}: the per-sample cap would be dropped silently"
            )
        return value

    # -- configuration ----------------------------------------------------------------

    def resolved_strategy(self) -> Strategy:
        """The strategy instance this runnable uses, checked against the PRM.

        Raises:
            UnknownStrategyError: ``strategy`` names no registered strategy.
            ConfigurationError: The strategy needs a PRM and none is set.
        """
        strategy = build_strategy(self.strategy)
        if self.prm is None and (strategy.requires_prm or strategy.needs_scores):
            raise ConfigurationError(
                f"strategy {strategy.name!r} with selection {strategy.selection!r} needs a PRM; "
                "pass prm=... or use a vote-based strategy ('majority_vote', "
                "'adaptive_consistency')"
            )
        return strategy

    def _limits(self) -> BudgetLimits:
        try:
            return BudgetLimits(
                max_samples=self.max_samples,
                max_tokens_per_sample=self.max_tokens_per_sample,
                max_total_tokens=self.max_total_tokens,
            )
        except ValueError as error:
            raise ConfigurationError(str(error)) from error

    def as_tool(
        self,
        args_schema: type[BaseModel] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: dict[str, type] | None = None,
    ) -> BaseTool:
        """This reasoner as an agent tool that takes ``question: str``.

        The tool message's content gives the answer and the calibrated confidence;
        its artifact is the full :class:`AdaptiveResult` (see
        :class:`~langchain_adaptive.tools.AdaptiveReasoningTool`). The generic
        ``Runnable.as_tool`` would expose the input union as the schema, which a
        model cannot fill in, so the schema is fixed.

        Args:
            args_schema: Not supported: the tool's schema is ``question: str``.
            name: Tool name (default ``"think_hard"``).
            description: Tool description (default: when thinking hard pays off).
            arg_types: Not supported, as ``args_schema``.

        Raises:
            ConfigurationError: ``args_schema`` or ``arg_types`` is given.
        """
        from langchain_adaptive.tools import (
            DEFAULT_TOOL_DESCRIPTION,
            DEFAULT_TOOL_NAME,
            adaptive_tool,
        )

        if args_schema is not None or arg_types is not None:
            raise ConfigurationError(
                "AdaptiveReasoningRunnable.as_tool takes a question string; its schema is "
                "fixed, so args_schema and arg_types are not supported (map your input to a "
                "question with a chain and call .as_tool on that instead)"
            )
        return adaptive_tool(
            self,
            name=name or DEFAULT_TOOL_NAME,
            description=description or DEFAULT_TOOL_DESCRIPTION,
        )

    # -- Runnable verbs -------------------------------------------------------------

    def invoke(
        self, input: AdaptiveInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AdaptiveResult:
        _reject_kwargs(kwargs)
        done: dict[str, AdaptiveResult] = {}
        try:
            return self._call_with_config(functools.partial(self._invoke, done=done), input, config)
        except Exception as error:
            raise _handler_failure(error, done)  # noqa: B904 - sets the cause

    async def ainvoke(
        self, input: AdaptiveInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AdaptiveResult:
        _reject_kwargs(kwargs)
        done: dict[str, AdaptiveResult] = {}
        try:
            return await self._acall_with_config(
                functools.partial(self._ainvoke, done=done), input, config
            )
        except Exception as error:
            raise _handler_failure(error, done)  # noqa: B904 - sets the cause

    def _invoke(
        self,
        input: AdaptiveInput,
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        done: dict[str, AdaptiveResult] | None = None,
    ) -> AdaptiveResult:
        episode = _Episode(self, input, run_manager.get_child, config)
        plan = episode.strategy.plan(episode.state)
        try:
            action: Action = next(plan)
            while True:
                try:
                    outcome = episode.execute_by_deadline(action)
                except PRMError as error:
                    plan, outcome = episode.recover(plan, action, error)
                    if outcome is _RESTART:
                        action = next(plan)
                        continue
                action = plan.send(outcome)
        except StopIteration as stop:
            result = episode.finish(stop.value)
            if done is not None:
                done["result"] = result  # kept if a handler's on_chain_end raises
            return result
        except BaseException as error:
            raise episode.attach(error)  # noqa: B904 - attach() sets the cause

    async def _ainvoke(
        self,
        input: AdaptiveInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        done: dict[str, AdaptiveResult] | None = None,
    ) -> AdaptiveResult:
        episode = _Episode(self, input, run_manager.get_child, config)
        plan = episode.strategy.plan(episode.state)
        try:
            action: Action = next(plan)
            while True:
                try:
                    outcome = await episode.aexecute_by_deadline(action)
                except PRMError as error:
                    plan, outcome = episode.recover(plan, action, error)
                    if outcome is _RESTART:
                        action = next(plan)
                        continue
                action = plan.send(outcome)
        except StopIteration as stop:
            result = await episode.afinish(stop.value)
            if done is not None:
                done["result"] = result
            return result
        except BaseException as error:
            raise episode.attach(error)  # noqa: B904 - attach() sets the cause

    # -- a batch under one total budget ----------------------------------------------

    def batch(
        self,
        inputs: list[AdaptiveInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        total_samples: int | None = None,
        **kwargs: Any | None,
    ) -> list[AdaptiveResult]:
        """LangChain's ``batch``; with ``total_samples``, one budget for the whole batch.

        Without it every question gets its own IAS budget, as in :meth:`invoke`.
        With it the samples are split across the questions by their success
        estimates (see :meth:`batch_with_budget`).
        """
        if total_samples is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        _reject_kwargs(kwargs)
        return self.batch_with_budget(  # type: ignore[return-value]
            inputs, total_samples, config, return_exceptions=return_exceptions
        )

    async def abatch(
        self,
        inputs: list[AdaptiveInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        total_samples: int | None = None,
        **kwargs: Any | None,
    ) -> list[AdaptiveResult]:
        """Async twin of :meth:`batch`: ``total_samples`` shares one budget across the batch."""
        if total_samples is None:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        _reject_kwargs(kwargs)
        return await self.abatch_with_budget(  # type: ignore[return-value]
            inputs, total_samples, config, return_exceptions=return_exceptions
        )

    def batch_with_budget(
        self,
        inputs: Sequence[AdaptiveInput],
        total_samples: int,
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        quantile: float | None = None,
        return_exceptions: bool = False,
    ) -> list[AdaptiveResult | Exception]:
        """Answer ``inputs`` drawing at most ``total_samples`` samples across all of them.

        Unlike :meth:`batch` (per-question budgets), this first asks the PRM for
        every question's success estimate, then splits the total by greedy
        marginal coverage gain (:func:`~langchain_adaptive.allocation.allocate_budget`,
        at least one sample and at most ``max_samples`` per question), then
        answers each question with exactly its share (a
        :class:`~langchain_adaptive.allocation.FixedAllocation`), selecting with
        this runnable's strategy's rule. The total is a hard limit: the sum of
        ``samples_used`` never exceeds it. Questions run in parallel like
        :meth:`batch` (``max_concurrency`` in ``config`` applies).

        Args:
            inputs: Questions, in any form :meth:`invoke` takes.
            total_samples: Samples for the whole batch.
            config: One config for all questions or one per question.
            quantile: The estimate level the allocation uses (``None``: the
                expected value, which is what expected coverage needs).
            return_exceptions: Return a question's error in its place instead of
                raising; a question whose input or estimate failed gets no samples.

        Raises:
            ConfigurationError: No PRM, or ``total_samples`` is below one sample
                per question (raised before any PRM or model call).

        Example:
            .. code-block:: python

                results = reasoner.batch_with_budget(questions, total_samples=4 * len(questions))
                sum(r.budget.samples_used for r in results) <= 4 * len(questions)
        """
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        texts = self._budget_questions(inputs, total_samples, return_exceptions)
        prm = self._batch_prm()

        def estimate(text: str | Exception, cfg: RunnableConfig) -> SuccessEstimate | Exception:
            if isinstance(text, Exception):
                return text
            try:
                return prm.estimate_question(text, cfg)
            except Exception as error:
                if not return_exceptions:
                    raise
                return error

        with get_executor_for_config(configs[0]) as executor:
            estimates = list(executor.map(estimate, texts, configs))
        runners = self._allocated(texts, estimates, total_samples, quantile)

        def answer(i: int) -> AdaptiveResult | Exception:
            runner = runners[i]
            if isinstance(runner, Exception):
                return runner
            try:
                return runner.invoke(inputs[i], configs[i])
            except Exception as error:
                if not return_exceptions:
                    raise
                return error

        with get_executor_for_config(configs[0]) as executor:
            return list(executor.map(answer, range(len(inputs))))

    async def abatch_with_budget(
        self,
        inputs: Sequence[AdaptiveInput],
        total_samples: int,
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        quantile: float | None = None,
        return_exceptions: bool = False,
    ) -> list[AdaptiveResult | Exception]:
        """Async twin of :meth:`batch_with_budget`."""
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        texts = self._budget_questions(inputs, total_samples, return_exceptions)
        prm = self._batch_prm()
        limit = configs[0].get("max_concurrency")

        async def estimate(
            text: str | Exception, cfg: RunnableConfig
        ) -> SuccessEstimate | Exception:
            if isinstance(text, Exception):
                return text
            try:
                return await prm.aestimate_question(text, cfg)
            except Exception as error:
                if not return_exceptions:
                    raise
                return error

        estimates = await gather_with_concurrency(
            limit, *(estimate(t, c) for t, c in zip(texts, configs, strict=True))
        )
        runners = self._allocated(texts, estimates, total_samples, quantile)

        async def answer(i: int) -> AdaptiveResult | Exception:
            runner = runners[i]
            if isinstance(runner, Exception):
                return runner
            try:
                return await runner.ainvoke(inputs[i], configs[i])
            except Exception as error:
                if not return_exceptions:
                    raise
                return error

        return await gather_with_concurrency(limit, *(answer(i) for i in range(len(inputs))))

    def _batch_prm(self) -> ProcessRewardModel:
        if self.prm is None:
            raise ConfigurationError("batch_with_budget needs a PRM to estimate every question")
        return self.prm

    def _budget_questions(
        self, inputs: Sequence[AdaptiveInput], total_samples: int, return_exceptions: bool
    ) -> list[str | Exception]:
        """Every input's question text (or its input error), checked before any call."""
        if isinstance(total_samples, bool) or not isinstance(total_samples, numbers.Integral):
            raise ConfigurationError(
                f"total_samples must be a whole number of samples, got {total_samples!r}"
            )
        self._batch_prm()
        self.resolved_strategy()
        texts: list[str | Exception] = []
        for value in inputs:
            try:
                texts.append(
                    parse_input(
                        value,
                        system_prompt=self.system_prompt,
                        instruction=self.instruction,
                        examples=self.examples,
                    ).text
                )
            except AdaptiveError as error:
                if not return_exceptions:
                    raise
                texts.append(error)
        answerable = sum(not isinstance(t, Exception) for t in texts)
        if total_samples < answerable:
            raise ConfigurationError(
                f"total_samples={total_samples} is less than one sample for each of the "
                f"{answerable} question(s)"
            )
        return texts

    def _allocated(
        self,
        texts: Sequence[str | Exception],
        estimates: Sequence[SuccessEstimate | Exception],
        total_samples: int,
        quantile: float | None,
    ) -> list[AdaptiveReasoningRunnable | Exception]:
        """One runner per question, drawing exactly the samples the allocation gave it."""
        ready = [i for i, e in enumerate(estimates) if not isinstance(e, Exception)]
        shares = allocate_budget(
            [estimate_value(estimates[i], quantile) for i in ready],  # type: ignore[arg-type]
            total_samples,
            self.max_samples,
        )
        base = self.resolved_strategy()
        runners: list[AdaptiveReasoningRunnable | Exception] = [
            e if isinstance(e, Exception) else ConfigurationError("not allocated")
            for e in estimates
        ]
        for i, share in zip(ready, shares, strict=True):
            text = str(texts[i])  # an input error never has an estimate
            strategy = FixedAllocation(
                samples={text: share},
                estimates={text: estimates[i]},  # type: ignore[dict-item]
                quantile=quantile,
                selection=base.selection,
                aggregation=base.aggregation,
            )
            runners[i] = self.model_copy(update={"strategy": strategy})
        return runners


def _reject_kwargs(kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ConfigurationError(
            f"AdaptiveReasoningRunnable.invoke takes no keyword arguments, got {sorted(kwargs)}; "
            "set sampling options as fields (temperature, max_tokens_per_sample, ...) or bind "
            "them on the model"
        )


EARLY_STOP_REASONS = frozenset({"consensus"})
"""Stop reasons that mean a strategy stopped before its cap because it was confident."""

_RESTART = object()
"""Sentinel: the PRM failed before any budget was set; the fallback plan starts afresh."""


def _grouped(callbacks: Any, metadata: dict[str, Any], tags: list[str]) -> Any:
    """A child callback manager whose runs carry the question and strategy."""
    callbacks.add_metadata(metadata, inherit=True)
    callbacks.add_tags(tags, inherit=True)
    return callbacks


class _Episode:
    """One question's run: executes a strategy's actions and assembles the result."""

    def __init__(
        self,
        runnable: AdaptiveReasoningRunnable,
        input: AdaptiveInput,
        child_callbacks: Any,
        config: RunnableConfig,
    ) -> None:
        self.started = time.perf_counter()
        self.runnable = runnable
        self.deadline = (
            None if runnable.timeout_s is None else time.monotonic() + runnable.timeout_s
        )
        self.closed = False
        """Set when the deadline passed: an abandoned call's late output is dropped."""
        self.overshoot_tokens = 0
        self.overshoot_samples = 0
        self.warnings: list[str] = []
        self.selection_fallback = False
        self.prm_usage = UsageCounter()
        # Resolve everything that can fail on bad input before any compute is spent.
        self.strategy = runnable.resolved_strategy()
        limits = runnable._limits()
        self.question: Question = parse_input(
            input,
            system_prompt=runnable.system_prompt,
            instruction=runnable.instruction,
            examples=runnable.examples,
        )
        group = {
            STRATEGY_KEY: self.strategy.name,
            QUESTION_ID_KEY: question_id(input, self.question),
        }
        tags = [f"{TAG_PREFIX}{self.strategy.name}"]
        policy_callbacks = _grouped(child_callbacks(), {**group, ROLE_KEY: "policy"}, tags)
        self.config = patch_config(config, callbacks=policy_callbacks)
        prm_callbacks = _grouped(child_callbacks(), {**group, ROLE_KEY: "prm"}, tags)
        prm_callbacks.add_handler(self.prm_usage, inherit=True)
        self.prm_config = patch_config(config, callbacks=prm_callbacks)
        events_config = patch_config(config, callbacks=_grouped(child_callbacks(), group, tags))
        self.events = EventEmitter(events_config, redact=runnable.redact_events)
        self.kwargs = call_kwargs(
            runnable.temperature, runnable.max_tokens_per_sample, runnable.max_tokens_kwarg
        )
        self.state = RunState(
            question=self.question.text,
            target_confidence=runnable.target_confidence,
            tracker=BudgetTracker(limits),
            has_prm=runnable.prm is not None,
            equivalent=runnable.answers_match,
            extract_answer=runnable.answer_extractor,
            stops_on_confidence=supports_confidence_stop(runnable.model),
        )

    # -- actions ----------------------------------------------------------------------

    def _left(self, action: Action) -> float | None:
        """Seconds left before the deadline (``None``: no deadline); raises once it passed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out(action)
        return left

    def _timed_out(self, action: Action) -> AdaptiveTimeoutError:
        self.closed = True
        timeout = self.runnable.timeout_s
        return AdaptiveTimeoutError(
            f"the run passed its deadline (timeout_s={timeout:g}) during "
            f"{type(action).__name__}; {len(self.state.candidates)} sample(s) drawn by then "
            "are in .partial",
            timeout_s=timeout,
        )

    def execute_by_deadline(self, action: Action) -> Any:
        """:meth:`execute`, ended by ``timeout_s``: the call runs in a daemon thread.

        A thread cannot be stopped from outside, so a call still running at the
        deadline is abandoned; :attr:`closed` makes its late output be dropped.
        """
        left = self._left(action)
        if left is None:
            return self.execute(action)
        box: dict[str, Any] = {}
        context = contextvars.copy_context()  # tracing and child-run config travel along

        def run() -> None:
            try:
                box["value"] = context.run(self.execute, action)
            except BaseException as error:  # handed to the caller below
                box["error"] = error

        worker = threading.Thread(target=run, name="adaptive-deadline", daemon=True)
        worker.start()
        worker.join(left)
        if worker.is_alive():
            raise self._timed_out(action)
        if "error" in box:
            raise box["error"]
        return box["value"]

    async def aexecute_by_deadline(self, action: Action) -> Any:
        """Async twin of :meth:`execute_by_deadline`: the action is cancelled at the deadline."""
        left = self._left(action)
        if left is None:
            return await self.aexecute(action)
        try:
            async with asyncio.timeout(left) as scope:
                return await self.aexecute(action)
        except TimeoutError:
            if scope.expired():
                raise self._timed_out(action) from None
            raise

    def execute(self, action: Action) -> Any:
        """Run one action; its events are dispatched even when it fails part-way.

        A call the deadline abandoned (still running in its thread after the run
        ended) dispatches nothing: its run has already reported its end.
        """
        try:
            return self._execute(action)
        finally:
            if not self.closed:
                self.events.flush()

    async def aexecute(self, action: Action) -> Any:
        """Async twin of :meth:`execute`."""
        try:
            return await self._aexecute(action)
        finally:
            await self.events.aflush()

    def _execute(self, action: Action) -> Any:
        prm = self.runnable.prm
        if isinstance(action, EstimateQuestion):
            estimate = self._prm().estimate_question(self.state.question, self.prm_config)
            self._note_estimate(estimate)
            return estimate
        if isinstance(action, Draw):
            n = self._decide(action)
            self.events.flush()  # the decision is news before the samples it asks for
            try:
                samples = (
                    draw(
                        self.runnable.model,
                        self.question,
                        n,
                        kwargs=confidence_kwargs(
                            self.runnable.model, self.kwargs, action.stop_on_confidence
                        ),
                        config=self.config,
                    )
                    if n
                    else []
                )
            except SamplingFailure as failure:
                raise self._sampling_failed(failure) from failure.error
            return self._add_candidates(samples)
        if isinstance(action, ScoreCandidates):
            pending = self._pending_scores()
            if pending and prm is not None:
                scores = prm.score(
                    self.state.question,
                    [c.steps for c in pending],
                    self.prm_config,
                    token_logprobs=_token_logprobs(pending),
                )
                self._apply_scores(pending, scores)
            return None
        if isinstance(action, ExtendBeams):
            children: list[Beam] = []
            for parent, wanted in zip(action.parents, action.counts, strict=True):
                n = self.state.tracker.step_allowance(wanted)
                if n == 0:
                    continue
                try:
                    samples = draw_steps(
                        self.runnable.model,
                        self.question,
                        parent.steps if parent is not None else [],
                        n,
                        stop=action.stop,
                        kwargs=self._step_kwargs(action),
                        config=self.config,
                    )
                except SamplingFailure as failure:
                    raise self._steps_failed(parent, failure) from failure.error
                children.extend(self._add_beams(parent, samples, rollout=action.rollout))
            return children
        if isinstance(action, ScoreBeams):
            beams = self._scorable(action.beams)
            if beams:
                scores = self._prm().score(
                    self.state.question, [b.steps for b in beams], self.prm_config
                )
                self._apply_beam_scores(beams, scores)
            return None
        if isinstance(action, PruneBeams):
            self._prune(action)
            return None
        if isinstance(action, CollectBeams):
            return self._collect_beams(action.beams)
        if isinstance(action, Revise):
            prompts = self._revision_prompts(action)
            try:
                samples = draw_prompts(
                    self.runnable.model, prompts, kwargs=self.kwargs, config=self.config
                )
            except SamplingFailure as failure:
                raise self._sampling_failed(failure) from failure.error
            return self._add_revisions(action, samples)
        raise TypeError(f"unknown strategy action {action!r}")  # pragma: no cover

    async def _aexecute(self, action: Action) -> Any:
        prm = self.runnable.prm
        if isinstance(action, EstimateQuestion):
            estimate = await self._prm().aestimate_question(self.state.question, self.prm_config)
            self._note_estimate(estimate)
            return estimate
        if isinstance(action, Draw):
            n = self._decide(action)
            await self.events.aflush()  # the decision is news before the samples it asks for
            try:
                samples = (
                    await adraw(
                        self.runnable.model,
                        self.question,
                        n,
                        kwargs=confidence_kwargs(
                            self.runnable.model, self.kwargs, action.stop_on_confidence
                        ),
                        config=self.config,
                    )
                    if n
                    else []
                )
            except SamplingFailure as failure:
                raise self._sampling_failed(failure) from failure.error
            return self._add_candidates(samples)
        if isinstance(action, ScoreCandidates):
            pending = self._pending_scores()
            if pending and prm is not None:
                scores = await prm.ascore(
                    self.state.question,
                    [c.steps for c in pending],
                    self.prm_config,
                    token_logprobs=_token_logprobs(pending),
                )
                self._apply_scores(pending, scores)
            return None
        if isinstance(action, ExtendBeams):
            children: list[Beam] = []
            for parent, wanted in zip(action.parents, action.counts, strict=True):
                n = self.state.tracker.step_allowance(wanted)
                if n == 0:
                    continue
                try:
                    samples = await adraw_steps(
                        self.runnable.model,
                        self.question,
                        parent.steps if parent is not None else [],
                        n,
                        stop=action.stop,
                        kwargs=self._step_kwargs(action),
                        config=self.config,
                    )
                except SamplingFailure as failure:
                    raise self._steps_failed(parent, failure) from failure.error
                children.extend(self._add_beams(parent, samples, rollout=action.rollout))
            return children
        if isinstance(action, ScoreBeams):
            beams = self._scorable(action.beams)
            if beams:
                scores = await self._prm().ascore(
                    self.state.question, [b.steps for b in beams], self.prm_config
                )
                self._apply_beam_scores(beams, scores)
            return None
        if isinstance(action, PruneBeams):
            self._prune(action)
            return None
        if isinstance(action, CollectBeams):
            return self._collect_beams(action.beams)
        if isinstance(action, Revise):
            prompts = self._revision_prompts(action)
            try:
                samples = await adraw_prompts(
                    self.runnable.model, prompts, kwargs=self.kwargs, config=self.config
                )
            except SamplingFailure as failure:
                raise self._sampling_failed(failure) from failure.error
            return self._add_revisions(action, samples)
        raise TypeError(f"unknown strategy action {action!r}")  # pragma: no cover

    def recover(self, plan: Plan, action: Action, error: PRMError) -> tuple[Plan, Any]:
        """Apply ``on_prm_error``: re-raise, or continue by voting."""
        if self.runnable.on_prm_error == "raise" or isinstance(action, BEAM_ACTIONS):
            raise error  # a step-level search cannot go on without its PRM
        if error.__cause__ is not None and _from_handler(error.__cause__):
            raise error  # a callback handler failed, not the PRM: voting would hide it
        self.warnings.append(f"PRM failed ({error}); fell back to voting")
        self.selection_fallback = True
        if isinstance(action, EstimateQuestion):
            plan.close()
            fallback = AdaptiveConsistency()
            self.strategy = fallback
            return fallback.plan(self.state), _RESTART
        return plan, None

    def _decide(self, draw: Draw) -> int:
        """Report the strategy's budget decision; the samples the limits allow of it."""
        estimate = self.state.question_estimate
        self.events.queue(
            BudgetDecided(
                strategy=self.strategy.name,
                n=draw.n if draw.planned is None else draw.planned,
                estimate=EstimateSummary.of(estimate) if estimate is not None else None,
                target_confidence=self.state.target_confidence,
                reason=draw.reason,
            )
        )
        return self.state.allowance(draw.n)

    def _prm(self) -> ProcessRewardModel:
        if self.runnable.prm is None:
            raise ConfigurationError("the strategy asked for a question estimate but no PRM is set")
        return self.runnable.prm

    def _note_estimate(self, estimate: SuccessEstimate) -> None:
        self._check_open()
        self.state.question_estimate = estimate
        self.state.tracker.record_prm_call()

    def _sampling_failed(self, failure: SamplingFailure) -> AdaptiveError:
        """Keep the samples that did arrive, then report the model's (or a handler's) failure."""
        self._add_candidates(failure.samples)
        if _from_handler(failure.error):
            return _handler_error(failure.error)
        return ModelError(f"the model failed while sampling: {failure.error}")

    def _check_open(self) -> None:
        if self.closed:  # the deadline passed while this call ran: its output is dropped
            raise _Abandoned

    def _capped(self, sample: Sample) -> Sample:
        """``sample`` cut to ``max_tokens_per_sample`` when the model ignored that cap.

        The cut is by the share of tokens kept (the text has no token offsets);
        the tokens past the cap are counted as overshoot and reported once.
        """
        cap = self.runnable.max_tokens_per_sample
        spent = sample.usage.output_tokens
        if spent <= cap:
            return sample
        usage = sample.usage.model_copy(update={"output_tokens": cap})
        if sample.usage.estimated and spent <= cap * _ESTIMATE_SLACK:
            # A count guessed from characters a little over the cap is the guess's
            # error, not the model's: the model honoured the cap, so count the cap.
            return sample.model_copy(update={"usage": usage})
        self.overshoot_tokens += spent - cap
        self.overshoot_samples += 1
        cut = {"text": sample.text[: len(sample.text) * cap // spent], "usage": usage}
        if sample.token_logprobs:  # one per token: keep the kept ones
            cut["token_logprobs"] = sample.token_logprobs[:cap]
        if sample.token_confidences:
            cut["token_confidences"] = sample.token_confidences[:cap]
        return sample.model_copy(update={**cut, "finish_reason": "length"})

    def _add_candidates(self, samples: list[Sample]) -> list[Candidate]:
        self._check_open()
        samples = [self._capped(s) for s in samples]
        self.state.tracker.record_samples([s.usage for s in samples])
        start = len(self.state.candidates)
        new = [
            Candidate(
                index=start + offset,
                text=sample.text,
                steps=split_steps(sample.text, self.runnable.step_delimiter),
                answer=self.runnable.answer_extractor(sample.text),
                usage=sample.usage,
                finish_reason=sample.finish_reason,
                token_logprobs=sample.token_logprobs,
                token_confidences=sample.token_confidences,
            )
            for offset, sample in enumerate(samples)
        ]
        self.state.candidates.extend(new)
        for candidate in new:
            self.events.queue(
                CandidateGenerated(
                    index=candidate.index,
                    output_tokens=candidate.usage.output_tokens,
                    finish_reason=candidate.finish_reason,
                    answer=candidate.answer,
                )
            )
        return new

    # -- sequential revisions ------------------------------------------------------------

    def _revision_prompts(self, action: Revise) -> list[list[BaseMessage]]:
        """The revision prompts of the chains the limits allow now (the first ones first)."""
        question = self.question
        assert question is not None  # parsed before any action runs
        system = [m for m in question.messages[:1] if m.type == "system"]
        allowed = self.state.allowance(len(action.chains))
        return [
            revision_messages(
                action.prompt, question.text, attempts, self.runnable.instruction, system
            )
            for attempts in action.chain_attempts[:allowed]
        ]

    def _add_revisions(self, action: Revise, samples: list[Sample]) -> list[Candidate]:
        new = self._add_candidates(samples)
        for chain, attempts, candidate in zip(
            action.chains, action.chain_attempts, new, strict=False
        ):
            self.events.queue(
                Revised(
                    chain=chain,
                    revision=action.revision,
                    index=candidate.index,
                    shown=[attempt.index for attempt in attempts],
                    prompt_tokens=candidate.usage.input_tokens,
                    output_tokens=candidate.usage.output_tokens,
                    answer=candidate.answer,
                )
            )
        return new

    # -- step-level search --------------------------------------------------------------

    def _step_kwargs(self, action: ExtendBeams) -> dict[str, Any]:
        """The call's sampling settings; a lookahead rollout overrides the temperature."""
        if action.temperature is None:
            return self.kwargs
        return {**self.kwargs, "temperature": action.temperature}

    def _add_beams(
        self, parent: Beam | None, samples: list[Sample], *, rollout: bool = False
    ) -> list[Beam]:
        """Children of ``parent``, one per generated step, counted and kept in the state.

        A child is finished when its step states a final answer or is empty
        (the model had nothing more to say: end of text). A rollout's children
        point at the search step they roll out (``rollout_of``).
        """
        self._check_open()
        samples = [self._capped(s) for s in samples]
        self.state.tracker.record_steps([s.usage for s in samples])
        base = parent.steps if parent is not None else []
        children = []
        for sample in samples:
            step = sample.text.strip()
            steps = [*base, step] if step else list(base)
            beam = Beam(
                id=len(self.state.beams),
                parent_id=parent.id if parent is not None else None,
                steps=steps,
                finished=not step or states_final_answer(step),
                usage=sample.usage,
                finish_reason=sample.finish_reason,
                rollout_of=_rolled_out(parent) if rollout else None,
            )
            self.state.beams.append(beam)
            children.append(beam)
        return children

    def _steps_failed(self, parent: Beam | None, failure: SamplingFailure) -> AdaptiveError:
        """Keep the steps that did arrive, then report the model's (or a handler's) failure."""
        self._add_beams(parent, failure.samples)
        if _from_handler(failure.error):
            return _handler_error(failure.error)
        return ModelError(f"the model failed while generating steps: {failure.error}")

    @staticmethod
    def _scorable(beams: Sequence[Beam]) -> list[Beam]:
        """Beams with steps; a beam with none (an empty first step) never wins."""
        for beam in beams:
            if not beam.steps:
                beam.step_estimates = []
        return [beam for beam in beams if beam.steps]

    def _apply_beam_scores(self, beams: list[Beam], scores: PRMScores) -> None:
        self._check_open()
        _check_finite(scores)
        self.state.tracker.record_prm_call()
        for beam, estimates in zip(beams, scores, strict=True):
            beam.step_estimates = estimates
            self.events.queue(StepScored(**_step_event(beam)))
            if beam.rollout_of is not None:
                origin = self.state.beams[beam.rollout_of]
                estimate = beam.estimate
                self.events.queue(
                    RolloutScored(
                        beam_id=origin.id,
                        rollout_beam_id=beam.id,
                        rollout_steps=len(beam.steps) - len(origin.steps),
                        lower=estimate.lower if estimate else None,
                        median=estimate.median if estimate else None,
                        finished=beam.finished,
                    )
                )

    def _prune(self, action: PruneBeams) -> None:
        for beam in action.dropped:
            beam.pruned = True
        self.events.queue(
            BeamsPruned(
                step_index=action.step_index,
                kept=[b.id for b in action.kept],
                dropped=[b.id for b in action.dropped],
                k=action.k,
                m=action.m,
                floored=action.floored,
            )
        )

    def _collect_beams(self, beams: Sequence[Beam]) -> list[Candidate]:
        """Finished (or last open) beams become the candidates selection picks from."""
        self.state.tracker.record_paths(len(beams))
        start = len(self.state.candidates)
        new = []
        for offset, beam in enumerate(beams):
            text = STEP_JOINER.join(beam.steps)
            beam.answer = self.runnable.answer_extractor(text) if text else None
            estimates = beam.step_estimates
            new.append(
                Candidate(
                    index=start + offset,
                    text=text,
                    steps=list(beam.steps),
                    answer=beam.answer,
                    step_estimates=estimates,
                    score=aggregate(estimates, self.strategy.aggregation) if estimates else 0.0,
                    usage=beam.usage,
                    finish_reason=beam.finish_reason,
                    beam_id=beam.id,
                )
            )
        self.state.candidates.extend(new)
        return new

    def _pending_scores(self) -> list[Candidate]:
        pending = []
        for candidate in self.state.candidates:
            if candidate.step_estimates is not None:
                continue
            if not candidate.steps:  # an empty sample cannot be judged; it never wins
                candidate.step_estimates, candidate.score = [], 0.0
                self._scored(candidate)
                continue
            pending.append(candidate)
        return pending

    def _apply_scores(self, pending: list[Candidate], scores: PRMScores) -> None:
        self._check_open()
        _check_finite(scores)
        aggregated = [aggregate(estimates, self.strategy.aggregation) for estimates in scores]
        if not all(math.isfinite(score) for score in aggregated):
            raise PRMError(f"the PRM's scores aggregate to a non-finite value: {aggregated}")
        self.state.tracker.record_prm_call()
        for candidate, estimates, score in zip(pending, scores, aggregated, strict=True):
            candidate.step_estimates = estimates
            candidate.score = score
            self._scored(candidate)

    def _scored(self, candidate: Candidate) -> None:
        self.events.queue(
            CandidateScored(
                index=candidate.index,
                score=candidate.score,
                step_estimates=[e.median for e in candidate.step_estimates or []],
            )
        )

    # -- result -------------------------------------------------------------------------

    def result(self, decision: Decision | None, *, bare: bool = False) -> AdaptiveResult:
        """The result so far; with no decision, a partial result for an exception.

        ``bare`` skips selection and grading (user callables that may be what
        failed), so a partial result keeps every sample even then.
        """
        state, runnable = self.state, self.runnable
        candidates = list(state.candidates)
        rule = "majority_vote" if self.selection_fallback else self.strategy.selection
        gold = self.question.gold if self.question else None
        answer, index = None, None
        if not bare:
            finalists = decision.finalists if decision is not None else None
            outcome = select_finalists(
                candidates, rule, finalists, equivalent=runnable.answers_match
            )
            answer, index = outcome.answer, outcome.index
            if gold is not None:
                for candidate in candidates:
                    candidate.correct = candidate.answer is not None and runnable.answers_match(
                        gold,
                        candidate.answer,  # math-verify reads the first argument as gold
                    )
        selected = candidates[index] if index is not None else None
        usage = state.tracker.usage
        prm_usage = self.prm_usage.usage
        warnings = [*self.warnings, *(decision.warnings if decision else [])]
        if self.overshoot_tokens:
            warnings.append(self._overshoot_warning())
        return AdaptiveResult(
            question=state.question,
            answer=answer,
            solution=selected.text if selected else None,
            selected_index=index,
            candidates=candidates,
            question_estimate=state.question_estimate,
            confidence=decision.confidence if decision else None,
            low_confidence=decision.low_confidence if decision else False,
            strategy=self.strategy.name,
            stop_reason=decision.stop_reason if decision else "max_samples",
            budget=BudgetReport(
                decided_samples=decision.decided_samples if decision else len(candidates),
                max_samples=state.max_samples,
                samples_used=len(candidates),
                generated_tokens=usage.output_tokens,
                prompt_tokens=usage.input_tokens,
                model_calls=usage.model_calls,
                prm_calls=state.tracker.prm_calls,
                prm_input_tokens=prm_usage.input_tokens,
                prm_output_tokens=prm_usage.output_tokens,
                prm_model_calls=prm_usage.model_calls,
                max_total_tokens=state.tracker.limits.max_total_tokens,
                tokens_estimated=usage.estimated,
                overshoot_tokens=self.overshoot_tokens,
            ),
            selection=rule,
            warnings=warnings,
            gold=gold,
            correct=selected.correct if selected and gold is not None else None,
            elapsed_s=time.perf_counter() - self.started,
            beams=state.beams if self.strategy.stepwise else None,
        )

    def _overshoot_warning(self) -> str:
        runnable = self.runnable
        return (
            f"the model ignored its output cap ({runnable.max_tokens_kwarg}="
            f"{runnable.max_tokens_per_sample}): {self.overshoot_samples} sample(s) ran "
            f"{self.overshoot_tokens} token(s) past it; they were cut to the cap, so the budget "
            "holds for what was kept, but the model generated (and was paid for) those tokens. "
            "Set max_tokens_kwarg to the keyword your model reads."
        )

    def finish(self, decision: Decision) -> AdaptiveResult:
        result = self._checked(decision)
        self._warn_overshoot()
        self._note_finish(result)
        try:
            self.events.flush()
        except Exception as error:  # a handler with raise_error=True
            raise self._with_result(error, result)  # noqa: B904 - attach() sets the cause
        return result

    async def afinish(self, decision: Decision) -> AdaptiveResult:
        result = self._checked(decision)
        self._warn_overshoot()
        self._note_finish(result)
        try:
            await self.events.aflush()
        except Exception as error:  # a handler with raise_error=True
            raise self._with_result(error, result)  # noqa: B904 - attach() sets the cause
        return result

    def _with_result(self, error: Exception, result: AdaptiveResult) -> BaseException:
        """A handler failed after the result was complete: keep the whole result."""
        wrapped = self.attach(error)
        if isinstance(wrapped, AdaptiveError):
            wrapped.partial = result
        return wrapped

    def _note_finish(self, result: AdaptiveResult) -> None:
        budget = result.budget
        if result.stop_reason in EARLY_STOP_REASONS:
            self.events.queue(
                EarlyStop(
                    reason=result.stop_reason,
                    samples_used=budget.samples_used,
                    confidence=result.confidence,
                )
            )
        self.events.queue(
            AdaptiveFinished(
                strategy=result.strategy,
                stop_reason=result.stop_reason,
                decided_samples=budget.decided_samples,
                samples_used=budget.samples_used,
                generated_tokens=budget.generated_tokens,
                max_samples=budget.max_samples,
                confidence=result.confidence,
                low_confidence=result.low_confidence,
            )
        )

    def _warn_overshoot(self) -> None:
        """Log the measured overshoot once per run (it is also in ``result.warnings``)."""
        if self.overshoot_tokens:
            logger.warning("AdaptiveReasoningRunnable: %s", self._overshoot_warning())

    def _checked(self, decision: Decision) -> AdaptiveResult:
        try:
            result = self.result(decision)
        except AdaptiveError:
            raise
        except Exception as error:  # a user's answer_extractor or answers_match, say
            failure = AdaptiveError(
                f"assembling the result failed: {type(error).__name__}: {error}",
                partial=self.partial(),
            )
            raise failure from error
        if result.candidates and all(not c.text.strip() for c in result.candidates):
            raise EmptyGenerationError(
                f"the model returned {len(result.candidates)} empty sample(s)", partial=result
            )
        return result

    def partial(self) -> AdaptiveResult | None:
        """The result so far for an error; never raises, so no error loses the samples.

        Selection and grading run user callables; if they fail, the result is
        built without them (no answer selected, every candidate kept).
        """
        if self.question is None:
            return None
        try:
            return self.result(None)
        except Exception:
            logger.debug("partial result: selection failed; keeping the bare record", exc_info=True)
        try:
            return self.result(None, bare=True)
        except Exception:  # pragma: no cover - nothing user-supplied runs in a bare result
            logger.warning("partial result could not be built", exc_info=True)
            return None

    def attach(self, error: BaseException) -> BaseException:
        """Attach the partial result to a package error (wrapping foreign errors in ModelError).

        A callback handler's error (``raise_error=True``) becomes
        :class:`CallbackHandlerError`, a PRM's that a handler caused too.
        """
        if isinstance(error, _Abandoned):  # pragma: no cover - only in an abandoned thread
            return error
        cause = error.__cause__
        if isinstance(error, PRMError) and cause is not None and _from_handler(cause):
            error = _handler_error(cause)
        if isinstance(error, AdaptiveError):
            if error.partial is None:
                error.partial = self.partial()
            return error
        if not isinstance(error, Exception) or self.question is None:
            return error
        if _from_handler(error):
            wrapped: AdaptiveError = _handler_error(error)
            wrapped.partial = self.partial()
            return wrapped
        wrapped = ModelError(f"{type(error).__name__}: {error}", partial=self.partial())
        wrapped.__cause__ = error
        return wrapped


_ESTIMATE_SLACK = 1.5
"""A token count estimated from characters may exceed the true count by this factor."""


class _Abandoned(Exception):
    """Raised in a call abandoned at the deadline, so its late output changes nothing."""


def _token_logprobs(candidates: Sequence[Candidate]) -> list[list[float] | None] | None:
    """The candidates' reported token logprobs for the PRM, ``None`` when none reported any."""
    logprobs = [c.token_logprobs for c in candidates]
    return logprobs if any(lp is not None for lp in logprobs) else None


def _check_finite(scores: PRMScores) -> None:
    """A PRM's estimates must be finite (a NaN that slipped past validation is a PRM failure)."""
    for estimates in scores:
        for estimate in estimates:
            values = [*estimate.quantiles.values(), estimate.mean]
            if not all(v is None or math.isfinite(v) for v in values):
                raise PRMError(f"the PRM returned a non-finite estimate {estimate!r}")


_DISPATCH_FRAMES = frozenset({"handle_event", "ahandle_event", "_ahandle_event_for_handler"})
_DISPATCH_FILE = os.path.join("callbacks", "manager.py")


def _from_handler(error: BaseException) -> bool:
    """Whether ``error`` was raised by a callback handler that LangChain's dispatcher re-raised.

    LangChain re-raises a handler's exception only for handlers with
    ``raise_error=True``, from inside its ``handle_event``: that frame in the
    traceback tells a handler's failure from the model's.
    """
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in _DISPATCH_FRAMES and code.co_filename.endswith(_DISPATCH_FILE):
            return True
        tb = tb.tb_next
    return False


def _handler_error(error: BaseException) -> CallbackHandlerError:
    wrapped = CallbackHandlerError(
        f"a callback handler raised (raise_error=True): {type(error).__name__}: {error}"
    )
    wrapped.__cause__ = error
    return wrapped


def _handler_failure(error: Exception, done: Mapping[str, AdaptiveResult]) -> Exception:
    """An error from around a run (``on_chain_start``/``end``/``error``), typed by its source.

    A handler's error becomes :class:`CallbackHandlerError` carrying the finished
    result (``on_chain_end``) or the run's partial result (``on_chain_error``);
    anything else is returned as it is.
    """
    if isinstance(error, AdaptiveError) or not _from_handler(error):
        return error
    wrapped = _handler_error(error)
    context = error.__context__
    if "result" in done:
        wrapped.partial = done["result"]
    elif isinstance(context, AdaptiveError):
        wrapped.partial = context.partial
    return wrapped


def question_id(input: AdaptiveInput, question: Question) -> str:
    """The id traces group a question's runs by: a dict input's ``id``, else a text hash.

    The hash (16 hex digits of SHA-256 over the question text) is stable across
    runs and processes, so repeated runs of one question group together.
    """
    if isinstance(input, Mapping) and input.get("id") is not None:
        return str(input["id"])
    return hashlib.sha256(question.text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _rolled_out(parent: Beam | None) -> int | None:
    """The search step a rollout from ``parent`` scores: ``parent``, or what it rolls out."""
    if parent is None:
        return None
    return parent.rollout_of if parent.rollout_of is not None else parent.id


def _step_event(beam: Beam) -> dict[str, Any]:
    estimate = beam.estimate
    return {
        "beam_id": beam.id,
        "step_index": len(beam.steps) - 1,
        "lower": estimate.lower if estimate else None,
        "median": estimate.median if estimate else None,
        "finished": beam.finished,
    }


__all__ = [
    "EARLY_STOP_REASONS",
    "AdaptiveInput",
    "AdaptiveReasoningRunnable",
    "question_id",
]
