"""Decode the n samples of one prompt together: one ``llama_decode`` per token step.

Sequential sampling pays one decode call per token per sample. Here the data
path of one call is:

prompt tokens → all but the last one evaluated once on sequence 0 (and kept
there, a prompt cache across calls) → whole-stream copies of that KV cache to
sequences 1..n-1 → per step, one batch holding one token of every live sequence
(the first step feeds every sequence the last prompt token) → each sequence
samples from its own logits row with its own native sampler chain → the text
tracker both loops share (:class:`._decode.TextTracker`: stop strings, UTF-8,
log-probabilities) → a finished sequence leaves the batch and its KV cells are
removed.

Context sizing (:data:`KVLayout`). By default (``"per_sequence"``) llama.cpp
gives every sequence its own KV stream (``kv_unified=False``) of ``n_ctx_seq``
cells, rounded up to a multiple of 256, so n sequences of a ``P``-token prompt
need ``n * ceil256(P + max_tokens)`` cells: the prompt is held once per
sequence. Separate streams lay each sequence out as the chat model's own
context does; on the bundled model they give bit-identical logits, so greedy
decoding and a seeded sample give the same text on both paths (the tests check
it). ``"shared"`` uses one unified cache that holds the prompt once
(``ceil256(P + n * max_tokens)`` cells) and is cheaper per step on a CPU, but
each sequence's attention then sums over cells laid out differently from a
one-sequence context, the logits differ in the last bits and greedy text can
drift away from the sequential path's (measured on SmolLM2-135M): samples keep
the same distribution, not the same text. The context is created lazily, one
per model, recreated (larger) when a call needs more sequences, a longer window
or the other layout, and kept until ``close()``.

Threads. A sampling step runs on the model's generation thread count
(``n_threads``), as the sequential path's steps do, even though it decodes
several rows: llama-cpp-python's batch thread count (all cores by default) is
meant for prompts, and on a busy machine extra threads that wait on each other
at every layer cost more than they bring. Prompt chunks use the batch count.

Sampling mirrors ``llama_cpp.Llama.generate`` (penalties, top-k, typical,
top-p, min-p, temperature, then a seeded ``dist``; greedy at temperature 0),
built from llama.cpp's native sampler chain, one chain per sequence.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import llama_cpp

from langchain_adaptive.confidence import ConfidenceStop
from langchain_adaptive.errors import ConfigurationError, ContextLengthExceededError, ModelError

from ._decode import (
    FinishReason,
    KVLayout,
    TextTracker,
    eog_checker,
    fill_batch,
    logprob_entry,
    row_confidence,
)
from ._loading import SharedLlama

WINDOW_ALIGN = 256
"""llama.cpp rounds each sequence's KV stream up to a multiple of this many cells."""


@dataclass
class SequenceResult:
    """One sample of a batched call.

    Attributes:
        seed: The seed of its sampler chain.
        text: The generated text, cut before a stop string.
        output_tokens: Tokens generated (a stop string's tokens included, the
            end-of-generation token not), as the sequential path counts them.
        finish_reason: ``"stop"`` (end of generation or a stop string) or
            ``"length"`` (``max_tokens``, or the room left in the context).
        logprobs: OpenAI-style entries, one per token, when asked for; else empty.
        token_confidences: Each token's confidence ``C_i``, when a confidence
            stop was asked for; else empty.
    """

    seed: int
    text: str = ""
    output_tokens: int = 0
    finish_reason: FinishReason = "length"
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    token_confidences: list[float] = field(default_factory=list)


class BatchedDecodeError(ModelError):
    """llama.cpp failed in the middle of a batched call.

    Attributes:
        finished: The samples that had already finished, in call order; their
            text is complete and kept.
    """

    def __init__(self, message: str, *, finished: list[SequenceResult] | None = None) -> None:
        super().__init__(message)
        self.finished = finished if finished is not None else []


@dataclass(frozen=True)
class _Sampling:
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    top_logprobs: int
    logprobs: bool
    grammar: str | None = None
    confidence: ConfidenceStop | None = None


def supports_batched_decoding() -> bool:
    """Whether the installed llama-cpp-python has the multi-sequence API used here."""
    fields = {name for name, *_ in llama_cpp.llama_context_params._fields_}
    return "kv_unified" in fields and hasattr(llama_cpp, "llama_memory_seq_cp")


