"""Pydantic models for what flows through a run: estimates, candidates, budgets, results."""

from __future__ import annotations

import itertools
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

StopReason = Literal[
    "fixed_budget",
    "adaptive_budget",
    "consensus",
    "max_samples",
    "token_budget",
    "low_confidence_floor",
    "beams_finished",
    "max_steps",
    "answer_confident",
    "futile",
]
"""Why a strategy stopped drawing samples.

- ``fixed_budget``: a fixed-N strategy drew its N.
- ``adaptive_budget``: IAS drew the N its success estimate asked for.
- ``consensus``: a vote-based rule was confident the majority would not change.
- ``max_samples``: the sample cap stopped a strategy that wanted more.
- ``token_budget``: the generated-token cap stopped the run.
- ``low_confidence_floor``: the target was out of reach, so only a small floor was spent.
- ``beams_finished``: a step-level search ran until every kept beam finished.
- ``max_steps``: a step-level search reached its step limit with beams unfinished.
- ``answer_confident``: the calibrated chance that the answer returned now is correct
  reached the target.
- ``futile``: more samples were unlikely to turn the answer into a right one, so the
  run gave up early (the result is low confidence).
"""


class SuccessEstimate(BaseModel):
    """A (calibrated) estimate of the probability that a prefix leads to a correct answer.

    ``quantiles`` maps quantile levels to probabilities; an uncalibrated PRM gives
    a point estimate (every level the same value).

    Example:
        .. code-block:: python

            est = SuccessEstimate(quantiles={0.1: 0.2, 0.5: 0.4, 0.9: 0.7}, raw_score=0.9)
            est.lower, est.median  # (0.2, 0.4)
    """

    model_config = ConfigDict(frozen=True)

    quantiles: dict[float, float]
    """Quantile level -> success probability, levels in (0, 1), values in [0, 1]."""
    raw_score: float | None = None
    """The PRM's own score before calibration, kept so calibration can be audited."""
    mean: float | None = Field(default=None, ge=0.0, le=1.0)
    """The expected success probability, when the calibrator estimates it (the
    Brier-optimal point estimate; the median of a skewed rate can sit far from it)."""

    @field_validator("quantiles")
    @classmethod
    def _check_quantiles(cls, value: dict[float, float]) -> dict[float, float]:
        if not value:
            raise ValueError("a SuccessEstimate needs at least one quantile")
        for level, prob in value.items():
            if not 0.0 < level < 1.0:
                raise ValueError(f"quantile level {level} is not in (0, 1)")
            if not (isinstance(prob, int | float) and math.isfinite(prob)):
                raise ValueError(f"quantile {level} has non-finite value {prob!r}")
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"quantile {level} has value {prob} outside [0, 1]")
        ordered = dict(sorted(value.items()))
        probs = list(ordered.values())
        if any(hi < lo - 1e-9 for lo, hi in itertools.pairwise(probs)):
            raise ValueError(f"quantiles cross (a higher level has a lower value): {ordered}")
        return ordered

    @classmethod
    def point(cls, probability: float, raw_score: float | None = None) -> SuccessEstimate:
        """An uncalibrated estimate: every default level holds the same probability."""
        return cls(
            quantiles={0.1: probability, 0.5: probability, 0.9: probability},
            raw_score=probability if raw_score is None else raw_score,
        )

    @property
    def lower(self) -> float:
        """The lowest quantile: the conservative bound IAS budgets on."""
        return next(iter(self.quantiles.values()))

    @property
    def expected(self) -> float:
        """The mean when known, else the median: the point estimate for scoring rules."""
        return self.mean if self.mean is not None else self.median

    @property
    def median(self) -> float:
        """The estimate at level 0.5 (interpolated): what candidates are ranked by."""
        return self.at(0.5)

    def at(self, level: float) -> float:
        """The probability at a quantile level, linearly interpolated between known levels."""
        levels = list(self.quantiles)
        values = list(self.quantiles.values())
        if level <= levels[0]:
            return values[0]
        if level >= levels[-1]:
            return values[-1]
        for (lo, vlo), (hi, vhi) in zip(
            zip(levels, values, strict=True), zip(levels[1:], values[1:], strict=True), strict=True
        ):
            if lo <= level <= hi:
                return vlo + (vhi - vlo) * (level - lo) / (hi - lo)
        return values[-1]  # pragma: no cover - levels are sorted


class TokenUsage(BaseModel):
    """Tokens and calls spent; ``estimated`` marks counts not reported by the model."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    estimated: bool = False

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            model_calls=self.model_calls + other.model_calls,
            estimated=self.estimated or other.estimated,
        )


class Candidate(BaseModel):
    """One sampled solution with everything known about it."""

    index: int
    """Position in drawing order."""
    text: str
    steps: list[str] = Field(default_factory=list)
    answer: str | None = None
    """The extracted final answer, ``None`` when none could be found."""
    step_estimates: list[SuccessEstimate] | None = None
    """The PRM's estimate after each step; ``None`` when the candidate was not scored."""
    score: float | None = None
    """The aggregated PRM score used for selection."""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    finish_reason: str | None = None
    correct: bool | None = None
    """Whether ``answer`` matches the gold answer, when one was given."""
    beam_id: int | None = None
    """The :class:`Beam` this candidate is, when it came from a step-level search."""
    token_logprobs: list[float] | None = None
    """The policy's log-probability of each token it wrote, when the model reported them
    (e.g. ``ChatOpenAI(logprobs=True)``, ``ChatLlamaCpp(logprobs=True)``); what a
    self-confidence scorer reads."""
    token_confidences: list[float] | None = None
    """Each token's DeepConf confidence ``C_i`` (the negative mean top-k logprob), when
    the model reported top-k logprobs; what the ``deepconf`` strategy reads."""


