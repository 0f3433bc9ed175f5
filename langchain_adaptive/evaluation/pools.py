"""Recorded sample pools: every sample a model drew for a question, with all that is known.

Recording once and replaying many strategies on the same samples is how the
harness compares policies side by side without paying the model again. A pool
file is JSONL: the first line is a :class:`PoolHeader` (which model and PRMs
recorded it, with what settings), then one :class:`QuestionPool` per line,
appended as each question finishes, so an interrupted recording resumes where
it stopped and loses at most the questions in flight.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_adaptive._jsonl import parse_jsonl_lines
from langchain_adaptive.answers import AnswerEquivalence, answers_match
from langchain_adaptive.errors import ConfigurationError, DatasetError
from langchain_adaptive.results import AdaptiveResult, SuccessEstimate

if TYPE_CHECKING:
    from langchain_adaptive.calibration import Calibrator

logger = logging.getLogger(__name__)

POOL_FORMAT: Final = "langchain-adaptive/pools"

ORACLE = "oracle"
"""The estimator name that replay answers with each question's true success rate."""


class PoolMismatchError(ConfigurationError):
    """A pool file was recorded with another model, PRM or settings than the ones named."""


class PoolHeader(BaseModel):
    """What recorded a pool file; a resumed or replayed file must match it."""

    format: Literal["langchain-adaptive/pools"] = POOL_FORMAT
    version: Literal[1] = 1
    model: str = Field(min_length=1)
    """The policy model's identifying name (e.g. the GGUF file or the server's model id)."""
    prms: list[str] = Field(default_factory=list)
    """Names of the PRMs whose estimates each pool stores."""
    samples_per_question: int = Field(ge=1)
    max_tokens_per_sample: int = Field(ge=1)
    temperature: float | None = None
    equivalence: Literal["math", "exact"] = "math"
    """How answers are grouped for votes: math-verify equivalence or exact text."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Anything else that shaped the samples (instruction, system prompt, dataset)."""

    def check_matches(self, other: PoolHeader, path: Path) -> None:
        """Raise :class:`PoolMismatchError` naming every field that differs."""
        mine, theirs = self.model_dump(), other.model_dump()
        differ = [key for key in mine if mine[key] != theirs[key]]
        if differ:
            details = "; ".join(f"{k}: file has {mine[k]!r}, run has {theirs[k]!r}" for k in differ)
            raise PoolMismatchError(
                f"{path} was recorded with different settings ({details}); "
                "record into another file or rerun with the same settings"
            )


class RecordedSample(BaseModel):
    """One sampled solution: text, grade, cost, and each PRM's step estimates."""

    model_config = ConfigDict(frozen=True)

    text: str
    steps: list[str] = Field(default_factory=list)
    answer: str | None = None
    correct: bool = False
    output_tokens: int = Field(default=0, ge=0)
    input_tokens: int = Field(default=0, ge=0)
    latency_s: float = Field(default=0.0, ge=0.0)
    """Wall time attributed to this sample (its call's time divided by the samples it drew)."""
    finish_reason: str | None = None
    step_estimates: dict[str, list[SuccessEstimate]] = Field(default_factory=dict)
    """PRM name -> the estimate after each step (absent: that PRM did not score samples)."""
    token_confidences: list[float] | None = None
    """Each generated token's confidence ``C_i`` (the negative mean top-k logprob), recorded
    with ``bench record --record-logprobs K``: what replays DeepConf's online stop exactly."""