class _NativeContext:
    """A llama.cpp context of ``n_seq_max`` KV streams, freed on close or with its owner."""

    def __init__(
        self, llama: llama_cpp.Llama, n_seq_max: int, window: int, layout: KVLayout
    ) -> None:
        source = llama.context_params
        params = type(source).from_buffer_copy(source)  # threads, rope, KV types...
        params.n_seq_max = n_seq_max
        # Per-sequence streams have `window` cells each; a shared cache is one window.
        params.n_ctx = n_seq_max * window if layout == "per_sequence" else window
        params.kv_unified = layout == "shared"
        self.layout: KVLayout = layout
        params.embeddings = False
        params.n_batch = max(params.n_batch, n_seq_max)
        params.n_ubatch = max(params.n_ubatch, n_seq_max)
        # A sampling step is generation, however many rows it has: it runs on the
        # generation thread count, as the sequential path does; prompt chunks on
        # the batch thread count (see `prompt_threads`).
        self._threads = (source.n_threads, source.n_threads_batch)
        params.n_threads_batch = source.n_threads
        ctx = llama_cpp.llama_init_from_model(llama.model, params)
        if not ctx:
            raise ModelError(
                f"llama.cpp could not create a {layout} KV cache for {n_seq_max} sequences "
                f"({params.n_ctx} KV cells); lower n or max_tokens."
            )
        # The finalizer holds `llama`, so the model outlives this context.
        self._finalizer = weakref.finalize(self, _free_context, ctx, llama)
        self.ctx = ctx
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(ctx))
        self.window = int(llama_cpp.llama_n_ctx_seq(ctx))
        self.n_batch = int(llama_cpp.llama_n_batch(ctx))
        if self.n_seq_max < n_seq_max or self.window < window:
            self.close()
            raise ModelError(
                f"llama.cpp made a context of {self.n_seq_max} sequences of {self.window} "
                f"cells when {n_seq_max} of {window} were asked for."
            )

    @contextlib.contextmanager
    def prompt_threads(self) -> Iterator[None]:
        """Evaluate prompt chunks on the batch thread count, then go back to generation's."""
        generation, batch = self._threads
        llama_cpp.llama_set_n_threads(self.ctx, generation, batch)
        try:
            yield
        finally:
            llama_cpp.llama_set_n_threads(self.ctx, generation, generation)

    def close(self) -> None:
        self._finalizer()


def _free_context(ctx: llama_cpp.llama_context_p, llama: llama_cpp.Llama) -> None:
    """Free ``ctx``; ``llama`` is passed only to keep the model alive until then."""
    llama_cpp.llama_free(ctx)


