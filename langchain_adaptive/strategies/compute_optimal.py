"""Compute-optimal strategy choice (Snell et al. 2024): the best strategy per difficulty and budget.

No one strategy is best everywhere: on easy questions one sample or a short
vote is enough, on hard ones a larger best-of-N or IAS pays off, and the best
choice moves with the compute one can afford. Following Snell et al., a
validation run (the harness's replay of every policy on recorded pools) is
split into five difficulty bins by the calibrated question-level estimate
(quantile bins, so each holds a fifth of the validation questions); for each
bin and each budget level (mean samples per question) the policy with the
best accuracy within that budget is chosen. The choice is saved as a small
JSON file (:class:`ComputeOptimalPolicy`), and :class:`ComputeOptimalStrategy`
loads it: it estimates the question, looks up its bin and delegates to that
bin's strategy.

Making the choice from replayed outcomes is harness work and lives with the
harness (:func:`langchain_adaptive.evaluation.compute_optimal_fit.choose_policy`,
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

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.selection import SelectionRule
from langchain_adaptive.strategies.base import (
    Decision,
    EstimateQuestion,
    Plan,
    RunState,
    Strategy,
)

POLICY_FORMAT: Final = "langchain-adaptive/compute-optimal"


class BinChoice(BaseModel):
    """The strategy chosen for one difficulty bin at one budget, with its validation numbers."""

    strategy: str
    """Registry name (see :mod:`langchain_adaptive.strategies`)."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """The strategy's fields, as :func:`~langchain_adaptive.strategies.build_strategy` takes."""
    target_confidence: float = Field(gt=0.0, lt=1.0)
    max_samples: int = Field(ge=1)
    policy: str
    """The replayed policy it came from, e.g. ``"ias[probe]@0.9"``."""
    accuracy: float
    """Validation accuracy on the bin's questions."""
    mean_samples: float
    """Validation samples per question on the bin's questions."""


class BudgetLevel(BaseModel):
    """One choice per bin for a given compute budget."""

    budget: float = Field(gt=0.0)
    """Mean samples per question the chosen policies may spend (on validation)."""
    choices: list[BinChoice] = Field(min_length=1)


class ComputeOptimalPolicy(BaseModel):
    """The saved choice: bin edges, and per budget level the strategy of every bin.

    Example:
        .. code-block:: python

            policy = ComputeOptimalPolicy.load("policy.json")
            policy.choice(estimate=0.35, budget=4).strategy  # e.g. "best_of_n"
    """

    format: Literal["langchain-adaptive/compute-optimal"] = POLICY_FORMAT
    version: Literal[1] = 1
    estimator: str
    """The estimator whose question estimates made the bins (a PRM or calibrated name)."""
    quantile: float = Field(gt=0.0, lt=1.0)
    """The level of the question estimate that is binned."""
    selection: SelectionRule
    """How every chosen strategy selects its answer (one rule for the whole file)."""
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

    The chosen strategy runs with the target confidence it was validated at
    and with the sample cap lowered to its validated cap (never raised past the
    runnable's). It is answered the question estimate already made, so the PRM
    is asked once.

    Example:
        .. code-block:: python

            strategy = ComputeOptimalStrategy.load("policy.json", budget=4)
            AdaptiveReasoningRunnable(model=chat, prm=calibrated_prm, strategy=strategy)
    """

    name: ClassVar[str] = "compute_optimal"
    requires_prm: ClassVar[bool] = True

    policy: ComputeOptimalPolicy
    budget: float | None = Field(default=None, gt=0.0)
    """Mean samples per question to plan for: the largest level within it (``None``: the
    largest level of all)."""

    @model_validator(mode="before")
    @classmethod
    def _selection_from_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "selection" not in data:
            policy = data.get("policy")
            if isinstance(policy, ComputeOptimalPolicy):
                return {**data, "selection": policy.selection}
        return data

    @model_validator(mode="after")
    def _check(self) -> ComputeOptimalStrategy:
        if self.selection != self.policy.selection:
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
        limits = state.tracker.limits
        if choice.max_samples < limits.max_samples:
            state.tracker.limits = limits.model_copy(update={"max_samples": choice.max_samples})
        sub = delegate.plan(state)
        outcome: Any = None
        try:
            while True:
                action = sub.send(outcome)
                outcome = estimate if isinstance(action, EstimateQuestion) else (yield action)
        except StopIteration as stop:
            decision: Decision = stop.value
        return decision


__all__ = [
    "BinChoice",
    "BudgetLevel",
    "ComputeOptimalPolicy",
    "ComputeOptimalStrategy",
]
