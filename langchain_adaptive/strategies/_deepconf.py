"""DeepConf online (Fu et al. 2025, "Deep Think with Confidence", arXiv 2508.15260).

No PRM: the policy's own token confidence (see :mod:`langchain_adaptive.confidence`)
filters and weights its traces.

1. **Warmup.** Draw ``warmup`` whole traces (N_init) and take each one's lowest
   group confidence. The threshold ``s`` is the percentile of these that keeps
   the most confident share: ``mode="low"`` keeps the top 10% (``s`` is the
   90th percentile), ``mode="high"`` the top 90% (``s`` is the 10th).
   Warmup traces at or above ``s`` vote.
2. **Online.** Every later trace is drawn with the stop armed: it ends as soon
   as a full window's group confidence falls below ``s`` and is dropped from
   the vote (as is a finished trace whose lowest group confidence is below
   ``s``). On a model with ``supports_confidence_stop`` (``ChatLlamaCpp``) the
   decode loop aborts the sequence (``finish_reason="confidence_stop"``), so
   the tokens after the abort are never generated. Other models generate
   whole traces; they are scored when finished (offline mode), which filters
   the same traces but saves no tokens, and the result says so.
3. **Stop on consensus.** After each round the confidence-weighted vote share
   of the leading answer, ``beta = V(leader) / sum_a V(a)`` over the voting
   traces, is compared with ``consensus`` (tau, 0.95): drawing stops once
   ``beta >= tau``, or at the sample or token budget.

The answer is the confidence-weighted majority of the voting traces (each
trace's weight is its lowest group confidence, written to
``Candidate.score``). With a ``calibrator`` the weight, in the vote and in
``beta``, is instead the calibrated probability that a trace with that
lowest group confidence is correct (``calibrated_deepconf``).

Confidence comes from the top-k logprobs at each token (``C_i``). A model
that reports only the sampled tokens' logprobs gets a stand-in, the
geometric-mean token probability of the least confident window, with a
warning in the result: a different scale, but the threshold is set on the
same one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.answers import group_answers
from langchain_adaptive.calibration._base import Calibrator
from langchain_adaptive.confidence import (
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    ConfidenceStop,
    keep_threshold,
    lowest_group_confidence,
    lowest_window_mean,
)
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.results import Candidate, StopReason
from langchain_adaptive.strategies._base import (
    Decision,
    Draw,
    Plan,
    RunState,
    Strategy,
    remaining_samples,
)

CONFIDENCE_STOP = "confidence_stop"
"""The finish reason of a trace the online stop ended mid-generation."""

KEEP: dict[str, float] = {"low": 0.1, "high": 0.9}
"""Share of warmup traces each mode keeps above the threshold."""

Signal = Literal["top_k", "logprob"]


def trace_confidence(candidate: Candidate, window: int, signal: Signal) -> float | None:
    """A trace's lowest group confidence on ``signal``'s scale; ``None`` for an empty trace.

    ``top_k``: the lowest window mean of the token confidences ``C_i``;
    ``logprob``: ``exp`` of the lowest window mean of the sampled tokens'
    logprobs (a positive stand-in, higher is more confident). A trace that
    wrote no token has no confidence and never votes.

    Raises:
        ConfigurationError: A non-empty trace carries no such signal.
    """
    if _empty(candidate):
        return None
    if signal == "top_k" and candidate.token_confidences:
        return lowest_group_confidence(candidate.token_confidences, window)
    if signal == "logprob" and candidate.token_logprobs:
        return math.exp(lowest_window_mean(candidate.token_logprobs, window))
    raise ConfigurationError(
        f"deepconf needs each trace's token confidence; sample {candidate.index} came without "
        + ("top-k logprobs" if signal == "top_k" else "token logprobs")
        + ": use ChatLlamaCpp (it reports them when asked) or ask the model for them "
        "(e.g. ChatOpenAI(logprobs=True, top_logprobs=20))"
    )


def _empty(candidate: Candidate) -> bool:
    return not candidate.text and not candidate.token_confidences and not candidate.token_logprobs


def vote_share(candidates: Sequence[Candidate], weights: Sequence[float], state: RunState) -> float:
    """``beta``: the leading answer's share of the weighted vote (0 with no answered trace)."""
    labels = group_answers([c.answer for c in candidates], state.equivalent)
    totals: dict[int, float] = {}
    for label, weight in zip(labels, weights, strict=True):
        if label is not None:
            totals[label] = totals.get(label, 0.0) + weight
    mass = sum(totals.values())
    return max(totals.values()) / mass if mass > 0 else 0.0


