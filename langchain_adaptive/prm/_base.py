"""The process reward model protocol: success estimates for a question and its step prefixes.

A PRM is a LangChain runnable, so its calls (and the model calls inside it) show
up as child runs in traces, and it takes ``RunnableConfig`` like everything else.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config, run_in_executor
from pydantic import BaseModel, Field

from langchain_adaptive.errors import AdaptiveError, PRMError
from langchain_adaptive.results import SuccessEstimate

PRMScores = list[list[SuccessEstimate]]
"""One list per solution, one estimate per step (no steps: one estimate, the question's)."""


class PRMRequest(BaseModel):
    """What a PRM scores: a question and candidate solutions split into steps.

    A solution given as an empty step list stands for the question alone (the
    empty prefix, k = 0), which is what IAS budgets on.
    """

    question: str
    solutions: list[list[str]] = Field(default_factory=lambda: [list[str]()])
    token_logprobs: list[list[float] | None] | None = None
    """Per solution, the policy's log-probability of each token it wrote, where the model
    reported them. Self-confidence scorers read these; other PRMs ignore them."""


class ProcessRewardModel(RunnableSerializable[PRMRequest | dict[str, Any], PRMScores], ABC):
    """Base class for process reward models.

    Subclasses implement :meth:`_score` (and :meth:`_ascore` when they have a
    native async path). Callers use :meth:`score`, :meth:`ascore` or
    :meth:`estimate_question`; output shape and finiteness are checked here, so
    a broken PRM fails with :class:`PRMError` instead of corrupting a budget.
    """

    @abstractmethod
    def _score(
        self,
        question: str,
        solutions: Sequence[Sequence[str]],
        *,
        config: RunnableConfig,
    ) -> PRMScores:
        """Score every step of every solution; ``config`` is already a child config."""

    async def _ascore(
        self,
        question: str,
        solutions: Sequence[Sequence[str]],
        *,
        config: RunnableConfig,
    ) -> PRMScores:
        return await run_in_executor(
            config, lambda: self._score(question, solutions, config=config)
        )

    # -- public verbs -----------------------------------------------------

    def score(
        self,
        question: str,
        solutions: Sequence[Sequence[str]],
        config: RunnableConfig | None = None,
        *,
        token_logprobs: Sequence[Sequence[float] | None] | None = None,
    ) -> PRMScores:
        """Success estimates for every step prefix of every solution.

        ``token_logprobs`` (per solution, where the policy reported them) reach
        scorers that read the policy's own confidence; others ignore them.
        """
        return self.invoke(_request(question, solutions, token_logprobs), config)

    async def ascore(
        self,
        question: str,
        solutions: Sequence[Sequence[str]],
        config: RunnableConfig | None = None,
        *,
        token_logprobs: Sequence[Sequence[float] | None] | None = None,
    ) -> PRMScores:
        """Async twin of :meth:`score`."""
        return await self.ainvoke(_request(question, solutions, token_logprobs), config)

    def estimate_question(
        self, question: str, config: RunnableConfig | None = None
    ) -> SuccessEstimate:
        """The estimate for the question alone: how likely one sample is to be correct."""
        return self.score(question, [[]], config)[0][0]

    async def aestimate_question(
        self, question: str, config: RunnableConfig | None = None
    ) -> SuccessEstimate:
        """Async twin of :meth:`estimate_question`."""
        return (await self.ascore(question, [[]], config))[0][0]

    # -- Runnable plumbing -------------------------------------------------

    def invoke(
        self,
        input: PRMRequest | dict[str, Any],
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> PRMScores:
        return self._call_with_config(self._invoke, _as_request(input), config, run_type="prm")

    async def ainvoke(
        self,
        input: PRMRequest | dict[str, Any],
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> PRMScores:
        return await self._acall_with_config(
            self._ainvoke, _as_request(input), config, run_type="prm"
        )

    def _invoke(
        self,
        input: PRMRequest | dict[str, Any],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> PRMScores:
        request = _as_request(input)  # a no-op after invoke(); typed as the Runnable's input
        child = patch_config(config, callbacks=run_manager.get_child())
        with self._failures_as_prm_error():
            scores = self._score_request(request, config=child)
        return check_scores(request, scores)

    async def _ainvoke(
        self,
        input: PRMRequest | dict[str, Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> PRMScores:
        request = _as_request(input)  # a no-op after ainvoke(); typed as the Runnable's input
        child = patch_config(config, callbacks=run_manager.get_child())
        with self._failures_as_prm_error():
            scores = await self._ascore_request(request, config=child)
        return check_scores(request, scores)

    def _score_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        """Score a whole request; override to read more than the text (e.g. token logprobs)."""
        return self._score(request.question, request.solutions, config=config)

    async def _ascore_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        """Async twin of :meth:`_score_request`."""
        return await self._ascore(request.question, request.solutions, config=config)

    @contextmanager
    def _failures_as_prm_error(self) -> Iterator[None]:
        """Foreign exceptions become :class:`PRMError`; the package's own pass through."""
        try:
            yield
        except AdaptiveError:
            raise
        except Exception as error:
            raise PRMError(
                f"{type(self).__name__} failed: {type(error).__name__}: {error}"
            ) from error


def _request(
    question: str,
    solutions: Sequence[Sequence[str]],
    token_logprobs: Sequence[Sequence[float] | None] | None,
) -> PRMRequest:
    return PRMRequest(
        question=question,
        solutions=[list(s) for s in solutions],
        token_logprobs=None
        if token_logprobs is None
        else [None if lp is None else list(lp) for lp in token_logprobs],
    )


def _as_request(value: PRMRequest | dict[str, Any]) -> PRMRequest:
    return value if isinstance(value, PRMRequest) else PRMRequest.model_validate(value)


def check_scores(request: PRMRequest, scores: Any) -> PRMScores:
    """Check a PRM's output shape against its request; raise :class:`PRMError` if wrong."""
    if not isinstance(scores, list) or len(scores) != len(request.solutions):
        got = len(scores) if isinstance(scores, list) else type(scores).__name__
        raise PRMError(f"PRM returned {got} score lists for {len(request.solutions)} solutions")
    for index, (steps, estimates) in enumerate(zip(request.solutions, scores, strict=True)):
        expected = max(1, len(steps))
        if not isinstance(estimates, list) or len(estimates) != expected:
            raise PRMError(
                f"PRM returned {len(estimates) if isinstance(estimates, list) else estimates!r} "
                f"estimates for solution {index} with {expected} step(s)"
            )
        for estimate in estimates:
            if not isinstance(estimate, SuccessEstimate):
                raise PRMError(f"PRM returned {type(estimate).__name__}, expected SuccessEstimate")
            # model_construct skips validation: a NaN must not reach a budget or a ranking
            values = [*estimate.quantiles.values(), estimate.mean]
            if not all(
                v is None or (isinstance(v, int | float) and math.isfinite(v)) for v in values
            ):
                raise PRMError(
                    f"PRM returned a non-finite estimate for solution {index}: {estimate!r}"
                )
    return scores


def estimate_from_probability(probability: float, *, source: str) -> SuccessEstimate:
    """A point estimate from a raw probability, rejecting NaN and out-of-range values."""
    if not isinstance(probability, int | float) or not math.isfinite(probability):
        raise PRMError(f"{source} returned a non-finite score {probability!r}")
    if not 0.0 <= probability <= 1.0:
        raise PRMError(f"{source} returned score {probability} outside [0, 1]")
    return SuccessEstimate.point(float(probability))


__all__ = [
    "PRMRequest",
    "PRMScores",
    "ProcessRewardModel",
    "check_scores",
    "estimate_from_probability",
]
