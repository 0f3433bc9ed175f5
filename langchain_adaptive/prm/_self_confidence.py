"""Self-confidence as a scorer: the policy's own token log-probabilities, for any model.

Any chat model that reports token logprobs (``ChatOpenAI(logprobs=True)``,
``ChatLlamaCpp(logprobs=True)``, vLLM or llama.cpp servers behind the OpenAI
API) carries a free success signal: samples the model wrote confidently are
right more often. The runnable hands each sample's reported logprobs to the
PRM; this scorer turns them into an estimate, either the mean token logprob or
DeepConf's lowest sliding-window mean (Fu et al. 2025), squashed by ``exp``
into a geometric-mean token probability. The raw logprob is kept as the
estimate's ``raw_score``, so a calibrator fitted on recorded pools (``bench
import --logprob-field``, ``bench replay --fit``) maps it to a calibrated
``p`` through :class:`~langchain_adaptive.prm.CalibratedPRM`.

It scores samples, not questions: use it with strategies that need no
question estimate (``first_sample_ias``, ``sequential_ias_1``,
``answer_stop``) or as the step scorer of a
:class:`~langchain_adaptive.prm.SplitPRM`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from langchain_core.runnables import RunnableConfig
from pydantic import Field

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.confidence import lowest_window_mean
from langchain_adaptive.errors import PRMError
from langchain_adaptive.prm._base import PRMRequest, PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate


class SelfConfidencePRM(ProcessRewardModel):
    """Scores each sample by the token logprobs the policy reported when it wrote it.

    A step prefix is scored on the share of tokens its share of the text
    covers (tokens are not aligned to steps exactly; the whole sample, the
    score selection and the stop rules read, is exact).

    Example:
        .. code-block:: python

            from langchain_openai import ChatOpenAI

            prm = CalibratedPRM(prm=SelfConfidencePRM(), calibrator=Calibrator.load("cal/lp"))
            reasoner = AdaptiveReasoningRunnable(
                model=ChatOpenAI(model="gpt-4o-mini", logprobs=True),
                prm=prm,
                strategy="sequential_ias_1",
            )
    """

    signal: Literal["mean", "lowest_window"] = "mean"
    """``mean``: the mean token logprob; ``lowest_window``: DeepConf's lowest group
    confidence, the lowest mean over ``window`` consecutive tokens."""
    window: int = Field(default=64, ge=1)
    """Tokens per window of ``lowest_window``."""

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        request = PRMRequest(question=question, solutions=[list(s) for s in solutions])
        return self._score_request(request, config=config)

    def _score_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        logprobs = request.token_logprobs or [None] * len(request.solutions)
        return [
            self._row(index, steps, lp)
            for index, (steps, lp) in enumerate(zip(request.solutions, logprobs, strict=True))
        ]

    async def _ascore_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        return self._score_request(request, config=config)

    def _row(
        self, index: int, steps: Sequence[str], logprobs: Sequence[float] | None
    ) -> list[SuccessEstimate]:
        if not steps:
            raise PRMError(
                "SelfConfidencePRM scores samples, not a question alone: use a strategy that "
                "needs no question estimate (first_sample_ias, sequential_ias_1, answer_stop) "
                "or pair it with a question PRM in SplitPRM"
            )
        if not logprobs:
            raise PRMError(
                f"sample {index} came without token logprobs; ask the model for them "
                "(e.g. ChatOpenAI(logprobs=True) or ChatLlamaCpp(logprobs=True))"
            )
        lengths = [len(STEP_JOINER.join(steps[: k + 1])) for k in range(len(steps))]
        total = max(1, lengths[-1])
        row = []
        for k, length in enumerate(lengths):
            covered = (
                len(logprobs) if k == len(steps) - 1 else math.ceil(len(logprobs) * length / total)
            )
            row.append(self._estimate(logprobs[: max(1, covered)]))
        return row

    def _estimate(self, logprobs: Sequence[float]) -> SuccessEstimate:
        if self.signal == "mean":
            value = sum(logprobs) / len(logprobs)
        else:
            value = lowest_window_mean(logprobs, self.window)
        return SuccessEstimate.point(min(1.0, math.exp(value)), raw_score=value)


__all__ = ["SelfConfidencePRM", "lowest_window_mean"]
