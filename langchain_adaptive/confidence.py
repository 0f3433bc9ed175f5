"""Token and group confidence (DeepConf, Fu et al. 2025, arXiv 2508.15260): one home.

A model that knows what it is writing puts most of its probability on one
token, so the other likely tokens get very low log-probabilities. DeepConf
reads that off the top-k log-probabilities at each position:

- **token confidence** ``C_i = -(1/k) * sum_j log P_i(j)`` over the ``k`` most
  likely tokens at position ``i`` (:func:`token_confidence`; higher is more
  confident);
- **group confidence**: the mean of ``C_i`` over a sliding window of tokens
  (:func:`group_confidences`);
- a trace's **lowest group confidence**: the least confident window
  (:func:`lowest_group_confidence`), what DeepConf filters and weights by;
- the **online stop**: a trace is cut as soon as a full window's group
  confidence falls below a threshold (:func:`confidence_stop_at`, and its
  streaming twin :class:`ConfidenceGate` that decoders run token by token).

The same pure functions serve the llama.cpp decode loop, the ``deepconf``
strategy, offline scoring of finished traces, and replay of recorded pools,
so all four agree on where a trace stops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TOP_K = 20
"""The paper's k: the top-20 log-probabilities at each position."""
DEFAULT_WINDOW = 2048
"""The paper's window of tokens per group (long reasoning traces); use a shorter one for
short answers, or the online stop never sees a full window."""


def token_confidence(top_logprobs: Sequence[float]) -> float:
    """``C_i``: the negative mean log-probability of the most likely tokens at one position.

    ``top_logprobs`` are the ``k`` most likely tokens' log-probabilities at
    position ``i`` (of the model's distribution, before sampling). As in the
    paper, the sampled token is not added: it counts only when it is among
    the top ``k``. (The reference code, reading vLLM's ``logprobs=20``, averages
    over 21 entries when the sampled token falls outside the top 20.)

    Example:
        >>> round(token_confidence([-0.01, -5.0, -9.0]), 3)
        4.67

    Raises:
        ValueError: No log-probabilities, or a non-finite one.
    """
    if not top_logprobs:
        raise ValueError("token confidence needs at least one top log-probability")
    if not all(math.isfinite(v) for v in top_logprobs):
        raise ValueError(f"non-finite log-probability in {list(top_logprobs)!r}")
    return -sum(top_logprobs) / len(top_logprobs)


def token_confidences(entries: Any, top_k: int = DEFAULT_TOP_K) -> list[float] | None:
    """Each token's ``C_i`` from OpenAI-shaped logprob entries (``top_logprobs`` per token).

    Reads ``{"content": [{"logprob", "top_logprobs": [{"logprob"}, ...]}, ...]}``
    (what ``ChatOpenAI(logprobs=True, top_logprobs=k)`` and ``ChatLlamaCpp``
    report) or a bare list of entries, using the first ``top_k`` alternatives.
    ``None`` when any token lacks alternatives or a value is not finite: no
    signal rather than a wrong one.
    """
    if isinstance(entries, Mapping):
        entries = entries.get("content")
    if not isinstance(entries, list) or not entries:
        return None
    out = []
    for entry in entries:
        top = entry.get("top_logprobs") if isinstance(entry, Mapping) else None
        if not isinstance(top, list) or not top:
            return None
        values = [t.get("logprob") if isinstance(t, Mapping) else None for t in top[:top_k]]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return None
        out.append(token_confidence(values))  # type: ignore[arg-type]
    return out


def lowest_window_mean(values: Sequence[float], window: int) -> float:
    """The lowest mean over any ``window`` consecutive values (the whole mean if shorter).

    Example:
        >>> lowest_window_mean([-0.1, -2.0, -2.0, -0.1], 2)
        -2.0
    """
    if not values:
        raise ValueError("no values to average")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if len(values) <= window:
        return sum(values) / len(values)
    total = sum(values[:window])
    lowest = total
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        lowest = min(lowest, total)
    return lowest / window


