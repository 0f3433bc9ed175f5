"""AdaptiveProgressHandler: one bar step per question, live sample and token counts."""

from __future__ import annotations

import io

from langchain_adaptive.callbacks import AdaptiveProgressHandler
from tests.unit_tests.callbacks.recording import reasoner


def test_the_bar_counts_questions_samples_and_tokens_of_a_batch() -> None:
    stream = io.StringIO()
    questions = ["easy", "hard", "easy", "hard"]
    with AdaptiveProgressHandler(total=len(questions), file=stream) as progress:
        results = reasoner().batch(
            questions, config={"callbacks": [progress], "max_concurrency": 4}
        )
        assert progress.bar.n == progress.questions == len(questions)
    assert progress.samples == sum(r.budget.samples_used for r in results)
    assert progress.tokens == sum(r.budget.generated_tokens for r in results)
    drawn = stream.getvalue()
    assert f"{len(questions)}/{len(questions)}" in drawn
    assert f"samples={progress.samples}" in drawn and f"tokens={progress.tokens}" in drawn


async def test_abatch_advances_the_bar_too() -> None:
    progress = AdaptiveProgressHandler(total=3, file=io.StringIO())
    results = await reasoner().abatch(["easy", "hard", "easy"], config={"callbacks": [progress]})
    progress.close()
    assert progress.questions == 3
    assert progress.samples == sum(r.budget.samples_used for r in results)


def test_disabled_bar_still_counts() -> None:
    progress = AdaptiveProgressHandler(disable=True)
    reasoner().invoke("easy", config={"callbacks": [progress]})
    assert (progress.questions, progress.samples) == (1, 2)
