"""Sequential revisions and lookahead search on the real bundled SmolLM2 with the bundled probe
PRM: mechanics only (what was generated, shown, counted and reported), not accuracy."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

pytest.importorskip("llama_cpp")

from langchain_adaptive import AdaptiveCallbackHandler, AdaptiveReasoningRunnable, BeamSearch
from langchain_adaptive.callbacks._events import Revised, RolloutScored
from langchain_adaptive.evaluation.datasets import arithmetic_suite, worked_examples
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
from langchain_adaptive.integrations.llamacpp._probe import BUNDLED_HEAD
from langchain_adaptive.strategies import SequentialRevisions

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.slow,
    pytest.mark.skipif(not (BUNDLED_HEAD / "probe.json").is_file(), reason="no bundled head"),
]

TOKENS = 32
STEP_TOKENS = 24


class Recorder(AdaptiveCallbackHandler):
    def __init__(self) -> None:
        super().__init__()
        self.revisions: list[Revised] = []
        self.rollouts: list[RolloutScored] = []

    def on_revision(self, event: Revised, *, run_id: UUID, **kwargs: Any) -> None:
        self.revisions.append(event)

    def on_rollout_scored(self, event: RolloutScored, *, run_id: UUID, **kwargs: Any) -> None:
        self.rollouts.append(event)


def test_revision_chains_on_smollm2() -> None:
    [problem] = arithmetic_suite(1, seed=0, levels=("steps2",))
    reasoner = AdaptiveReasoningRunnable(
        model=ChatLlamaCpp(seed=5),
        prm=ProbePRM(),
        strategy=SequentialRevisions(chains=2, revisions=1),
        max_samples=4,
        max_tokens_per_sample=TOKENS,
        max_total_tokens=4 * TOKENS,
    )
    recorder = Recorder()
    result = reasoner.invoke(
        {"question": problem.question, "gold": problem.gold}, {"callbacks": [recorder]}
    )

    budget = result.budget
    assert budget.samples_used == len(result.candidates) == 4
    assert [(e.chain, e.revision) for e in recorder.revisions] == [(0, 1), (1, 1)]
    for event in recorder.revisions:
        assert len(event.shown) == event.revision  # each revision sees its chain so far
        revised = result.candidates[event.index]
        assert revised.usage.input_tokens == event.prompt_tokens
        assert not revised.usage.estimated  # llama.cpp reports the revision prompt's tokens
        shown_prompts = [result.candidates[i].usage.input_tokens for i in event.shown]
        assert event.prompt_tokens > max(shown_prompts)  # the attempts are in the prompt
    assert budget.prompt_tokens == sum(c.usage.input_tokens for c in result.candidates)
    assert budget.generated_tokens <= 4 * TOKENS
    assert all(c.score is not None for c in result.candidates)  # weighted vote read them


def test_lookahead_search_on_smollm2() -> None:
    [problem] = arithmetic_suite(1, seed=0, levels=("steps2",))
    examples = worked_examples(arithmetic_suite(2, seed=3, levels=("steps2",)))
    total = 8 * STEP_TOKENS
    reasoner = AdaptiveReasoningRunnable(
        model=ChatLlamaCpp(seed=11),
        prm=ProbePRM(),
        strategy=BeamSearch(n_paths=2, beams_kept=1, samples_per_beam=2, max_steps=2, lookahead=1),
        max_tokens_per_sample=STEP_TOKENS,
        max_total_tokens=total,
        examples=examples,
    )
    recorder = Recorder()
    result = reasoner.invoke(
        {"question": problem.question, "gold": problem.gold}, {"callbacks": [recorder]}
    )

    beams = {b.id: b for b in result.beams or []}
    rollouts = [b for b in beams.values() if b.rollout_of is not None]
    assert rollouts and recorder.rollouts
    for event in recorder.rollouts:
        step, end = beams[event.beam_id], beams[event.rollout_beam_id]
        assert end.rollout_of == step.id and end.steps[: len(step.steps)] == step.steps
        assert step.lookahead is not None and step.lookahead.median == event.median
    assert result.budget.generated_tokens == sum(b.usage.output_tokens for b in beams.values())
    assert result.budget.generated_tokens <= total
    assert {c.beam_id for c in result.candidates}.isdisjoint(b.id for b in rollouts)
