"""Held-out halves: split a pool's questions, fit a calibrator on one half, report on the other.

A calibrator fitted on the questions it is then judged on flatters itself.
:func:`split_questions` cuts a set of question ids into two halves that depend
only on the ids and a seed (not on file order), so a calibrator fitted on one
half by one command and a replay of the other half by another agree on which
is which; :func:`fit_pool_calibrator` fits one on recorded samples (a
sample's final score against its correct flag, grouped by question), the
whole-solution calibration that an imported reward or logprob score needs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import QuestionPool

if TYPE_CHECKING:
    from langchain_adaptive.calibration import Calibrator

Half = Literal["train", "test"]
CalibratorKind = Literal["identity", "platt", "isotonic", "histogram"]
CALIBRATOR_KINDS: tuple[CalibratorKind, ...] = ("identity", "platt", "isotonic", "histogram")
"""What a pool calibrator may be: the numpy calibrators, which read one score."""


def split_questions(ids: Iterable[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """A deterministic half split of question ids: ``(train, test)``.

    Each id is ranked by a SHA-256 hash of ``seed`` and the id; the first
    half (rounded up) is ``train``. The split depends only on the set of ids
    and the seed, not on their order, so every tool that splits the same ids
    with the same seed gets the same halves. Each half keeps the input order.

    Raises:
        ConfigurationError: An id appears twice.

    Example:
        >>> train, test = split_questions([f"q{i}" for i in range(10)], seed=1)
        >>> len(train), len(test), sorted(train + test) == sorted(f"q{i}" for i in range(10))
        (5, 5, True)
    """
    ids = list(ids)
    if len(set(ids)) < len(ids):
        raise ConfigurationError("question ids must be unique to split them")
    ranked = sorted(ids, key=lambda qid: (_rank(qid, seed), qid))
    train = set(ranked[: (len(ranked) + 1) // 2])
    return [q for q in ids if q in train], [q for q in ids if q not in train]


def _rank(qid: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\x00{qid}".encode()).hexdigest()


def read_question_ids(path: str | os.PathLike[str]) -> list[str]:
    """Question ids from a text file, one a line (blank lines and ``#`` comments skipped).

    Raises:
        ConfigurationError: The file cannot be read, or names no question.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"cannot read question ids from {path}: {error}") from error
    ids = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not ids:
        raise ConfigurationError(f"{path} names no question id")
    return ids


def select_questions(
    pools: Sequence[QuestionPool],
    *,
    split: Half | None = None,
    seed: int = 0,
    ids: Sequence[str] | None = None,
) -> tuple[list[QuestionPool], list[QuestionPool]]:
    """The chosen questions and the rest, each in file order: ``(chosen, other)``.

    ``ids`` keeps the named questions; ``split`` then keeps one half of those
    (:func:`split_questions` over their ids). ``other`` is every question not
    chosen: where a calibrator fitted for the chosen ones must be fitted.

    Raises:
        ConfigurationError: An id names no question of the pools, or nothing
            is chosen.
    """
    chosen = list(pools)
    if ids is not None:
        known = {pool.id for pool in pools}
        unknown = [qid for qid in ids if qid not in known]
        if unknown:
            raise ConfigurationError(
                f"{len(unknown)} question id(s) are not in the pools (e.g. {unknown[0]!r})"
            )
        wanted = set(ids)
        chosen = [pool for pool in chosen if pool.id in wanted]
    if split is not None:
        train, test = split_questions([pool.id for pool in chosen], seed)
        keep = set(train if split == "train" else test)
        chosen = [pool for pool in chosen if pool.id in keep]
    if not chosen:
        raise ConfigurationError("no question left to evaluate after choosing the subset")
    picked = {pool.id for pool in chosen}
    return chosen, [pool for pool in pools if pool.id not in picked]


def calibration_data(
    pools: Sequence[QuestionPool], source: str
) -> tuple[list[float], list[float], list[str]]:
    """``(raw scores, correct flags, question ids)`` of every sample that ``source`` scored.

    A sample's score is the raw score of its last step estimate (a whole-solution
    score is a one-element list), or that estimate's median where no raw score
    was kept.

    Raises:
        ConfigurationError: No sample has step scores from ``source``.
    """
    raw: list[float] = []
    correct: list[float] = []
    groups: list[str] = []
    for pool in pools:
        for sample in pool.samples:
            estimates = sample.step_estimates.get(source)
            if not estimates:
                continue
            last = estimates[-1]
            raw.append(last.raw_score if last.raw_score is not None else last.median)
            correct.append(float(sample.correct))
            groups.append(pool.id)
    if not raw:
        raise ConfigurationError(
            f"no sample of the {len(pools)} question(s) has step scores from {source!r} to "
            "fit a calibrator on"
        )
    return raw, correct, groups


def fit_pool_calibrator(
    pools: Sequence[QuestionPool], source: str, kind: CalibratorKind, **fields: object
) -> Calibrator:
    """A calibrator of ``kind`` fitted on ``source``'s sample scores against the samples' grades.

    Each scored sample is one example with one trial (its correct flag), grouped
    by question. Any finite score is accepted except by ``identity``, which
    needs probabilities. ``fields`` go to the calibrator (e.g. ``n_bins``).

    Raises:
        ConfigurationError: An unknown kind, or no scored sample.
        CalibrationError: The fit refuses the data (too few examples, scores).
    """
    from langchain_adaptive.calibration import (
        HistogramBinningCalibrator,
        IdentityCalibrator,
        IsotonicCalibrator,
        PlattCalibrator,
    )

    classes = {
        "identity": IdentityCalibrator,
        "platt": PlattCalibrator,
        "isotonic": IsotonicCalibrator,
        "histogram": HistogramBinningCalibrator,
    }
    if kind not in classes:
        raise ConfigurationError(
            f"unknown calibrator kind {kind!r}; choose one of {', '.join(CALIBRATOR_KINDS)}"
        )
    raw, correct, groups = calibration_data(pools, source)
    metadata = {"source": source, "fitted_on": "recorded samples", "questions": len(pools)}
    calibrator = classes[kind](metadata=metadata, **fields)
    return calibrator.fit(raw, None, correct, [1.0] * len(raw), groups=groups)


__all__ = [
    "CALIBRATOR_KINDS",
    "calibration_data",
    "fit_pool_calibrator",
    "read_question_ids",
    "select_questions",
    "split_questions",
]
