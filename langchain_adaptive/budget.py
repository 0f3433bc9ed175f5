"""The IAS budget formula and the hard limits every strategy runs under."""

from __future__ import annotations

import math
import threading

from pydantic import BaseModel, Field, model_validator

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.results import TokenUsage

DEFAULT_MAX_SAMPLES = 16
"""The sample cap when none is given: the runnable's, ``BudgetLimits``' and the CLIs'
``--max-samples`` (the value ``ask`` and ``default_reasoner`` have always used). Sixteen
samples reach C = 0.99 for p >= 0.26; a harder question hits the cap.
"""

P_MIN = 1e-4
P_MAX = 1.0 - 1e-4


def clip_probability(p: float) -> float:
    """Clip a success probability to [1e-4, 1 - 1e-4] so the IAS formula stays finite."""
    if not math.isfinite(p):
        raise ValueError(f"success probability {p!r} is not finite")
    return min(P_MAX, max(P_MIN, p))


def ias_sample_count(p: float, target_confidence: float) -> int:
    """Samples needed so that some sample is correct with probability >= ``target_confidence``.

    ``N = ceil(log(1 - C) / log(1 - p))`` (Park et al. 2025), uncapped: compare
    with the cap to learn whether the target is reachable.

    Example:
        >>> ias_sample_count(0.5, 0.99), ias_sample_count(0.1, 0.99)
        (7, 44)
    """
    if not 0.0 < target_confidence < 1.0:
        raise ConfigurationError(f"target confidence must be in (0, 1), got {target_confidence}")
    p = clip_probability(p)
    # The slack keeps exact cases (p=0.5, C=0.75 -> 2) from rounding up; the check
    # after it makes sure the slack never returns one sample too few.
    ratio = math.log1p(-target_confidence) / math.log1p(-p)
    n = max(1, math.ceil(ratio * (1.0 - 1e-12)))
    if n * math.log1p(-p) > math.log1p(-target_confidence) * (1.0 - 1e-12):
        n += 1
    return n


def coverage_probability(p: float, n: int) -> float:
    """Probability that at least one of ``n`` independent samples is correct: 1 - (1 - p)^n."""
    return 1.0 - (1.0 - clip_probability(p)) ** n


class BudgetLimits(BaseModel):
    """Hard limits for one question: no strategy may exceed them."""

    max_samples: int = Field(DEFAULT_MAX_SAMPLES, ge=1)
    max_tokens_per_sample: int = Field(256, ge=1)
    """Passed to the model as ``max_tokens``; a sample is only drawn if this much budget is left."""
    max_total_tokens: int | None = Field(None, ge=1)
    """Cap on generated tokens for the whole question; ``None`` = only the sample cap."""

    @model_validator(mode="after")
    def _check(self) -> BudgetLimits:
        if self.max_total_tokens is not None and self.max_total_tokens < self.max_tokens_per_sample:
            raise ValueError(
                f"max_total_tokens ({self.max_total_tokens}) is smaller than one sample's "
                f"max_tokens_per_sample ({self.max_tokens_per_sample}): no sample could be drawn"
            )
        return self


class BudgetTracker:
    """Counts what one question has spent and says how many more samples may be drawn.

    Token limits are enforced by reservation: a sample is only started when a
    worst-case sample (``max_tokens_per_sample``) still fits, so a model that
    honours ``max_tokens`` can never push the total past ``max_total_tokens``.
    """

    def __init__(self, limits: BudgetLimits) -> None:
        self.limits = limits
        self.usage = TokenUsage()
        self.samples = 0
        self.prm_calls = 0
        self.cancelled_tokens = 0
        """Tokens of launched samples the plan never took (``launch="eager"``): they count
        against ``max_total_tokens`` but are not in ``usage``."""
        self._lock = threading.Lock()

    def allowance(self, wanted: int) -> int:
        """How many of ``wanted`` further samples the limits allow right now."""
        room = self.limits.max_samples - self.samples
        if self.limits.max_total_tokens is not None:
            left = self.limits.max_total_tokens - self.spent_tokens
            room = min(room, left // self.limits.max_tokens_per_sample)
        return max(0, min(wanted, room))

    def step_allowance(self, wanted: int) -> int:
        """How many of ``wanted`` further steps the token cap allows right now.

        A step-level search generates steps, not whole samples: each step is
        capped at ``max_tokens_per_sample`` and reserves that much of the total,
        so the token cap holds for steps exactly as it does for samples. Paths
        are bounded separately (see :meth:`record_paths`).
        """
        if self.limits.max_total_tokens is None:
            return max(0, wanted)
        left = self.limits.max_total_tokens - self.spent_tokens
        return max(0, min(wanted, left // self.limits.max_tokens_per_sample))

    def record_steps(self, usages: list[TokenUsage]) -> None:
        """Count what generated steps cost; they are parts of paths, not samples."""
        with self._lock:
            for usage in usages:
                self.usage = self.usage + usage

    def record_paths(self, n: int) -> None:
        """Count ``n`` complete paths of a step-level search as samples."""
        with self._lock:
            self.samples += n

    def token_limited(self) -> bool:
        """True when the token cap, not the sample cap, is what stops the next sample."""
        return self.allowance(1) == 0 and self.samples < self.limits.max_samples

    def record_samples(self, usages: list[TokenUsage]) -> None:
        with self._lock:
            self.samples += len(usages)
            for usage in usages:
                self.usage = self.usage + usage

    @property
    def spent_tokens(self) -> int:
        """Generated tokens counted against the limit: kept samples' and cancelled ones'."""
        return self.usage.output_tokens + self.cancelled_tokens

    def record_cancelled(self, tokens: int) -> None:
        """Count what cancelled (or finished but unused) launched samples generated."""
        with self._lock:
            self.cancelled_tokens += tokens

    def record_prm_call(self) -> None:
        with self._lock:
            self.prm_calls += 1


__all__ = [
    "DEFAULT_MAX_SAMPLES",
    "BudgetLimits",
    "BudgetTracker",
    "clip_probability",
    "coverage_probability",
    "ias_sample_count",
]
