"""Typed adaptive events: one pydantic model per decision a run makes, and their registry.

Adaptive decisions travel as LangChain custom events
(``dispatch_custom_event(name, data)``) so they reach ``astream_events``, every
tracer and every callback handler without new plumbing. ``data`` is a plain
dict, the event model's ``model_dump(mode="json")``; :func:`parse_event` turns
it back into the model. Models ignore unknown keys so a newer emitter does not
break an older handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from langchain_adaptive.results import SuccessEstimate


class AdaptiveEvent(BaseModel):
    """Base class of adaptive events; ``event_name`` is the custom event's name."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)
    """Validation errors (which LangChain logs) never quote a payload's text."""

    event_name: ClassVar[str]
    """The LangChain custom event name, e.g. ``"adaptive_budget_decided"``."""
    text_fields: ClassVar[tuple[str, ...]] = ()
    """Fields that may carry prompt or answer text; emptied when redaction is on."""

    def payload(self, *, redact: bool = False) -> dict[str, Any]:
        """The event's ``data``: JSON-ready, with text fields set to ``None`` when ``redact``."""
        data = self.model_dump(mode="json")
        if redact:
            for name in self.text_fields:
                data[name] = None
        return data

    def redacted(self) -> AdaptiveEvent:
        """A copy with every text field set to ``None``."""
        return self.model_copy(update=dict.fromkeys(self.text_fields)) if self.text_fields else self


class EstimateSummary(BaseModel):
    """The question's success estimate as events report it."""

    model_config = ConfigDict(frozen=True)

    lower: float
    median: float
    upper: float
    raw_score: float | None = None

    @classmethod
    def of(cls, estimate: SuccessEstimate) -> EstimateSummary:
        """Summarise a :class:`SuccessEstimate` by its lowest, median and highest quantile."""
        return cls(
            lower=estimate.lower,
            median=estimate.median,
            upper=next(reversed(estimate.quantiles.values())),
            raw_score=estimate.raw_score,
        )


class BudgetDecided(AdaptiveEvent):
    """A strategy fixed how many samples (or beams) to draw next, and why."""

    event_name: ClassVar[str] = "adaptive_budget_decided"

    strategy: str
    n: int
    """Samples or beams planned by this decision (the limits may allow fewer)."""
    estimate: EstimateSummary | None = None
    """The question's success estimate the decision rests on, if the strategy asked for one."""
    target_confidence: float
    reason: str
    """Short tag: ``"ias"``, ``"fixed"``, ``"capped"``, ``"floor"``, ``"sequential_round"``..."""


class CandidateGenerated(AdaptiveEvent):
    """A new candidate solution arrived from the model."""

    event_name: ClassVar[str] = "adaptive_candidate_generated"
    text_fields: ClassVar[tuple[str, ...]] = ("answer",)

    index: int
    output_tokens: int
    finish_reason: str | None = None
    answer: str | None = None
    """The extracted answer; ``None`` when none was found or events are redacted."""


class CandidateScored(AdaptiveEvent):
    """The PRM scored a candidate."""

    event_name: ClassVar[str] = "adaptive_candidate_scored"

    index: int
    score: float | None
    step_estimates: list[float]
    """Median success estimate after each step."""


class StepScored(AdaptiveEvent):
    """The PRM scored one step of a beam (beam search)."""

    event_name: ClassVar[str] = "adaptive_step_scored"

    beam_id: int
    step_index: int
    lower: float | None
    """The beam's calibrated lower bound; ``None`` when the PRM gave it no estimate."""
    median: float | None
    finished: bool


class BeamsPruned(AdaptiveEvent):
    """Beam search kept some beams and dropped the rest after a step.

    Particle filtering reports each resampling the same way: ``kept`` lists the
    beam of every particle drawn, once per copy (finished ones are not extended
    again), ``dropped`` the beams no particle drew, ``k`` the population and
    ``m = 1``.
    """

    event_name: ClassVar[str] = "adaptive_beams_pruned"

    step_index: int
    kept: list[int]
    """Beam ids that go on (beam search: best first; particle filtering: one per copy)."""
    dropped: list[int]
    k: int
    m: int
    floored: bool = False
    """The target was out of reach and the adaptive widths dropped to their floors."""


class Revised(AdaptiveEvent):
    """The model revised one chain's earlier attempts (sequential revisions)."""

    event_name: ClassVar[str] = "adaptive_revision"
    text_fields: ClassVar[tuple[str, ...]] = ("answer",)

    chain: int
    revision: int
    """1 for a chain's first revision."""
    index: int
    """The new attempt's candidate index."""
    shown: list[int]
    """Candidate indices of the earlier attempts its prompt showed, oldest first."""
    prompt_tokens: int
    output_tokens: int
    answer: str | None = None


class RolloutScored(AdaptiveEvent):
    """A lookahead rollout ended and the PRM scored its last step, which scores the step."""

    event_name: ClassVar[str] = "adaptive_rollout_scored"

    beam_id: int
    """The search step rolled out."""
    rollout_beam_id: int
    """The rollout's last beam."""
    rollout_steps: int
    """Steps the rollout added after the search step."""
    lower: float | None
    median: float | None
    finished: bool


class EarlyStop(AdaptiveEvent):
    """A strategy stopped before its cap because more samples were unlikely to help."""

    event_name: ClassVar[str] = "adaptive_early_stop"

    reason: str
    samples_used: int
    confidence: float | None = None


class AdaptiveFinished(AdaptiveEvent):
    """A question is done: what was decided against what was spent."""

    event_name: ClassVar[str] = "adaptive_finished"

    strategy: str
    stop_reason: str
    decided_samples: int
    samples_used: int
    generated_tokens: int
    max_samples: int
    confidence: float | None = None
    low_confidence: bool = False


EVENT_MODELS: dict[str, type[AdaptiveEvent]] = {
    model.event_name: model
    for model in (
        BudgetDecided,
        CandidateGenerated,
        CandidateScored,
        StepScored,
        BeamsPruned,
        Revised,
        RolloutScored,
        EarlyStop,
        AdaptiveFinished,
    )
}
"""Custom event name -> its model."""


def is_adaptive_event(name: str) -> bool:
    """Whether a custom event name belongs to this package's contract."""
    return name in EVENT_MODELS


def parse_event(name: str, data: Mapping[str, Any] | AdaptiveEvent) -> AdaptiveEvent:
    """The typed model of an adaptive custom event.

    Args:
        name: The custom event's name.
        data: Its payload (a dict, or already a model).

    Raises:
        KeyError: ``name`` is not an adaptive event (see :func:`is_adaptive_event`).
        pydantic.ValidationError: The payload does not match the event's model.
    """
    model = EVENT_MODELS.get(name)
    if model is None:
        raise KeyError(f"{name!r} is not an adaptive event; known: {sorted(EVENT_MODELS)}")
    if isinstance(data, model):
        return data
    return model.model_validate(dict(data))


__all__ = [
    "EVENT_MODELS",
    "AdaptiveEvent",
    "AdaptiveFinished",
    "BeamsPruned",
    "BudgetDecided",
    "CandidateGenerated",
    "CandidateScored",
    "EarlyStop",
    "EstimateSummary",
    "Revised",
    "RolloutScored",
    "StepScored",
    "is_adaptive_event",
    "parse_event",
]
