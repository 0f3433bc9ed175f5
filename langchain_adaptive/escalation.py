"""Feeding the calibrated confidence back into a chain: answer cheaply, escalate when unsure.

Most questions are answered well by a small budget; the calibrated confidence
of the cheap run says which ones are not. :func:`escalate_when_unsure` runs a
cheap reasoner first and only hands the question to a stronger one (a bigger
budget, or a bigger model) when :func:`needs_escalation` says the cheap answer
is too unsure to return.
"""

from __future__ import annotations

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.inputs import AdaptiveInput
from langchain_adaptive.results import AdaptiveResult
from langchain_adaptive.runnable import AdaptiveReasoningRunnable


def needs_escalation(result: AdaptiveResult, min_confidence: float | None = None) -> bool:
    """Whether a result is too unsure to return.

    Args:
        result: The cheaper reasoner's result.
        min_confidence: Escalate below this confidence (that some drawn sample is
            correct); ``None`` escalates only when the reasoner could not reach its
            own target within its cap (``low_confidence``).

    Returns:
        True when the result was flagged ``low_confidence``, or its confidence is
        unknown or below ``min_confidence``.
    """
    if result.low_confidence:
        return True
    if min_confidence is None:
        return False
    return result.confidence is None or result.confidence < min_confidence


def escalation_note(first: AdaptiveResult) -> str:
    """The warning an escalated result carries, so the cheap run's spend is not lost."""
    confidence = "unknown" if first.confidence is None else f"{first.confidence:.3f}"
    return (
        f"escalated: the first reasoner answered {first.answer!r} with confidence {confidence} "
        f"after {first.budget.samples_used} sample(s) and {first.budget.generated_tokens} "
        "generated token(s), which this result's budget does not include"
    )


def escalate_when_unsure(
    first: AdaptiveReasoningRunnable,
    escalation: AdaptiveReasoningRunnable,
    *,
    min_confidence: float | None = None,
    name: str = "escalating_reasoner",
) -> Runnable[AdaptiveInput, AdaptiveResult]:
    """A runnable that answers with ``first`` and re-asks ``escalation`` only when unsure.

    Both reasoners take the same input (a question, ``{"question", "gold"}``, a
    prompt value or messages), so the runnable drops into any chain where one
    reasoner would: ``prompt | escalate_when_unsure(cheap, strong) | parser``.
    An escalated result names the first run's answer and spend in ``warnings``
    (:func:`escalation_note`). Both runs are child runs with the caller's config.

    Args:
        first: The cheap reasoner (a small ``max_samples``, or a small model).
        escalation: The strong one (more budget, or a bigger model).
        min_confidence: See :func:`needs_escalation`.
        name: The run name.

    Returns:
        A runnable with sync and async verbs, from input to :class:`AdaptiveResult`.

    Raises:
        ConfigurationError: ``min_confidence`` is outside (0, 1).

    Example:
        .. code-block:: python

            cheap = default_reasoner(max_samples=2)
            strong = cheap.model_copy(update={"max_samples": 16})
            chain = prompt | escalate_when_unsure(cheap, strong) | AdaptiveAnswerParser()
    """
    if min_confidence is not None and not 0.0 < min_confidence < 1.0:
        raise ConfigurationError(f"min_confidence must be in (0, 1), got {min_confidence}")

    def settle(result: AdaptiveResult, final: AdaptiveResult) -> AdaptiveResult:
        return final.model_copy(update={"warnings": [*final.warnings, escalation_note(result)]})

    def run(input: AdaptiveInput, config: RunnableConfig) -> AdaptiveResult:
        result = first.invoke(input, config)
        if not needs_escalation(result, min_confidence):
            return result
        return settle(result, escalation.invoke(input, config))

    async def arun(input: AdaptiveInput, config: RunnableConfig) -> AdaptiveResult:
        result = await first.ainvoke(input, config)
        if not needs_escalation(result, min_confidence):
            return result
        return settle(result, await escalation.ainvoke(input, config))

    return RunnableLambda(run, afunc=arun, name=name)


__all__ = ["escalate_when_unsure", "escalation_note", "needs_escalation"]