class QuestionPool(BaseModel):
    """All recorded samples of one question, in drawing order."""

    id: str = Field(min_length=1)
    question: str
    gold: str | None = None
    level: str | None = None
    question_estimates: dict[str, SuccessEstimate] = Field(default_factory=dict)
    """PRM name -> the estimate for the question alone (what IAS budgets on)."""
    samples: list[RecordedSample] = Field(min_length=1)

    @property
    def success_rate(self) -> float:
        """Fraction of recorded samples that are correct: the oracle's ``p``."""
        return sum(s.correct for s in self.samples) / len(self.samples)

    def estimators(self) -> set[str]:
        """Names of the estimators replay can budget this question with."""
        return {*self.question_estimates, ORACLE}

    @classmethod
    def from_result(
        cls, result: AdaptiveResult, *, id: str, estimator: str = "prm", level: str | None = None
    ) -> QuestionPool:
        """The pool of a live run's candidates: replaying it must make the same decisions.

        The PRM's estimates are stored under ``estimator``. Raises
        ``ValueError`` when the result has no candidates.
        """
        per_sample = result.elapsed_s / max(1, len(result.candidates))
        samples = [
            RecordedSample(
                text=c.text,
                steps=c.steps,
                answer=c.answer,
                correct=bool(c.correct),
                output_tokens=c.usage.output_tokens,
                input_tokens=c.usage.input_tokens,
                latency_s=per_sample,
                finish_reason=c.finish_reason,
                step_estimates={} if c.step_estimates is None else {estimator: c.step_estimates},
            )
            for c in result.candidates
        ]
        estimates = (
            {} if result.question_estimate is None else {estimator: result.question_estimate}
        )
        return cls(
            id=id,
            question=result.question,
            gold=result.gold,
            level=level,
            question_estimates=estimates,
            samples=samples,
        )


class PoolFile(BaseModel):
    """A pool file's header and its questions."""

    header: PoolHeader
    pools: list[QuestionPool]


def exact_match(a: str, b: str) -> bool:
    """Equal up to whitespace: how expressions (e.g. Game-of-24 answers) are voted on."""
    return "".join(a.split()) == "".join(b.split())


def answer_equivalence(kind: Literal["math", "exact"]) -> AnswerEquivalence:
    """The answer equivalence a pool header names."""
    return exact_match if kind == "exact" else answers_match


def read_pools(
    path: str | os.PathLike[str],
    *,
    model: str | None = None,
    prms: Iterable[str] = (),
) -> PoolFile:
    """Read a pool file; check it was recorded by ``model`` and holds ``prms`` when named.

    Lines after the header that do not parse (e.g. a crash's truncated last
    line) are skipped with a warning that counts them; a question id recorded
    twice keeps its first pool.

    Raises:
        FileNotFoundError: No such file.
        DatasetError: The first line is not a pool header.
        PoolMismatchError: The file was recorded by another model, or lacks a PRM.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    header = _read_header(path, lines[0] if lines else b"")
    pools = parse_jsonl_lines(path, lines[1:], QuestionPool, first_line=2)
    unique: dict[str, QuestionPool] = {}
    for pool in pools:
        unique.setdefault(pool.id, pool)
    if len(unique) < len(pools):
        logger.warning(
            "%s: %d question(s) recorded twice; kept the first of each",
            path,
            len(pools) - len(unique),
        )
    if model is not None and header.model != model:
        raise PoolMismatchError(f"{path} was recorded with model {header.model!r}, not {model!r}")
    missing = sorted(set(prms) - set(header.prms))
    if missing:
        raise PoolMismatchError(
            f"{path} has no estimates from PRM(s) {missing}; it was recorded with {header.prms}"
        )
    return PoolFile(header=header, pools=list(unique.values()))


def read_pool_header(path: str | os.PathLike[str]) -> PoolHeader:
    """Only the header of a pool file (its first line), without reading the pools.

    Raises:
        FileNotFoundError: No such file.
        DatasetError: The first line is not a pool header.
    """
    path = Path(path)
    with path.open("rb") as handle:
        return _read_header(path, handle.readline().rstrip(b"\n"))


def write_pools(
    path: str | os.PathLike[str], header: PoolHeader, pools: Sequence[QuestionPool]
) -> Path:
    """Write a whole pool file at once (e.g. one converted from recorded samples)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(header.model_dump_json() + "\n")
        for pool in pools:
            handle.write(pool.model_dump_json() + "\n")
    tmp.replace(path)
    return path


