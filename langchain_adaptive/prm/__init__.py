"""Process reward models: the protocol, an LLM-as-judge PRM, and the calibration wrapper."""

from __future__ import annotations

from langchain_adaptive.prm.base import (
    PRMRequest,
    PRMScores,
    ProcessRewardModel,
    check_scores,
    estimate_from_probability,
)
from langchain_adaptive.prm.calibrated import CalibratedPRM
from langchain_adaptive.prm.judge import LLMJudgePRM

__all__ = [
    "CalibratedPRM",
    "LLMJudgePRM",
    "PRMRequest",
    "PRMScores",
    "ProcessRewardModel",
    "check_scores",
    "estimate_from_probability",
]