class DeepConf(Strategy):
    """DeepConf online: confidence-filtered, confidence-weighted voting that stops on consensus.

    Example:
        .. code-block:: python

            from langchain_adaptive import AdaptiveReasoningRunnable
            from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp
            from langchain_adaptive.strategies import DeepConf

            reasoner = AdaptiveReasoningRunnable(
                model=ChatLlamaCpp(temperature=0.8),
                strategy=DeepConf(warmup=4, window=16),
                max_samples=16,
            )
            result = reasoner.invoke("What is 7 + 8?")
            print(result.answer, result.budget.generated_tokens, result.stop_reason)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: ClassVar[str] = "deepconf"
    reads_token_confidences: ClassVar[bool] = True
    """Replay needs pools recorded with token confidences (``--record-logprobs``)."""

    selection: SelectionRule = "weighted_vote"
    mode: Literal["low", "high"] = "low"
    """``low``: keep the warmup's most confident 10% (aggressive); ``high``: keep 90%."""
    warmup: int = Field(default=16, ge=1)
    """N_init: whole traces drawn to set the threshold (the paper's 16); fewer when the
    sample cap is lower."""
    window: int = Field(default=DEFAULT_WINDOW, ge=1)
    """Tokens per group (the paper's 2048 suits long reasoning; use ~8-32 for short answers,
    or no window ever fills and nothing stops early)."""
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1)
    """Most likely tokens per position that ``C_i`` averages over."""
    consensus: float = Field(default=0.95, gt=0.0, le=1.0)
    """tau: stop once the leading answer's weighted vote share reaches it."""
    round_size: int = Field(default=1, ge=1)
    """Traces per online round (the paper checks consensus after each one)."""
    calibrator: Calibrator | None = None
    """Maps a trace's lowest group confidence (raw, on the signal's scale) to a calibrated
    probability of being correct, used as its weight in the vote and in ``beta``."""

    @property
    def needs_scores(self) -> bool:
        """DeepConf weighs traces by their own confidence: it needs no PRM."""
        return False

    def plan(self, state: RunState) -> Plan:
        request = ConfidenceStop(threshold=None, window=self.window, top_k=self.top_k)
        first = state.allowance(self.warmup)
        warmup: list[Candidate] = []
        if first:
            warmup = yield Draw(
                first, reason="deepconf_warmup", planned=self.warmup, stop_on_confidence=request
            )
        if not warmup:
            return Decision(
                stop_reason=self._out_of_budget(state), decided_samples=0, low_confidence=True
            )
        written = [c for c in warmup if not _empty(c)]
        signal: Signal = "top_k" if all(c.token_confidences for c in written) else "logprob"
        lowest: dict[int, float] = {}
        for candidate in written:
            lowest[candidate.index] = trace_confidence(candidate, self.window, signal)  # type: ignore[assignment]
        # with no warmup trace written, nothing sets a threshold: every later trace votes
        threshold = keep_threshold(list(lowest.values()), KEEP[self.mode]) if lowest else -math.inf
        voters = [c for c in written if lowest[c.index] >= threshold]
        armed = request.model_copy(update={"threshold": threshold if lowest else None})
        dropped = online = 0
        reason: StopReason
        while True:
            share = vote_share(voters, self._weights(voters, lowest), state)
            if share >= self.consensus:
                reason = "consensus"
                break
            allowed = state.allowance(self.round_size)
            if allowed == 0:
                reason = self._out_of_budget(state)
                break
            new: list[Candidate] = yield Draw(
                allowed,
                reason="deepconf_online",
                stop_on_confidence=armed,
                horizon=remaining_samples(state),
            )
            online += len(new)
            for candidate in new:
                if candidate.finish_reason == CONFIDENCE_STOP:
                    lowest[candidate.index] = self._partial_confidence(candidate, signal)
                    continue
                confidence = trace_confidence(candidate, self.window, signal)
                if confidence is None:
                    continue
                lowest[candidate.index] = confidence
                if confidence >= threshold:
                    voters.append(candidate)
                else:
                    dropped += 1
        self._write_scores(state.candidates, lowest)
        return Decision(
            stop_reason=reason,
            decided_samples=len(state.candidates),
            confidence=share,
            low_confidence=reason != "consensus",
            warnings=self._warnings(state, signal, threshold, dropped, online),
            finalists=[c.index for c in voters],
        )

    # -- helpers -------------------------------------------------------------------------

    def _weights(self, voters: Sequence[Candidate], lowest: dict[int, float]) -> list[float]:
        raw = [lowest[c.index] for c in voters]
        if self.calibrator is None or not raw:
            return raw
        return [float(p) for p in self.calibrator.predict_mean(raw)]

    def _partial_confidence(self, candidate: Candidate, signal: Signal) -> float:
        """What an aborted trace scored before it was cut (kept for inspection only)."""
        try:
            return trace_confidence(candidate, self.window, signal) or 0.0
        except ConfigurationError:
            return 0.0

    def _write_scores(self, candidates: Sequence[Candidate], lowest: dict[int, float]) -> None:
        """Every trace's weight on ``Candidate.score``: the weighted vote reads it."""
        indices = [i for i in lowest if i < len(candidates)]
        weights = self._weights([candidates[i] for i in indices], lowest)
        for i, weight in zip(indices, weights, strict=True):
            candidates[i].score = weight

    @staticmethod
    def _out_of_budget(state: RunState) -> StopReason:
        return "max_samples" if len(state.candidates) >= state.max_samples else "token_budget"

    def _warnings(
        self, state: RunState, signal: Signal, threshold: float, dropped: int, online: int
    ) -> list[str]:
        notes: list[str] = []
        if signal == "logprob":
            notes.append(
                "deepconf: the model reported no top-k logprobs, so trace confidence is the "
                "geometric-mean probability of the sampled tokens in the least confident window "
                "(a stand-in for DeepConf's top-k token confidence)"
            )
        if online and not state.stops_on_confidence:
            notes.append(
                "deepconf ran offline: the model cannot stop a sample mid-generation (it has no "
                f"supports_confidence_stop), so {dropped} trace(s) below the threshold "
                f"{threshold:.4g} were generated in full, then dropped from the vote"
            )
        return notes

    def model_post_init(self, context: Any, /) -> None:
        if self.calibrator is not None and not self.calibrator.is_fitted:
            raise ValueError("the calibrator of deepconf must be fitted")


__all__ = ["CONFIDENCE_STOP", "KEEP", "DeepConf", "trace_confidence", "vote_share"]
