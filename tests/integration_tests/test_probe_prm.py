"""ProbePRM on the real bundled SmolLM2: embeddings through llama.cpp, a head trained here."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("torch")

from langchain_adaptive.calibration.probe import ProbeHead
from langchain_adaptive.calibration.quantile import QuantileCalibrator
from langchain_adaptive.calibration.records import prefix_features
from langchain_adaptive.datasets import arithmetic_suite
from langchain_adaptive.errors import ContextLengthExceededError, ModelNotFoundError
from langchain_adaptive.integrations.llamacpp import LlamaCppEmbedder, ProbePRM
from langchain_adaptive.integrations.llamacpp.probe import BUNDLED_HEAD, probe_text

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


def test_embedder_rejects_text_longer_than_the_context() -> None:
    with pytest.raises(ContextLengthExceededError):
        LlamaCppEmbedder(n_ctx=32).embed(["one two three " * 40])


def test_embedder_reuses_recent_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beam search re-scores old prefixes: each text is embedded once while it is cached."""
    embedder = LlamaCppEmbedder(cache_size=2)
    llama = embedder._shared.llama
    embedded: list[str] = []
    real = llama.embed

    def counting(texts: list[str], **kwargs: object) -> object:
        embedded.extend(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(llama, "embed", counting)
    first = embedder.embed(["What is 2 + 3?", "2 + 3 = 5"])
    again = embedder.embed(["2 + 3 = 5", "What is 2 + 3?", "2 + 3 = 5"])
    assert embedded == ["What is 2 + 3?", "2 + 3 = 5"]
    assert again == [first[1], first[0], first[1]]
    assert first[0] != first[1]

    embedder.embed(["The answer is 5."])  # evicts the least recently used text
    embedder.embed(["What is 2 + 3?", "2 + 3 = 5"])
    assert embedded[2:] == ["The answer is 5.", "2 + 3 = 5"]


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
    from langchain_adaptive.prm.judge import LLMJudgePRM

    auto = default_reasoner()
    expected = ProbePRM if (BUNDLED_HEAD / "probe.json").is_file() else LLMJudgePRM
    assert isinstance(auto.prm, expected)
    assert isinstance(default_reasoner(prm="judge").prm, LLMJudgePRM)
    with pytest.raises(ConfigurationError, match="prm must be"):
        default_reasoner(prm="oracle")  # type: ignore[arg-type]
