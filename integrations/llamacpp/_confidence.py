"""TokenConfidencePRM: step scores from the probability the policy gave its own tokens.

A wrong step is often one the policy was unsure of while writing it: the digit
of a product it half knows gets a fraction of the probability a result it
knows gets. This PRM reads that off the policy itself, with no second model
and no training: it evaluates the prompt the runnable sends (instruction and
few-shot examples included) followed by the solution so far, on the policy's
own llama.cpp context, and scores each prefix by the probability of the least
likely token in it (the weakest link of the chain of choices, in the spirit of
DeepConf's lowest-confidence filter, Fu et al. 2025). Raw confidences are not
success probabilities: calibrate them (``calibrate rescore`` then ``calibrate
fit``) before budgeting on them.

The question alone (k = 0) scores 1.0: no token has been written to doubt yet.
A calibrator fitted on the records turns that into the base rate of the
questions it saw; question-level differences are for a question-level PRM.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.errors import ContextLengthExceededError, ModelError
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION, FewShotExample, parse_input
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate

from ._chat_models import ChatLlamaCpp
from ._decode import fill_batch, logprob_entry


class TokenConfidencePRM(ProcessRewardModel):
    """Scores a prefix by the policy's probability of the least likely token it wrote.

    Pass the chat model that samples the solutions as ``policy`` (its loaded
    model and prompt cache are shared, under its lock) and the same
    ``instruction``, ``examples`` and ``system_prompt`` as the runnable, so the
    probabilities are those the policy sampled from.

    Example:
        .. code-block:: python

            from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, TokenConfidencePRM

            chat = ChatLlamaCpp()
            prm = TokenConfidencePRM(policy=chat)
            prm.score("What is 9 * 4?", [["9 * 4 = 24"], ["9 * 4 = 36"]])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    policy: ChatLlamaCpp = Field(default_factory=ChatLlamaCpp)
    """The chat model whose token probabilities are read."""
    instruction: str | None = DEFAULT_INSTRUCTION
    examples: list[FewShotExample] = Field(default_factory=list)
    system_prompt: str | None = None
    cache_size: int = Field(default=4096, ge=0)
    """Prefix scores kept (least recently used dropped): beam search re-scores open beams."""

    _cache: OrderedDict[tuple[str, str], float] = PrivateAttr(default_factory=OrderedDict)
    _cache_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        prefixes = {
            STEP_JOINER.join(steps[:k]) for steps in solutions for k in range(1, len(steps) + 1)
        }
        confidence = self._confidences(question, prefixes)
        return [
            [
                SuccessEstimate.point(confidence[STEP_JOINER.join(steps[:k])])
                for k in range(1, len(steps) + 1)
            ]
            if steps
            else [SuccessEstimate.point(1.0)]
            for steps in solutions
        ]

    def _confidences(self, question: str, prefixes: set[str]) -> dict[str, float]:
        """The score of every prefix, from the cache or one pass per prefix chain."""
        with self._cache_lock:
            found = {
                p: self._cache[(question, p)] for p in prefixes if (question, p) in self._cache
            }
        missing = sorted(prefixes - found.keys())
        if missing:
            found.update(self._evaluate(question, missing))
        with self._cache_lock:
            for prefix, value in found.items():
                self._cache[(question, prefix)] = value
                self._cache.move_to_end((question, prefix))
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def _evaluate(self, question: str, prefixes: list[str]) -> dict[str, float]:
        messages = parse_input(
            question,
            system_prompt=self.system_prompt,
            instruction=self.instruction,
            examples=self.examples,
        ).messages
        shared = self.policy.shared_llama
        with shared.lock:
            llama = shared.llama
            base = self._tokens(llama, messages, "")
            tokens = {p: self._tokens(llama, messages, p) for p in prefixes}
            scores: dict[str, float] = {}
            # A prefix whose tokens begin a longer prefix's is read off that one's pass.
            carriers: list[tuple[list[int], list[float]]] = []
            for prefix in sorted(prefixes, key=lambda p: len(tokens[p]), reverse=True):
                ids = tokens[prefix]
                start = _common_length(base, ids)
                carrier = next((c for c in carriers if c[0][: len(ids)] == ids), None)
                if carrier is None:
                    carrier = (ids, token_logprobs(llama, ids, start))
                    carriers.append(carrier)
                written = [v for v in carrier[1][start : len(ids)] if not math.isnan(v)]
                scores[prefix] = math.exp(min(written)) if written else 1.0
        return scores

    def _tokens(self, llama: object, messages: list[BaseMessage], prefix: str) -> list[int]:
        ids = self.policy._prompt_tokens(llama, [*messages, AIMessage(prefix)])  # type: ignore[arg-type]
        if len(ids) > self.policy.n_ctx:
            raise ContextLengthExceededError(
                f"a scored prefix has {len(ids)} tokens but n_ctx is {self.policy.n_ctx}",
                prompt_tokens=len(ids),
                context_size=self.policy.n_ctx,
            )
        return ids


def token_logprobs(llama: object, tokens: list[int], start: int) -> list[float]:
    """``log p(tokens[i] | tokens[:i])`` for every ``i >= start`` (earlier entries are NaN).

    Runs on the model's own context (the caller holds its lock) and keeps its
    prompt cache: tokens already evaluated there are not evaluated again, and
    only the rows that are read are computed (a model loaded without
    ``logits_all`` keeps just the last one otherwise). The context is left
    holding ``tokens``, so a generation from the same prompt reuses them.
    """
    import llama_cpp

    model: llama_cpp.Llama = llama  # type: ignore[assignment]
    start = max(start, 1)
    cached = _common_length(model.input_ids[: model.n_tokens].tolist(), tokens)
    first = min(cached, start - 1)  # the row before `start` predicts tokens[start]
    model._ctx.kv_cache_seq_rm(-1, first, -1)
    model.n_tokens = first
    logprobs = [math.nan] * len(tokens)
    batch = model._batch.batch
    for chunk_start in range(first, len(tokens), model.n_batch):
        chunk = tokens[chunk_start : chunk_start + model.n_batch]
        fill_batch(batch, [(t, chunk_start + i, 0) for i, t in enumerate(chunk)], logits=False)
        for i in range(len(chunk)):
            batch.logits[i] = start - 1 <= chunk_start + i < len(tokens) - 1
        if llama_cpp.llama_decode(model.ctx, batch) != 0:
            raise ModelError("llama.cpp failed to evaluate a scored prefix")
        for i in range(len(chunk)):
            position = chunk_start + i
            if start - 1 <= position < len(tokens) - 1:
                entry = logprob_entry(model, tokens[position + 1], 0, index=i)
                logprobs[position + 1] = entry["logprob"]
        model.input_ids[chunk_start : chunk_start + len(chunk)] = chunk
        model.n_tokens = chunk_start + len(chunk)
    return logprobs


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


__all__ = ["TokenConfidencePRM", "token_logprobs"]
