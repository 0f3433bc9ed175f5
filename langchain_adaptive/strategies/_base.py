"""The strategy protocol: a strategy plans, a driver executes.

A strategy is a generator. It yields actions (estimate the question, draw n
samples, score the candidates) and the driver answers each with its outcome;
when the strategy returns, its :class:`Decision` says how much it decided to
spend and why it stopped. Because strategies never call models themselves,
the same plan runs live (sync or async, in the runnable) and, later, against
recorded samples, and it gives the same decisions in both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, ConfigDict

from langchain_adaptive._selection import Aggregation, SelectionRule
from langchain_adaptive.answers import (
    STEP_JOINER,
    AnswerEquivalence,
    AnswerExtractor,
    answers_match,
    extract_answer,
)
from langchain_adaptive.budget import BudgetTracker
from langchain_adaptive.confidence import ConfidenceStop
from langchain_adaptive.results import Beam, Candidate, StopReason, SuccessEstimate


@dataclass(frozen=True)
class EstimateQuestion:
    """Ask the PRM for the question-level estimate; the driver sends back a SuccessEstimate."""


@dataclass(frozen=True)
class Draw:
    """Draw ``n`` more samples; the driver sends back the new :class:`Candidate` s.

    ``reason`` and ``planned`` say why and how many the strategy decided on
    (``n`` is what the limits allow of it); drivers report them as the
    ``adaptive_budget_decided`` event. They take no part in equality, so plans
    compare by what they draw.
    """

    n: int
    reason: str = field(default="draw", compare=False)
    """Why the strategy drew: ``"ias"``, ``"fixed"``, ``"capped"``, ``"sequential_round"``..."""
    planned: int | None = field(default=None, compare=False)
    """Samples the strategy decided on before the limits; ``None``: the same as ``n``."""
    stop_on_confidence: ConfidenceStop | None = None
    """Ask for each token's confidence ``C_i`` and, with a threshold, stop a sample once a
    full window's group confidence falls below it (DeepConf online). Drivers forward it as
    the ``confidence_stop`` call kwarg to models with ``supports_confidence_stop`` (such a
    sample ends with ``finish_reason="confidence_stop"``); other models draw whole samples,
    and the strategy scores them when they finish. Replay cuts a recorded sample where
    the stop would have fired."""
    horizon: int | None = field(default=None, compare=False)
    """The most samples this draw and the plan's later draws with the same settings may take
    in all (the plan's own cap); ``None``: only this draw's ``n``. A driver with
    ``launch="eager"`` starts that many (what the limits allow of it) at once, answers
    this and the later draws with the first to finish, and cancels the rest when the plan
    stops. Strategies that draw in rounds set it."""


@dataclass(frozen=True)
class ScoreCandidates:
    """Score every candidate not yet scored with the PRM; the driver sends back ``None``."""


@dataclass(frozen=True)
class ExtendBeams:
    """Generate the next step of beams: ``counts[i]`` continuations of ``parents[i]``.

    The driver sends back the new child :class:`Beam` s (also appended to
    ``RunState.beams``), a child finished when its step states a final answer
    or is empty. It generates no more steps than the token cap allows.
    """

    parents: tuple[Beam | None, ...]
    """The beams to continue; ``None`` continues the empty solution (a first step)."""
    counts: tuple[int, ...]
    stop: tuple[str, ...] = (STEP_JOINER,)
    """Stop strings that end one step."""
    temperature: float | None = None
    """Sampling temperature for these steps; ``None`` keeps the runnable's. Lookahead
    rollouts decode greedily (``0.0``)."""
    rollout: bool = False
    """The children roll out a search step (lookahead): they carry ``rollout_of`` and take
    no part in the search themselves."""


@dataclass(frozen=True)
class ScoreBeams:
    """Score every step prefix of ``beams``; the driver sets their estimates, sends back ``None``.

    The driver reports each score as an ``adaptive_step_scored`` event.
    """

    beams: tuple[Beam, ...]


@dataclass(frozen=True)
class PruneBeams:
    """Record a selection round; the driver marks ``dropped`` pruned and sends back ``None``.

    ``kept`` beams go on with ``m`` next steps each, unless finished. A
    particle filter's resampling lists one entry per particle drawn (a beam
    drawn twice is kept twice, and its two copies get ``m`` next steps each).
    The driver reports the round as an ``adaptive_beams_pruned`` event.
    """

    step_index: int
    kept: tuple[Beam, ...]
    dropped: tuple[Beam, ...]
    k: int
    m: int
    floored: bool = False
    """The target was out of reach and the adaptive widths dropped to their floors."""


@dataclass(frozen=True)
class CollectBeams:
    """Make ``beams`` the run's candidates; the driver sends back the new :class:`Candidate` s.

    Each beam is one complete path and counts as one sample.
    """

    beams: tuple[Beam, ...]


@dataclass(frozen=True)
class Revise:
    """Ask the model to revise each chain's attempts; the driver sends back the new
    :class:`Candidate` s, one per chain in order.

    ``chain_attempts[i]`` are the earlier attempts of chain ``chains[i]`` that its
    revision prompt shows, oldest first. The driver renders ``prompt`` for each
    (see :func:`langchain_adaptive.strategies._revise.revision_messages`), draws
    one sample per chain, as many as the sample and token limits allow (the
    first chains first), counts each like a drawn sample (its longer prompt
    included), and reports each as an ``adaptive_revision`` event.
    """

    chains: tuple[int, ...]
    chain_attempts: tuple[tuple[Candidate, ...], ...]
    prompt: ChatPromptTemplate = field(compare=False)
    revision: int = 1
    """Which revision of its chain this is (1 for the first revision of a first answer)."""


Action = (
    EstimateQuestion
    | Draw
    | ScoreCandidates
    | ExtendBeams
    | ScoreBeams
    | PruneBeams
    | CollectBeams
    | Revise
)

BEAM_ACTIONS = (ExtendBeams, ScoreBeams, PruneBeams, CollectBeams)
"""Actions of step-level search; drivers that hold whole samples only cannot serve them."""


@dataclass
class RunState:
    """What a strategy may read while planning: the question, its candidates and the budget."""

    question: str
    target_confidence: float
    tracker: BudgetTracker
    has_prm: bool
    candidates: list[Candidate] = field(default_factory=list)
    question_estimate: SuccessEstimate | None = None
    equivalent: AnswerEquivalence = answers_match
    """Answer equivalence used by vote-based stopping rules."""
    extract_answer: AnswerExtractor = extract_answer
    """The answer of a finished beam's text, for stopping rules that vote over beams."""
    beams: list[Beam] = field(default_factory=list)
    """Every beam of a step-level search, in creation order."""
    stops_on_confidence: bool = False
    """Whether the driver ends samples mid-generation on a :class:`Draw`'s
    ``stop_on_confidence`` (a model with ``supports_confidence_stop``, or replay)."""

    def allowance(self, wanted: int) -> int:
        """How many of ``wanted`` samples the hard limits allow now."""
        return self.tracker.allowance(wanted)

    @property
    def max_samples(self) -> int:
        return self.tracker.limits.max_samples


