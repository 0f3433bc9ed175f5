"""The token loop of ``ChatLlamaCpp``: decoded logits to text, one token at a time.

The chat model (:mod:`.chat_models`) and the batched sampler (:mod:`.batched`)
both draw tokens; what they do with each token lives here, once, so the two
paths give the same text for the same tokens. Per token:

sampled token → its log-probability entry (:func:`logprob_entry`) and DeepConf
confidence ``C_i`` (:func:`row_confidence`), read from the row of logits it was
sampled from → :class:`TextTracker`: end of generation, UTF-8 assembly, a
prefill's lead-in, stop strings, the confidence gate, ``max_tokens`` → a
:class:`Delta` of text safe to emit.

:class:`SampleRun` is the sequential loop (one sample over ``Llama.generate``);
the batched loop is :class:`.batched.BatchedSampler`. Nothing here imports
llama-cpp-python at import time, so the package stays cheap to import.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from langchain_adaptive.confidence import ConfidenceGate, ConfidenceStop, token_confidence
from langchain_adaptive.errors import ModelError

if TYPE_CHECKING:
    import llama_cpp

    from . import _tools


class _Flag(Protocol):
    """A cancel flag: a ``threading.Event`` or anything else with ``is_set``."""

    def is_set(self) -> bool: ...


FinishReason = Literal["stop", "length", "confidence_stop", "cancelled"]
"""``"cancelled"``: a launch (``launch="eager"``) stopped the sample part-way."""


KVLayout = Literal["per_sequence", "shared"]
"""How the samples of one call hold the KV cache.

``"per_sequence"``: one KV stream per sample, each holding its own copy of the
prompt; logits are bit-identical to the one-sequence context, so greedy and
seeded samples give the same text as the sequential path. ``"shared"``: one
unified cache in which the prompt's cells are shared by every sample; it needs
``P + n * max_tokens`` cells instead of ``n * (P + max_tokens)`` and its
attention step is cheaper on a CPU, but logits differ from the sequential
path's in the last bits, so samples follow the same distribution without
reproducing the sequential text token for token.
"""


@dataclass(frozen=True)
class CallOptions:
    """The sampling settings of one call: the model's fields overridden by call kwargs."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    max_tokens: int
    seed: int | None
    stop: tuple[str, ...]
    logprobs: bool
    top_logprobs: int
    n: int
    lead_in: bool = False
    """The prompt ends in a prefill whose trailing whitespace the model writes itself."""
    output: _tools.OutputPlan | None = None
    """Tools or a response format: the grammar the samples are decoded under."""
    confidence: ConfidenceStop | None = None
    """Report each token's confidence ``C_i``; with a threshold, stop on low confidence."""