def group_confidences(confidences: Sequence[float], window: int) -> list[float]:
    """The group confidence of every full window, in order (one mean if the trace is shorter).

    Example:
        >>> group_confidences([3.0, 1.0, 5.0], 2)
        [2.0, 3.0]
    """
    if not confidences:
        raise ValueError("no token confidences")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if len(confidences) <= window:
        return [sum(confidences) / len(confidences)]
    total = sum(confidences[:window])
    out = [total / window]
    for i in range(window, len(confidences)):
        total += confidences[i] - confidences[i - window]
        out.append(total / window)
    return out


def lowest_group_confidence(confidences: Sequence[float], window: int) -> float:
    """A trace's least confident window (its mean confidence when shorter than ``window``)."""
    return lowest_window_mean(confidences, window)


def confidence_stop_at(confidences: Sequence[float], threshold: float, window: int) -> int | None:
    """Tokens generated when the online stop fires, or ``None`` when it never does.

    The rule fires after token ``t`` (1-based) once ``t >= window`` and the
    mean of the last ``window`` token confidences is below ``threshold``: a
    decoder that checks after every token stops with ``t`` tokens written.

    Example:
        >>> confidence_stop_at([5.0, 5.0, 1.0, 1.0], threshold=3.5, window=2)
        3
    """
    gate = ConfidenceGate(threshold=threshold, window=window)
    for t, value in enumerate(confidences, start=1):
        if gate.push(value):
            return t
    return None


def keep_threshold(lowest: Sequence[float], keep: float) -> float:
    """DeepConf's threshold ``s``: keeps the ``keep`` share of traces with the highest scores.

    ``s`` is the ``100 * (1 - keep)`` th percentile of the warmup traces'
    lowest group confidences (linear interpolation, numpy's default): keeping
    the top 10% ("DeepConf-low", ``keep=0.1``) puts ``s`` at the 90th
    percentile, keeping the top 90% ("DeepConf-high") at the 10th.

    Example:
        >>> keep_threshold([1.0, 2.0, 3.0, 4.0, 5.0], keep=0.1)
        4.6
    """
    if not lowest:
        raise ValueError("no warmup confidences to set the threshold from")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must lie in (0, 1], got {keep}")
    return percentile(lowest, 100.0 * (1.0 - keep))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` th percentile by linear interpolation between order statistics (numpy's)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class ConfidenceStop(BaseModel):
    """A per-call request to a decoder: report each token's ``C_i`` and stop on low confidence.

    Sent as ``model.invoke(..., confidence_stop={"threshold": s, "window": w, "top_k": k})``
    to models with ``supports_confidence_stop`` (``ChatLlamaCpp``). A sequence
    ends with ``finish_reason="confidence_stop"`` after the first token at
    which a full window's group confidence is below ``threshold``;
    ``threshold=None`` only reports the confidences (warmup traces, recording).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float | None = None
    """Stop once a full window's group confidence falls below this; ``None``: never stop."""
    window: int = Field(default=DEFAULT_WINDOW, ge=1)
    """Tokens per group."""
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1)
    """Most likely tokens per position that ``C_i`` averages over."""


class ConfidenceGate:
    """The online stop, token by token: :meth:`push` each ``C_i``; ``True`` means stop now.

    A running sum over the last ``window`` values, so each token costs O(1).
    """

    def __init__(self, threshold: float | None, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.threshold = threshold
        self.window = window
        self._recent: list[float] = []
        self._total = 0.0
        self._start = 0

    def push(self, value: float) -> bool:
        """Take the next token's confidence; whether the last full window fell below."""
        self._recent.append(value)
        self._total += value
        if len(self._recent) - self._start > self.window:
            self._total -= self._recent[self._start]
            self._start += 1
            if self._start > 4 * self.window:  # keep the list short on long traces
                del self._recent[: self._start]
                self._start = 0
        if self.threshold is None or len(self._recent) - self._start < self.window:
            return False
        return self._total / self.window < self.threshold


__all__ = [
    "DEFAULT_TOP_K",
    "DEFAULT_WINDOW",
    "ConfidenceGate",
    "ConfidenceStop",
    "confidence_stop_at",
    "group_confidences",
    "keep_threshold",
    "lowest_group_confidence",
    "lowest_window_mean",
    "percentile",
    "token_confidence",
    "token_confidences",
]
