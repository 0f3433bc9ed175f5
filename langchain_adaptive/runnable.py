"""``AdaptiveReasoningRunnable``: calibrated instance-adaptive sampling as a LangChain runnable.

The data path of one question, top to bottom:

question (``inputs``) -> success estimate (``prm``) -> budget (``strategies`` and
``budget``) -> samples (``sampling``) -> scores (``prm``) -> selection
(``selection``) -> :class:`AdaptiveResult`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive.answers import (
    DEFAULT_STEP_DELIMITER,
    AnswerEquivalence,
    AnswerExtractor,
    answers_match,
    extract_answer,
    split_steps,
)
from langchain_adaptive.budget import BudgetLimits, BudgetTracker, UsageCounter
from langchain_adaptive.errors import (
    AdaptiveError,
    ConfigurationError,
    EmptyGenerationError,
    ModelError,
    PRMError,
)
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION, Question, parse_input
from langchain_adaptive.prm.base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import AdaptiveResult, BudgetReport, Candidate, SuccessEstimate
from langchain_adaptive.sampling import Sample, SamplingFailure, adraw, call_kwargs, draw
from langchain_adaptive.selection import aggregate, select
from langchain_adaptive.strategies import (
    Action,
    AdaptiveConsistency,
    Decision,
    Draw,
    EstimateQuestion,
    Plan,
    RunState,
    ScoreCandidates,
    Strategy,
    build_strategy,
)

AdaptiveInput = str | dict[str, Any] | PromptValue | Sequence[BaseMessage]
"""A question string, ``{"question": ..., "gold": ...}``, a PromptValue, or messages."""


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
    max_samples: int = Field(default=32, ge=1)
    """Hard cap on samples per question."""
    max_tokens_per_sample: int = Field(default=256, ge=1)
    """Generated-token cap per sample, passed to the model as ``max_tokens_kwarg``."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """Hard cap on generated tokens per question (samples are only started when one fits)."""
    temperature: float | None = Field(default=0.7, ge=0.0)
    """Sampling temperature passed to the model; ``None`` keeps the model's own setting."""
    max_tokens_kwarg: str | None = "max_tokens"
    """The keyword the model takes for its output cap; ``None`` to not pass one."""
    system_prompt: str | None = None
    """Prepended as a system message when the input has none."""
    instruction: str | None = DEFAULT_INSTRUCTION
    """Appended to plain-text questions so solutions have steps and a final answer."""
    step_delimiter: str = DEFAULT_STEP_DELIMITER
    """Regex that splits a solution into steps for the PRM (default: blank lines)."""
    answer_extractor: AnswerExtractor = extract_answer
    """Finds the final answer in a solution."""
    answers_match: AnswerEquivalence = answers_match
    """Decides whether two answers are equivalent (votes, grading against ``gold``)."""
    on_prm_error: Literal["raise", "vote"] = "raise"
    """``"raise"``: a failing PRM raises :class:`PRMError`. ``"vote"``: fall back to
    adaptive-consistency voting (and majority selection), with a warning in the result."""

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
        return self._call_with_config(self._invoke, input, config)

    async def ainvoke(
        self, input: AdaptiveInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AdaptiveResult:
        _reject_kwargs(kwargs)
        return await self._acall_with_config(self._ainvoke, input, config)

    def _invoke(
        self, input: AdaptiveInput, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> AdaptiveResult:
        episode = _Episode(self, input, run_manager.get_child, config)
        plan = episode.strategy.plan(episode.state)
        try:
            action: Action | None = next(plan)
            while True:
                try:
                    outcome = episode.execute(action)
                except PRMError as error:
                    plan, outcome = episode.recover(plan, action, error)
                    if outcome is _RESTART:
                        action = next(plan)
                        continue
                action = plan.send(outcome)
        except StopIteration as stop:
            return episode.finish(stop.value)
        except BaseException as error:
            raise episode.attach(error)  # noqa: B904 - attach() sets the cause

    async def _ainvoke(
        self,
        input: AdaptiveInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AdaptiveResult:
        episode = _Episode(self, input, run_manager.get_child, config)
        plan = episode.strategy.plan(episode.state)
        try:
            action: Action | None = next(plan)
            while True:
                try:
                    outcome = await episode.aexecute(action)
                except PRMError as error:
                    plan, outcome = episode.recover(plan, action, error)
                    if outcome is _RESTART:
                        action = next(plan)
                        continue
                action = plan.send(outcome)
        except StopIteration as stop:
            return await episode.afinish(stop.value)
        except BaseException as error:
            raise episode.attach(error)  # noqa: B904 - attach() sets the cause


def _reject_kwargs(kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ConfigurationError(
            f"AdaptiveReasoningRunnable.invoke takes no keyword arguments, got {sorted(kwargs)}; "
            "set sampling options as fields (temperature, max_tokens_per_sample, ...) or bind "
            "them on the model"
        )


_RESTART = object()
"""Sentinel: the PRM failed before any budget was set; the fallback plan starts afresh."""


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
        self.question: Question | None = None
        self.warnings: list[str] = []
        self.selection_fallback = False
        self.prm_usage = UsageCounter()
        # Resolve everything that can fail on bad input before any compute is spent.
        self.strategy = runnable.resolved_strategy()
        limits = runnable._limits()
        self.question = parse_input(
            input, system_prompt=runnable.system_prompt, instruction=runnable.instruction
        )
        self.config = patch_config(config, callbacks=child_callbacks())
        prm_callbacks = child_callbacks()
        prm_callbacks.add_handler(self.prm_usage, inherit=True)
        self.prm_config = patch_config(config, callbacks=prm_callbacks)
        self.kwargs = call_kwargs(
            runnable.temperature, runnable.max_tokens_per_sample, runnable.max_tokens_kwarg
        )
        self.state = RunState(
            question=self.question.text,
            target_confidence=runnable.target_confidence,
            tracker=BudgetTracker(limits),
            has_prm=runnable.prm is not None,
            equivalent=runnable.answers_match,
        )

    # -- actions ----------------------------------------------------------------------

    def execute(self, action: Action) -> Any:
        prm = self.runnable.prm
        if isinstance(action, EstimateQuestion):
            estimate = self._prm().estimate_question(self.state.question, self.prm_config)
            self._note_estimate(estimate)
            dispatch_custom_event(
                "adaptive_estimate", _estimate_event(estimate), config=self.config
            )
            return estimate
        if isinstance(action, Draw):
            n = self.state.allowance(action.n)
            dispatch_custom_event("adaptive_draw", self._draw_event(n), config=self.config)
            try:
                samples = (
                    draw(
                        self.runnable.model,
                        self.question,
                        n,
                        kwargs=self.kwargs,
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
                scores = prm.score(self.state.question, [c.steps for c in pending], self.prm_config)
                self._apply_scores(pending, scores)
            return None
        raise TypeError(f"unknown strategy action {action!r}")  # pragma: no cover

    async def aexecute(self, action: Action) -> Any:
        prm = self.runnable.prm
        if isinstance(action, EstimateQuestion):
            estimate = await self._prm().aestimate_question(self.state.question, self.prm_config)
            self._note_estimate(estimate)
            await adispatch_custom_event(
                "adaptive_estimate", _estimate_event(estimate), config=self.config
            )
            return estimate
        if isinstance(action, Draw):
            n = self.state.allowance(action.n)
            await adispatch_custom_event("adaptive_draw", self._draw_event(n), config=self.config)
            try:
                samples = (
                    await adraw(
                        self.runnable.model,
                        self.question,
                        n,
                        kwargs=self.kwargs,
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
                    self.state.question, [c.steps for c in pending], self.prm_config
                )
                self._apply_scores(pending, scores)
            return None
        raise TypeError(f"unknown strategy action {action!r}")  # pragma: no cover

    def recover(self, plan: Plan, action: Action, error: PRMError) -> tuple[Plan, Any]:
        """Apply ``on_prm_error``: re-raise, or continue by voting."""
        if self.runnable.on_prm_error == "raise":
            raise error
        self.warnings.append(f"PRM failed ({error}); fell back to voting")
        self.selection_fallback = True
        if isinstance(action, EstimateQuestion):
            plan.close()
            fallback = AdaptiveConsistency()
            self.strategy = fallback
            return fallback.plan(self.state), _RESTART
        return plan, None

    def _draw_event(self, n: int) -> dict[str, Any]:
        return {"n": n, "drawn_before": len(self.state.candidates), "strategy": self.strategy.name}

    def _prm(self) -> ProcessRewardModel:
        if self.runnable.prm is None:
            raise ConfigurationError("the strategy asked for a question estimate but no PRM is set")
        return self.runnable.prm

    def _note_estimate(self, estimate: SuccessEstimate) -> None:
        self.state.question_estimate = estimate
        self.state.tracker.record_prm_call()

    def _sampling_failed(self, failure: SamplingFailure) -> ModelError:
        """Keep the samples that did arrive, then report the model's failure."""
        self._add_candidates(failure.samples)
        return ModelError(f"the model failed while sampling: {failure.error}")

    def _add_candidates(self, samples: list[Sample]) -> list[Candidate]:
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
            )
            for offset, sample in enumerate(samples)
        ]
        self.state.candidates.extend(new)
        return new

    def _pending_scores(self) -> list[Candidate]:
        pending = []
        for candidate in self.state.candidates:
            if candidate.step_estimates is not None:
                continue
            if not candidate.steps:  # an empty sample cannot be judged; it never wins
                candidate.step_estimates, candidate.score = [], 0.0
                continue
            pending.append(candidate)
        return pending

    def _apply_scores(self, pending: list[Candidate], scores: PRMScores) -> None:
        self.state.tracker.record_prm_call()
        for candidate, estimates in zip(pending, scores, strict=True):
            candidate.step_estimates = estimates
            candidate.score = aggregate(estimates, self.strategy.aggregation)

    # -- result -------------------------------------------------------------------------

    def result(self, decision: Decision | None) -> AdaptiveResult:
        """The result so far; with no decision, a partial result for an exception."""
        state, runnable = self.state, self.runnable
        candidates = state.candidates
        rule = "majority_vote" if self.selection_fallback else self.strategy.selection
        outcome = select(candidates, rule, equivalent=runnable.answers_match)
        gold = self.question.gold if self.question else None
        if gold is not None:
            for candidate in candidates:
                candidate.correct = candidate.answer is not None and runnable.answers_match(
                    gold,
                    candidate.answer,  # math-verify reads the first argument as gold
                )
        selected = candidates[outcome.index] if outcome.index is not None else None
        usage = state.tracker.usage
        prm_usage = self.prm_usage.usage
        return AdaptiveResult(
            question=state.question,
            answer=outcome.answer,
            solution=selected.text if selected else None,
            selected_index=outcome.index,
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
            ),
            selection=rule,
            warnings=[*self.warnings, *(decision.warnings if decision else [])],
            gold=gold,
            correct=selected.correct if selected and gold is not None else None,
            elapsed_s=time.perf_counter() - self.started,
        )

    def finish(self, decision: Decision) -> AdaptiveResult:
        result = self._checked(decision)
        dispatch_custom_event("adaptive_decision", _decision_event(result), config=self.config)
        return result

    async def afinish(self, decision: Decision) -> AdaptiveResult:
        result = self._checked(decision)
        await adispatch_custom_event(
            "adaptive_decision", _decision_event(result), config=self.config
        )
        return result

    def _checked(self, decision: Decision) -> AdaptiveResult:
        result = self.result(decision)
        if result.candidates and all(not c.text.strip() for c in result.candidates):
            raise EmptyGenerationError(
                f"the model returned {len(result.candidates)} empty sample(s)", partial=result
            )
        return result

    def attach(self, error: BaseException) -> BaseException:
        """Attach the partial result to a package error (wrapping foreign errors in ModelError)."""
        if isinstance(error, AdaptiveError):
            if error.partial is None and self.question is not None:
                error.partial = self.result(None)
            return error
        if not isinstance(error, Exception) or self.question is None:
            return error
        wrapped = ModelError(f"{type(error).__name__}: {error}", partial=self.result(None))
        wrapped.__cause__ = error
        return wrapped


def _estimate_event(estimate: SuccessEstimate) -> dict[str, Any]:
    return {"quantiles": estimate.quantiles, "raw_score": estimate.raw_score}


def _decision_event(result: AdaptiveResult) -> dict[str, Any]:
    return {
        "strategy": result.strategy,
        "stop_reason": result.stop_reason,
        "decided_samples": result.budget.decided_samples,
        "samples_used": result.budget.samples_used,
        "generated_tokens": result.budget.generated_tokens,
        "confidence": result.confidence,
        "low_confidence": result.low_confidence,
    }


__all__ = ["AdaptiveInput", "AdaptiveReasoningRunnable"]