class Sample(Protocol):
    """What a finished sample reports: a :class:`SampleRun` or a batched ``SequenceResult``."""

    @property
    def seed(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> FinishReason: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def logprobs(self) -> list[dict[str, Any]]: ...
    @property
    def token_confidences(self) -> list[float]: ...


@dataclass
class Delta:
    """Text that is safe to emit, and the log-probabilities of the tokens behind it."""

    text: str
    logprobs: list[dict[str, Any]] = field(default_factory=list)


class TextTracker:
    """Turns one sample's tokens into text: stop strings, UTF-8, log-probabilities.

    Both token loops feed it: :class:`SampleRun` (one sample, streamed) and
    :mod:`.batched` (many samples decoded together), so a token sequence gives
    the same text, finish reason and log-probabilities on either path.

    Text held back because it might be the start of a stop string is emitted
    only once it is known not to be; the stop string itself is never emitted.
    Bytes of a UTF-8 character split across tokens are decoded once complete;
    an incomplete character at the very end is dropped. With ``lead_in`` the
    whitespace the text starts with is the end of a prefill the model wrote
    itself (see :func:`.chat_models._leaves_lead_in`): it is left out, and
    stop strings match only after it. With a ``confidence`` gate each token's
    confidence ``C_i`` is recorded, and the sample ends (``"confidence_stop"``)
    once the gate fires (DeepConf's online stop).
    """

    def __init__(
        self,
        detokenize: Callable[[int], bytes],
        is_eog: Callable[[int], bool],
        stop: Sequence[str],
        max_new_tokens: int,
        *,
        lead_in: bool = False,
        confidence: ConfidenceStop | None = None,
    ) -> None:
        self._lead_in = lead_in  # leading whitespace still to be left out of the text
        self._gate = (
            None if confidence is None else ConfidenceGate(confidence.threshold, confidence.window)
        )
        self.token_confidences: list[float] = []
        self._detokenize = detokenize
        self._is_eog = is_eog
        self._stops = tuple(s for s in stop if s)
        self._longest_stop = max((len(s) for s in self._stops), default=0)
        self._max_new = max_new_tokens
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cut: int | None = None  # where a stop string begins, once found
        self._emitted = 0  # chars of `text` already handed out
        self._pending: list[tuple[int, dict[str, Any]]] = []  # (char offset, logprob entry)
        self._end_entry: dict[str, Any] | None = None
        self.text = ""
        self.finish_reason: FinishReason = "length"
        self.output_tokens = 0
        self.logprobs: list[dict[str, Any]] = []
        self.done = False  # end of generation, a stop string or max tokens

    def push(
        self, token: int, entry: dict[str, Any] | None, confidence: float | None = None
    ) -> Delta | None:
        """Take the next sampled token (its logprob entry and confidence ``C_i``, when
        asked for); return text safe to emit."""
        if self._is_eog(token):
            self._end_entry = entry
            self.finish_reason = "stop"
            self.done = True
            return None
        self.output_tokens += 1
        fired = False
        if self._gate is not None and confidence is not None:
            self.token_confidences.append(confidence)
            fired = self._gate.push(confidence)
        start = len(self.text)
        self.text += self._decoder.decode(self._detokenize(token))
        if entry is not None:
            self._pending.append((start, entry))
        if self._lead_in:
            written = self.text.lstrip()
            lead = len(self.text) - len(written)
            self.text, start = written, max(0, start - lead)
            self._pending = [(max(0, at - lead), e) for at, e in self._pending]
            if not written:  # still writing the lead-in: nothing to emit or stop on yet
                self.done = self.output_tokens >= self._max_new
                return None
            self._lead_in = False
        if self._stops:
            self._cut = _find_stop(self.text, self._stops, start - self._longest_stop + 1)
            if self._cut is not None:
                self.text = self.text[: self._cut]
                self.finish_reason = "stop"
                self.done = True
                return None
        if fired:  # the text so far is kept; finish() releases what was held back
            self.finish_reason = "confidence_stop"
            self.done = True
            return None
        if self.output_tokens >= self._max_new:
            self.done = True
            return None
        safe = len(self.text) - _held_back(self.text, self._stops)
        if safe <= self._emitted:
            return None
        delta = Delta(self.text[self._emitted : safe], _take(self._pending, safe))
        self.logprobs.extend(delta.logprobs)
        self._emitted = safe
        return delta

    def finish(self) -> Delta | None:
        """Release what was held back, once no token will follow."""
        rest = _take(self._pending, self._cut)
        if self._end_entry is not None:
            rest.append(self._end_entry)
            self._end_entry = None
        self.logprobs.extend(rest)
        if len(self.text) <= self._emitted and not rest:
            return None
        delta = Delta(self.text[self._emitted :], rest)
        self._emitted = len(self.text)
        return delta


class SampleRun:
    """One sample drawn token by token from a prompt already known to fit.

    Iterate to get :class:`Delta` objects; afterwards :attr:`text`,
    :attr:`finish_reason`, :attr:`output_tokens` and :attr:`logprobs` hold the
    totals. The caller must hold the model's lock for the whole iteration.
    Text assembly (stop strings, UTF-8, held-back text) is :class:`TextTracker`'s.
    """

    def __init__(
        self,
        llama: llama_cpp.Llama,
        prompt_tokens: Sequence[int],
        options: CallOptions,
        *,
        max_new_tokens: int,
        seed: int,
        cancel: threading.Event | _Flag | None = None,
        is_eog: Callable[[int], bool] | None = None,
    ) -> None:
        self._llama = llama
        self._prompt = list(prompt_tokens)
        self._options = options
        self._cancel = cancel
        self.seed = seed
        self._tracker = TextTracker(
            lambda token: llama.detokenize([token]),
            is_eog or eog_checker(llama),
            options.stop,
            max_new_tokens,
            lead_in=options.lead_in,
            confidence=options.confidence,
        )

    @property
    def text(self) -> str:
        return self._tracker.text

    @property
    def finish_reason(self) -> FinishReason:
        return self._tracker.finish_reason

    @property
    def output_tokens(self) -> int:
        return self._tracker.output_tokens

    @property
    def logprobs(self) -> list[dict[str, Any]]:
        return self._tracker.logprobs

    @property
    def token_confidences(self) -> list[float]:
        return self._tracker.token_confidences

    def __iter__(self) -> Iterator[Delta]:
        llama, options, tracker = self._llama, self._options, self._tracker
        want_logprobs = options.logprobs or options.top_logprobs > 0
        llama.set_seed(self.seed)
        grammar = None
        if options.output is not None:
            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_string(options.output.grammar, verbose=False)
        tokens = llama.generate(
            self._prompt,
            temp=options.temperature if options.temperature > 0 else 0.0,
            top_k=options.top_k,
            top_p=options.top_p,
            min_p=options.min_p,
            repeat_penalty=options.repeat_penalty,
            reset=True,  # reuses the longest cached prefix of the KV cache
            grammar=grammar,
        )
        try:
            # Break inside the body: resuming the generator would evaluate the
            # token just sampled, which may no longer fit in the context.
            for token in tokens:
                entry = confidence = None
                if want_logprobs:
                    entry = logprob_entry(llama, token, options.top_logprobs)
                if options.confidence is not None:
                    confidence = row_confidence(llama, options.confidence.top_k)
                delta = tracker.push(token, entry, confidence)
                if delta is not None:
                    yield delta
                if tracker.done or (self._cancel is not None and self._cancel.is_set()):
                    break
        finally:
            tokens.close()
        rest = tracker.finish()
        if rest is not None:
            yield rest


def eog_checker(llama: llama_cpp.Llama) -> Callable[[int], bool]:
    """Whether a token ends generation (EOS, EOT, ``<|im_end|>``...) for this vocabulary."""
    import llama_cpp

    vocab = llama._model.vocab
    return lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))


