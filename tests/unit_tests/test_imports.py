"""The public API is pinned: additions and removals are deliberate."""

from __future__ import annotations

import importlib

import langchain_adaptive

EXPECTED_ALL = [
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
    "extract_answer",
    "ias_sample_count",
    "split_steps",
]


def test_all_is_pinned_and_sorted() -> None:
    assert list(langchain_adaptive.__all__) == EXPECTED_ALL == sorted(EXPECTED_ALL)


def test_every_name_resolves() -> None:
    for name in EXPECTED_ALL:
        assert getattr(langchain_adaptive, name) is not None


def test_integrations_import_without_llama_cpp_being_loaded() -> None:
    module = importlib.import_module("langchain_adaptive.integrations.llamacpp")
    assert sorted(module.__all__) == [
        "ChatLlamaCpp",
        "LlamaCppEmbedder",
        "ProbePRM",
        "SharedLlama",
        "bundled_model_path",
        "default_reasoner",
        "default_threads",
        "load_shared_llama",
        "resolve_model_path",
    ]
