"""Callback handlers that receive adaptive events already parsed into their models.

Subclass :class:`AdaptiveCallbackHandler` (sync) or
:class:`AsyncAdaptiveCallbackHandler` (async) and override the typed methods
you need; custom events from other sources are ignored. Like every LangChain
handler they are attached with ``config={"callbacks": [handler]}`` and, with
the default ``raise_error = False``, an exception inside one is logged by
LangChain and never stops the run.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from langchain_adaptive.callbacks._events import (
    AdaptiveEvent,
    AdaptiveFinished,
    BeamsPruned,
    BudgetDecided,
    CandidateGenerated,
    CandidateScored,
    EarlyStop,
    Revised,
    RolloutScored,
    StepScored,
    is_adaptive_event,
    parse_event,
)

_METHODS: dict[type[AdaptiveEvent], str] = {
    BudgetDecided: "on_budget_decided",
    CandidateGenerated: "on_candidate_generated",
    CandidateScored: "on_candidate_scored",
    StepScored: "on_step_scored",
    BeamsPruned: "on_beams_pruned",
    Revised: "on_revision",
    RolloutScored: "on_rollout_scored",
    EarlyStop: "on_early_stop",
    AdaptiveFinished: "on_adaptive_finished",
}
"""Event model -> the typed handler method that receives it."""


class _RunParents:
    """Remembers each chain run's parent, so event handlers can report ``parent_run_id``.

    A custom event's ``run_id`` is the run that dispatched it (the adaptive
    runnable's run); LangChain does not pass that run's parent with the event.
    """

    def __init__(self) -> None:
        self._parents: dict[UUID, UUID | None] = {}

    def start(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        self._parents[run_id] = parent_run_id

    def end(self, run_id: UUID) -> None:
        self._parents.pop(run_id, None)

    def parent(self, run_id: UUID) -> UUID | None:
        return self._parents.get(run_id)


class AdaptiveCallbackHandler(BaseCallbackHandler):
    """A LangChain callback handler with one typed method per adaptive event.

    Every typed method receives the event model and the run's ``run_id``,
    ``parent_run_id``, ``tags`` and ``metadata`` (which carry
    ``adaptive_strategy`` and ``adaptive_question_id``). Override
    :meth:`on_adaptive_event` to see every adaptive event in one place. A
    subclass that overrides ``on_chain_start``/``on_chain_end``/``on_chain_error``
    calls ``super()`` so ``parent_run_id`` stays known.

    Example:
        .. code-block:: python

            class Budgets(AdaptiveCallbackHandler):
                def on_budget_decided(self, event, *, run_id, **kwargs):
                    print(event.strategy, event.n, event.reason)

            reasoner.invoke("What is 2 + 3?", config={"callbacks": [Budgets()]})
    """

    def __init__(self) -> None:
        super().__init__()
        self._runs = _RunParents()

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._runs.start(run_id, parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._runs.end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._runs.end(run_id)

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Parse an adaptive event and pass it to :meth:`on_adaptive_event`; ignore others.

        Raises:
            pydantic.ValidationError: The payload does not match the event's
                model (LangChain logs it unless ``raise_error`` is set).
        """
        if not is_adaptive_event(name):
            return
        self.on_adaptive_event(
            parse_event(name, data),
            run_id=run_id,
            parent_run_id=self._runs.parent(run_id),
            tags=tags,
            metadata=metadata,
        )

    def on_adaptive_event(
        self,
        event: AdaptiveEvent,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Receives every adaptive event; by default calls the event's typed method."""
        method = getattr(self, _METHODS[type(event)])
        method(event, run_id=run_id, parent_run_id=parent_run_id, tags=tags, metadata=metadata)

    def on_budget_decided(self, event: BudgetDecided, *, run_id: UUID, **kwargs: Any) -> None:
        """A strategy decided how many samples (or beams) to draw."""

    def on_candidate_generated(
        self, event: CandidateGenerated, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """A candidate solution arrived."""

    def on_candidate_scored(self, event: CandidateScored, *, run_id: UUID, **kwargs: Any) -> None:
        """The PRM scored a candidate."""

    def on_step_scored(self, event: StepScored, *, run_id: UUID, **kwargs: Any) -> None:
        """The PRM scored one step of a beam."""

    def on_beams_pruned(self, event: BeamsPruned, *, run_id: UUID, **kwargs: Any) -> None:
        """Beam search pruned beams."""

    def on_revision(self, event: Revised, *, run_id: UUID, **kwargs: Any) -> None:
        """The model revised a chain's attempts."""

    def on_rollout_scored(self, event: RolloutScored, *, run_id: UUID, **kwargs: Any) -> None:
        """A lookahead rollout was scored."""

    def on_early_stop(self, event: EarlyStop, *, run_id: UUID, **kwargs: Any) -> None:
        """A strategy stopped early."""

    def on_adaptive_finished(self, event: AdaptiveFinished, *, run_id: UUID, **kwargs: Any) -> None:
        """A question finished."""


class AsyncAdaptiveCallbackHandler(AsyncCallbackHandler):
    """Async twin of :class:`AdaptiveCallbackHandler`: the typed methods are coroutines.

    Use it when handling an event awaits I/O; LangChain awaits it on the event
    loop under ``ainvoke``/``abatch`` and runs it to completion under ``invoke``.

    Example:
        .. code-block:: python

            class Budgets(AsyncAdaptiveCallbackHandler):
                async def on_budget_decided(self, event, *, run_id, **kwargs):
                    await queue.put((run_id, event.n))
    """

    def __init__(self) -> None:
        super().__init__()
        self._runs = _RunParents()

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._runs.start(run_id, parent_run_id)

    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._runs.end(run_id)

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._runs.end(run_id)

    async def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Parse an adaptive event and await :meth:`on_adaptive_event`; ignore others."""
        if not is_adaptive_event(name):
            return
        await self.on_adaptive_event(
            parse_event(name, data),
            run_id=run_id,
            parent_run_id=self._runs.parent(run_id),
            tags=tags,
            metadata=metadata,
        )

    async def on_adaptive_event(
        self,
        event: AdaptiveEvent,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Receives every adaptive event; by default awaits the event's typed method."""
        method = getattr(self, _METHODS[type(event)])
        await method(
            event, run_id=run_id, parent_run_id=parent_run_id, tags=tags, metadata=metadata
        )

    async def on_budget_decided(self, event: BudgetDecided, *, run_id: UUID, **kwargs: Any) -> None:
        """A strategy decided how many samples (or beams) to draw."""

    async def on_candidate_generated(
        self, event: CandidateGenerated, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """A candidate solution arrived."""

    async def on_candidate_scored(
        self, event: CandidateScored, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """The PRM scored a candidate."""

    async def on_step_scored(self, event: StepScored, *, run_id: UUID, **kwargs: Any) -> None:
        """The PRM scored one step of a beam."""

    async def on_beams_pruned(self, event: BeamsPruned, *, run_id: UUID, **kwargs: Any) -> None:
        """Beam search pruned beams."""

    async def on_revision(self, event: Revised, *, run_id: UUID, **kwargs: Any) -> None:
        """The model revised a chain's attempts."""

    async def on_rollout_scored(self, event: RolloutScored, *, run_id: UUID, **kwargs: Any) -> None:
        """A lookahead rollout was scored."""

    async def on_early_stop(self, event: EarlyStop, *, run_id: UUID, **kwargs: Any) -> None:
        """A strategy stopped early."""

    async def on_adaptive_finished(
        self, event: AdaptiveFinished, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """A question finished."""


__all__ = ["AdaptiveCallbackHandler", "AsyncAdaptiveCallbackHandler"]
