"""TokenConfidencePRM on the real bundled SmolLM2: the policy's own token probabilities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage

pytest.importorskip("llama_cpp")

import llama_cpp

from langchain_adaptive.errors import ContextLengthExceededError
from langchain_adaptive.evaluation.datasets import arithmetic_suite, worked_examples
from langchain_adaptive.inputs import parse_input
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, TokenConfidencePRM
from langchain_adaptive.integrations.llamacpp import _confidence as confidence_module
from tests.tracing import RunCollector

pytestmark = [pytest.mark.llamacpp]

QUESTION = "What is (3 + 4) * 2?"
EXAMPLES = worked_examples(arithmetic_suite(2, seed=3, levels=("steps2",)))


@pytest.fixture(scope="module")
def chat() -> ChatLlamaCpp:
    return ChatLlamaCpp(seed=0, temperature=0.0, max_tokens=16)


def _reference_min_logprob(chat: ChatLlamaCpp, prefix: str) -> float:
    """The same quantity from a fresh context that keeps every row: no cache, no batch tricks."""
    path = str(chat._model_path())
    fresh = llama_cpp.Llama(path, n_ctx=1024, logits_all=True, verbose=False)
    messages = parse_input(QUESTION, examples=EXAMPLES).messages
    base = chat._prompt_tokens(fresh, [*messages, AIMessage("")])
    full = chat._prompt_tokens(fresh, [*messages, AIMessage(prefix)])
    assert full[: len(base)] == base
    fresh.eval(full)
    logprobs = []
    for position in range(len(base), len(full)):
        row = np.asarray(fresh.scores[position - 1], np.float64)
        shift = row.max()
        logprobs.append(row[full[position]] - shift - np.log(np.exp(row - shift).sum()))
    return min(logprobs)


def test_scores_are_the_least_likely_token_probability(chat: ChatLlamaCpp) -> None:
    prm = TokenConfidencePRM(policy=chat, examples=EXAMPLES)
    steps = ["3 + 4 = 7", "7 * 2 = 14", "The answer is 14."]
    [row] = prm.score(QUESTION, [steps])
    for k, estimate in enumerate(row, start=1):
        expected = math.exp(_reference_min_logprob(chat, "\n\n".join(steps[:k])))
        assert estimate.median == pytest.approx(expected, rel=1e-4)
    # The weakest link of a longer prefix is never stronger than that of its head.
    assert row[0].median >= row[1].median >= row[2].median


def test_a_wrong_step_scores_below_the_right_one(chat: ChatLlamaCpp) -> None:
    prm = TokenConfidencePRM(policy=chat, examples=EXAMPLES)
    right, wrong, question_alone = prm.score(QUESTION, [["3 + 4 = 7"], ["3 + 4 = 9"], []])
    assert right[0].median > wrong[0].median
    assert question_alone[0].median == 1.0  # nothing written yet to doubt


def test_scoring_leaves_the_policy_generating_as_before(chat: ChatLlamaCpp) -> None:
    """The PRM shares the policy's context: its prompt cache must stay consistent."""
    question = parse_input("What is 5 + 2?", examples=EXAMPLES)
    before = chat.invoke(question.messages).text
    TokenConfidencePRM(policy=chat, examples=EXAMPLES).score(
        "What is 5 + 2?", [["5 + 2 = 8", "The answer is 8."], ["5 + 3 = 8"]]
    )
    assert chat.invoke(question.messages).text == before
    assert chat.invoke([*question.messages, AIMessage("5 + 2 = 7")]).text  # a prefill too


