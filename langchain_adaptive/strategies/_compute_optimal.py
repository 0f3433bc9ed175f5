"""Compute-optimal strategy choice (Snell et al. 2024): the best strategy per difficulty and budget.

No one strategy is best everywhere: on easy questions one sample or a short
vote is enough, on hard ones a larger best-of-N or IAS pays off, and the best
choice moves with the compute one can afford. Following Snell et al., a
validation run (the harness's replay of every policy on recorded pools, or a
live run's per-question records of any family: revisions, lookahead, particle
filtering) is split into difficulty bins by the calibrated question-level
estimate (quantile bins, five by default); for each bin and each budget level
(mean samples, or mean generated tokens, per question) the policy with the
best accuracy within that budget is chosen. The choice is saved as a small
JSON file (:class:`ComputeOptimalPolicy`), and :class:`ComputeOptimalStrategy`
loads it: it estimates the question, looks up its bin and delegates to that
bin's strategy.

Making the choice from replayed outcomes is harness work and lives with the
harness (:mod:`langchain_adaptive.evaluation.compute_optimal_fit`,
``bench choose-policy``); this module only reads the file and runs it, so the
runtime never imports the harness.

The bins only mean something for the estimator they were made with: run the
strategy with the same (calibrated) PRM the validation pools recorded.
"""

from __future__ import annotations

import bisect
import itertools
import os
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from langchain_adaptive._selection import SelectionRule, select_finalists
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.strategies._base import (
    Decision,
    EstimateQuestion,
    Plan,
    RunState,
    Strategy,
)

POLICY_FORMAT: Final = "langchain-adaptive/compute-optimal"
BudgetUnit = Literal["samples", "tokens"]
"""What a budget level counts per question: samples drawn, or generated tokens (the one unit
that compares families: a revision, a step or a rollout costs different tokens)."""


class BinChoice(BaseModel):
    """The strategy chosen for one difficulty bin at one budget, with its validation numbers."""

    strategy: str
    """Registry name (see :mod:`langchain_adaptive.strategies`)."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """The strategy's fields, as :func:`~langchain_adaptive.strategies.build_strategy` takes."""
    target_confidence: float = Field(gt=0.0, lt=1.0)
    max_samples: int = Field(ge=1)
    max_tokens_per_sample: int | None = Field(default=None, ge=1)
    """The token cap per generation (sample, step or revision) it was validated with;
    ``None``: not recorded. The choice runs at this cap or the runnable's, whichever
    is lower."""
    policy: str
    """The replayed policy it came from, e.g. ``"ias[probe]@0.9"``."""
    accuracy: float
    """Validation accuracy on the bin's questions."""
    mean_samples: float
    """Validation samples per question on the bin's questions."""
    mean_tokens: float | None = None
    """Validation generated tokens per question on the bin's questions (when known)."""


class BudgetLevel(BaseModel):
    """One choice per bin for a given compute budget."""

    budget: float = Field(gt=0.0)
    """Mean samples (or generated tokens, by the file's ``budget_unit``) per question the
    chosen policies may spend (on validation)."""
    choices: list[BinChoice] = Field(min_length=1)


