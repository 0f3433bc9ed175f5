"""A PRM wrapper that passes every raw score through a calibrator."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.runnables import RunnableConfig

from langchain_adaptive.calibration import Calibrator, IdentityCalibrator
from langchain_adaptive.prm.base import PRMScores, ProcessRewardModel


class CalibratedPRM(ProcessRewardModel):
    """Applies ``calibrator`` to the raw scores of ``prm``.

    Step index is passed to the calibrator as a feature, since calibration
    error differs between the question alone and late prefixes.

    Example:
        .. code-block:: python

            prm = CalibratedPRM(prm=LLMJudgePRM(model=chat), calibrator=IdentityCalibrator())
            prm.estimate_question("What is 7 + 8?").lower
    """

    prm: ProcessRewardModel
    """The PRM whose scores are calibrated."""
    calibrator: Calibrator = IdentityCalibrator()
    """Maps raw scores to calibrated quantiles."""

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        return self._calibrate(self.prm.score(question, solutions, config))

    async def _ascore(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        return self._calibrate(await self.prm.ascore(question, solutions, config))

    def _calibrate(self, scores: PRMScores) -> PRMScores:
        raw = [
            est.raw_score if est.raw_score is not None else est.median
            for row in scores
            for est in row
        ]
        features = [[float(step)] for row in scores for step in range(len(row))]
        flat = iter(self.calibrator.predict(raw, features))
        return [[next(flat) for _ in row] for row in scores]


__all__ = ["CalibratedPRM"]