def test_known_prefixes_are_not_evaluated_again(
    chat: ChatLlamaCpp, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[int] = []
    real = confidence_module.token_logprobs

    def counting(llama: object, tokens: list[int], start: int) -> list[float]:
        passes.append(len(tokens))
        return real(llama, tokens, start)

    monkeypatch.setattr(confidence_module, "token_logprobs", counting)
    prm = TokenConfidencePRM(policy=chat, examples=EXAMPLES)
    first = prm.score(QUESTION, [["3 + 4 = 7", "7 * 2 = 14"], ["3 + 4 = 8"]])
    assert len(passes) == 2  # one pass per chain: "3 + 4 = 7" is read off the longer prefix
    again = prm.score(QUESTION, [["3 + 4 = 7", "7 * 2 = 14"], ["3 + 4 = 8"]])
    assert len(passes) == 2 and again == first


def test_a_prefix_longer_than_the_context_is_a_typed_error() -> None:
    prm = TokenConfidencePRM(policy=ChatLlamaCpp(n_ctx=256))
    with pytest.raises(ContextLengthExceededError):
        prm.score(QUESTION, [["3 + 4 = 7 " * 100]])


def test_scoring_is_a_traced_prm_run(chat: ChatLlamaCpp) -> None:
    collector = RunCollector()
    TokenConfidencePRM(policy=chat).score(QUESTION, [["3 + 4 = 7"]], {"callbacks": [collector]})
    assert collector.root().name == "TokenConfidencePRM"


def test_rescore_command_gives_records_the_confidence_scores(tmp_path: Path) -> None:
    """``calibrate rescore --prm confidence`` keeps the labels and replaces the raw scores."""
    import subprocess
    import sys

    from langchain_adaptive.calibration._records import CalibrationRecord
    from langchain_adaptive.evaluation.collect import read_records

    [problem] = arithmetic_suite(1, seed=0, levels=("steps2",))
    assert problem.solution is not None
    first = problem.solution.split("\n\n")[0]
    records = [
        CalibrationRecord(question_id=problem.id, trajectory=0, k=k, num_steps=2, prefix=prefix,
                          complete=False, raw_score=0.5, successes=s, trials=4,
                          trajectory_correct=True)
        for k, prefix, s in [(0, "", 1), (1, first, 3)]
    ]  # fmt: skip
    data = tmp_path / "records.jsonl"
    data.write_text("".join(r.model_dump_json() + "\n" for r in records))
    out = tmp_path / "rescored.jsonl"
    command = [
        sys.executable, "-m", "langchain_adaptive.cli", "calibrate", "rescore",
        "--data", str(data), "--levels", "steps2", "--per-level", "1",
        "--prm", "confidence", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=300)
    rescored = read_records(out)
    assert [(r.key, r.successes) for r in rescored] == [(r.key, r.successes) for r in records]
    assert rescored[0].raw_score == 1.0 and 0.0 < rescored[1].raw_score < 1.0
    expected = (
        TokenConfidencePRM(policy=ChatLlamaCpp(), examples=[])
        .score(problem.question, [[first]])[0][0]
        .median
    )
    assert rescored[1].raw_score == pytest.approx(expected, rel=1e-4)


def test_split_prm_budgets_on_the_probe_and_selects_by_confidence() -> None:
    """The replayed configuration, live: probe estimates budget, token confidence selects."""
    from langchain_adaptive import AdaptiveBestOfN, AdaptiveReasoningRunnable, SplitPRM
    from langchain_adaptive.integrations.llamacpp import ProbePRM

    chat = ChatLlamaCpp(seed=5)
    probe = ProbePRM()
    prm = SplitPRM(question_prm=probe, step_prm=TokenConfidencePRM(policy=chat))
    strategy = AdaptiveBestOfN(selection="prm", unreachable="floor", floor_samples=2)
    reasoner = AdaptiveReasoningRunnable(
        model=chat, prm=prm, strategy=strategy, max_samples=4, max_tokens_per_sample=48
    )
    collector = RunCollector()
    result = reasoner.invoke("What is 37 * 48?", {"callbacks": [collector]})

    assert result.question_estimate == probe.estimate_question("What is 37 * 48?")
    assert 1 <= result.budget.samples_used <= 4
    scored = [c for c in result.candidates if c.score is not None]
    assert scored and all(0.0 < c.score <= 1.0 for c in scored)
    assert result.selected_index == max(
        range(len(result.candidates)), key=lambda i: result.candidates[i].score or -1.0
    )
    splits = [r for r in collector.root().child_runs if r.name == "SplitPRM"]
    assert {child.name for run in splits for child in run.child_runs} == {
        "ProbePRM",
        "TokenConfidencePRM",
    }


@pytest.mark.parametrize("documented", ["TokenConfidencePRM", "SplitPRM"])
def test_the_docstring_examples_run(documented: str) -> None:
    import re
    import textwrap

    import langchain_adaptive

    cls = TokenConfidencePRM if documented == "TokenConfidencePRM" else langchain_adaptive.SplitPRM
    [block] = re.findall(r"code-block:: python\n\n(.*?)\n\s*\"\"\"", cls.__doc__ + '"""', re.S)
    assert "prm = " in block  # the example itself, not an empty match
    exec(textwrap.dedent(block), {})


def test_self_confidence_prm_reads_the_logprobs_chat_llamacpp_reports() -> None:
    """The model-agnostic scorer on the real decoder: the logprobs the sampler reported."""
    from langchain_adaptive import AdaptiveReasoningRunnable
    from langchain_adaptive.prm import SelfConfidencePRM

    sampler = ChatLlamaCpp(seed=0, temperature=0.7, max_tokens=24, logprobs=True)
    reasoner = AdaptiveReasoningRunnable(
        model=sampler,
        prm=SelfConfidencePRM(),
        strategy="sequential_ias_1",
        target_confidence=0.9,
        max_samples=3,
        max_tokens_per_sample=24,
    )
    result = reasoner.invoke(QUESTION, {"max_concurrency": 1})
    assert 1 <= result.budget.samples_used <= 3
    for candidate in result.candidates:
        logprobs = candidate.token_logprobs
        assert logprobs is not None and len(logprobs) == candidate.usage.output_tokens
        assert all(lp <= 0.0 for lp in logprobs)
        last = candidate.step_estimates[-1]  # type: ignore[index]
        assert last.raw_score == pytest.approx(float(np.mean(logprobs)))
        assert candidate.score == pytest.approx(math.exp(float(np.mean(logprobs))))
