"""``AdaptiveReasoningRunnable``: calibrated instance-adaptive sampling as a LangChain runnable.

The data path of one question, top to bottom:

question (``inputs``) -> success estimate (``prm``) -> budget (``strategies`` and
``budget``) -> samples (``sampling``) -> scores (``prm``) -> selection
(``selection``) -> :class:`AdaptiveResult`.

This module is the LangChain face of that path: the runnable's fields, the
Runnable verbs, and batches under one budget. Running one question's plan
(calls, scores, limits, events, deadline, ``.partial``) is the episode driver's
job, in :mod:`langchain_adaptive._driver`, shared by the sync and async verbs.
"""

from __future__ import annotations

import functools
import numbers
import re
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import get_config_list, get_executor_for_config
from langchain_core.runnables.utils import gather_with_concurrency
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_adaptive._driver import (
    AsyncExecutor,
    Episode,
    SyncExecutor,
    adrive,
    drive,
    handler_failure,
)
from langchain_adaptive.answers import (
    DEFAULT_STEP_DELIMITER,
    AnswerEquivalence,
    AnswerExtractor,
    answers_match,
    extract_answer,
)
from langchain_adaptive.budget import DEFAULT_MAX_SAMPLES, BudgetLimits
from langchain_adaptive.errors import AdaptiveError, ConfigurationError
from langchain_adaptive.inputs import (
    DEFAULT_INSTRUCTION,
    AdaptiveInput,
    FewShotExample,
    parse_input,
)
from langchain_adaptive.prm._base import ProcessRewardModel
from langchain_adaptive.results import AdaptiveResult, SuccessEstimate
from langchain_adaptive.strategies import Strategy, build_strategy
from langchain_adaptive.strategies._allocation import (
    FixedAllocation,
    allocate_budget,
    estimate_value,
)


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
    :mod:`langchain_adaptive.callbacks._events`), and child runs carry the
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
    launch: Literal["rounds", "eager"] = "rounds"
    """How a strategy that draws in rounds gets its samples. ``"rounds"``: each round is
    drawn when the plan asks for it. ``"eager"``: the plan's remaining samples (what the
    limits allow) start at once, each round is answered by the first to finish, and the
    rest are cancelled when the plan stops: near fixed-N latency on a concurrent backend,
    for the in-flight samples' tokens (``budget.cancelled_tokens``). The plan sees samples
    in completion order, not launch order. See the batch guide."""
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
            raise handler_failure(error, done)  # noqa: B904 - sets the cause

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
            raise handler_failure(error, done)  # noqa: B904 - sets the cause

    def _invoke(
        self,
        input: AdaptiveInput,
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        done: dict[str, AdaptiveResult] | None = None,
    ) -> AdaptiveResult:
        episode = Episode(self, input, run_manager.get_child, config)
        result = drive(episode.run(), SyncExecutor())
        if done is not None:
            done["result"] = result  # kept if a handler's on_chain_end raises
        return result

    async def _ainvoke(
        self,
        input: AdaptiveInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        done: dict[str, AdaptiveResult] | None = None,
    ) -> AdaptiveResult:
        episode = Episode(self, input, run_manager.get_child, config)
        result = await adrive(episode.run(), AsyncExecutor())
        if done is not None:
            done["result"] = result
        return result

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


__all__ = ["AdaptiveReasoningRunnable"]
