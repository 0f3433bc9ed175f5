"""ProbeHead: PCA of embeddings plus a calibrator, fitted and reloaded."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_adaptive.calibration._baselines import PlattCalibrator
from langchain_adaptive.calibration._probe import ProbeHead
from langchain_adaptive.errors import CalibrationError


def synthetic(n: int = 400, dim: int = 24, seed: int = 0):
    """Success probability driven by one direction of the embedding."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, dim))
    embeddings[:, 0] *= 4.0  # the informative direction has the most variance
    p = 1.0 / (1.0 + np.exp(-embeddings[:, 0]))
    trials = np.full(n, 8)
    successes = rng.binomial(trials, p)
    features = [[0.0, 3.0]] * n
    return embeddings, features, successes, trials, p


def test_probe_learns_the_informative_direction() -> None:
    pytest.importorskip("torch")
    from langchain_adaptive.calibration._quantile import QuantileCalibrator

    embeddings, features, successes, trials, p = synthetic()
    head = ProbeHead(dims=4, calibrator=QuantileCalibrator(seed=0)).fit(
        embeddings[:300], features[:300], successes[:300], trials[:300]
    )
    predicted = np.array([e.median for e in head.predict(embeddings[300:], features[300:])])
    assert np.corrcoef(predicted, p[300:])[0, 1] > 0.9
    assert head.embedding_size == 24


def test_probe_round_trip_and_shape_checks(tmp_path) -> None:
    pytest.importorskip("torch")
    from langchain_adaptive.calibration._quantile import QuantileCalibrator

    embeddings, features, successes, trials, _ = synthetic(n=100)
    head = ProbeHead(dims=3, calibrator=QuantileCalibrator(epochs=50), metadata={"policy": "toy"})
    head.fit(embeddings, features, successes, trials)
    loaded = ProbeHead.load(head.save(tmp_path / "probe"))
    assert loaded.metadata == {"policy": "toy"}
    before = [e.quantiles for e in head.predict(embeddings[:5], features[:5])]
    after = [e.quantiles for e in loaded.predict(embeddings[:5], features[:5])]
    assert before == after
    with pytest.raises(CalibrationError, match="another model"):
        loaded.predict(embeddings[:2, :10], features[:2])
    with pytest.raises(CalibrationError, match="NaN"):
        loaded.predict(np.full((1, 24), np.nan), features[:1])


def test_a_calibrator_that_ignores_features_is_refused() -> None:
    embeddings, features, successes, trials, _ = synthetic(n=50)
    with pytest.raises(CalibrationError, match="ignores features"):
        ProbeHead(calibrator=PlattCalibrator()).fit(embeddings, features, successes, trials)


def test_unfitted_and_corrupt_probes(tmp_path) -> None:
    with pytest.raises(CalibrationError, match="not fitted"):
        ProbeHead(calibrator=PlattCalibrator()).predict([[0.0]], [[0.0, 0.0]])
    (tmp_path / "probe.json").write_text('{"kind": "something else"}')
    with pytest.raises(CalibrationError):
        ProbeHead.load(tmp_path)


def test_a_head_that_uses_the_score_adds_the_embedding_to_it(tmp_path) -> None:
    """The score carries one signal and the embedding another: the head needs both."""
    pytest.importorskip("torch")
    from langchain_adaptive.calibration._quantile import QuantileCalibrator

    rng = np.random.default_rng(1)
    embeddings, features, _, trials, _ = synthetic(n=600)
    score_logit = rng.normal(scale=2.0, size=600)
    raw = 1.0 / (1.0 + np.exp(-score_logit))
    p = 1.0 / (1.0 + np.exp(-(embeddings[:, 0] + score_logit)))
    successes = rng.binomial(trials, p)

    def fitted(uses_score: bool) -> ProbeHead:
        head = ProbeHead(
            dims=4, uses_score=uses_score, calibrator=QuantileCalibrator(seed=0, epochs=150)
        )
        scores = raw[:450] if uses_score else None
        return head.fit(
            embeddings[:450], features[:450], successes[:450], trials[:450], raw_scores=scores
        )

    with_score = fitted(True)
    estimates = with_score.predict(embeddings[450:], features[450:], raw[450:])
    assert [e.raw_score for e in estimates] == pytest.approx(raw[450:])
    without = fitted(False).predict(embeddings[450:], features[450:])

    def brier(rows) -> float:
        return float(np.mean((np.array([e.expected for e in rows]) - p[450:]) ** 2))

    assert brier(estimates) < 0.5 * brier(without)

    loaded = ProbeHead.load(with_score.save(tmp_path / "probe"))
    assert loaded.uses_score
    again = loaded.predict(embeddings[450:455], features[450:455], raw[450:455])
    for reloaded, original in zip(again, estimates[:5], strict=True):
        assert list(reloaded.quantiles.values()) == pytest.approx(list(original.quantiles.values()))
    with pytest.raises(CalibrationError, match="pass raw_scores"):
        loaded.predict(embeddings[:2], features[:2])
    with pytest.raises(CalibrationError, match="3 raw scores for 2"):
        loaded.predict(embeddings[:2], features[:2], raw[:3])
    with pytest.raises(CalibrationError, match="do not pass raw_scores"):
        fitted(False).predict(embeddings[:2], features[:2], raw[:2])
