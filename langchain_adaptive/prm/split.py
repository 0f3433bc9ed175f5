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

from langchain_adaptive.prm.base import PRMScores, ProcessRewardModel
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
        questions, stepped = _split(solutions)
        alone = self.question_prm.score(question, [[]], config)[0] if questions else []
        steps = self.step_prm.score(question, stepped, config) if stepped else []
        return _merge(solutions, alone, steps)

    async def _ascore(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        questions, stepped = _split(solutions)
        alone = (await self.question_prm.ascore(question, [[]], config))[0] if questions else []
        steps = await self.step_prm.ascore(question, stepped, config) if stepped else []
        return _merge(solutions, alone, steps)


def _split(solutions: Sequence[Sequence[str]]) -> tuple[bool, list[list[str]]]:
    """Whether the question alone is asked for, and the solutions that have steps."""
    return any(not s for s in solutions), [list(s) for s in solutions if s]


def _merge(
    solutions: Sequence[Sequence[str]],
    alone: list[SuccessEstimate],
    steps: PRMScores,
) -> PRMScores:
    rows = iter(steps)
    return [list(next(rows)) if s else list(alone) for s in solutions]


__all__ = ["SplitPRM"]
