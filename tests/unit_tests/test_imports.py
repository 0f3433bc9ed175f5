"""The public API is pinned: additions and removals are deliberate."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import langchain_adaptive

EXPECTED_ALL = [
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
]


def test_all_is_pinned_and_sorted() -> None:
    assert list(langchain_adaptive.__all__) == EXPECTED_ALL == sorted(EXPECTED_ALL)


def test_every_name_resolves() -> None:
    for name in EXPECTED_ALL:
        assert getattr(langchain_adaptive, name) is not None


def test_integrations_import_without_llama_cpp_being_loaded() -> None:
    module = importlib.import_module("langchain_adaptive.integrations.llamacpp")
    assert sorted(module.__all__) == [
        "BatchedSampler",
        "ChatLlamaCpp",
        "LlamaCppEmbedder",
        "ProbePRM",
        "SharedLlama",
        "TokenConfidencePRM",
        "bundled_model_path",
        "default_reasoner",
        "default_threads",
        "load_shared_llama",
        "resolve_model_path",
    ]


def test_langgraph_integration_names_are_pinned_and_lazy() -> None:
    module = importlib.import_module("langchain_adaptive.integrations.langgraph")
    assert list(module.__all__) == [
        "AdaptiveRunUsage",
        "AdaptiveSamplingBudget",
        "AdaptiveSamplingMiddleware",
        "AdaptiveSamplingState",
        "AdaptiveState",
        "adaptive_node",
        "answer_message",
        "create_adaptive_graph",
        "needs_escalation",
    ]
    code = (
        "import sys, langchain_adaptive.integrations.langgraph; "
        "print('langgraph' in sys.modules, 'langchain.agents' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    if importlib.util.find_spec("langgraph") is not None:
        assert all(getattr(module, name) is not None for name in module.__all__)
