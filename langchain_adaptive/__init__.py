"""langchain-adaptive: calibrated instance-adaptive test-time scaling for LangChain.

An :class:`AdaptiveReasoningRunnable` wraps any LangChain chat model or LLM and a
process reward model (PRM). For each question it estimates, with a calibrated
lower bound ``p``, how likely one sample is to be correct, and draws only
``N = ceil(log(1 - C) / log(1 - p))`` samples to reach confidence ``C``.

Names are imported lazily, so ``import langchain_adaptive`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports
from langchain_adaptive._version import __version__ as __version__

if TYPE_CHECKING:
    from langchain_adaptive.answers import answers_match, extract_answer, split_steps
    from langchain_adaptive.budget import BudgetLimits, ias_sample_count
    from langchain_adaptive.calibration import Calibrator, IdentityCalibrator
    from langchain_adaptive.callbacks import (
        AdaptiveCallbackHandler,
        AdaptiveEvent,
        AdaptiveFinished,
        AdaptiveProgressHandler,
        AdaptiveUsageTracker,
        AsyncAdaptiveCallbackHandler,
        BeamsPruned,
        BudgetDecided,
        CandidateGenerated,
        CandidateScored,
        EarlyStop,
        JsonlTraceWriter,
        ModelPrice,
        StepScored,
        UsageSnapshot,
        parse_event,
    )
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
    from langchain_adaptive.inputs import FewShotExample
    from langchain_adaptive.parsers import AdaptiveAnswerParser
    from langchain_adaptive.prm import CalibratedPRM, LLMJudgePRM, ProcessRewardModel, SplitPRM
    from langchain_adaptive.results import (
        AdaptiveResult,
        Beam,
        BudgetReport,
        Candidate,
        SuccessEstimate,
        TokenUsage,
    )
    from langchain_adaptive.runnable import AdaptiveReasoningRunnable
    from langchain_adaptive.strategies import (
        AdaptiveBestOfN,
        AdaptiveConsistency,
        BeamSearch,
        BestOfN,
        EarlyStoppingConsistency,
        SequentialAdaptiveBestOfN,
        Strategy,
        build_strategy,
    )
    from langchain_adaptive.strategies.allocation import FixedAllocation, allocate_budget
    from langchain_adaptive.strategies.compute_optimal import (
        ComputeOptimalPolicy,
        ComputeOptimalStrategy,
    )
    from langchain_adaptive.tools import AdaptiveReasoningTool, adaptive_tool

_MODULE_OF: dict[str, str] = {
    "AdaptiveAnswerParser": "parsers",
    "AdaptiveBestOfN": "strategies",
    "AdaptiveCallbackHandler": "callbacks",
    "AdaptiveConsistency": "strategies",
    "AdaptiveError": "errors",
    "AdaptiveEvent": "callbacks",
    "AdaptiveFinished": "callbacks",
    "AdaptiveInputError": "errors",
    "AdaptiveProgressHandler": "callbacks",
    "AdaptiveReasoningRunnable": "runnable",
    "AdaptiveReasoningTool": "tools",
    "AdaptiveResult": "results",
    "AdaptiveUsageTracker": "callbacks",
    "AsyncAdaptiveCallbackHandler": "callbacks",
    "Beam": "results",
    "BeamSearch": "strategies",
    "BeamsPruned": "callbacks",
    "BestOfN": "strategies",
    "BudgetDecided": "callbacks",
    "BudgetLimits": "budget",
    "BudgetReport": "results",
    "CalibratedPRM": "prm",
    "CalibrationError": "errors",
    "Calibrator": "calibration",
    "Candidate": "results",
    "CandidateGenerated": "callbacks",
    "CandidateScored": "callbacks",
    "ComputeOptimalPolicy": "strategies.compute_optimal",
    "ComputeOptimalStrategy": "strategies.compute_optimal",
    "ConfigurationError": "errors",
    "ContextLengthExceededError": "errors",
    "DatasetError": "errors",
    "EarlyStop": "callbacks",
    "EarlyStoppingConsistency": "strategies",
    "EmptyGenerationError": "errors",
    "EmptyQuestionError": "errors",
    "FewShotExample": "inputs",
    "FixedAllocation": "strategies.allocation",
    "IdentityCalibrator": "calibration",
    "JsonlTraceWriter": "callbacks",
    "LLMJudgePRM": "prm",
    "ModelError": "errors",
    "ModelNotFoundError": "errors",
    "ModelPrice": "callbacks",
    "PRMError": "errors",
    "ProcessRewardModel": "prm",
    "SplitPRM": "prm",
    "SequentialAdaptiveBestOfN": "strategies",
    "StepScored": "callbacks",
    "Strategy": "strategies",
    "SuccessEstimate": "results",
    "TokenUsage": "results",
    "UnknownStrategyError": "errors",
    "UnsupportedInputError": "errors",
    "UsageSnapshot": "callbacks",
    "adaptive_tool": "tools",
    "allocate_budget": "strategies.allocation",
    "answers_match": "answers",
    "build_strategy": "strategies",
    "escalate_when_unsure": "escalation",
    "extract_answer": "answers",
    "ias_sample_count": "budget",
    "needs_escalation": "escalation",
    "parse_event": "callbacks",
    "split_steps": "answers",
}

__all__ = (
    "AdaptiveAnswerParser",
    "AdaptiveBestOfN",
    "AdaptiveCallbackHandler",
    "AdaptiveConsistency",
    "AdaptiveError",
    "AdaptiveEvent",
    "AdaptiveFinished",
    "AdaptiveInputError",
    "AdaptiveProgressHandler",
    "AdaptiveReasoningRunnable",
    "AdaptiveReasoningTool",
    "AdaptiveResult",
    "AdaptiveUsageTracker",
    "AsyncAdaptiveCallbackHandler",
    "Beam",
    "BeamSearch",
    "BeamsPruned",
    "BestOfN",
    "BudgetDecided",
    "BudgetLimits",
    "BudgetReport",
    "CalibratedPRM",
    "CalibrationError",
    "Calibrator",
    "Candidate",
    "CandidateGenerated",
    "CandidateScored",
    "ComputeOptimalPolicy",
    "ComputeOptimalStrategy",
    "ConfigurationError",
    "ContextLengthExceededError",
    "DatasetError",
    "EarlyStop",
    "EarlyStoppingConsistency",
    "EmptyGenerationError",
    "EmptyQuestionError",
    "FewShotExample",
    "FixedAllocation",
    "IdentityCalibrator",
    "JsonlTraceWriter",
    "LLMJudgePRM",
    "ModelError",
    "ModelNotFoundError",
    "ModelPrice",
    "PRMError",
    "ProcessRewardModel",
    "SequentialAdaptiveBestOfN",
    "SplitPRM",
    "StepScored",
    "Strategy",
    "SuccessEstimate",
    "TokenUsage",
    "UnknownStrategyError",
    "UnsupportedInputError",
    "UsageSnapshot",
    "adaptive_tool",
    "allocate_budget",
    "answers_match",
    "build_strategy",
    "escalate_when_unsure",
    "extract_answer",
    "ias_sample_count",
    "needs_escalation",
    "parse_event",
    "split_steps",
)


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, __all__)
