"""Calibration data: one record per solution prefix, with its Monte-Carlo success rate.

The same :func:`prefix_features` is used when a calibrator is fitted on records
and when :class:`~langchain_adaptive.prm.CalibratedPRM` applies it at run time,
so training and inference see identical inputs.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

FEATURE_NAMES = ("step_index", "log_prefix_chars")
"""Names of the values :func:`prefix_features` returns, in order."""


def prefix_features(k: int, prefix: str) -> list[float]:
    """Features of a prefix besides the PRM score: its step index and (log) length."""
    return [float(k), math.log1p(len(prefix))]


class CalibrationRecord(BaseModel):
    """One prefix of one sampled trajectory and how often rollouts from it succeeded."""

    question_id: str
    trajectory: int = Field(ge=0)
    """Which of the question's sampled trajectories this prefix comes from."""
    k: int = Field(ge=0)
    """Steps in the prefix; 0 is the question alone."""
    num_steps: int = Field(ge=0)
    """Steps in the full trajectory."""
    prefix: str
    """The solution text so far (steps joined by a blank line); empty for k = 0."""
    complete: bool
    """The prefix is the whole trajectory: its own 0/1 grade is the outcome, no rollouts."""
    raw_score: float = Field(ge=0.0, le=1.0)
    """The PRM's raw success probability for this prefix."""
    successes: int = Field(ge=0)
    trials: int = Field(ge=1)
    trajectory_correct: bool
    """Whether the full trajectory this prefix comes from reached the gold answer."""
    tokens: int = Field(default=0, ge=0)
    """Generated tokens spent on this record's rollouts."""

    @property
    def success_rate(self) -> float:
        return self.successes / self.trials

    @property
    def features(self) -> list[float]:
        return prefix_features(self.k, self.prefix)

    @property
    def key(self) -> tuple[str, int, int]:
        """Identity for resuming: a rerun skips records whose key is already written."""
        return (self.question_id, self.trajectory, self.k)


__all__ = ["FEATURE_NAMES", "CalibrationRecord", "prefix_features"]
