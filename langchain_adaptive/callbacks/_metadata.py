"""The metadata keys and tags an adaptive run puts on its child runs.

Tracers (LangSmith, the JSONL trace writer) group runs by these, and the usage
tracker tells sampling calls from PRM calls by :data:`ROLE_KEY`.
"""

from __future__ import annotations

STRATEGY_KEY = "adaptive_strategy"
"""Metadata key: the strategy's registry name, e.g. ``"adaptive_best_of_n"``."""
QUESTION_ID_KEY = "adaptive_question_id"
"""Metadata key: a dict input's ``id``, else a stable hash of the question text."""
ROLE_KEY = "adaptive_role"
"""Metadata key: ``"policy"`` on sampling calls, ``"prm"`` on PRM calls and what they call."""
TAG_PREFIX = "adaptive:"
"""Child runs are tagged ``adaptive:<strategy>``."""

__all__ = ["QUESTION_ID_KEY", "ROLE_KEY", "STRATEGY_KEY", "TAG_PREFIX"]