class Beam(BaseModel):
    """One partial (or finished) solution in a step-level search, kept for inspection.

    Beams form a tree: every beam but the first-step ones extends its parent by
    one generated step, so a result's beams show what was tried, what the PRM
    thought of it, and what was pruned.
    """

    id: int
    """Position in creation order; unique within one run."""
    parent_id: int | None = None
    """The beam this one extends by one step; ``None`` for a first step."""
    steps: list[str] = Field(default_factory=list)
    """The solution so far, one reasoning step per item."""
    step_estimates: list[SuccessEstimate] | None = None
    """The PRM's estimate after each step; ``None`` until the beam is scored."""
    finished: bool = False
    """The solution ended: a final answer was stated, the model stopped, or max steps."""
    pruned: bool = False
    """Dropped by a selection round; its subtree was not explored further."""
    answer: str | None = None
    """The extracted final answer of a finished beam."""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    """What generating this beam's last step cost."""
    finish_reason: str | None = None
    """The model's finish reason for the last step (``"stop"`` or ``"length"``)."""
    rollout_of: int | None = None
    """Lookahead search: the search step this beam rolls out greedily (its id); such a beam
    only scores that step and never becomes a candidate. ``None`` for a search beam."""
    lookahead: SuccessEstimate | None = None
    """Lookahead search: the PRM's estimate at the end of this step's rollout, which ranks
    the step in place of its own estimate."""

    @property
    def estimate(self) -> SuccessEstimate | None:
        """The estimate after the last step, when the beam has been scored."""
        return self.step_estimates[-1] if self.step_estimates else None


class BudgetReport(BaseModel):
    """The compute a run decided on and what it actually spent."""

    decided_samples: int
    """Samples the strategy planned (IAS's N, or the fixed N)."""
    max_samples: int
    samples_used: int
    generated_tokens: int
    prompt_tokens: int
    model_calls: int
    prm_calls: int = 0
    """Calls to the PRM (one per batch of prefixes scored)."""
    prm_input_tokens: int = 0
    prm_output_tokens: int = 0
    prm_model_calls: int = 0
    """Model calls made inside the PRM (e.g. an LLM judge), as reported by ``usage_metadata``."""
    max_total_tokens: int | None = None
    tokens_estimated: bool = False
    """True when some token counts came from a tokenizer estimate, not the model's report."""
    overshoot_tokens: int = 0
    """Tokens the model generated past ``max_tokens_per_sample`` (it ignored the cap); they
    were cut from the samples, so ``generated_tokens`` counts only what was kept."""
    cancelled_samples: int = 0
    """Samples launched under ``launch="eager"`` that the strategy never took: cancelled
    when it stopped, or finished after it."""
    cancelled_tokens: int = 0
    """Tokens those samples generated, where the backend reported them (or as streamed);
    not in ``generated_tokens``, but counted against ``max_total_tokens``. The run's whole
    generation cost is ``generated_tokens + cancelled_tokens``."""


class AdaptiveResult(BaseModel):
    """The answer to one question and the full record of how it was reached."""

    question: str
    answer: str | None
    """The selected final answer (plain text), ``None`` if no candidate had one."""
    solution: str | None
    """The full text of the selected candidate."""
    selected_index: int | None
    candidates: list[Candidate]
    question_estimate: SuccessEstimate | None = None
    """The success estimate for the question alone, which set IAS's budget."""
    confidence: float | None = None
    """Estimated probability that at least one drawn sample is correct: 1 - (1 - p)^n."""
    low_confidence: bool = False
    """True when the target confidence was out of reach within the cap."""
    strategy: str
    stop_reason: StopReason
    budget: BudgetReport
    selection: str
    warnings: list[str] = Field(default_factory=list)
    gold: str | None = None
    correct: bool | None = None
    elapsed_s: float = 0.0
    beams: list[Beam] | None = None
    """Every beam of a step-level search (kept, finished and pruned); ``None`` otherwise."""

    @model_validator(mode="after")
    def _check_selection(self) -> AdaptiveResult:
        if self.selected_index is not None and not 0 <= self.selected_index < len(self.candidates):
            raise ValueError("selected_index does not point at a candidate")
        return self

    def __str__(self) -> str:
        return self.answer or ""


__all__ = [
    "AdaptiveResult",
    "Beam",
    "BudgetReport",
    "Candidate",
    "StopReason",
    "SuccessEstimate",
    "TokenUsage",
]
