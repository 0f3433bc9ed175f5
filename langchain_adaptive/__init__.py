"""langchain-adaptive: calibrated instance-adaptive test-time scaling for LangChain.

An :class:`AdaptiveReasoningRunnable` wraps any LangChain chat model or LLM and a
process reward model (PRM). For each question it estimates, with a calibrated
lower bound ``p``, how likely one sample is to be correct, and draws only
``N = ceil(log(1 - C) / log(1 - p))`` samples to reach confidence ``C``.

Names are imported lazily, so ``import langchain_adaptive`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_adaptive.answers import answers_match, extract_answer, split_steps
    from langchain_adaptive.budget import BudgetLimits, ias_sample_count
    from langchain_adaptive.calibration import Calibrator, IdentityCalibrator
    from langchain_adaptive.errors import (
        AdaptiveError,
        AdaptiveInputError,
        CalibrationError,
        ConfigurationError,
        ContextLengthExceededError,
        DatasetError,
        EmptyGenerationError,
        EmptyQuestionError,
        ModelError,
        ModelNotFoundError,
        PRMError,
        UnknownStrategyError,
        UnsupportedInputError,
    )
    from langchain_adaptive.escalation import escalate_when_unsure, needs_escalation
    from langchain_adaptive.parsers import AdaptiveAnswerParser
    from langchain_adaptive.prm import CalibratedPRM, LLMJudgePRM, ProcessRewardModel
    from langchain_adaptive.results import (
        AdaptiveResult,
        BudgetReport,
        Candidate,
        SuccessEstimate,
        TokenUsage,
    )
    from langchain_adaptive.runnable import AdaptiveReasoningRunnable
    from langchain_adaptive.strategies import (
        AdaptiveBestOfN,
        AdaptiveConsistency,
        BestOfN,
        EarlyStoppingConsistency,
        Strategy,
        build_strategy,
    )
    from langchain_adaptive.tools import AdaptiveReasoningTool, adaptive_tool

__version__ = "0.1.0"

_MODULE_OF: dict[str, str] = {
    "AdaptiveAnswerParser": "parsers",
    "AdaptiveBestOfN": "strategies",
    "AdaptiveConsistency": "strategies",
    "AdaptiveError": "errors",
    "AdaptiveInputError": "errors",
    "AdaptiveReasoningRunnable": "runnable",
    "AdaptiveReasoningTool": "tools",
    "AdaptiveResult": "results",
    "BestOfN": "strategies",
    "BudgetLimits": "budget",
    "BudgetReport": "results",
    "CalibratedPRM": "prm",
    "CalibrationError": "errors",
    "Calibrator": "calibration",
    "Candidate": "results",
    "ConfigurationError": "errors",
    "ContextLengthExceededError": "errors",
    "DatasetError": "errors",
    "EarlyStoppingConsistency": "strategies",
    "EmptyGenerationError": "errors",
    "EmptyQuestionError": "errors",
    "IdentityCalibrator": "calibration",
    "LLMJudgePRM": "prm",
    "ModelError": "errors",
    "ModelNotFoundError": "errors",
    "PRMError": "errors",
    "ProcessRewardModel": "prm",
    "Strategy": "strategies",
    "SuccessEstimate": "results",
    "TokenUsage": "results",
    "UnknownStrategyError": "errors",
    "UnsupportedInputError": "errors",
    "adaptive_tool": "tools",
    "answers_match": "answers",
    "build_strategy": "strategies",
    "escalate_when_unsure": "escalation",
    "extract_answer": "answers",
    "ias_sample_count": "budget",
    "needs_escalation": "escalation",
    "split_steps": "answers",
}

__all__ = (
    "AdaptiveAnswerParser",
    "AdaptiveBestOfN",
    "AdaptiveConsistency",
    "AdaptiveError",
    "AdaptiveInputError",
    "AdaptiveReasoningRunnable",
    "AdaptiveReasoningTool",
    "AdaptiveResult",
    "BestOfN",
    "BudgetLimits",
    "BudgetReport",
    "CalibratedPRM",
    "CalibrationError",
    "Calibrator",
    "Candidate",
    "ConfigurationError",
    "ContextLengthExceededError",
    "DatasetError",
    "EarlyStoppingConsistency",
    "EmptyGenerationError",
    "EmptyQuestionError",
    "IdentityCalibrator",
    "LLMJudgePRM",
    "ModelError",
    "ModelNotFoundError",
    "PRMError",
    "ProcessRewardModel",
    "Strategy",
    "SuccessEstimate",
    "TokenUsage",
    "UnknownStrategyError",
    "UnsupportedInputError",
    "adaptive_tool",
    "answers_match",
    "build_strategy",
    "escalate_when_unsure",
    "extract_answer",
    "ias_sample_count",
    "needs_escalation",
    "split_steps",
)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"langchain_adaptive.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
