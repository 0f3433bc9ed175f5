"""ProbePRM: an on-device PRM that reads the policy model's own embedding of a prefix.

The embedding comes from the same GGUF file as the policy (a second, embedding
context of it, mean-pooled), so the probe costs one prompt evaluation per
solution (its step prefixes are read off the same pass) and no generation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.calibration._probe import ProbeHead
from langchain_adaptive.calibration._records import prefix_features
from langchain_adaptive.errors import (
    ConfigurationError,
    ContextLengthExceededError,
    ModelNotFoundError,
)
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel

from ._loading import SharedLlama, load_shared_llama, resolve_model_path

BUNDLED_HEAD = Path(__file__).parent / "heads" / "smollm2-135m-instruct-probe"
"""The probe head trained for the bundled SmolLM2 (docs/guides/calibration.md has the command)."""


def probe_text(question: str, prefix: str) -> str:
    """What the probe embeds: the question, then the solution so far."""
    return (
        f"{question.strip()}{STEP_JOINER}{prefix.strip()}" if prefix.strip() else question.strip()
    )


class LlamaCppEmbedder:
    """Mean-pooled embeddings from a GGUF model, loaded once and shared under its lock.

    Each text is evaluated alone, so its vector does not depend on which other
    texts share the call (llama-cpp-python's multi-sequence ``embed`` moves some
    vectors by whole units depending on how texts are packed). The context
    returns per-token hidden states and the mean is taken here, so the step
    prefixes of one solution cost a single pass: a text whose tokens begin a
    longer text of the same call is read off that text's running mean (the
    model is causal, so a token's state does not see what follows it).

    Recent embeddings are kept (``cache_size`` texts, least recently used
    dropped first): beam search scores every prefix of every open beam at each
    selection, and all but the newest prefix were embedded before.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        model_file: str | None = None,
        n_ctx: int = 2048,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.path = resolve_model_path(model, filename=model_file)
        self.n_ctx = n_ctx
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # llama.cpp embeds each text in a single batch, so the batch must hold the context.
        self._shared: SharedLlama = load_shared_llama(
            self.path,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
            embedding=True,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text: the mean of its tokens' final hidden states.

        Raises:
            ContextLengthExceededError: A text does not fit the context window.
        """
        llama = self._shared.llama
        with self._shared.lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            tokens = {t: llama.tokenize(t.encode("utf-8"), add_bos=True) for t in missing}
            for ids in tokens.values():
                if len(ids) > self.n_ctx:
                    raise ContextLengthExceededError(
                        f"a probe input has {len(ids)} tokens but n_ctx is {self.n_ctx}",
                        prompt_tokens=len(ids),
                        context_size=self.n_ctx,
                    )
            found = {t: self._cache[t] for t in texts if t in self._cache}
            found.update(self._embed_prefix_chains(tokens))
            for text, vector in found.items():
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return [found[text].tolist() for text in texts]

    def _embed_prefix_chains(self, tokens: dict[str, list[int]]) -> dict[str, np.ndarray]:
        """Mean vectors of ``tokens``' texts, one model pass per text no other text extends."""
        carriers: list[str] = []
        carrier_of: dict[str, str] = {}
        for text in sorted(tokens, key=lambda t: len(tokens[t]), reverse=True):
            ids = tokens[text]
            carrier_of[text] = next((c for c in carriers if tokens[c][: len(ids)] == ids), text)
            if carrier_of[text] == text:
                carriers.append(text)
        running: dict[str, np.ndarray] = {}
        for carrier in carriers:
            states = np.asarray(self._shared.llama.embed(carrier, truncate=False), np.float64)
            running[carrier] = np.cumsum(states.reshape(len(tokens[carrier]), -1), axis=0)
        return {
            text: (running[carrier][len(tokens[text]) - 1] / len(tokens[text])).astype(np.float32)
            for text, carrier in carrier_of.items()
        }


class ProbePRM(ProcessRewardModel):
    """Success quantiles predicted from the policy's embedding of each prefix.

    Without ``head_path`` it loads the head shipped for the bundled SmolLM2,
    trained on Monte-Carlo success rates of that model on the seeded arithmetic
    suite; train one for another model with ``langchain-adaptive calibrate
    fit-probe``. A head fitted with ``--with-score`` also reads the raw score of
    ``prm`` (the paper's quantile calibrator of that PRM, with the embedding as
    its extra feature), so ``prm`` must then be given.

    Example:
        .. code-block:: python

            from langchain_adaptive.integrations.llamacpp import ProbePRM

            prm = ProbePRM()
            prm.estimate_question("What is 7 + 8?").lower
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str | None = None
    """GGUF path or Hugging Face repo id of the policy; ``None`` is the bundled SmolLM2."""
    model_file: str | None = None
    head_path: str | None = None
    """Directory of a saved :class:`ProbeHead`; ``None`` uses the bundled head."""
    n_ctx: int = Field(default=2048, ge=16)
    n_gpu_layers: int = Field(default=0, ge=-1)
    n_threads: int | None = Field(default=None, ge=1)
    prm: ProcessRewardModel | None = None
    """The PRM whose raw scores a head fitted with ``uses_score`` reads."""

    _embedder: LlamaCppEmbedder | None = PrivateAttr(default=None)
    _head: ProbeHead | None = PrivateAttr(default=None)

    @property
    def embedder(self) -> LlamaCppEmbedder:
        if self._embedder is None:
            self._embedder = LlamaCppEmbedder(
                self.model,
                model_file=self.model_file,
                n_ctx=self.n_ctx,
                n_gpu_layers=self.n_gpu_layers,
                n_threads=self.n_threads,
            )
        return self._embedder

    @property
    def head(self) -> ProbeHead:
        if self._head is None:
            path = Path(self.head_path) if self.head_path else BUNDLED_HEAD
            if not (path / "probe.json").is_file():
                raise ModelNotFoundError(
                    f"no probe head at {path}; train one with `langchain-adaptive calibrate "
                    "fit-probe` and pass head_path="
                )
            self._head = ProbeHead.load(path)
        return self._head

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        texts: list[str] = []
        features: list[list[float]] = []
        for steps in solutions:
            for k in range(1, len(steps) + 1) if steps else [0]:
                prefix = STEP_JOINER.join(steps[:k])
                texts.append(probe_text(question, prefix))
                features.append(prefix_features(k, prefix))
        if not texts:
            return []
        flat = iter(
            self.head.predict(
                self.embedder.embed(texts),
                features,
                self._raw_scores(question, solutions, config) if self.head.uses_score else None,
            )
        )
        return [[next(flat) for _ in range(max(1, len(steps)))] for steps in solutions]

    def _raw_scores(
        self, question: str, solutions: Sequence[Sequence[str]], config: RunnableConfig
    ) -> list[float]:
        """``prm``'s raw score of every prefix, in the order :meth:`_score` embeds them."""
        if self.prm is None:
            raise ConfigurationError(
                "this probe head was fitted with a PRM's score (uses_score); pass prm= the "
                "PRM it was fitted on"
            )
        return [
            estimate.raw_score if estimate.raw_score is not None else estimate.median
            for row in self.prm.score(question, solutions, config)
            for estimate in row
        ]


__all__ = ["BUNDLED_HEAD", "LlamaCppEmbedder", "ProbePRM", "probe_text"]
