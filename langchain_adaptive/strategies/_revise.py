"""Sequential revisions (Snell et al. 2024, arXiv 2408.03314), and their adaptive variant.

Parallel sampling draws independent answers; a revision chain lets the model
read its own earlier attempts and write a corrected one. One chain is a first
answer (a plain sample) followed by up to ``L`` revisions; each revision prompt
(a :class:`~langchain_core.prompts.ChatPromptTemplate` the user may replace)
shows the question and the chain's last ``shown_attempts`` (4) attempts, oldest
first, and asks for a corrected solution ending in the library's answer
instruction. A budget of ``N`` attempts splits into ``C`` parallel chains of
``1 + L`` attempts (``chains``, ``revisions``); the ratio is the knob: Snell
finds easy questions do best fully sequential, harder ones with more chains.

The chains advance together, one round at a time: round 0 draws the ``C``
first answers (a :class:`Draw`), round ``r`` revises every open chain once (a
:class:`Revise`). Every attempt is a sample: the caps on samples and on
generated tokens hold by reservation as for best-of-N, the first chains first
when they cut a round; the longer revision prompts count as prompt tokens.

The answer is picked by ``selection`` over every attempt (``weighted_vote`` by
default, or ``prm``), or, with ``majority_vote``, by a vote over each chain's
last attempt.

:class:`AdaptiveRevisions` reads the question's calibrated success estimate
``p`` (its lower bound at ``quantile``): at or above ``sequential_above`` it
runs ``easy_chains`` long chains (by default one: fully sequential), below it
many short ones (``hard_chain_length`` attempts each). The threshold is a
setting; :func:`fit_sequential_threshold` fits it on a calibration split. A
chain stops early when its latest attempt's calibrated score reaches the
target (``stop_score``, by default ``C``) or when ``stable_revisions`` (2)
revisions in a row give the same answer.

Recorded pools hold independent samples, so replay refuses these strategies:
they run live only.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any, ClassVar, Literal

from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from pydantic import Field, field_validator

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.results import Candidate, StopReason, SuccessEstimate
from langchain_adaptive.strategies._base import (
    Action,
    Decision,
    Draw,
    EstimateQuestion,
    Plan,
    Revise,
    RunState,
    ScoreCandidates,
    Strategy,
)

DEFAULT_REVISION_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "human",
            "{question}\n\n"
            "Here are earlier attempts at this problem, oldest first. They may contain "
            "mistakes.\n\n{attempts}\n\n"
            "Check them and write a corrected solution. {instruction}",
        )
    ]
)
"""The revision prompt: the question, the earlier attempts, the answer instruction."""

PROMPT_VARIABLES = frozenset({"question", "attempts", "instruction"})
"""What a revision prompt may use: ``{question}`` (its text), ``{attempts}`` (the earlier
attempts, numbered, oldest first) and ``{instruction}`` (the runnable's answer instruction)."""


def format_attempts(attempts: Sequence[Candidate]) -> str:
    """The earlier attempts as the prompt shows them: ``Attempt 1:`` and its text, and so on."""
    return "\n\n".join(
        f"Attempt {i}:\n{attempt.text.strip()}" for i, attempt in enumerate(attempts, start=1)
    )


def revision_messages(
    prompt: ChatPromptTemplate,
    question: str,
    attempts: Sequence[Candidate],
    instruction: str | None,
    system: Sequence[BaseMessage] = (),
) -> list[BaseMessage]:
    """The messages of one revision prompt.

    ``system`` (the question's own system messages) go first unless the
    template starts with one; few-shot examples are not repeated.

    Example:
        >>> from langchain_adaptive.results import Candidate
        >>> messages = revision_messages(
        ...     DEFAULT_REVISION_PROMPT, "What is 2 + 3?",
        ...     [Candidate(index=0, text="2 + 3 = 6. The answer is 6.")], "End with the answer.")
        >>> "Attempt 1:\\n2 + 3 = 6" in messages[-1].content
        True
    """
    messages = prompt.format_messages(
        question=question, attempts=format_attempts(attempts), instruction=instruction or ""
    )
    if messages and isinstance(messages[0], SystemMessage):
        return messages
    return [*system, *messages]


def split_budget(n: int, chains: int) -> tuple[int, int]:
    """``(C, L)``: ``chains`` chains (at most ``n``) of ``1 + L`` attempts within ``n``.

    Example:
        >>> split_budget(8, 2), split_budget(8, 1), split_budget(5, 8)
        ((2, 3), (1, 7), (5, 0))
    """
    chains = max(1, min(chains, n))
    return chains, n // chains - 1


def fit_sequential_threshold(
    estimates: Sequence[float],
    sequential_correct: Sequence[bool],
    parallel_correct: Sequence[bool],
) -> float:
    """The ``sequential_above`` that best picks between two ratios on a calibration split.

    Each question has its estimate ``p`` and whether the sequential ratio and
    the parallel ratio answered it right. The threshold ``t`` routes ``p >= t``
    to sequential and the rest to parallel; the one with most right answers
    wins (ties: the highest ``t``, i.e. the fewest questions sent sequential).
    ``math.inf`` sends every question to parallel.

    Example:
        >>> fit_sequential_threshold([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], [1, 1, 0, 0])
        0.8
    """
    if not len(estimates) == len(sequential_correct) == len(parallel_correct):
        raise ValueError("estimates and both outcome lists need one entry per question")
    best, best_right = math.inf, sum(map(bool, parallel_correct))
    for threshold in sorted(set(estimates), reverse=True):
        right = sum(
            bool(seq) if p >= threshold else bool(par)
            for p, seq, par in zip(estimates, sequential_correct, parallel_correct, strict=True)
        )
        if right > best_right:
            best, best_right = threshold, right
    return best


class SequentialRevisions(Strategy):
    """Sequential revisions: ``chains`` chains of a first answer and up to ``revisions`` revisions.

    See the module docstring. Every attempt is a candidate (``budget.samples_used``
    counts them); the cap on samples cuts the last rounds first.

    Example:
        .. code-block:: python

            strategy = SequentialRevisions(chains=2, revisions=3)
            result = AdaptiveReasoningRunnable(model=chat, prm=prm, strategy=strategy).invoke(q)
            [(c.index, c.answer) for c in result.candidates]
    """

    name: ClassVar[str] = "revise"
    revises: ClassVar[bool] = True
    ran_out: ClassVar[StopReason] = "fixed_budget"
    """The stop reason when every chain ran its planned length."""

    selection: SelectionRule = "weighted_vote"
    """Over every attempt; ``majority_vote`` votes over each chain's last attempt."""

    chains: int = Field(default=2, ge=1)
    """``C``: parallel chains."""
    revisions: int = Field(default=3, ge=0)
    """``L``: revisions after each chain's first answer (a chain holds up to ``1 + L``)."""
    shown_attempts: int = Field(default=4, ge=1)
    """Earlier attempts of its chain a revision prompt shows (the latest ones)."""
    prompt: ChatPromptTemplate = DEFAULT_REVISION_PROMPT
    """The revision prompt; may use ``{question}``, ``{attempts}`` and ``{instruction}``."""

    @field_validator("prompt")
    @classmethod
    def _known_variables(cls, prompt: ChatPromptTemplate) -> ChatPromptTemplate:
        unknown = set(prompt.input_variables) - PROMPT_VARIABLES
        if unknown:
            raise ValueError(
                f"the revision prompt uses {sorted(unknown)}; it may use only "
                f"{sorted(PROMPT_VARIABLES)}"
            )
        if "attempts" not in prompt.input_variables:
            raise ValueError("the revision prompt must show the earlier {attempts}")
        return prompt

    def plan(self, state: RunState) -> Plan:
        c, length = self.chains, self.revisions
        return (yield from self._run_chains(state, c, length, reason="fixed"))

    # -- the chains ---------------------------------------------------------------------

    def _scores_each_round(self, state: RunState) -> bool:
        """Whether a stop rule reads every attempt's score as it arrives."""
        return False

    def _stop_rule(self, state: RunState, chain: list[Candidate]) -> StopReason | None:
        """Why ``chain`` stops before its last revision; ``None``: it goes on."""
        return None

    def _run_chains(
        self, state: RunState, c: int, length: int, reason: str
    ) -> Generator[Action, Any, Decision]:
        planned = c * (1 + length)
        first = state.allowance(c)
        chains: list[list[Candidate]] = []
        if first:
            new: list[Candidate] = yield Draw(first, reason=reason, planned=planned)
            chains = [[candidate] for candidate in new]
        if chains and self._scores_each_round(state):
            yield ScoreCandidates()
        stopped: dict[int, StopReason] = {}
        self._note_stops(state, chains, stopped)
        cut = first < c
        for revision in range(1, length + 1):
            open_chains = [i for i in range(len(chains)) if i not in stopped]
            if not open_chains:
                break
            allowed = state.allowance(len(open_chains))
            cut = cut or allowed < len(open_chains)
            if allowed == 0:
                break
            open_chains = open_chains[:allowed]
            new = yield Revise(
                chains=tuple(open_chains),
                chain_attempts=tuple(tuple(chains[i][-self.shown_attempts :]) for i in open_chains),
                prompt=self.prompt,
                revision=revision,
            )
            for i, candidate in zip(open_chains, new, strict=False):
                chains[i].append(candidate)
            if self._scores_each_round(state):
                yield ScoreCandidates()
            self._note_stops(state, chains, stopped, open_chains)
        if chains and state.has_prm and self.needs_scores:
            yield ScoreCandidates()  # those not scored yet; selection reads every score
        finalists = (
            [chain[-1].index for chain in chains] if self.selection == "majority_vote" else None
        )
        return Decision(
            stop_reason=self._stop_reason(state, stopped, cut),
            decided_samples=planned,
            low_confidence=cut,
            finalists=finalists,
        )

    def _note_stops(
        self,
        state: RunState,
        chains: list[list[Candidate]],
        stopped: dict[int, StopReason],
        which: Sequence[int] | None = None,
    ) -> None:
        for i in range(len(chains)) if which is None else which:
            rule = self._stop_rule(state, chains[i])
            if rule is not None:
                stopped[i] = rule

    def _stop_reason(
        self, state: RunState, stopped: dict[int, StopReason], cut: bool
    ) -> StopReason:
        if cut:
            return "token_budget" if state.tracker.token_limited() else "max_samples"
        reasons = set(stopped.values())
        if reasons:
            return "answer_confident" if reasons == {"answer_confident"} else "consensus"
        return self.ran_out


class AdaptiveRevisions(SequentialRevisions):
    """Sequential revisions whose chain-to-length ratio and early stops follow the PRM.

    ``N`` attempts (``n_samples``, by default the runnable's ``max_samples``)
    split into chains by the lower bound ``p`` of the question's calibrated
    success estimate: ``p >= sequential_above`` runs ``easy_chains`` chains
    (one: fully sequential), a lower ``p`` runs ``N // hard_chain_length``
    chains of ``hard_chain_length`` attempts. A chain stops when its latest
    attempt's score (its aggregated calibrated estimate) reaches ``stop_score``
    (by default the target ``C``), or when ``stable_revisions`` revisions in a
    row give the same answer.

    Example:
        .. code-block:: python

            strategy = AdaptiveRevisions(sequential_above=0.4)
            AdaptiveReasoningRunnable(model=chat, prm=calibrated_prm, strategy=strategy)
    """

    name: ClassVar[str] = "adaptive_revise"
    requires_prm: ClassVar[bool] = True
    ran_out: ClassVar[StopReason] = "adaptive_budget"

    n_samples: int | None = Field(default=None, ge=1)
    """``N``: attempts in all; ``None`` uses the runnable's ``max_samples``."""
    quantile: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Quantile of the question's estimate used as ``p``."""
    sequential_above: float = Field(default=0.3, ge=0.0)
    """``p`` at or above which the budget goes to few long chains (fit it with
    :func:`fit_sequential_threshold`; above 1 never)."""
    easy_chains: int = Field(default=1, ge=1)
    """Chains when ``p >= sequential_above``."""
    hard_chain_length: int = Field(default=2, ge=1)
    """Attempts per chain when ``p < sequential_above`` (1: parallel best-of-N)."""
    stop_score: float | None = Field(default=None, gt=0.0, le=1.0)
    """A chain stops once its latest attempt's score reaches this; ``None``: the target ``C``."""
    stable_revisions: int = Field(default=2, ge=2)
    """A chain stops once this many revisions in a row give the same answer."""
    stop_on: tuple[Literal["score", "stable"], ...] = ("score", "stable")
    """Which early stops apply."""

    def plan(self, state: RunState) -> Plan:
        estimate: SuccessEstimate = yield EstimateQuestion()
        n = min(self.n_samples or state.max_samples, state.max_samples)
        c, length, sequential = self.ratio(estimate, n)
        reason = "revise_sequential" if sequential else "revise_parallel"
        return (yield from self._run_chains(state, c, length, reason=reason))

    def ratio(self, estimate: SuccessEstimate, n: int) -> tuple[int, int, bool]:
        """``(C, L, sequential)`` for a question with ``estimate`` and ``n`` attempts."""
        sequential = estimate.at(self.quantile) >= self.sequential_above
        chains = self.easy_chains if sequential else max(1, n // self.hard_chain_length)
        return (*split_budget(n, chains), sequential)

    def _scores_each_round(self, state: RunState) -> bool:
        return state.has_prm and "score" in self.stop_on

    def _stop_rule(self, state: RunState, chain: list[Candidate]) -> StopReason | None:
        latest = chain[-1]
        target = self.stop_score if self.stop_score is not None else state.target_confidence
        if "score" in self.stop_on and latest.score is not None and latest.score >= target:
            return "answer_confident"
        revisions = chain[1:]
        if "stable" in self.stop_on and len(revisions) >= self.stable_revisions:
            last = revisions[-self.stable_revisions :]
            answers = [attempt.answer for attempt in last]
            if answers[0] is not None and all(
                a is not None and state.equivalent(answers[0], a) for a in answers[1:]
            ):
                return "consensus"
        return None


__all__ = [
    "DEFAULT_REVISION_PROMPT",
    "AdaptiveRevisions",
    "SequentialRevisions",
    "fit_sequential_threshold",
    "format_attempts",
    "revision_messages",
    "split_budget",
]
