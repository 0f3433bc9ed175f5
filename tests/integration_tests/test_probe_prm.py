"""ProbePRM on the real bundled SmolLM2: embeddings through llama.cpp, a head trained here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableConfig

pytest.importorskip("llama_cpp")
pytest.importorskip("torch")

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.calibration._probe import ProbeHead
from langchain_adaptive.calibration._quantile import QuantileCalibrator
from langchain_adaptive.calibration._records import prefix_features
from langchain_adaptive.errors import (
    ConfigurationError,
    ContextLengthExceededError,
    ModelNotFoundError,
)
from langchain_adaptive.evaluation.datasets import arithmetic_suite
from langchain_adaptive.integrations.llamacpp import LlamaCppEmbedder, ProbePRM
from langchain_adaptive.integrations.llamacpp._probe import BUNDLED_HEAD, probe_text
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]


@pytest.fixture(scope="module")
def head_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A head trained to tell one-digit sums (always solved) from 3-digit products (never)."""
    problems = arithmetic_suite(12, seed=1, levels=("add1", "mul3"))
    texts = [probe_text(p.question, "") for p in problems]
    embeddings = LlamaCppEmbedder().embed(texts)
    successes = [8 if p.level == "add1" else 0 for p in problems]
    head = ProbeHead(dims=4, calibrator=QuantileCalibrator(seed=0, min_examples=10))
    head.fit(embeddings, [prefix_features(0, "")] * len(problems), successes, [8] * len(problems))
    return head.save(tmp_path_factory.mktemp("probe"))


def test_probe_prm_ranks_what_it_was_trained_on(head_dir: Path) -> None:
    prm = ProbePRM(head_path=str(head_dir))
    easy = prm.estimate_question("What is 4 + 3?")
    hard = prm.estimate_question("What is 512 * 873?")
    assert easy.median > hard.median
    assert 0.0 <= easy.lower <= easy.median <= 1.0


def test_probe_prm_scores_every_step(head_dir: Path) -> None:
    scores = ProbePRM(head_path=str(head_dir)).score(
        "What is 4 + 3?", [["4 + 3 = 7", "The answer is 7."], []]
    )
    assert [len(row) for row in scores] == [2, 1]


