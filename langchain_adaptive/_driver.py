"""The episode driver: runs one question's strategy plan against the model and the PRM.

A strategy is a sans-IO plan (:mod:`langchain_adaptive.strategies._base`): it
yields actions and reads their outcomes. This module answers them, top to
bottom for one question: the question estimate (PRM), the budget decision and
its reservation against the limits, the samples (model), their scores (PRM),
the events, the deadline, and the result (or, on an error, ``.partial``).

Each action has one handler in :attr:`Episode.handlers`, and every handler is
itself sans-IO: a generator that yields :data:`Request` s (draw samples, score
with the PRM, flush events) and is sent their replies. An executor answers the
requests: :class:`SyncExecutor` by calling, :class:`AsyncExecutor` by awaiting.
So the sync and async runs share every line but the IO, and a new way to do
the IO (say, an executor that launches a draw's planned samples at once and
cancels the rest when the plan stops) is a new executor, not a third copy of
the driver.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config

from langchain_adaptive._launch import Cancelled, Launched, ThreadedLaunch
from langchain_adaptive._sampling import (
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
from langchain_adaptive._selection import aggregate, select_finalists
from langchain_adaptive.answers import STEP_JOINER, split_steps, states_final_answer
from langchain_adaptive.budget import BudgetTracker
from langchain_adaptive.callbacks._emitter import EventEmitter
from langchain_adaptive.callbacks._events import (
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
from langchain_adaptive.callbacks._metadata import (
    QUESTION_ID_KEY,
    ROLE_KEY,
    STRATEGY_KEY,
    TAG_PREFIX,
)
from langchain_adaptive.callbacks._usage import UsageCounter
from langchain_adaptive.errors import (
    AdaptiveError,
    AdaptiveTimeoutError,
    CallbackHandlerError,
    ConfigurationError,
    EmptyGenerationError,
    ModelError,
    PRMError,
)
from langchain_adaptive.inputs import AdaptiveInput, Question, parse_input, question_id
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import (
    AdaptiveResult,
    Beam,
    BudgetReport,
    Candidate,
    SuccessEstimate,
)
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
)
from langchain_adaptive.strategies._revise import revision_messages

if TYPE_CHECKING:
    from langchain_adaptive.runnable import AdaptiveReasoningRunnable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# -- requests: the IO a step asks for ------------------------------------------------------


@dataclass(frozen=True)
class DrawSamples:
    """Draw ``n`` whole samples of the question; the reply is the list of samples."""

    model: BaseLanguageModel
    question: Question
    n: int
    kwargs: dict[str, Any]
    config: RunnableConfig


@dataclass(frozen=True)
class DrawSteps:
    """Draw ``n`` next steps after ``steps``; the reply is one sample a step."""

    model: BaseLanguageModel
    question: Question
    steps: Sequence[str]
    n: int
    stop: Sequence[str]
    kwargs: dict[str, Any]
    config: RunnableConfig


@dataclass(frozen=True)
class DrawPrompts:
    """One sample for each of ``prompts`` (revisions); the reply is the list of samples."""

    model: BaseLanguageModel
    prompts: Sequence[Sequence[BaseMessage]]
    kwargs: dict[str, Any]
    config: RunnableConfig


@dataclass(frozen=True)
class EstimateCall:
    """The PRM's estimate for the question alone; the reply is a :class:`SuccessEstimate`."""

    prm: ProcessRewardModel
    question: str
    config: RunnableConfig


@dataclass(frozen=True)
class ScoreCall:
    """The PRM's estimates for every step prefix of ``solutions``; the reply is PRMScores.

    ``token_logprobs`` is passed on only when given, so a PRM whose ``score``
    takes no such keyword still scores beams.
    """

    prm: ProcessRewardModel
    question: str
    solutions: Sequence[Sequence[str]]
    config: RunnableConfig
    token_logprobs: Sequence[Sequence[float] | None] | None = None


@dataclass(frozen=True)
class Flush:
    """Dispatch the events queued so far; the reply is ``None``."""

    events: EventEmitter


