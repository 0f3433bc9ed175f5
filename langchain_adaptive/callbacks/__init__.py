"""Callbacks for adaptive runs: typed events, handlers, and built-in trackers.

An adaptive run reports each decision as a LangChain custom event
(``adaptive_budget_decided``, ``adaptive_candidate_generated``,
``adaptive_candidate_scored``, ``adaptive_step_scored``,
``adaptive_beams_pruned``, ``adaptive_revision``, ``adaptive_rollout_scored``,
``adaptive_early_stop``, ``adaptive_finished``), so
they show in ``astream_events`` and every tracer. :mod:`.events` holds one
pydantic model per event; :class:`AdaptiveCallbackHandler` hands them to typed
methods; :class:`AdaptiveUsageTracker`, :class:`AdaptiveProgressHandler` and
:class:`JsonlTraceWriter` are ready-made handlers.

Names are imported lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports

if TYPE_CHECKING:
    from langchain_adaptive.callbacks._emitter import EventEmitter
    from langchain_adaptive.callbacks._events import (
        EVENT_MODELS,
        AdaptiveEvent,
        AdaptiveFinished,
        BeamsPruned,
        BudgetDecided,
        CandidateGenerated,
        CandidateScored,
        EarlyStop,
        EstimateSummary,
        Revised,
        RolloutScored,
        StepScored,
        is_adaptive_event,
        parse_event,
    )
    from langchain_adaptive.callbacks._handler import (
        AdaptiveCallbackHandler,
        AsyncAdaptiveCallbackHandler,
    )
    from langchain_adaptive.callbacks._metadata import (
        QUESTION_ID_KEY,
        ROLE_KEY,
        STRATEGY_KEY,
        TAG_PREFIX,
    )
    from langchain_adaptive.callbacks._progress import AdaptiveProgressHandler
    from langchain_adaptive.callbacks._trace import JsonlTraceWriter, TraceRecord, read_trace
    from langchain_adaptive.callbacks._usage import (
        AdaptiveUsageTracker,
        ModelPrice,
        ModelUsage,
        UsageSnapshot,
    )

_MODULE_OF: dict[str, str] = {
    "EVENT_MODELS": "_events",
    "QUESTION_ID_KEY": "_metadata",
    "ROLE_KEY": "_metadata",
    "STRATEGY_KEY": "_metadata",
    "TAG_PREFIX": "_metadata",
    "AdaptiveCallbackHandler": "_handler",
    "AdaptiveEvent": "_events",
    "AdaptiveFinished": "_events",
    "AdaptiveProgressHandler": "_progress",
    "AdaptiveUsageTracker": "_usage",
    "AsyncAdaptiveCallbackHandler": "_handler",
    "BeamsPruned": "_events",
    "BudgetDecided": "_events",
    "CandidateGenerated": "_events",
    "CandidateScored": "_events",
    "EarlyStop": "_events",
    "EstimateSummary": "_events",
    "EventEmitter": "_emitter",
    "Revised": "_events",
    "RolloutScored": "_events",
    "JsonlTraceWriter": "_trace",
    "ModelPrice": "_usage",
    "ModelUsage": "_usage",
    "StepScored": "_events",
    "TraceRecord": "_trace",
    "UsageSnapshot": "_usage",
    "is_adaptive_event": "_events",
    "parse_event": "_events",
    "read_trace": "_trace",
}

__all__ = (
    "EVENT_MODELS",
    "QUESTION_ID_KEY",
    "ROLE_KEY",
    "STRATEGY_KEY",
    "TAG_PREFIX",
    "AdaptiveCallbackHandler",
    "AdaptiveEvent",
    "AdaptiveFinished",
    "AdaptiveProgressHandler",
    "AdaptiveUsageTracker",
    "AsyncAdaptiveCallbackHandler",
    "BeamsPruned",
    "BudgetDecided",
    "CandidateGenerated",
    "CandidateScored",
    "EarlyStop",
    "EstimateSummary",
    "EventEmitter",
    "JsonlTraceWriter",
    "ModelPrice",
    "ModelUsage",
    "Revised",
    "RolloutScored",
    "StepScored",
    "TraceRecord",
    "UsageSnapshot",
    "is_adaptive_event",
    "parse_event",
    "read_trace",
)


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, __all__)