class ComputeOptimalPolicy(BaseModel):
    """The saved choice: bin edges, and per budget level the strategy of every bin.

    Example:
        .. code-block:: python

            policy = ComputeOptimalPolicy.load("policy.json")
            policy.choice(estimate=0.35, budget=4).strategy  # e.g. "best_of_n"
    """

    format: Literal["langchain-adaptive/compute-optimal"] = POLICY_FORMAT
    version: Literal[1, 2] = 1
    """2 when the file needs a reader that knows ``budget_unit`` and per-choice selection."""
    estimator: str
    """The estimator whose question estimates made the bins (a PRM or calibrated name)."""
    quantile: float = Field(gt=0.0, lt=1.0)
    """The level of the question estimate that is binned."""
    selection: SelectionRule | None
    """How every chosen strategy selects its answer (one rule for the whole file);
    ``None`` (version 2): each choice selects by its own rule, in its ``settings``."""
    budget_unit: BudgetUnit = "samples"
    """What the budget levels count; ``"tokens"`` needs version 2."""
    bin_edges: list[float]
    """Ascending inner edges: bin ``i`` holds estimates in ``[edges[i-1], edges[i])``."""
    levels: list[BudgetLevel] = Field(min_length=1)
    """Budget levels, ascending."""
    source: str | None = None
    """What the validation run replayed (a pool file and its model)."""

    @field_validator("bin_edges")
    @classmethod
    def _ascending(cls, edges: list[float]) -> list[float]:
        if any(b < a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"bin edges must ascend: {edges}")
        return edges

    @model_validator(mode="after")
    def _consistent(self) -> ComputeOptimalPolicy:
        if self.version == 1 and (self.budget_unit != "samples" or self.selection is None):
            raise ValueError("budgets in tokens or per-choice selection need version 2")
        bins = len(self.bin_edges) + 1
        for level in self.levels:
            if len(level.choices) != bins:
                raise ValueError(
                    f"budget {level.budget} has {len(level.choices)} choices for {bins} bins"
                )
        budgets = [level.budget for level in self.levels]
        if budgets != sorted(set(budgets)):
            raise ValueError(f"budget levels must be distinct and ascending: {budgets}")
        return self

    def bin_of(self, estimate: float) -> int:
        """The bin of a question estimate (at :attr:`quantile`)."""
        return bisect.bisect_right(self.bin_edges, estimate)

    def level(self, budget: float | None = None) -> BudgetLevel:
        """The largest budget level within ``budget`` (``None``: the largest of all).

        Raises:
            ConfigurationError: ``budget`` is below the smallest level.
        """
        if budget is None:
            return self.levels[-1]
        fitting = [level for level in self.levels if level.budget <= budget + 1e-12]
        if not fitting:
            raise ConfigurationError(
                f"budget {budget} is below the smallest level in the policy "
                f"({self.levels[0].budget})"
            )
        return fitting[-1]

    def choice(self, estimate: float, budget: float | None = None) -> BinChoice:
        """The chosen strategy for a question with this estimate at this budget."""
        return self.level(budget).choices[self.bin_of(estimate)]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the policy as JSON (atomically: a crash never leaves half a file)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        partial.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        partial.replace(out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ComputeOptimalPolicy:
        """Read a policy file written by :meth:`save`.

        Raises:
            ConfigurationError: The file is missing or is not a valid policy file.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(f"cannot read policy file {path}: {error}") from error
        try:
            policy = cls.model_validate_json(text)
        except ValidationError as error:
            raise ConfigurationError(f"{path} is not a compute-optimal policy: {error}") from error
        from langchain_adaptive.strategies import build_strategy  # the registry imports us

        for level in policy.levels:
            for choice in level.choices:
                build_strategy(choice.strategy, **choice.settings)  # fails early, by name
        return policy


class ComputeOptimalStrategy(Strategy):
    """Estimate the question, find its difficulty bin, run that bin's chosen strategy.

    The chosen strategy runs with the target confidence it was validated at,
    and with the sample cap and the token cap per generation lowered to the ones
    it was validated with (never raised past the runnable's). It is answered the
    question estimate already made, so the PRM is asked once. Its answer is picked
    by its own selection rule (a beam search by PRM score, revisions by weighted
    vote), whatever this strategy's rule is. Where the choice was validated with a
    higher token cap per generation than the runnable allows, it runs at the
    runnable's, and the result says so in a warning.

    Example:
        .. code-block:: python

            strategy = ComputeOptimalStrategy.load("policy.json", budget=4)
            AdaptiveReasoningRunnable(model=chat, prm=calibrated_prm, strategy=strategy)
    """

    name: ClassVar[str] = "compute_optimal"
    requires_prm: ClassVar[bool] = True

    policy: ComputeOptimalPolicy
    budget: float | None = Field(default=None, gt=0.0)
    """Mean samples (or generated tokens, by the file's ``budget_unit``) per question to
    plan for: the largest level within it (``None``: the largest level of all)."""

    @model_validator(mode="before")
    @classmethod
    def _selection_from_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "selection" not in data:
            policy = data.get("policy")
            if isinstance(policy, ComputeOptimalPolicy) and policy.selection is not None:
                return {**data, "selection": policy.selection}
        return data

    @model_validator(mode="after")
    def _check(self) -> ComputeOptimalStrategy:
        if self.policy.selection is not None and self.selection != self.policy.selection:
            raise ValueError(
                f"selection {self.selection!r} differs from the policy file's "
                f"{self.policy.selection!r}"
            )
        self.policy.level(self.budget)  # a budget below every level fails here
        return self

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, budget: float | None = None) -> Self:
        """The strategy of a policy file written by ``bench choose-policy``."""
        try:
            return cls(policy=ComputeOptimalPolicy.load(path), budget=budget)
        except ValidationError as error:
            raise ConfigurationError(str(error)) from error

    def plan(self, state: RunState) -> Plan:
        from langchain_adaptive.strategies import build_strategy  # the registry imports us

        estimate = yield EstimateQuestion()
        choice = self.policy.choice(estimate.at(self.policy.quantile), self.budget)
        delegate = build_strategy(choice.strategy, **choice.settings)
        state.target_confidence = choice.target_confidence
        limits = state.tracker.limits  # lowered to the choice's caps, never raised
        lowered: dict[str, int] = {}
        if choice.max_samples < limits.max_samples:
            lowered["max_samples"] = choice.max_samples
        validated_cap = choice.max_tokens_per_sample
        if validated_cap is not None and validated_cap < limits.max_tokens_per_sample:
            lowered["max_tokens_per_sample"] = validated_cap
        if lowered:
            state.tracker.limits = limits.model_copy(update=lowered)
        sub = delegate.plan(state)
        outcome: Any = None
        try:
            while True:
                action = sub.send(outcome)
                outcome = estimate if isinstance(action, EstimateQuestion) else (yield action)
        except StopIteration as stop:
            decision: Decision = stop.value
        return self._as_delegate_chose(decision, delegate, choice, state)

    def _as_delegate_chose(
        self, decision: Decision, delegate: Strategy, choice: BinChoice, state: RunState
    ) -> Decision:
        """The decision narrowed to the delegate's pick, so the driver's rule (this
        strategy's) keeps it; and a warning when the run allows fewer tokens per
        generation than the choice was validated with."""
        update: dict[str, Any] = {}
        if delegate.selection != self.selection and state.candidates:
            picked = select_finalists(
                state.candidates, delegate.selection, decision.finalists,
                equivalent=state.equivalent,
            ).index  # fmt: skip
            if picked is not None:
                update["finalists"] = [picked]
        cap = state.tracker.limits.max_tokens_per_sample
        if choice.max_tokens_per_sample is not None and choice.max_tokens_per_sample != cap:
            update["warnings"] = [
                *decision.warnings,
                f"compute-optimal choice {choice.policy!r} was validated with "
                f"{choice.max_tokens_per_sample} tokens per generation, this run allows {cap}",
            ]
        return decision.model_copy(update=update) if update else decision


__all__ = [
    "BinChoice",
    "BudgetLevel",
    "BudgetUnit",
    "ComputeOptimalPolicy",
    "ComputeOptimalStrategy",
]