class BatchedSampler:
    """Draw n samples of one prompt, decoding every live sample in one batch per step.

    One instance per loaded model (:meth:`for_model`); it owns a second
    llama.cpp context on the shared weights, so it never disturbs the chat
    model's KV cache. Every call holds the model's lock, as the chat model does.
    :class:`~.chat_models.ChatLlamaCpp` uses it for ``generate(..., n=k)``.

    Example:
        ```python
        from langchain_adaptive.integrations.llamacpp import bundled_model_path
        from langchain_adaptive.integrations.llamacpp import load_shared_llama
        from langchain_adaptive.integrations.llamacpp._batched import BatchedSampler

        shared = load_shared_llama(bundled_model_path())
        sampler = BatchedSampler.for_model(shared)
        with shared.lock:
            prompt = shared.llama.tokenize(b"Once upon a time", add_bos=False)
        samples = sampler.sample(prompt, seeds=[1, 2, 3], max_new_tokens=8)
        print([s.text for s in samples])
        ```
    """

    _instances: ClassVar[weakref.WeakKeyDictionary[SharedLlama, BatchedSampler]] = (
        weakref.WeakKeyDictionary()
    )
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, shared: SharedLlama) -> None:
        self._shared = shared
        self._context: _NativeContext | None = None
        self._cached: list[int] = []  # what sequence 0 holds: a prompt but its last token

    @classmethod
    def for_model(cls, shared: SharedLlama) -> BatchedSampler:
        """The sampler of a loaded model, created on first use and then reused.

        Args:
            shared: The model, as :func:`~._loading.load_shared_llama` returns it.

        Returns:
            The same sampler for every call with the same model.
        """
        with cls._instances_lock:
            sampler = cls._instances.get(shared)
            if sampler is None:
                sampler = cls._instances[shared] = cls(shared)
            return sampler

    # -- sizing ------------------------------------------------------------------------

    @staticmethod
    def window(prompt_tokens: int, max_new_tokens: int) -> int:
        """KV cells one sequence takes: prompt plus new tokens, rounded up as llama.cpp does."""
        return -(-(prompt_tokens + max_new_tokens) // WINDOW_ALIGN) * WINDOW_ALIGN

    @classmethod
    def cells(
        cls, n: int, prompt_tokens: int, max_new_tokens: int, layout: KVLayout = "per_sequence"
    ) -> int:
        """KV cells n samples take together: n windows, or one shared prompt plus n tails."""
        if layout == "per_sequence":
            return n * cls.window(prompt_tokens, max_new_tokens)
        return cls.window(prompt_tokens, n * max_new_tokens)

    def capacity(
        self,
        prompt_tokens: int,
        max_new_tokens: int,
        max_cells: int | None = None,
        layout: KVLayout = "per_sequence",
    ) -> int:
        """How many sequences of this prompt and ``max_new_tokens`` one call can decode.

        Args:
            prompt_tokens: Length of the prompt.
            max_new_tokens: Tokens each sequence may generate, before clamping
                to the room left in the model's context window.
            max_cells: KV cells for all sequences together; ``None`` is the
                model's ``n_ctx``, the KV memory of the chat context itself.
            layout: How the samples hold the KV cache (see :data:`KVLayout`).

        Returns:
            The largest n :meth:`sample` accepts (0 if not even one fits).

        Raises:
            ContextLengthExceededError: If the prompt leaves no room to generate.
        """
        with self._shared.lock:
            room = self._room(prompt_tokens, max_new_tokens)
            cells = self._shared.llama.n_ctx() if max_cells is None else max_cells
        if layout == "per_sequence":
            fits = cells // self.window(prompt_tokens, room)
        else:
            fits = max(0, (cells // WINDOW_ALIGN * WINDOW_ALIGN - prompt_tokens) // room)
        return min(fits, int(llama_cpp.llama_max_parallel_sequences()))

    def _room(self, prompt_tokens: int, max_new_tokens: int) -> int:
        """``max_new_tokens`` clamped to the model's window, as the sequential path does."""
        n_ctx = self._shared.llama.n_ctx()
        if prompt_tokens + 1 > n_ctx:
            raise ContextLengthExceededError(
                f"The prompt has {prompt_tokens} tokens but the context window is "
                f"n_ctx={n_ctx}, which must hold the prompt and at least one generated "
                "token. Shorten the prompt or raise n_ctx.",
                prompt_tokens=prompt_tokens,
                context_size=n_ctx,
            )
        return min(max_new_tokens, n_ctx - prompt_tokens)

    # -- sampling ----------------------------------------------------------------------

    def sample(
        self,
        prompt_tokens: Sequence[int],
        seeds: Sequence[int],
        *,
        max_new_tokens: int | Sequence[int],
        stop: Sequence[str] | Sequence[Sequence[str]] = (),
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        logprobs: bool = False,
        top_logprobs: int = 0,
        max_cells: int | None = None,
        layout: KVLayout = "per_sequence",
        lead_in: bool = False,
        grammar: str | None = None,
        confidence: ConfidenceStop | None = None,
        on_finished: Callable[[int, SequenceResult], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[SequenceResult]:
        """Draw ``len(seeds)`` samples of one prompt, decoded together.

        Each sample is what ``ChatLlamaCpp`` would draw sequentially with the
        same seed and settings. A sample that would run past the model's
        context window is cut there with ``finish_reason="length"``.

        Args:
            prompt_tokens: The prompt, already tokenized (chat template applied).
            seeds: One seed per sample; their number is n.
            max_new_tokens: Most tokens per sample: one value, or one per sample.
            stop: Stop strings: one list for all samples, or one list per sample.
            temperature: Sampling temperature; ``0`` or less is greedy decoding.
            top_k: Keep the ``top_k`` most likely tokens; ``0`` keeps all.
            top_p: Nucleus sampling mass.
            min_p: Drop tokens less likely than ``min_p`` times the best one.
            repeat_penalty: Penalty on the last 64 generated tokens; ``1.0`` is none.
            logprobs: Report each token's log-probability.
            top_logprobs: Also report this many most likely alternatives per token.
            max_cells: KV cells for all samples together (see :meth:`capacity`).
            layout: How the samples hold the KV cache (see :data:`KVLayout`):
                ``"per_sequence"`` reproduces the sequential path's text,
                ``"shared"`` needs fewer cells and decodes faster on a CPU.
            lead_in: The prompt ends in a prefill whose trailing whitespace
                the samples write themselves; it is left out of their text.
            grammar: A GBNF grammar (root rule ``root``) every sample is decoded
                under, each with its own grammar state (tool calls, structured
                output); ``None`` is free text.
            confidence: Record each token's confidence ``C_i`` and, with a
                threshold, end a sample (``finish_reason="confidence_stop"``)
                once a full window's group confidence falls below it; the
                other samples decode on.
            on_finished: Called with a sample's index and result as it ends
                (launch-and-cancel hands each sample on as it finishes).
            cancelled: Polled before every decode step; once true, every sample
                still running ends with ``finish_reason="cancelled"`` and the
                tokens it has.

        Returns:
            One result per seed, in the same order.

        Raises:
            ConfigurationError: If there are no seeds, or a per-sample argument
                does not have one value per seed, or ``max_new_tokens < 1``.
            ContextLengthExceededError: If the prompt leaves no room in the
                window, or n samples of prompt plus ``max_new_tokens`` do not fit
                ``max_cells`` (see :meth:`cells`).
            BatchedDecodeError: If llama.cpp fails mid-call; ``finished`` holds
                the samples already complete.
        """
        n = len(seeds)
        if n < 1:
            raise ConfigurationError(f"n must be at least 1 (one seed per sample); got n={n}.")
        prompt = [int(token) for token in prompt_tokens]
        if not prompt:
            raise ConfigurationError("The prompt has no tokens.")
        limits = _per_sample_limits(max_new_tokens, n)
        stops = _per_sample_stops(stop, n)
        settings = _Sampling(
            temperature=float(temperature),
            top_k=int(top_k),
            top_p=float(top_p),
            min_p=float(min_p),
            repeat_penalty=float(repeat_penalty),
            top_logprobs=int(top_logprobs),
            logprobs=bool(logprobs),
            grammar=grammar,
            confidence=confidence,
        )
        with self._shared.lock:
            limits = [self._room(len(prompt), limit) for limit in limits]
            if layout not in ("per_sequence", "shared"):
                raise ConfigurationError(
                    f"layout must be 'per_sequence' or 'shared'; got {layout!r}."
                )
            needed = self.cells(n, len(prompt), max(limits), layout)
            cells = self._shared.llama.n_ctx() if max_cells is None else max_cells
            most = int(llama_cpp.llama_max_parallel_sequences())
            if needed > cells or n > most:
                how = (
                    "each sample holds the prompt"
                    if layout == "per_sequence"
                    else "the prompt once, then each sample's tokens"
                )
                raise ContextLengthExceededError(
                    f"{n} samples of a {len(prompt)}-token prompt plus {max(limits)} new "
                    f"tokens need {needed} KV cells ({how}, in windows of {WINDOW_ALIGN}), "
                    f"but the batch may use {cells} (and at most {most} sequences). Draw "
                    "fewer samples per call (see BatchedSampler.capacity), lower max_tokens "
                    "or raise max_cells.",
                    prompt_tokens=len(prompt),
                    context_size=cells,
                )
            window = needed if layout == "shared" else needed // n
            context = self._context_for(n, window, cells, layout)
            return self._decode(
                context,
                prompt,
                list(seeds),
                limits,
                stops,
                settings,
                lead_in=lead_in,
                on_finished=on_finished,
                cancelled=cancelled,
            )

    def close(self) -> None:
        """Free the native context now (a later call creates a new one)."""
        with self._shared.lock:
            if self._context is not None:
                self._context.close()
                self._context = None
                self._cached = []

    def _context_for(self, n: int, window: int, cells: int, layout: KVLayout) -> _NativeContext:
        """The cached context if it fits, else a new one (the caller holds the lock).

        ``window`` is one sequence's stream for ``"per_sequence"`` and the whole
        cache for ``"shared"``.
        """
        current = self._context
        if current is not None and current.layout == layout:
            if current.n_seq_max >= n and current.window >= window:
                return current
            grown = (max(n, current.n_seq_max), max(window, current.window))
            total = grown[0] * grown[1] if layout == "per_sequence" else grown[1]
            if total <= cells:
                n, window = grown  # keep serving the earlier, smaller calls too
        if current is not None:
            self.close()
        self._context = _NativeContext(self._shared.llama, n, window, layout)
        return self._context

    def _decode(
        self,
        context: _NativeContext,
        prompt: list[int],
        seeds: list[int],
        limits: list[int],
        stops: list[tuple[str, ...]],
        settings: _Sampling,
        *,
        lead_in: bool = False,
        on_finished: Callable[[int, SequenceResult], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[SequenceResult]:
        """The token loop (the caller holds the lock and has checked that n sequences fit)."""
        llama, memory = self._shared.llama, context.memory
        want_logprobs = settings.logprobs or settings.top_logprobs > 0
        is_eog = eog_checker(llama)
        results = [SequenceResult(seed=seed) for seed in seeds]
        trackers = [
            TextTracker(
                lambda token: llama.detokenize([token]),
                is_eog,
                stop,
                limit,
                lead_in=lead_in,
                confidence=settings.confidence,
            )
            for stop, limit in zip(stops, limits, strict=True)
        ]
        finished: list[bool] = [False] * len(seeds)
        chains: list[llama_cpp.llama_sampler_p] = []
        batch = llama_cpp.llama_batch_init(context.n_batch, 0, 1)
        try:
            for seed in seeds:
                chains.append(_sampler_chain(llama, seed, settings))
            prefix_end = len(prompt) - 1
            self._load_prefix(context, batch, prompt[:prefix_end])
            for seq in range(1, len(seeds)):
                llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)

            live = list(range(len(seeds)))
            tokens = [prompt[-1]] * len(seeds)
            position = prefix_end
            while live:
                if cancelled is not None and cancelled():
                    for seq in live:
                        trackers[seq].finish()
                        _copy_result(trackers[seq], results[seq])
                        results[seq].finish_reason = "cancelled"
                        finished[seq] = True
                        start = prefix_end if seq == 0 else -1  # as a finished sample leaves
                        llama_cpp.llama_memory_seq_rm(memory, seq, start, -1)
                    break
                fill_batch(batch, [(tokens[seq], position, seq) for seq in live], logits=True)
                _check(llama_cpp.llama_decode(context.ctx, batch), "a sampling step")
                still: list[int] = []
                for row, seq in enumerate(live):
                    token = llama_cpp.llama_sampler_sample(chains[seq], context.ctx, row)
                    entry = None
                    if want_logprobs:
                        entry = logprob_entry(
                            llama, token, settings.top_logprobs, ctx=context.ctx, index=row
                        )
                    confidence = None
                    if settings.confidence is not None:
                        confidence = row_confidence(
                            llama, settings.confidence.top_k, ctx=context.ctx, index=row
                        )
                    tracker = trackers[seq]
                    tracker.push(token, entry, confidence)
                    if not tracker.done:
                        tokens[seq] = token
                        still.append(seq)
                        continue
                    tracker.finish()
                    _copy_result(tracker, results[seq])
                    finished[seq] = True
                    if on_finished is not None:
                        on_finished(seq, results[seq])
                    # Leave the batch: free the cells; sequence 0 keeps the prompt prefix.
                    llama_cpp.llama_memory_seq_rm(memory, seq, prefix_end if seq == 0 else -1, -1)
                live = still
                position += 1
        except BaseException as exc:
            # The KV cache is in an unknown state: start the next call from scratch.
            llama_cpp.llama_memory_clear(memory, True)
            self._cached = []
            if isinstance(exc, BatchedDecodeError):
                exc.finished = [r for r, done in zip(results, finished, strict=True) if done]
            raise
        finally:
            for chain in chains:
                llama_cpp.llama_sampler_free(chain)
            llama_cpp.llama_batch_free(batch)
        return results

    def _load_prefix(self, context: _NativeContext, batch: Any, prefix: list[int]) -> None:
        """Make sequence 0 hold exactly ``prefix``, evaluating only what is not cached."""
        common = 0
        for cached, token in zip(self._cached, prefix, strict=False):
            if cached != token:
                break
            common += 1
        for seq in range(1, context.n_seq_max):  # removing a whole sequence never fails
            llama_cpp.llama_memory_seq_rm(context.memory, seq, -1, -1)
        if not llama_cpp.llama_memory_seq_rm(context.memory, 0, common, -1):
            llama_cpp.llama_memory_clear(context.memory, True)
            common = 0
        self._cached = prefix[:common]
        if common == len(prefix):
            return
        with context.prompt_threads():
            for start in range(common, len(prefix), context.n_batch):
                chunk = prefix[start : start + context.n_batch]
                fill_batch(batch, [(t, start + i, 0) for i, t in enumerate(chunk)], logits=False)
                _check(llama_cpp.llama_decode(context.ctx, batch), "the prompt")
                self._cached = prefix[: start + len(chunk)]


def _per_sample_limits(value: int | Sequence[int], n: int) -> list[int]:
    limits = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
    if len(limits) != n:
        raise ConfigurationError(f"max_new_tokens has {len(limits)} values for {n} samples.")
    if min(limits) < 1:
        raise ConfigurationError(f"max_new_tokens must be at least 1; got {min(limits)}.")
    return limits


def _per_sample_stops(
    value: Sequence[str] | Sequence[Sequence[str]], n: int
) -> list[tuple[str, ...]]:
    if isinstance(value, str):
        return [(value,)] * n
    if all(isinstance(item, str) for item in value):
        return [tuple(value)] * n  # type: ignore[arg-type]
    stops = [(item,) if isinstance(item, str) else tuple(item) for item in value]
    if len(stops) != n:
        raise ConfigurationError(f"stop has {len(stops)} lists for {n} samples.")
    return stops


def _sampler_chain(llama: llama_cpp.Llama, seed: int, settings: _Sampling) -> Any:
    """A native chain that samples exactly as ``Llama.generate`` does with this seed."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if not chain:
        raise ModelError("llama.cpp could not create a sampler chain.")
    try:
        penalties: tuple[float, ...] = (llama.last_n_tokens_size, settings.repeat_penalty, 0.0, 0.0)
        if len(llama_cpp.llama_sampler_init_penalties.argtypes) == 5:  # builds that take n_vocab
            penalties = (llama.n_vocab(), *penalties)
        parts = [llama_cpp.llama_sampler_init_penalties(*penalties)]
        if settings.grammar is not None:  # where Llama.generate puts it: after the penalties
            grammar = llama_cpp.llama_sampler_init_grammar(
                llama._model.vocab, settings.grammar.encode("utf-8"), b"root"
            )
            if not grammar:
                for part in parts:
                    llama_cpp.llama_sampler_free(part)
                raise ConfigurationError("llama.cpp could not parse the sampling grammar.")
            parts.append(grammar)
        if settings.temperature <= 0:
            parts.append(llama_cpp.llama_sampler_init_greedy())
        else:
            parts += [
                llama_cpp.llama_sampler_init_top_k(settings.top_k),
                llama_cpp.llama_sampler_init_typical(1.0, 1),
                llama_cpp.llama_sampler_init_top_p(settings.top_p, 1),
                llama_cpp.llama_sampler_init_min_p(settings.min_p, 1),
                llama_cpp.llama_sampler_init_temp(settings.temperature),
                llama_cpp.llama_sampler_init_dist(seed),
            ]
        for part in parts:  # the chain owns (and frees) what is added to it
            llama_cpp.llama_sampler_chain_add(chain, part)
    except BaseException:
        llama_cpp.llama_sampler_free(chain)
        raise
    return chain


def _check(code: int, what: str) -> None:
    if code != 0:
        raise BatchedDecodeError(
            f"llama_decode failed on {what} with code {code} (1: no KV slot for the batch, "
            "2: aborted, negative: invalid batch or a fatal error)."
        )


def _copy_result(tracker: TextTracker, result: SequenceResult) -> None:
    result.text = tracker.text
    result.output_tokens = tracker.output_tokens
    result.finish_reason = tracker.finish_reason
    result.logprobs = tracker.logprobs
    result.token_confidences = tracker.token_confidences


__all__ = [
    "WINDOW_ALIGN",
    "BatchedDecodeError",
    "BatchedSampler",
    "KVLayout",
    "SequenceResult",
    "supports_batched_decoding",
]
