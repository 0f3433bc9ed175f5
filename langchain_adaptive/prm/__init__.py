"""Process reward models: the protocol, an LLM-as-judge PRM, the calibration wrapper,
a PRM that splits question and step scoring between two PRMs, and the policy's own
token confidence as a scorer."""

from __future__ import annotations

from langchain_adaptive.prm._base import (
    PRMRequest,
    PRMScores,
    ProcessRewardModel,
    check_scores,
    estimate_from_probability,
)
from langchain_adaptive.prm._calibrated import CalibratedPRM
from langchain_adaptive.prm._judge import LLMJudgePRM
from langchain_adaptive.prm._self_confidence import SelfConfidencePRM
from langchain_adaptive.prm._split import SplitPRM

__all__ = [
    "CalibratedPRM",
    "LLMJudgePRM",
    "PRMRequest",
    "PRMScores",
    "ProcessRewardModel",
    "SelfConfidencePRM",
    "SplitPRM",
    "check_scores",
    "estimate_from_probability",
]