@dataclass(frozen=True)
class ByDeadline:
    """Run ``step`` (one action) to its end within ``left`` seconds; the reply is its outcome.

    Ending a call at a deadline is the one control step that differs in kind
    between sync (a thread, abandoned) and async (a task, cancelled), so the
    executor does it. ``expired`` builds the error to raise, and marks the
    episode closed, so a step still running in an abandoned thread changes nothing.
    """

    step: Step[Any]
    left: float | None
    expired: Callable[[], BaseException]


@dataclass(frozen=True)
class Launch:
    """Start ``count`` samples of the question at once (``launch="eager"``); the reply is
    the launch, to :class:`Take` from and :class:`CancelLaunch`."""

    model: BaseLanguageModel
    question: Question
    count: int
    kwargs: dict[str, Any]
    config: RunnableConfig


@dataclass(frozen=True)
class Take:
    """The next ``n`` samples of ``launch`` to finish, in completion order."""

    launch: Any
    n: int


@dataclass(frozen=True)
class CancelLaunch:
    """Stop what ``launch`` still runs; the reply is :class:`~langchain_adaptive._launch.
    Cancelled` (what the samples the plan never took generated)."""

    launch: Any


Request = (
    DrawSamples
    | DrawSteps
    | DrawPrompts
    | EstimateCall
    | ScoreCall
    | Flush
    | ByDeadline
    | Launch
    | Take
    | CancelLaunch
)
"""What a step yields: IO for an executor to do."""

Step = Generator[Request, Any, T]
"""A sans-IO step: yields requests, is sent their replies, returns its outcome."""


def _no_io() -> Generator[Request, Any, None]:
    """An empty step, for handlers that do no IO: ``yield from _no_io()`` makes them steps."""
    return
    yield  # pragma: no cover - makes this a generator


# -- executors: the only code that differs between sync and async --------------------------


class SyncExecutor:
    """Answers requests by calling the model and the PRM in this thread."""

    def run(self, request: Request) -> Any:
        """The reply to ``request``."""
        match request:
            case DrawSamples():
                return draw(
                    request.model,
                    request.question,
                    request.n,
                    kwargs=request.kwargs,
                    config=request.config,
                )
            case DrawSteps():
                return draw_steps(
                    request.model,
                    request.question,
                    request.steps,
                    request.n,
                    stop=request.stop,
                    kwargs=request.kwargs,
                    config=request.config,
                )
            case DrawPrompts():
                return draw_prompts(
                    request.model, request.prompts, kwargs=request.kwargs, config=request.config
                )
            case EstimateCall():
                return request.prm.estimate_question(request.question, request.config)
            case ScoreCall():
                return request.prm.score(
                    request.question, request.solutions, request.config, **_logprobs(request)
                )
            case Flush():
                return request.events.flush()
            case ByDeadline():
                return self.by_deadline(request)
            case Launch():
                question = request.question
                return ThreadedLaunch(
                    request.model,
                    question.messages,
                    question.prompt_text(),
                    request.count,
                    request.kwargs,
                    request.config,
                )
            case Take():
                return request.launch.take(request.n)
            case CancelLaunch():
                return request.launch.cancel()
        raise TypeError(f"unknown request {request!r}")  # pragma: no cover

    def by_deadline(self, request: ByDeadline) -> Any:
        """Run the step in a daemon thread and stop waiting for it at the deadline.

        A thread cannot be stopped from outside, so a step still running at the
        deadline is abandoned; the episode, closed by ``expired``, drops its late
        output.
        """
        if request.left is None:
            return drive(request.step, self)
        box: dict[str, Any] = {}
        context = contextvars.copy_context()  # tracing and child-run config travel along

        def run() -> None:
            try:
                box["value"] = context.run(drive, request.step, self)
            except BaseException as error:  # handed to the caller below
                box["error"] = error

        worker = threading.Thread(target=run, name="adaptive-deadline", daemon=True)
        worker.start()
        worker.join(request.left)
        if worker.is_alive():
            raise request.expired()
        if "error" in box:
            raise box["error"]
        return box["value"]