def remaining_samples(state: RunState) -> int:
    """Samples a plan that draws in rounds may still take in all: its ``Draw.horizon``."""
    return max(0, state.max_samples - len(state.candidates))


class Decision(BaseModel):
    """How much a strategy decided to spend and why it stopped."""

    stop_reason: StopReason
    decided_samples: int
    confidence: float | None = None
    """Estimated probability that some drawn sample is correct, when the strategy knows it."""
    low_confidence: bool = False
    warnings: list[str] = []
    finalists: list[int] | None = None
    """Indices of the candidates selection picks from; ``None``: every candidate. Majority
    over sequential revisions votes over each chain's last attempt only."""


Plan = Generator[Action, Any, Decision]


class Strategy(BaseModel, ABC):
    """Base class of sampling strategies; subclasses implement :meth:`plan`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    """Registry name, e.g. ``"adaptive_best_of_n"``."""
    requires_prm: ClassVar[bool] = False
    stepwise: ClassVar[bool] = False
    """Whether the strategy searches over steps (needs a driver that generates steps)."""
    revises: ClassVar[bool] = False
    """Whether the strategy asks the model to revise earlier attempts (:class:`Revise`):
    recorded pools hold independent samples, so it runs live only."""

    selection: SelectionRule = "weighted_vote"
    """How the final answer is picked (see :mod:`langchain_adaptive._selection`)."""
    aggregation: Aggregation = "last"
    """How a candidate's step scores combine into one score for ``prm``/``weighted_vote``."""

    @property
    def needs_scores(self) -> bool:
        """Whether candidates must be scored by the PRM for selection."""
        return self.selection != "majority_vote"

    @abstractmethod
    def plan(self, state: RunState) -> Plan:
        """Yield actions until done; return the :class:`Decision`."""

    def _draw_and_score(
        self, state: RunState, n: int, reason: str = "draw"
    ) -> Generator[Action, Any, int]:
        """Draw up to ``n`` samples within the limits and score them if selection needs it.

        ``reason`` tags the budget decision behind ``n`` (see :class:`Draw`).
        """
        allowed = state.allowance(n)
        if allowed > 0:
            yield Draw(allowed, reason=reason, planned=n)
        if self.needs_scores and state.has_prm and state.candidates:
            yield ScoreCandidates()
        return allowed


__all__ = [
    "BEAM_ACTIONS",
    "Action",
    "CollectBeams",
    "Decision",
    "Draw",
    "EstimateQuestion",
    "ExtendBeams",
    "Plan",
    "PruneBeams",
    "Revise",
    "RunState",
    "ScoreBeams",
    "ScoreCandidates",
    "Strategy",
    "remaining_samples",
]
