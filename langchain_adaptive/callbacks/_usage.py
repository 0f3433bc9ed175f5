"""``AdaptiveUsageTracker``: questions, samples, tokens, calls and cost across runs.

Samples and questions come from the adaptive events; tokens and calls come
from the model runs themselves (``usage_metadata`` on chat messages, OpenAI
style ``token_usage`` from completion LLMs), the LangChain way, told apart as
sampling or PRM work by the ``adaptive_role`` metadata the runnable puts on its
child runs. Totals are kept under one lock, so a tracker shared by a threaded
``batch`` or by ``abatch`` adds up exactly.

``UsageCounter`` is the runnable's own, smaller tally: attached to one question's
PRM calls, it sums their ``usage_metadata`` into the result's budget report.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive.callbacks._events import AdaptiveFinished, CandidateGenerated
from langchain_adaptive.callbacks._handler import AdaptiveCallbackHandler
from langchain_adaptive.callbacks._metadata import ROLE_KEY
from langchain_adaptive.results import TokenUsage


class ModelPrice(BaseModel):
    """What one model's tokens cost, per million tokens (any currency, used consistently)."""

    model_config = ConfigDict(frozen=True)

    input_per_million: float = Field(default=0.0, ge=0.0)
    output_per_million: float = Field(default=0.0, ge=0.0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The price of that many prompt and generated tokens."""
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


class ModelUsage(BaseModel):
    """One model's calls and tokens, and their cost when it has a price."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    unreported_calls: int = 0
    """Calls that reported no token usage: their tokens are missing from the counts."""
    cost: float | None = None
    """``None`` when no price was given for this model."""


class UsageSnapshot(BaseModel):
    """The tracker's totals at one moment.

    ``generated_tokens``, ``prompt_tokens`` and ``model_calls`` are the sampling
    (policy) calls, as in :class:`~langchain_adaptive.results.BudgetReport`; the
    ``prm_*`` fields are the PRM's own runs and the model calls made inside them.
    """

    questions: int = 0
    """Questions finished (``adaptive_finished`` events)."""
    samples: int = 0
    """Candidates generated, including those of runs that later failed."""
    generated_tokens: int = 0
    prompt_tokens: int = 0
    model_calls: int = 0
    prm_calls: int = 0
    prm_input_tokens: int = 0
    prm_output_tokens: int = 0
    prm_model_calls: int = 0
    by_model: dict[str, ModelUsage] = {}
    """Model name -> its calls and tokens (sampling and PRM together)."""
    cost: float | None = None
    """Total over the priced models; ``None`` when no prices were given."""
    unpriced_models: list[str] = []
    """Models that were called but have no price (their cost is not in ``cost``)."""
    unreported_calls: int = 0
    """Model calls (sampling and PRM) that reported no token usage, so the token
    counts and ``cost`` are a lower bound whenever this is not 0."""


class AdaptiveUsageTracker(AdaptiveCallbackHandler):
    """Adds up what adaptive runs spend: questions, samples, tokens, calls, and cost.

    Attach one tracker to a whole ``batch``/``abatch`` (or many calls) and read
    :meth:`snapshot`. Only runs inside an adaptive runnable are counted.

    Args:
        prices: Model name -> :class:`ModelPrice` (or a mapping with
            ``input_per_million``/``output_per_million``). A model's name is
            its ``ls_model_name`` (what LangChain reports), else its class name.

    Example:
        .. code-block:: python

            tracker = AdaptiveUsageTracker(prices={"gpt-4o-mini": {"output_per_million": 0.6}})
            reasoner.batch(questions, config={"callbacks": [tracker]})
            usage = tracker.snapshot()
            usage.samples, usage.generated_tokens, usage.cost
    """

    def __init__(
        self, prices: Mapping[str, ModelPrice | Mapping[str, float]] | None = None
    ) -> None:
        super().__init__()
        self.prices = {
            name: price if isinstance(price, ModelPrice) else ModelPrice.model_validate(price)
            for name, price in (prices or {}).items()
        }
        self._lock = threading.Lock()
        self._totals = UsageSnapshot()
        self._models: dict[UUID, tuple[str, str]] = {}
        """Open model run -> (role, model name)."""
        self._prm_runs: set[UUID] = set()

    # -- adaptive events ----------------------------------------------------------------

    def on_candidate_generated(
        self, event: CandidateGenerated, *, run_id: UUID, **kwargs: Any
    ) -> None:
        with self._lock:
            self._totals.samples += 1

    def on_adaptive_finished(self, event: AdaptiveFinished, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._totals.questions += 1

    # -- model and PRM runs -------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().on_chain_start(serialized, inputs, run_id=run_id, parent_run_id=parent_run_id)
        if kwargs.get("run_type") != "prm" or (metadata or {}).get(ROLE_KEY) != "prm":
            return
        with self._lock:
            if parent_run_id not in self._prm_runs:  # a PRM calling a PRM is one call
                self._totals.prm_calls += 1
            self._prm_runs.add(run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_chain_end(outputs, run_id=run_id)
        with self._lock:
            self._prm_runs.discard(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_chain_error(error, run_id=run_id)
        with self._lock:
            self._prm_runs.discard(run_id)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._open_model_run(run_id, serialized, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._open_model_run(run_id, serialized, metadata)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            opened = self._models.pop(run_id, None)
            if opened is None:
                return
            role, model = opened
            usage_found = _tokens(response)
            input_tokens, output_tokens = usage_found or (0, 0)
            totals = self._totals
            if role == "prm":
                totals.prm_model_calls += 1
                totals.prm_input_tokens += input_tokens
                totals.prm_output_tokens += output_tokens
            else:
                totals.model_calls += 1
                totals.prompt_tokens += input_tokens
                totals.generated_tokens += output_tokens
            usage = totals.by_model.setdefault(model, ModelUsage())
            usage.calls += 1
            usage.input_tokens += input_tokens
            usage.output_tokens += output_tokens
            if usage_found is None:
                totals.unreported_calls += 1
                usage.unreported_calls += 1

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._models.pop(run_id, None)

    def _open_model_run(
        self, run_id: UUID, serialized: dict[str, Any] | None, metadata: dict[str, Any] | None
    ) -> None:
        metadata = metadata or {}
        role = metadata.get(ROLE_KEY)
        if role is None:
            return
        name = metadata.get("ls_model_name") or (serialized or {}).get("name") or "unknown"
        with self._lock:
            self._models[run_id] = (str(role), str(name))

    # -- reading ------------------------------------------------------------------------

    def snapshot(self) -> UsageSnapshot:
        """A copy of the totals so far, with costs from ``prices``."""
        with self._lock:
            snap = self._totals.model_copy(deep=True)
        cost = 0.0
        for name, usage in snap.by_model.items():
            price = self.prices.get(name)
            if price is None:
                snap.unpriced_models.append(name)
                continue
            usage.cost = price.cost(usage.input_tokens, usage.output_tokens)
            cost += usage.cost
        snap.cost = cost if self.prices else None
        return snap

    def reset(self) -> None:
        """Start the totals again from zero (runs in flight keep being counted)."""
        with self._lock:
            self._totals = UsageSnapshot()


def _tokens(response: LLMResult) -> tuple[int, int] | None:
    """Prompt and generated tokens of one model call as the model reported them; ``None``
    when it reported none (counted apart, never guessed)."""
    input_tokens = output_tokens = 0
    found = False
    for generations in response.generations:
        for generation in generations:
            message = generation.message if isinstance(generation, ChatGeneration) else None
            usage = getattr(message, "usage_metadata", None)
            if usage:
                found = True
                input_tokens += usage.get("input_tokens", 0)
                output_tokens += usage.get("output_tokens", 0)
    if found:
        return input_tokens, output_tokens
    llm_output = response.llm_output or {}
    if "token_usage" not in llm_output:
        return None
    # A batched completion call reports its totals on the first prompt's run and an
    # empty ``token_usage`` on the others (LLMResult.flatten): reported, not missing.
    reported = llm_output["token_usage"] or {}
    return int(reported.get("prompt_tokens") or 0), int(reported.get("completion_tokens") or 0)


class UsageCounter(BaseCallbackHandler):
    """Sums ``usage_metadata`` over every generation of every model call it sees.

    Attached to the PRM's calls, it accounts for what judging costs; thread-safe,
    so one counter can serve a threaded ``batch``.
    """

    def __init__(self) -> None:
        self.usage = TokenUsage()
        self._lock = threading.Lock()

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        usage = TokenUsage(model_calls=1)
        for generations in response.generations:
            for generation in generations:
                message = generation.message if isinstance(generation, ChatGeneration) else None
                if isinstance(message, AIMessage) and message.usage_metadata:
                    usage = usage + TokenUsage(
                        input_tokens=message.usage_metadata.get("input_tokens", 0),
                        output_tokens=message.usage_metadata.get("output_tokens", 0),
                    )
        with self._lock:
            self.usage = self.usage + usage


__all__ = ["AdaptiveUsageTracker", "ModelPrice", "ModelUsage", "UsageCounter", "UsageSnapshot"]