def _count_passes(embedder: LlamaCppEmbedder, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts ``embedder`` evaluates from now on, one entry a model pass."""
    llama = embedder._shared.llama
    passes: list[str] = []
    real = llama.embed

    def counting(text: str, **kwargs: object) -> object:
        passes.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(llama, "embed", counting)
    return passes


def test_embedder_rejects_text_longer_than_the_context() -> None:
    with pytest.raises(ContextLengthExceededError):
        LlamaCppEmbedder(n_ctx=32).embed(["one two three " * 40])


def test_embedder_reuses_recent_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beam search re-scores old prefixes: each text is embedded once while it is cached."""
    embedder = LlamaCppEmbedder(cache_size=2)
    embedded = _count_passes(embedder, monkeypatch)
    first = embedder.embed(["What is 2 + 3?", "2 + 3 = 5"])
    again = embedder.embed(["2 + 3 = 5", "What is 2 + 3?", "2 + 3 = 5"])
    assert sorted(embedded) == ["2 + 3 = 5", "What is 2 + 3?"]
    assert again == [first[1], first[0], first[1]]
    assert first[0] != first[1]

    embedder.embed(["The answer is 5."])  # evicts the least recently used text
    embedder.embed(["What is 2 + 3?", "2 + 3 = 5"])
    assert embedded[2:] == ["The answer is 5.", "2 + 3 = 5"]


def test_prefix_chains_cost_one_pass_and_equal_llama_cpp_mean_pooling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llama_cpp
    import numpy as np

    question = "What is 2 + 6?"
    steps = ["2 + 6 = 8", "So the sum is 8.", "The answer is 8."]
    prefixes = [probe_text(question, STEP_JOINER.join(steps[:k])) for k in range(4)]
    other = probe_text("What is 9 * 9?", "9 * 9 = 81")
    embedder = LlamaCppEmbedder(cache_size=0)  # no cache: every call embeds afresh
    passes = _count_passes(embedder, monkeypatch)
    together = np.asarray(embedder.embed([*prefixes, other]))
    assert sorted(passes) == sorted([prefixes[-1], other])  # one pass a solution
    alone = np.asarray([embedder.embed([text])[0] for text in [*prefixes, other]])
    assert np.abs(together - alone).max() < 1e-5  # a vector does not depend on its company
    reference = llama_cpp.Llama(
        model_path=str(embedder.path),
        n_ctx=256,
        n_batch=256,
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        verbose=False,
    )
    pooled = np.asarray([reference.embed(text) for text in [*prefixes, other]])
    assert np.abs(together - pooled).max() < 1e-4 * np.abs(pooled).max()


def test_missing_head_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no probe head"):
        ProbePRM(head_path=str(tmp_path)).estimate_question("What is 1 + 1?")


@pytest.mark.skipif(not (BUNDLED_HEAD / "probe.json").is_file(), reason="no bundled head built")
def test_bundled_head_loads_and_scores() -> None:
    estimate = ProbePRM().estimate_question("What is 7 + 8?")
    assert 0.0 <= estimate.lower <= estimate.median <= 1.0


def test_default_reasoner_picks_its_prm() -> None:
    from langchain_adaptive.errors import ConfigurationError
    from langchain_adaptive.integrations.llamacpp import default_reasoner
    from langchain_adaptive.prm._judge import LLMJudgePRM

    auto = default_reasoner()
    expected = ProbePRM if (BUNDLED_HEAD / "probe.json").is_file() else LLMJudgePRM
    assert isinstance(auto.prm, expected)
    assert isinstance(default_reasoner(prm="judge").prm, LLMJudgePRM)
    with pytest.raises(ConfigurationError, match="prm must be"):
        default_reasoner(prm="oracle")  # type: ignore[arg-type]


class DigitsPRM(ProcessRewardModel):
    """A stand-in PRM whose raw score falls with the number of digits in the question."""

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        score = 1.0 / (1.0 + sum(c.isdigit() for c in question))
        return [
            [SuccessEstimate.point(score, raw_score=score)] * max(1, len(steps))
            for steps in solutions
        ]


def test_a_head_fitted_with_the_score_reads_its_prm(tmp_path: Path) -> None:
    """The paper's calibrator with the embedding as a feature: ProbePRM(prm=...) feeds the score."""
    problems = arithmetic_suite(12, seed=1, levels=("add1", "mul3"))
    prm = DigitsPRM()
    raw = [prm.estimate_question(p.question).raw_score for p in problems]
    head = ProbeHead(dims=4, uses_score=True, calibrator=QuantileCalibrator(seed=0, epochs=100))
    head.fit(
        LlamaCppEmbedder().embed([probe_text(p.question, "") for p in problems]),
        [prefix_features(0, "")] * len(problems),
        [8 if p.level == "add1" else 0 for p in problems],
        [8] * len(problems),
        raw_scores=raw,
    )
    head.save(tmp_path / "head")

    probe = ProbePRM(head_path=str(tmp_path / "head"), prm=prm)
    easy = probe.estimate_question("What is 4 + 3?")
    assert easy.raw_score == pytest.approx(1 / 3)  # the PRM's score is reported, not a placeholder
    assert easy.median > probe.estimate_question("What is 512 * 873?").median
    assert [len(row) for row in probe.score("What is 4 + 3?", [["4 + 3 = 7", "7"], []])] == [2, 1]
    with pytest.raises(ConfigurationError, match="pass prm="):
        ProbePRM(head_path=str(tmp_path / "head")).estimate_question("What is 4 + 3?")


def test_calibrate_commands_fit_and_compare_embedding_heads(tmp_path: Path) -> None:
    """fit-probe --with-score and eval --fit-embedding on a small records file."""
    from langchain_adaptive.calibration._records import CalibrationRecord
    from langchain_adaptive.cli import main

    problems = arithmetic_suite(10, seed=0, levels=("add1", "mul3"))
    records = [
        CalibrationRecord(
            question_id=p.id,
            trajectory=0,
            k=k,
            num_steps=1,
            prefix=prefix,
            complete=False,
            raw_score=0.6 if p.level == "add1" else 0.4,
            successes=3 if p.level == "add1" else 0,
            trials=4,
            trajectory_correct=p.level == "add1",
        )
        for p in problems
        for k, prefix in ((0, ""), (1, "Let us compute it."))
    ]
    data = tmp_path / "records.jsonl"
    data.write_text("".join(r.model_dump_json() + "\n" for r in records))
    common = ["--data", str(data), "--per-level", "10", "--levels", "add1,mul3"]
    fast = ["--dims", "4", "--no-select-by-cv"]
    assert (
        main(
            ["calibrate", "fit-probe", *common, *fast, "--with-score", "--out", str(tmp_path / "h")]
        )
        == 0
    )
    assert ProbeHead.load(tmp_path / "h").uses_score
    out = tmp_path / "report.json"
    args = ["calibrate", "eval", *common, *fast, "--fit", "platt", "--fit-embedding"]
    assert main([*args, "--probe", str(tmp_path / "h"), "--bootstrap", "0", "--out", str(out)]) == 0
    rows = [row["name"] for row in json.loads(out.read_text())["report"]["rows"]]
    assert rows == ["raw", "platt", "quantile+embedding", "probe"]
