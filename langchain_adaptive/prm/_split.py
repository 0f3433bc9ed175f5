"""A PRM that takes question estimates from one PRM and step scores from another.

Estimators are good at different things: a probe reads how hard a question is
before anything is written, while the policy's token confidence says nothing
about a question but tells a shaky step from a sure one. IAS budgets on the
question estimate and selection reads the step scores, so one runnable can use
each where it is good.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.runnables import RunnableConfig

from langchain_adaptive.prm._base import PRMRequest, PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate


class SplitPRM(ProcessRewardModel):
    """``question_prm`` scores the question alone (k = 0); ``step_prm`` scores every step.

    Both run as child runs of this one, so traces show which answered what.

    Example:
        .. code-block:: python

            from langchain_adaptive import AdaptiveReasoningRunnable, SplitPRM
            from langchain_adaptive.integrations.llamacpp import (
                ChatLlamaCpp,
                ProbePRM,
                TokenConfidencePRM,
            )

            chat = ChatLlamaCpp()
            prm = SplitPRM(question_prm=ProbePRM(), step_prm=TokenConfidencePRM(policy=chat))
            reasoner = AdaptiveReasoningRunnable(model=chat, prm=prm, max_samples=2)
            reasoner.invoke("What is 7 + 8?").answer
    """

    question_prm: ProcessRewardModel
    """Estimates for the question alone: what IAS budgets on."""
    step_prm: ProcessRewardModel
    """Estimates for every step prefix: what selection and beam search read."""

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        request = PRMRequest(question=question, solutions=[list(s) for s in solutions])
        return self._score_request(request, config=config)

    async def _ascore(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        request = PRMRequest(question=question, solutions=[list(s) for s in solutions])
        return await self._ascore_request(request, config=config)

    def _score_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        question, stepped, logprobs = _split(request)
        alone = self.question_prm.score(request.question, [[]], config)[0] if question else []
        steps = (
            self.step_prm.score(request.question, stepped, config, token_logprobs=logprobs)
            if stepped
            else []
        )
        return _merge(request.solutions, alone, steps)

    async def _ascore_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        question, stepped, logprobs = _split(request)
        alone = (
            (await self.question_prm.ascore(request.question, [[]], config))[0] if question else []
        )
        steps = (
            await self.step_prm.ascore(request.question, stepped, config, token_logprobs=logprobs)
            if stepped
            else []
        )
        return _merge(request.solutions, alone, steps)


def _split(
    request: PRMRequest,
) -> tuple[bool, list[list[str]], list[list[float] | None] | None]:
    """Whether the question alone is asked for, the solutions that have steps, and their
    token logprobs (where reported)."""
    solutions, logprobs = request.solutions, request.token_logprobs
    stepped = [i for i, s in enumerate(solutions) if s]
    return (
        any(not s for s in solutions),
        [list(solutions[i]) for i in stepped],
        None if logprobs is None else [logprobs[i] for i in stepped],
    )


def _merge(
    solutions: Sequence[Sequence[str]],
    alone: list[SuccessEstimate],
    steps: PRMScores,
) -> PRMScores:
    rows = iter(steps)
    return [list(next(rows)) if s else list(alone) for s in solutions]


__all__ = ["SplitPRM"]