def _take(pending: list[tuple[int, dict[str, Any]]], limit: int | None) -> list[dict[str, Any]]:
    """Pop the entries of tokens that start before char ``limit`` (all if ``None``)."""
    if limit is None:
        taken = [entry for _, entry in pending]
        pending.clear()
        return taken
    taken = [entry for start, entry in pending if start < limit]
    pending[:] = [item for item in pending if item[0] >= limit]
    return taken


def _find_stop(text: str, stops: Sequence[str], search_from: int) -> int | None:
    """Index of the earliest stop string in ``text`` at or after ``search_from``."""
    found = [i for i in (text.find(s, max(search_from, 0)) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that could begin a stop string."""
    held = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), held, -1):
            if stop.startswith(text[-k:]):
                held = k
                break
    return held


def _token_bytes(llama: llama_cpp.Llama, token: int) -> bytes:
    """A token's raw bytes, special tokens spelled out (a logprob entry shows what was sampled)."""
    return llama.detokenize([int(token)], special=True)


def logprob_entry(
    llama: llama_cpp.Llama,
    token: int,
    top_n: int,
    *,
    ctx: llama_cpp.llama_context_p | None = None,
    index: int = -1,
) -> dict[str, Any]:
    """OpenAI-style log-probability entry for ``token``, from a row of decoded logits.

    By default the row is the last one of the model's own context: it is loaded
    without ``logits_all``, so llama.cpp keeps only the row of the last
    evaluated position, exactly the distribution ``token`` was just sampled
    from. The batched path passes its own context and the row (``index``) of
    the sequence. Log-probabilities are the model's raw log-softmax (before
    temperature, top-k/p or penalties).
    """
    logprobs = _logprob_row(llama, ctx, index)
    top: list[dict[str, Any]] = []
    k = min(top_n, logprobs.size)
    if k > 0:
        best = np.argpartition(-logprobs, k - 1)[:k]
        best = best[np.argsort(-logprobs[best], kind="stable")]
        for candidate in best.tolist():
            raw = _token_bytes(llama, candidate)
            top.append(
                {
                    "token": raw.decode("utf-8", errors="replace"),
                    "logprob": float(logprobs[candidate]),
                    "bytes": list(raw),
                }
            )
    raw = _token_bytes(llama, token)
    return {
        "token": raw.decode("utf-8", errors="replace"),
        "logprob": float(logprobs[token]),
        "bytes": list(raw),
        "top_logprobs": top,
    }


def _logprob_row(
    llama: llama_cpp.Llama, ctx: llama_cpp.llama_context_p | None, index: int
) -> np.ndarray:
    """The raw log-softmax of one row of decoded logits (see :func:`logprob_entry`)."""
    import llama_cpp

    pointer = llama_cpp.llama_get_logits_ith(llama.ctx if ctx is None else ctx, index)
    if not pointer:
        raise ModelError(f"llama.cpp returned no logits for output row {index}.")
    logits = np.ctypeslib.as_array(pointer, shape=(llama.n_vocab(),)).astype(np.float64)
    shift = float(logits.max())
    return logits - (shift + float(np.log(np.exp(logits - shift).sum())))


def row_confidence(
    llama: llama_cpp.Llama,
    top_k: int,
    *,
    ctx: llama_cpp.llama_context_p | None = None,
    index: int = -1,
) -> float:
    """DeepConf's ``C_i`` of the row just sampled from: the negative mean of its ``top_k``
    largest log-probabilities (raw log-softmax, before temperature and truncation)."""
    logprobs = _logprob_row(llama, ctx, index)
    k = min(top_k, logprobs.size)
    return token_confidence(np.partition(logprobs, logprobs.size - k)[-k:].tolist())


def fill_batch(batch: Any, entries: Sequence[tuple[int, int, int]], *, logits: bool) -> None:
    """Write ``(token, position, sequence)`` entries into a ``llama_batch``.

    Shared by the batched loop and :func:`.confidence.token_logprobs`, which
    both feed llama.cpp batches of their own.
    """
    for i, (token, position, seq) in enumerate(entries):
        batch.token[i] = token
        batch.pos[i] = position
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
    batch.n_tokens = len(entries)


__all__ = [
    "CallOptions",
    "Delta",
    "FinishReason",
    "KVLayout",
    "Sample",
    "SampleRun",
    "TextTracker",
    "eog_checker",
    "fill_batch",
    "logprob_entry",
    "row_confidence",
]
