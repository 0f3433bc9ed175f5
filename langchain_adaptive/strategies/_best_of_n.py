"""Fixed best-of-N: draw N samples, score them, select one."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from langchain_adaptive.results import StopReason
from langchain_adaptive.strategies._base import Decision, Plan, RunState, Strategy


class BestOfN(Strategy):
    """Always draw the same N samples, however easy or hard the question.

    The baseline IAS is measured against. With ``selection="majority_vote"`` it
    is self-consistency and needs no PRM.

    Example:
        .. code-block:: python

            AdaptiveReasoningRunnable(model=chat, prm=prm, strategy=BestOfN(n=8))
    """

    name: ClassVar[str] = "best_of_n"

    n: int | None = Field(default=None, ge=1)
    """Samples per question; ``None`` uses the runnable's ``max_samples``."""

    def plan(self, state: RunState) -> Plan:
        wanted = min(self.n or state.max_samples, state.max_samples)
        why = "capped" if self.n is not None and self.n > state.max_samples else "fixed"
        drawn = yield from self._draw_and_score(state, wanted, why)
        reason: StopReason = "fixed_budget" if drawn == wanted else "token_budget"
        return Decision(stop_reason=reason, decided_samples=wanted)


__all__ = ["BestOfN"]
