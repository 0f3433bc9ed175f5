"""Process reward models: the protocol, an LLM-as-judge PRM, the calibration wrapper,
and a PRM that splits question and step scoring between two PRMs."""

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
from langchain_adaptive.prm.split import SplitPRM

__all__ = [
    "CalibratedPRM",
    "LLMJudgePRM",
    "PRMRequest",
    "PRMScores",
    "ProcessRewardModel",
    "SplitPRM",
    "check_scores",
    "estimate_from_probability",
]