def add_calibrated_estimates(
    pools: Sequence[QuestionPool],
    source: str,
    calibrator: Calibrator,
    name: str,
    *,
    placeholder: bool | None = None,
) -> list[QuestionPool]:
    """Copies of ``pools`` with estimator ``name``: ``calibrator`` applied to ``source``'s scores.

    Calibrating recorded raw scores gives exactly what a
    :class:`~langchain_adaptive.prm.CalibratedPRM` over the same PRM would have
    returned live (the same features, one batched ``predict``), so any number
    of calibrators can be compared on one recording.

    A scorer that cannot score the question alone (a reward model, a
    self-confidence signal) has step scores but no question estimate; then
    only the step scores are calibrated and ``name`` has no question estimate
    either. A question estimate that is a *placeholder* (the same on every
    question, such as the token-confidence PRM's 1.0 before any token is
    written) says nothing about the question: calibrating it as a score would
    put it where the most confident samples sit (an isotonic map's top block),
    so it maps to the calibrator's base rate instead, the chance of a sample of
    an unknown question. ``placeholder`` forces that reading either way;
    ``None`` detects it (at least two questions whose ``source`` estimates are
    all equal). An identity calibrator keeps a placeholder as it is.

    Raises:
        ConfigurationError: ``name`` exists already, a pool has neither a
            question estimate nor step scores from ``source``, or a placeholder
            meets a calibrator with no recorded base rate.
    """
    from langchain_adaptive.calibration import IdentityCalibrator
    from langchain_adaptive.prm._calibrated import calibrate_scores

    for pool in pools:
        if name in pool.question_estimates or any(name in s.step_estimates for s in pool.samples):
            raise ConfigurationError(f"question {pool.id!r} already has an estimator {name!r}")
        if source not in pool.question_estimates and not any(
            source in s.step_estimates for s in pool.samples
        ):
            raise ConfigurationError(
                f"question {pool.id!r} has no estimates from {source!r} to calibrate, neither "
                f"for the question nor for its samples; it has {sorted(_estimator_names(pool))}"
            )
    if placeholder is None:
        per_question = [pool.question_estimates.get(source) for pool in pools]
        placeholder = len(per_question) > 1 and all(
            a is not None and a == per_question[0] for a in per_question
        )
    base = None
    if placeholder and calibrator.base_rate is not None:
        base = calibrator.base_estimate()
    elif placeholder and not isinstance(calibrator, IdentityCalibrator):
        raise ConfigurationError(
            f"{source!r}'s question estimates are placeholders (the same on every question), "
            f"which map to the calibrator's base rate, but this {type(calibrator).__name__} "
            "records none: refit it with this version"
        )
    out = []
    for pool in pools:
        alone = pool.question_estimates.get(source)
        # the question's own estimate is calibrated as one more row when no base rate stands in
        question_row = [alone] if alone is not None and base is None else []
        scored = [s for s in pool.samples if source in s.step_estimates]
        solutions = [*([[]] if question_row else []), *(s.steps for s in scored)]
        rows = [
            *([question_row] if question_row else []),
            *(s.step_estimates[source] for s in scored),
        ]
        calibrated = iter(calibrate_scores(calibrator, solutions, rows))
        estimates = dict(pool.question_estimates)
        if question_row:
            estimates[name] = next(calibrated)[0]
        elif alone is not None and base is not None:
            estimates[name] = base
        samples = [
            s.model_copy(update={"step_estimates": {**s.step_estimates, name: next(calibrated)}})
            if source in s.step_estimates
            else s
            for s in pool.samples
        ]
        out.append(pool.model_copy(update={"question_estimates": estimates, "samples": samples}))
    return out


def _estimator_names(pool: QuestionPool) -> set[str]:
    return {*pool.question_estimates, *(n for s in pool.samples for n in s.step_estimates)}


def _read_header(path: Path, line: bytes) -> PoolHeader:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}:1: not a pool file (the first line is not JSON)", path=str(path), line=1
        ) from error
    if not isinstance(data, dict) or data.get("format") != POOL_FORMAT:
        raise DatasetError(
            f"{path}:1: not a pool file (the first line must be a header with "
            f"format {POOL_FORMAT!r})",
            path=str(path),
            line=1,
        )
    try:
        return PoolHeader.model_validate(data)
    except ValidationError as error:
        raise DatasetError(
            f"{path}:1: invalid pool header: {error}", path=str(path), line=1
        ) from error


__all__ = [
    "ORACLE",
    "POOL_FORMAT",
    "PoolFile",
    "PoolHeader",
    "PoolMismatchError",
    "QuestionPool",
    "RecordedSample",
    "add_calibrated_estimates",
    "answer_equivalence",
    "exact_match",
    "read_pool_header",
    "read_pools",
    "write_pools",
]
