"""Synthetic calibration data with a known truth, shared by the calibration tests.

The raw score is overconfident: its logit is the true logit stretched by
``1 / SLOPE`` and shifted, so the true success probability is
``sigmoid(SLOPE * logit(raw) + INTERCEPT)`` and Platt scaling should find
``(SLOPE, INTERCEPT)``. Rollout outcomes are drawn from that probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from langchain_adaptive.calibration._records import CalibrationRecord
from langchain_adaptive.calibration._utils import sigmoid

SLOPE = 0.5
INTERCEPT = -0.5
TRIALS = 8


@dataclass(frozen=True)
class Synthetic:
    """Arrays of a synthetic calibration set and the records built from them."""

    raw: np.ndarray
    features: np.ndarray
    successes: np.ndarray
    trials: np.ndarray
    groups: np.ndarray
    true_p: np.ndarray
    records: list[CalibrationRecord]

    @property
    def rates(self) -> np.ndarray:
        return self.successes / self.trials


def make_synthetic(n_questions: int, seed: int, prefixes: int = 4) -> Synthetic:
    """``n_questions`` questions with ``prefixes`` prefixes each (k = 0 .. prefixes - 1)."""
    rng = np.random.default_rng(seed)
    n = n_questions * prefixes
    true_logit = rng.normal(0.0, 1.5, n)
    raw = sigmoid((true_logit - INTERCEPT) / SLOPE)
    true_p = sigmoid(true_logit)
    trials = np.full(n, TRIALS)
    successes = rng.binomial(trials, true_p)
    records = []
    for i in range(n):
        k = i % prefixes
        prefix = "step. " * (k * int(rng.integers(1, 6)))
        records.append(
            CalibrationRecord(
                question_id=f"s{seed}-q{i // prefixes}",
                trajectory=0,
                k=k,
                num_steps=prefixes - 1,
                prefix=prefix,
                complete=False,
                raw_score=float(raw[i]),
                successes=int(successes[i]),
                trials=TRIALS,
                trajectory_correct=bool(rng.random() < true_p[i]),
            )
        )
    return Synthetic(
        raw=np.array([r.raw_score for r in records]),
        features=np.array([r.features for r in records]),
        successes=successes.astype(float),
        trials=trials.astype(float),
        groups=np.array([r.question_id for r in records]),
        true_p=true_p,
        records=records,
    )


@pytest.fixture(scope="session")
def train_data() -> Synthetic:
    return make_synthetic(n_questions=300, seed=0)


@pytest.fixture(scope="session")
def held_out() -> Synthetic:
    return make_synthetic(n_questions=750, seed=1)


@pytest.fixture(scope="session")
def small_data() -> Synthetic:
    return make_synthetic(n_questions=15, seed=2)
