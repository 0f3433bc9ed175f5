"""langchain-adaptive: calibrated instance-adaptive test-time scaling for LangChain.

An :class:`AdaptiveReasoningRunnable` wraps any LangChain chat model or LLM and a
process reward model (PRM). For each question it estimates, with a calibrated
lower bound ``p``, how likely one sample is to be correct, and draws only
``N = ceil(log(1 - C) / log(1 - p))`` samples to reach confidence ``C``.

The top level holds what a user types in the quickstart and the guides; the rest
lives in its module: event models in :mod:`langchain_adaptive.callbacks`, more
strategies in :mod:`langchain_adaptive.strategies`, calibrators in
:mod:`langchain_adaptive.calibration`, the error tree in :mod:`langchain_adaptive.errors`,
results' parts in :mod:`langchain_adaptive.results`, the budget formula in
:mod:`langchain_adaptive.budget`. Names are imported lazily, so
``import langchain_adaptive`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports
from langchain_adaptive._version import __version__ as __version__

if TYPE_CHECKING:
    from langchain_adaptive._parsers import AdaptiveAnswerParser
    from langchain_adaptive.budget import BudgetLimits
    from langchain_adaptive.callbacks import (
        AdaptiveCallbackHandler,
        AdaptiveUsageTracker,
        AsyncAdaptiveCallbackHandler,
        JsonlTraceWriter,
    )
    from langchain_adaptive.errors import AdaptiveError
    from langchain_adaptive.escalation import escalate_when_unsure
    from langchain_adaptive.inputs import FewShotExample
    from langchain_adaptive.prm import CalibratedPRM, LLMJudgePRM, ProcessRewardModel, SplitPRM
    from langchain_adaptive.results import AdaptiveResult, SuccessEstimate
    from langchain_adaptive.runnable import AdaptiveReasoningRunnable
    from langchain_adaptive.strategies import (
        AdaptiveBestOfN,
        AdaptiveConsistency,
        BeamSearch,
        BestOfN,
        SequentialAdaptiveBestOfN,
        Strategy,
        build_strategy,
    )
    from langchain_adaptive.tools import AdaptiveReasoningTool, adaptive_tool

_MODULE_OF: dict[str, str] = {
    "AdaptiveAnswerParser": "_parsers",
    "AdaptiveBestOfN": "strategies",
    "AdaptiveCallbackHandler": "callbacks",
    "AdaptiveConsistency": "strategies",
    "AdaptiveError": "errors",
    "AdaptiveReasoningRunnable": "runnable",
    "AdaptiveReasoningTool": "tools",
    "AdaptiveResult": "results",
    "AdaptiveUsageTracker": "callbacks",
    "AsyncAdaptiveCallbackHandler": "callbacks",
    "BeamSearch": "strategies",
    "BestOfN": "strategies",
    "BudgetLimits": "budget",
    "CalibratedPRM": "prm",
    "FewShotExample": "inputs",
    "JsonlTraceWriter": "callbacks",
    "LLMJudgePRM": "prm",
    "ProcessRewardModel": "prm",
    "SequentialAdaptiveBestOfN": "strategies",
    "SplitPRM": "prm",
    "Strategy": "strategies",
    "SuccessEstimate": "results",
    "adaptive_tool": "tools",
    "build_strategy": "strategies",
    "escalate_when_unsure": "escalation",
}

__all__ = (
    "AdaptiveAnswerParser",
    "AdaptiveBestOfN",
    "AdaptiveCallbackHandler",
    "AdaptiveConsistency",
    "AdaptiveError",
    "AdaptiveReasoningRunnable",
    "AdaptiveReasoningTool",
    "AdaptiveResult",
    "AdaptiveUsageTracker",
    "AsyncAdaptiveCallbackHandler",
    "BeamSearch",
    "BestOfN",
    "BudgetLimits",
    "CalibratedPRM",
    "FewShotExample",
    "JsonlTraceWriter",
    "LLMJudgePRM",
    "ProcessRewardModel",
    "SequentialAdaptiveBestOfN",
    "SplitPRM",
    "Strategy",
    "SuccessEstimate",
    "adaptive_tool",
    "build_strategy",
    "escalate_when_unsure",
)


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, __all__)
