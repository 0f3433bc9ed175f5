"""Stop on the answer that will be returned, and give up on hopeless questions.

Coverage rules (IAS, sequential IAS) stop once *some* drawn sample is likely
right; vote rules (Adaptive-Consistency, ESC) once the majority is unlikely to
change. This rule stops once the calibrated probability that the answer
selection returns *now* is correct reaches ``threshold``, and, with
``futility`` set, also once the calibrated probability that more samples would
turn a wrong answer into a right one falls below ``futility``: then it returns
the best answer so far, marked low confidence. Both probabilities come from a
fitted :class:`~langchain_adaptive.calibration._answer_stop.AnswerStopModel`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from langchain_adaptive.calibration._answer_stop import AnswerStopModel, answer_features
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.results import StopReason
from langchain_adaptive.strategies._base import (
    Decision,
    Draw,
    Plan,
    RunState,
    ScoreCandidates,
    Strategy,
    remaining_samples,
)


class AnswerConfidenceStop(Strategy):
    """Draw one round at a time until the returned answer is likely right, or hopeless.

    Needs a PRM (or self-confidence scorer) whose calibrated scores the stop
    model was fitted on, and the same ``selection`` as the model.

    Example:
        .. code-block:: python

            model = AnswerStopModel.load("stop-rules/gsm8k")
            strategy = AnswerConfidenceStop(model=model, threshold=0.8, futility=0.02)
            AdaptiveReasoningRunnable(model=chat, prm=calibrated_prm, strategy=strategy)
    """

    name: ClassVar[str] = "answer_stop"
    requires_prm: ClassVar[bool] = True

    model: AnswerStopModel
    threshold: float = Field(default=0.9, gt=0.0, lt=1.0)
    """Stop once P(the answer returned now is correct) reaches this."""
    futility: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Stop (low confidence) once P(more samples turn the answer right) is below this."""
    round_size: int = Field(default=1, ge=1)
    """Samples drawn between two looks."""
    min_samples: int = Field(default=1, ge=1)
    """Samples drawn before either rule may stop."""

    @model_validator(mode="after")
    def _same_selection(self) -> AnswerConfidenceStop:
        if not self.model.is_fitted:
            raise ConfigurationError("answer_stop needs a fitted AnswerStopModel")
        if self.model.selection != self.selection:
            raise ConfigurationError(
                f"the stop model judges {self.model.selection!r} selection but the strategy "
                f"selects by {self.selection!r}; use the same rule"
            )
        return self

    def plan(self, state: RunState) -> Plan:
        reason: StopReason
        correct = 0.0
        while True:
            allowed = state.allowance(self.round_size)
            if allowed == 0:
                at_cap = len(state.candidates) >= state.max_samples
                reason = "max_samples" if at_cap else "token_budget"
                break
            yield Draw(allowed, reason="sequential_round", horizon=remaining_samples(state))
            yield ScoreCandidates()
            _, features = answer_features(state.candidates, self.selection, state.equivalent)
            predicted = self.model.predict(features)
            correct = predicted.correct
            if len(state.candidates) < self.min_samples:
                continue
            if correct >= self.threshold:
                reason = "answer_confident"
                break
            if self.futility is not None and predicted.gain < self.futility:
                reason = "futile"
                break
        return Decision(
            stop_reason=reason,
            decided_samples=len(state.candidates),
            confidence=correct,
            low_confidence=reason != "answer_confident",
        )


__all__ = ["AnswerConfidenceStop"]
