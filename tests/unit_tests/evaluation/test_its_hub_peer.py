"""``examples/benchmarks/its_hub_peer.py``: its_hub's algorithms see our draws one at a time.

The benchmark is only fair if its_hub stops on exactly the prefix of the order
our replay stops on, and pays the recorded tokens of what it drew; these tests
run its real algorithms through the replay model on small hand-made pools.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("its_hub")

from its_hub import AdaptiveSelfConsistency, BetaSelfConsistency
from its_hub.core.algorithms.self_consistency import (
    create_regex_projection_function,
)
from its_hub.core.orchestrator import LMOrchestrator

from langchain_adaptive.answers import answers_match
from langchain_adaptive.evaluation.pools import QuestionPool, RecordedSample

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "benchmarks" / "its_hub_peer.py"


@pytest.fixture(scope="module")
def peer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("its_hub_peer", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations there
    spec.loader.exec_module(module)
    return module


def pool(answers: list[str | None]) -> QuestionPool:
    """Sample i answers ``answers[i]`` (None: cut off unboxed) and costs 10 + i tokens."""
    samples = [
        RecordedSample(
            text=f"Sample {i}: " + ("ran out of tokens" if a is None else f"\\boxed{{{a}}}"),
            answer=a,
            correct=a is not None and answers_match(a, "3"),
            output_tokens=10 + i,
        )
        for i, a in enumerate(answers)
    ]
    return QuestionPool(id="q", question="What is 1 + 2?", gold="3", samples=samples)


def run(peer: ModuleType, algorithm, question: QuestionPool) -> tuple[int, int, bool]:
    order = list(range(len(question.samples)))
    return asyncio.run(peer.replay_peer(algorithm, question, order, seed="q:0"))


@pytest.mark.parametrize(("threshold", "stop"), [(0.8, 2), (0.9, 3), (0.95, 4), (0.99, 6)])
def test_beta_sc_stops_at_the_first_prefix_where_its_rule_fires(
    peer: ModuleType, threshold: float, stop: int
) -> None:
    # all agree: P(leader stays ahead) after n votes is 1 - 2^-(n+1)
    algorithm = BetaSelfConsistency(
        threshold,
        consistency_space_projection_func=peer.fair_projection(pool(["3"] * 16), answers_match),
        orchestrator=LMOrchestrator(max_concurrency=-1),
    )
    samples, tokens, correct = run(peer, algorithm, pool(["3"] * 16))
    assert (samples, tokens, correct) == (stop, sum(10 + i for i in range(stop)), True)


def test_abstentions_never_agree_under_the_fair_projection(peer: ModuleType) -> None:
    question = pool([None, None, "3", "3.0", "3", *["3"] * 11])
    orchestrator = LMOrchestrator(max_concurrency=-1)
    fair = BetaSelfConsistency(
        0.8,
        consistency_space_projection_func=peer.fair_projection(question, answers_match),
        orchestrator=orchestrator,
    )
    # votes 3 ("3.0" is 3) against two lone abstentions: P = 1 - 6/32 = 0.8125 after five
    assert run(peer, fair, question) == (5, 10 + 11 + 12 + 13 + 14, True)
    regex = BetaSelfConsistency(
        0.8,
        consistency_space_projection_func=create_regex_projection_function(peer.BOXED),
        orchestrator=orchestrator,
    )
    # its regex projects both abstentions to (None,): two agreeing votes, P = 0.875
    assert run(peer, regex, question) == (2, 21, False)


def test_adaptive_sc_draws_doubling_rounds_in_the_order(peer: ModuleType) -> None:
    question = pool(["3", "5", "3", "3", *["5"] * 12])
    algorithm = AdaptiveSelfConsistency(
        0.75,
        consistency_space_projection_func=peer.fair_projection(question, answers_match),
        orchestrator=LMOrchestrator(max_concurrency=-1),
    )
    # 1 of 2 agree, then 3 of 4 = 0.75: stops after its second round of two
    assert run(peer, algorithm, question) == (4, 10 + 11 + 12 + 13, True)


def test_the_fair_projection_groups_equivalent_answers_only(peer: ModuleType) -> None:
    question = pool([None, "3", "3.0", "5"])
    project = peer.fair_projection(question, answers_match)
    texts = [s.text for s in question.samples]
    assert project(texts[0]) != project(texts[0])
    assert project(texts[1]) == project(texts[2]) != project(texts[3])