class AsyncExecutor:
    """Answers requests by awaiting the model and the PRM."""

    async def run(self, request: Request) -> Any:
        """The reply to ``request``."""
        match request:
            case DrawSamples():
                return await adraw(
                    request.model,
                    request.question,
                    request.n,
                    kwargs=request.kwargs,
                    config=request.config,
                )
            case DrawSteps():
                return await adraw_steps(
                    request.model,
                    request.question,
                    request.steps,
                    request.n,
                    stop=request.stop,
                    kwargs=request.kwargs,
                    config=request.config,
                )
            case DrawPrompts():
                return await adraw_prompts(
                    request.model, request.prompts, kwargs=request.kwargs, config=request.config
                )
            case EstimateCall():
                return await request.prm.aestimate_question(request.question, request.config)
            case ScoreCall():
                return await request.prm.ascore(
                    request.question, request.solutions, request.config, **_logprobs(request)
                )
            case Flush():
                return await request.events.aflush()
            case ByDeadline():
                return await self.by_deadline(request)
            case Launch():
                question = request.question
                return Launched(
                    request.model,
                    question.messages,
                    question.prompt_text(),
                    request.count,
                    request.kwargs,
                    request.config,
                )
            case Take():
                return await request.launch.take(request.n)
            case CancelLaunch():
                return await request.launch.cancel()
        raise TypeError(f"unknown request {request!r}")  # pragma: no cover

    async def by_deadline(self, request: ByDeadline) -> Any:
        """Run the step, cancelled at the deadline."""
        if request.left is None:
            return await adrive(request.step, self)
        try:
            async with asyncio.timeout(request.left) as scope:
                return await adrive(request.step, self)
        except TimeoutError:
            if scope.expired():
                raise request.expired() from None
            raise


def _logprobs(request: ScoreCall) -> dict[str, Any]:
    return {} if request.token_logprobs is None else {"token_logprobs": request.token_logprobs}


def drive(step: Step[T], executor: SyncExecutor) -> T:
    """Run ``step`` to its end, answering each request with ``executor``.

    A request's error is thrown into the step at the ``yield`` that made it,
    so the step handles it where it would handle a direct call's.
    """
    try:
        request = next(step)
        while True:
            try:
                reply = executor.run(request)
            except BaseException as error:
                request = step.throw(error)
            else:
                request = step.send(reply)
    except StopIteration as stop:
        return stop.value


async def adrive(step: Step[T], executor: AsyncExecutor) -> T:
    """Async twin of :func:`drive`."""
    try:
        request = next(step)
        while True:
            try:
                reply = await executor.run(request)
            except BaseException as error:
                request = step.throw(error)
            else:
                request = step.send(reply)
    except StopIteration as stop:
        return stop.value


# -- the episode ---------------------------------------------------------------------------

EARLY_STOP_REASONS = frozenset({"consensus"})
"""Stop reasons that mean a strategy stopped before its cap because it was confident."""

_RESTART = object()
"""Sentinel: the PRM failed before any budget was set; the fallback plan starts afresh."""

EAGER_STRATEGIES = (
    "adaptive_consistency, early_stopping_consistency (esc), sequential_ias, answer_stop "
    "and deepconf"
)
"""The registered strategies whose draws set ``Draw.horizon``, so ``launch="eager"`` applies."""

_EAGER_UNUSED_LOGGED: set[str] = set()
"""Strategies already logged as running under ``launch="eager"`` without using it."""


def _grouped(callbacks: Any, metadata: dict[str, Any], tags: list[str]) -> Any:
    """A child callback manager whose runs carry the question and strategy."""
    callbacks.add_metadata(metadata, inherit=True)
    callbacks.add_tags(tags, inherit=True)
    return callbacks


