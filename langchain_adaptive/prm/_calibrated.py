"""A PRM wrapper that passes every raw score through a calibrator."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.runnables import RunnableConfig

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.calibration import Calibrator, IdentityCalibrator
from langchain_adaptive.calibration._records import prefix_features
from langchain_adaptive.errors import CalibrationError
from langchain_adaptive.prm._base import PRMRequest, PRMScores, ProcessRewardModel


class CalibratedPRM(ProcessRewardModel):
    """Applies ``calibrator`` to the raw scores of ``prm``.

    The calibrator also gets :func:`prefix_features` (step index, prefix length),
    since calibration error differs between the question alone and late prefixes.

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
        return self._calibrate(solutions, self.prm.score(question, solutions, config))

    async def _ascore(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        return self._calibrate(solutions, await self.prm.ascore(question, solutions, config))

    def _score_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        return self._calibrate(request.solutions, self.prm.invoke(request, config))

    async def _ascore_request(self, request: PRMRequest, *, config: RunnableConfig) -> PRMScores:
        return self._calibrate(request.solutions, await self.prm.ainvoke(request, config))

    def _calibrate(self, solutions: Sequence[Sequence[str]], scores: PRMScores) -> PRMScores:
        return calibrate_scores(self.calibrator, solutions, scores)


def calibrate_scores(
    calibrator: Calibrator, solutions: Sequence[Sequence[str]], scores: PRMScores
) -> PRMScores:
    """Pass a PRM's raw ``scores`` of ``solutions`` through ``calibrator`` in one call.

    Shared by :class:`CalibratedPRM` and by replay, which calibrates recorded
    raw scores, so both give the calibrator identical inputs.
    """
    raw: list[float] = []
    features: list[list[float]] = []
    for steps, row in zip(solutions, scores, strict=True):
        for j, estimate in enumerate(row):
            k = j + 1 if steps else 0  # estimate j scores the prefix of j + 1 steps
            raw.append(estimate.raw_score if estimate.raw_score is not None else estimate.median)
            features.append(prefix_features(k, STEP_JOINER.join(steps[:k])))
    if not raw:
        return [[] for _ in scores]
    calibrated = calibrator.predict(raw, features)
    if len(calibrated) != len(raw):
        raise CalibrationError(
            f"{type(calibrator).__name__} returned {len(calibrated)} estimates "
            f"for {len(raw)} scores"
        )
    flat = iter(calibrated)
    return [[next(flat) for _ in row] for row in scores]


__all__ = ["CalibratedPRM", "calibrate_scores"]
