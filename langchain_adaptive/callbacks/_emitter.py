"""Where a run hands its adaptive events to LangChain: one queue, flushed sync or async.

The runnable's episode queues typed events as decisions happen (inside code
that is shared by the sync and async paths) and flushes them at the end of
each action with :meth:`EventEmitter.flush` or :meth:`EventEmitter.aflush`, so
event emission lives in one place and every strategy gets it for free.
"""

from __future__ import annotations

from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableConfig

from langchain_adaptive.callbacks._events import AdaptiveEvent


class EventEmitter:
    """Queues adaptive events and dispatches them as LangChain custom events.

    Args:
        config: The config whose callbacks are the child manager of the run the
            events belong to (their ``run_id`` is that run's id).
        redact: Drop text fields (answers) from payloads, so traces and logs
            carry no prompt or answer text.

    Example:
        .. code-block:: python

            emitter = EventEmitter(config, redact=True)
            emitter.queue(EarlyStop(reason="consensus", samples_used=3, confidence=None))
            emitter.flush()  # or: await emitter.aflush()
    """

    def __init__(self, config: RunnableConfig, *, redact: bool = False) -> None:
        self.config = config
        self.redact = redact
        self._pending: list[AdaptiveEvent] = []

    def queue(self, event: AdaptiveEvent) -> None:
        """Hold ``event`` until the next flush."""
        self._pending.append(event)

    def _take(self) -> list[AdaptiveEvent]:
        pending, self._pending = self._pending, []
        return pending

    def flush(self) -> None:
        """Dispatch every queued event, in order, to the config's callbacks."""
        for event in self._take():
            dispatch_custom_event(
                event.event_name, event.payload(redact=self.redact), config=self.config
            )

    async def aflush(self) -> None:
        """Async twin of :meth:`flush`."""
        for event in self._take():
            await adispatch_custom_event(
                event.event_name, event.payload(redact=self.redact), config=self.config
            )


__all__ = ["EventEmitter"]