class Episode:
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
        self.eager_unused = False
        """Set once the run met a step or revision draw under ``launch="eager"`` (and said so)."""
        self.prm_usage = UsageCounter()
        self.launched: Launched | ThreadedLaunch | None = None
        """The open launch (``launch="eager"``): samples started and not yet taken."""
        self.cancelled = Cancelled()
        """What cancelled launched samples cost, summed over the run."""
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
        self.state = RunState(
            question=self.question.text,
            target_confidence=runnable.target_confidence,
            tracker=BudgetTracker(limits),
            has_prm=runnable.prm is not None,
            equivalent=runnable.answers_match,
            extract_answer=runnable.answer_extractor,
            stops_on_confidence=supports_confidence_stop(runnable.model),
        )
        self.handlers: dict[type[Any], Callable[[Any], Step[Any]]] = {
            EstimateQuestion: self._estimate,
            Draw: self._draw,
            ScoreCandidates: self._score_candidates,
            ExtendBeams: self._extend_beams,
            ScoreBeams: self._score_beams,
            PruneBeams: self._prune_beams,
            CollectBeams: self._collect,
            Revise: self._revise,
        }
        """Action type -> the step that executes it: the one place an action gets its meaning."""

    # -- the run ------------------------------------------------------------------------

    def run(self) -> Step[AdaptiveResult]:
        """The whole question: the plan's actions, each by the deadline, then the result.

        A PRM failure is handled by ``on_prm_error``; any other error leaves
        with the result so far attached (see :meth:`attach`).
        """
        plan = self.strategy.plan(self.state)
        try:
            action: Action = next(plan)
            while True:
                try:
                    outcome = yield ByDeadline(
                        self.act(action),
                        self._left(action),
                        functools.partial(self._timed_out, action),
                    )
                except PRMError as error:
                    plan, outcome = self.recover(plan, action, error)
                    if outcome is _RESTART:
                        action = next(plan)
                        continue
                action = plan.send(outcome)
        except StopIteration as stop:
            yield from self._cancel_launch()
            result = self._checked(stop.value)
            self._warn_overshoot()
            self._note_finish(result)
            try:
                yield Flush(self.events)
            except Exception as error:  # a handler with raise_error=True
                raise self._with_result(error, result)  # noqa: B904 - attach() sets the cause
            return result
        except BaseException as error:
            if self.launched is not None and not isinstance(error, GeneratorExit):
                try:
                    yield from self._cancel_launch()
                except Exception:  # the run's own error is the one to report
                    logger.warning("cancelling the launched samples failed", exc_info=True)
            raise self.attach(error)  # noqa: B904 - attach() sets the cause

    def act(self, action: Action) -> Step[Any]:
        """Run one action; its events are dispatched even when it fails part-way.

        A call the deadline abandoned (still running in its thread after the run
        ended) dispatches nothing: its run has already reported its end.
        """
        handler = self.handlers.get(type(action))
        if handler is None:  # pragma: no cover - every Action has a handler
            raise TypeError(f"unknown strategy action {action!r}")
        if self.runnable.launch == "eager" and isinstance(action, ExtendBeams | Revise):
            self._note_eager_unused(action)
        try:
            outcome = yield from handler(action)
        except GeneratorExit:
            raise
        except BaseException:
            if not self.closed:
                yield Flush(self.events)
            raise
        if not self.closed:
            yield Flush(self.events)
        return outcome

    def _note_eager_unused(self, action: ExtendBeams | Revise) -> None:
        """Say that ``launch="eager"`` does not apply here: in the result, once a run, and
        in the log, once a process and strategy (a batch would repeat it per question).

        A warning, not a :class:`ConfigurationError`: a compute-optimal strategy picks a
        step-level search for some questions only, and one runnable may serve many strategies.
        """
        if self.eager_unused:
            return
        self.eager_unused = True
        what = (
            "revises earlier attempts one round at a time"
            if isinstance(action, Revise)
            else "searches step by step, each step drawn from the steps kept before it"
        )
        message = (
            f"launch='eager' has no effect on strategy {self.strategy.name!r}: it {what}, so "
            "there are no whole samples to start at once; it ran as with launch='rounds' "
            f"(eager applies to {EAGER_STRATEGIES})"
        )
        self.warnings.append(message)
        if self.strategy.name not in _EAGER_UNUSED_LOGGED:
            _EAGER_UNUSED_LOGGED.add(self.strategy.name)
            logger.warning("AdaptiveReasoningRunnable: %s", message)

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

    # -- the action handlers --------------------------------------------------------------

    def _estimate(self, action: EstimateQuestion) -> Step[SuccessEstimate]:
        estimate: SuccessEstimate = yield EstimateCall(
            self._prm(), self.state.question, self.prm_config
        )
        self._note_estimate(estimate)
        return estimate

    def _draw(self, action: Draw) -> Step[list[Candidate]]:
        n = self._decide(action)
        yield Flush(self.events)  # the decision is news before the samples it asks for
        if n and self.runnable.launch == "eager" and action.horizon is not None:
            return (yield from self._draw_launched(action, n))
        yield from self._cancel_launch()  # one launch at a time: it holds the reservation
        samples: list[Sample] = []
        if n:
            model = self.runnable.model
            kwargs = confidence_kwargs(model, self.kwargs, action.stop_on_confidence)
            try:
                samples = yield DrawSamples(model, self.question, n, kwargs, self.config)
            except SamplingFailure as failure:
                raise self._sampling_failed(failure) from failure.error
        return self._add_candidates(samples)

    def _draw_launched(self, action: Draw, n: int) -> Step[list[Candidate]]:
        """``n`` samples from the open launch, started (``horizon`` of them) when none fits.

        A launch is started for what the limits allow of the plan's horizon, and
        reserves it all: while it is open, no other samples start, so the samples
        it may still hand out plus what was spent fit the limits (one launch
        open at a time). A draw with other settings (DeepConf's armed threshold)
        cancels the open launch and starts its own.
        """
        model = self.runnable.model
        kwargs = confidence_kwargs(model, self.kwargs, action.stop_on_confidence)
        horizon = max(n, action.horizon or 0)
        new: list[Candidate] = []
        while len(new) < n:
            launched = self.launched
            if launched is not None and (launched.kwargs != kwargs or not launched.remaining):
                yield from self._cancel_launch()
                launched = None
            if launched is None:
                count = self.state.tracker.allowance(horizon - len(new))
                if count == 0:
                    break
                launched = yield Launch(model, self.question, count, kwargs, self.config)
                self.launched = launched
            try:
                samples: list[Sample] = yield Take(launched, n - len(new))
            except SamplingFailure as failure:
                raise self._sampling_failed(failure) from failure.error
            new += self._add_candidates(samples)
        return new

    def _cancel_launch(self) -> Step[None]:
        """Cancel the open launch, if any, and count what its untaken samples generated."""
        launched, self.launched = self.launched, None
        if launched is None:
            return
        cancelled: Cancelled = yield CancelLaunch(launched)
        total = self.cancelled
        total.samples += cancelled.samples
        total.tokens += cancelled.tokens
        total.estimated |= cancelled.estimated
        total.unknown += cancelled.unknown
        self.state.tracker.record_cancelled(cancelled.tokens)

    def _score_candidates(self, action: ScoreCandidates) -> Step[None]:
        pending = self._pending_scores()
        prm = self.runnable.prm
        if pending and prm is not None:
            scores: PRMScores = yield ScoreCall(
                prm,
                self.state.question,
                [c.steps for c in pending],
                self.prm_config,
                token_logprobs=_token_logprobs(pending),
            )
            self._apply_scores(pending, scores)
        return None

    def _extend_beams(self, action: ExtendBeams) -> Step[list[Beam]]:
        children: list[Beam] = []
        for parent, wanted in zip(action.parents, action.counts, strict=True):
            n = self.state.tracker.step_allowance(wanted)
            if n == 0:
                continue
            steps = parent.steps if parent is not None else []
            kwargs = self._step_kwargs(action)
            try:
                samples: list[Sample] = yield DrawSteps(
                    self.runnable.model, self.question, steps, n, action.stop, kwargs, self.config
                )
            except SamplingFailure as failure:
                raise self._steps_failed(parent, failure) from failure.error
            children.extend(self._add_beams(parent, samples, rollout=action.rollout))
        return children

    def _score_beams(self, action: ScoreBeams) -> Step[None]:
        beams = self._scorable(action.beams)
        if beams:
            scores: PRMScores = yield ScoreCall(
                self._prm(), self.state.question, [b.steps for b in beams], self.prm_config
            )
            self._apply_beam_scores(beams, scores)
        return None

    def _prune_beams(self, action: PruneBeams) -> Step[None]:
        yield from _no_io()
        self._prune(action)

    def _collect(self, action: CollectBeams) -> Step[list[Candidate]]:
        yield from _no_io()
        return self._collect_beams(action.beams)

    def _revise(self, action: Revise) -> Step[list[Candidate]]:
        prompts = self._revision_prompts(action)
        try:
            samples: list[Sample] = yield DrawPrompts(
                self.runnable.model, prompts, self.kwargs, self.config
            )
        except SamplingFailure as failure:
            raise self._sampling_failed(failure) from failure.error
        return self._add_revisions(action, samples)

    # -- what the handlers share --------------------------------------------------------

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

    @property
    def kwargs(self) -> dict[str, Any]:
        """Per-call sampling settings. The token cap is the tracker's, so a strategy that
        lowers it (compute_optimal, to its choice's validated cap) lowers what the model gets."""
        runnable = self.runnable
        cap = self.state.tracker.limits.max_tokens_per_sample
        return call_kwargs(runnable.temperature, cap, runnable.max_tokens_kwarg)

    def _check_open(self) -> None:
        if self.closed:  # the deadline passed while this call ran: its output is dropped
            raise _Abandoned

    def _capped(self, sample: Sample) -> Sample:
        """``sample`` cut to ``max_tokens_per_sample`` when the model ignored that cap.

        The cut is by the share of tokens kept (the text has no token offsets);
        the tokens past the cap are counted as overshoot and reported once.
        """
        cap = self.state.tracker.limits.max_tokens_per_sample
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
        if self.cancelled.unknown:
            warnings.append(
                f"{self.cancelled.unknown} launched call(s) could not be stopped (the model has "
                "no async or streaming path) and ran on after the strategy stopped; their "
                "tokens are not in budget.cancelled_tokens"
            )
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
                tokens_estimated=usage.estimated or self.cancelled.estimated,
                overshoot_tokens=self.overshoot_tokens,
                cancelled_samples=self.cancelled.samples,
                cancelled_tokens=self.cancelled.tokens,
            ),
            selection=rule,
            warnings=warnings,
            gold=gold,
            correct=selected.correct if selected and gold is not None else None,
            elapsed_s=time.perf_counter() - self.started,
            # a step search's beams, also when a strategy such as compute_optimal delegated it
            beams=state.beams if self.strategy.stepwise or state.beams else None,
        )

    def _overshoot_warning(self) -> str:
        runnable = self.runnable
        cap = self.state.tracker.limits.max_tokens_per_sample
        return (
            f"the model ignored its output cap ({runnable.max_tokens_kwarg}={cap}): "
            f"{self.overshoot_samples} sample(s) ran "
            f"{self.overshoot_tokens} token(s) past it; they were cut to the cap, so the budget "
            "holds for what was kept, but the model generated (and was paid for) those tokens. "
            "Set max_tokens_kwarg to the keyword your model reads."
        )

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


def handler_failure(error: Exception, done: Mapping[str, AdaptiveResult]) -> Exception:
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
    "AsyncExecutor",
    "ByDeadline",
    "CancelLaunch",
    "DrawPrompts",
    "DrawSamples",
    "DrawSteps",
    "Episode",
    "EstimateCall",
    "Flush",
    "Launch",
    "Request",
    "ScoreCall",
    "Step",
    "SyncExecutor",
    "Take",
    "adrive",
    "drive",
    "handler_failure",
]
