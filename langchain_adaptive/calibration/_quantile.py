"""The paper's calibrator: a small head trained with the pinball loss to predict quantiles.

Park et al. (2025) calibrate a PRM by regressing quantiles of the Monte-Carlo
success rate on the PRM's score. :class:`QuantileCalibrator` does that with a
one-hidden-layer head on the score's logit plus standardized features (step
index, prefix length, or an embedding). Its outputs cannot cross: the head
predicts the lowest level's logit and softplus increments for the levels above.

Success rates have atoms at exactly 0 and 1 (no rollout, or every rollout,
succeeded), and the pinball optimum there is exactly 0 or 1, which a sigmoid
never reaches: the lowest quantile would then miss every zero-rate prefix. So
the logit goes through a sigmoid stretched by ``output_margin`` on both sides
and clipped to [0, 1], which reaches 0 and 1 at finite logits.

A few hundred prefixes are little data for a neural head, and a PRM's score
often carries little signal, so the head starts as Platt scaling: a linear path
beside the hidden layer predicts the mean as Platt scaling of the raw score and
each quantile as Platt's logit shifted to cover its share of the training
examples, and the hidden layer's output starts at zero. ``weight_decay`` pulls
the linear path back to that start and the hidden layer to zero, so the head
departs from Platt scaling only as far as the data pay for. With
``select_by_cv`` the fit chooses the hidden size, the weight decay and whether
to use the features by K-fold cross-validation over questions, preferring the
simplest candidate within one standard error of the best.

An optional one-sided conformal step shifts the lowest quantile's logit so that
at least ``conformal_coverage`` of held-out examples have a success rate at or
above it. The held-out examples are ``conformal_fraction`` of the questions
(split conformal), or with ``select_by_cv`` the out-of-fold predictions of the
cross-validation (cross-conformal), so that the head is trained on every question.

Fitting needs torch; prediction is a few numpy matrix products, so a saved
calibrator (for example the probe head shipped for the bundled model) loads and
runs without torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field, PrivateAttr, ValidationError, field_validator

from langchain_adaptive.calibration._base import Calibrator, FitData, check_arrays
from langchain_adaptive.calibration._baselines import PlattCalibrator
from langchain_adaptive.calibration._utils import clipped_logit, sigmoid
from langchain_adaptive.errors import CalibrationError

if TYPE_CHECKING:
    import torch

_TORCH_HINT = (
    "fitting a QuantileCalibrator needs torch: pip install torch, or the 'calibration' or "
    "'hf' extra: pip install 'langchain-adaptive[calibration]'"
)

CV_GRID_FIELDS = ("hidden", "weight_decay", "use_features", "epochs", "learning_rate")
"""The fields ``select_by_cv`` may vary."""
DEFAULT_CV_GRID: dict[str, tuple[Any, ...]] = {
    "hidden": (0, 32),
    "weight_decay": (1.0, 1e-1, 1e-2),
    "use_features": (False, True),
}
"""Candidates of ``select_by_cv``, simplest first: the first within noise of the best wins."""


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise ImportError(_TORCH_HINT) from error
    return torch


def _quantile_network(
    n_inputs: int, n_levels: int, hidden: int, n_extra: int = 0, *, skip: bool = False
) -> torch.nn.Module:
    """A torch module mapping inputs to non-crossing quantile logits (for training).

    ``n_extra`` more outputs follow the quantile logits unconstrained (the mean's logit).
    With ``skip`` (and ``hidden > 0``) a linear layer of the inputs is added to the
    hidden layer's output, so the head can start as, and stay close to, a linear model.

    Not the Hugging Face integration's ``QuantileHead``: that one replaces a PRM's own
    binary head (one linear layer, every level starting at the PRM's score, sorted to
    stay non-crossing); this one reads a score and features and keeps its levels apart
    with softplus increments, which cannot start all equal. Each is trained and saved
    in its own format.
    """
    _import_torch()  # an ImportError that names the extras, rather than a bare one
    import torch
    from torch import nn

    class QuantileNetwork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            n_outputs = n_levels + n_extra
            self.skip: nn.Module | None = None
            if hidden > 0:
                self.body: nn.Module = nn.Sequential(
                    nn.Linear(n_inputs, hidden), nn.Tanh(), nn.Linear(hidden, n_outputs)
                )
                if skip:
                    self.skip = nn.Linear(n_inputs, n_outputs)
            else:
                self.body = nn.Linear(n_inputs, n_outputs)

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            out = self.body(inputs)
            if self.skip is not None:
                out = out + self.skip(inputs)
            base = out[:, :1]
            steps = torch.nn.functional.softplus(out[:, 1:n_levels])
            quantiles = torch.cat([base, base + torch.cumsum(steps, dim=1)], dim=1)
            return torch.cat([quantiles, out[:, n_levels:]], dim=1)

    return QuantileNetwork()


def _weight_shapes(
    n_inputs: int, n_outputs: int, hidden: int, *, skip: bool = False
) -> dict[str, tuple[int, ...]]:
    if hidden > 0:
        shapes = {
            "body.0.weight": (hidden, n_inputs),
            "body.0.bias": (hidden,),
            "body.2.weight": (n_outputs, hidden),
            "body.2.bias": (n_outputs,),
        }
        if skip:
            shapes |= {"skip.weight": (n_outputs, n_inputs), "skip.bias": (n_outputs,)}
        return shapes
    return {"body.weight": (n_outputs, n_inputs), "body.bias": (n_outputs,)}


def _linear_path(hidden: int) -> str:
    """The name prefix of the head's linear path: the skip layer, or the whole linear head."""
    return "skip" if hidden > 0 else "body"


class QuantileCalibrator(Calibrator):
    """Quantiles of the success rate from the PRM score and prefix features (pinball loss).

    Setup:
        Fitting needs torch: ``pip install 'langchain-adaptive[calibration]'`` (or
        ``[hf]``); loading and predicting need only numpy.

    Key init args:
        levels: Quantile levels, default (0.1, 0.5, 0.9); IAS budgets on the lowest.
        hidden: Hidden units (0 for a linear head).
        use_features: Feed features besides the raw score when fit gets them.
        weight_decay: How strongly the head is held at its Platt-scaling start.
        select_by_cv: Choose ``hidden``, ``weight_decay`` and ``use_features``
            (``cv_grid``) by cross-validation over the fitting questions.
        conformal_coverage: If set, e.g. 0.9, shift the lowest quantile on
            held-out questions so that it covers at least that fraction.
        seed: Makes the fit reproducible.

    Example:
        .. code-block:: python

            from langchain_adaptive.calibration import QuantileCalibrator

            calibrator = QuantileCalibrator(conformal_coverage=0.9, select_by_cv=True, seed=0)
            calibrator.fit_records(train_records)  # groups: the records' question ids
            calibrator.hidden, calibrator.use_features  # what cross-validation chose
            estimate = calibrator.predict([0.9], [[2.0, 4.1]])[0]
            estimate.lower, estimate.median, estimate.expected
    """

    kind: ClassVar[str | None] = "quantile"
    _unsaved_fields: ClassVar[frozenset[str]] = frozenset({"device", "num_threads"})

    hidden: int = Field(default=32, ge=0)
    """Hidden units of the head's single hidden layer; 0 makes the head linear."""
    epochs: int = Field(default=300, ge=1)
    """Full-batch Adam steps."""
    learning_rate: float = Field(default=0.02, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    """L2 penalty on each parameter's distance from its anchor: the Platt start for the
    linear path (with ``platt_init``), zero for the rest. A large value holds the head
    at its Platt-scaling start."""
    seed: int = 0
    """Seeds the head's initialisation, the conformal split and the CV folds."""
    fit_mean: bool = True
    """Also learn the expected success probability (Brier loss): the point estimate
    that Brier score and ECE reward, which the median of a skewed rate is not."""
    use_features: bool = True
    """Use the features passed to fit (otherwise the raw score alone)."""
    platt_init: bool = True
    """Start the head at Platt scaling: a linear path (the whole head when ``hidden`` is
    0, else a skip layer beside the hidden layer, whose output layer starts at zero)
    predicts the mean as Platt scaling of the raw score and each quantile as Platt's
    logit shifted by that quantile of the training residuals. ``False``: the random
    start of earlier versions, with no skip layer."""
    select_by_cv: bool = False
    """Choose ``hidden``, ``weight_decay`` and ``use_features`` (the keys of ``cv_grid``)
    by K-fold cross-validation on the fitting data, folds by question when fit gets
    groups; fit then sets those fields to the winner, so a saved calibrator records it.
    The score is the fit's own objective (pinball plus Brier of the mean) out of fold.
    With ``conformal_coverage``, the shift comes from the winner's out-of-fold
    predictions and the head is trained on all the data (no split is held out)."""
    cv_folds: int = Field(default=5, ge=2)
    """Folds of ``select_by_cv`` (at most one per question)."""
    cv_grid: dict[str, tuple[Any, ...]] = Field(default_factory=lambda: dict(DEFAULT_CV_GRID))
    """Candidate values per field for ``select_by_cv``, simplest first: every combination
    is tried, and the first (in ``itertools.product`` order) within one standard error of
    the best wins."""
    output_margin: float = Field(default=0.01, ge=0.0, lt=0.5)
    """How far the sigmoid is stretched past [0, 1] so exact 0 and 1 are reachable."""
    conformal_coverage: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Target fraction of held-out examples at or above the lowest quantile; ``None``: no shift."""
    conformal_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    """Share of examples (of questions, when fit gets groups) held out for the conformal
    shift; unused with ``select_by_cv``, whose out-of-fold predictions serve instead."""
    device: str = "cpu"
    """Where the head runs; not saved, since it describes the machine, not the fit."""
    num_threads: int | None = Field(default=1, ge=1)
    """CPU threads torch may use while fitting (restored afterwards); ``None`` leaves
    torch's setting. The head is tiny, so one thread is fastest: more threads spin on a
    busy machine and made a fit up to 30 times slower in our measurements. Not saved."""

    _weights: dict[str, np.ndarray] | None = PrivateAttr(default=None)
    _mean: np.ndarray = PrivateAttr(default_factory=lambda: np.zeros(1))
    _std: np.ndarray = PrivateAttr(default_factory=lambda: np.ones(1))
    _shift: float = PrivateAttr(default=0.0)
    _cv_results: list[tuple[dict[str, Any], float]] = PrivateAttr(default_factory=list)

    @field_validator("cv_grid")
    @classmethod
    def _check_grid(cls, value: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
        unknown = sorted(set(value) - set(CV_GRID_FIELDS))
        if unknown:
            raise ValueError(f"cv_grid may vary {sorted(CV_GRID_FIELDS)}, not {unknown}")
        if not value or any(len(values) == 0 for values in value.values()):
            raise ValueError("cv_grid needs at least one value per field")
        return value

    @property
    def uses_features(self) -> bool:
        return len(self._mean) > 1

    @property
    def conformal_shift(self) -> float:
        """How far the conformal step moved the lowest quantile's logit down (negative: up)."""
        return self._shift

    @property
    def cv_results(self) -> list[tuple[dict[str, Any], float]]:
        """``(candidate, mean fold objective)`` of the last ``select_by_cv`` fit, in grid
        order (lower is better); empty without one. Not saved."""
        return [(dict(params), score) for params, score in self._cv_results]

    # -- fitting ---------------------------------------------------------------------

    def _fit(self, data: FitData) -> None:
        out_of_fold = None
        if self.select_by_cv:
            chosen, out_of_fold = self._select_by_cv(data)
            for name, value in chosen.items():
                setattr(self, name, value)
        else:
            self._cv_results = []
        if not self.use_features:
            data = FitData(data.raw_scores, None, data.successes, data.trials, data.groups)
        inputs = self._raw_inputs(data.raw_scores, data.features)
        if self.conformal_coverage is None:
            self._train(inputs, data)
            self._shift = 0.0
            return
        if out_of_fold is not None:  # cross-conformal: every question is fitted on
            self._train(inputs, data)
            self._shift = self._conformal_shift(out_of_fold[:, 0], data.success_rates)
            return
        train_index, held_index = self._conformal_split(data)
        self._train(inputs[train_index], data.subset(train_index))
        logits = self._logits(inputs[held_index])[:, 0]
        self._shift = self._conformal_shift(logits, data.success_rates[held_index])

    def _select_by_cv(self, data: FitData) -> tuple[dict[str, Any], np.ndarray]:
        """The chosen candidate of the grid and its out-of-fold logits (all of ``data``).

        The choice follows the one-standard-error rule: the first candidate in grid
        order (simplest first) whose mean fold objective exceeds the best one's by no
        more than the standard error of their per-fold difference. Candidates that
        differ by less than that are indistinguishable on this data, and the simpler
        one generalises no worse.
        """
        folds = self._cv_split(data)
        names = list(self.cv_grid)
        candidates: list[tuple[dict[str, Any], np.ndarray, np.ndarray]] = []
        for values in itertools.product(*(self.cv_grid[name] for name in names)):
            params = dict(zip(names, values, strict=True))
            try:
                candidate = self.model_validate(
                    self.model_dump() | params | {"select_by_cv": False}
                )
            except ValidationError as error:
                raise CalibrationError(f"invalid cv_grid candidate {params}: {error}") from error
            features = data.features if candidate.use_features else None
            inputs = candidate._raw_inputs(data.raw_scores, features)
            logits = np.empty((len(data), len(self.levels) + int(self.fit_mean)))
            scores = np.empty(len(folds))
            for fold, (train, held) in enumerate(folds):
                candidate._train(inputs[train], data.subset(train))
                logits[held] = candidate._logits(inputs[held])
                scores[fold] = self._objective(logits[held], data.subset(held))
            candidates.append((params, scores, logits))
        self._cv_results = [(params, float(scores.mean())) for params, scores, _ in candidates]
        params, _, logits = candidates[_one_standard_error_choice([c[1] for c in candidates])]
        return params, logits

    def _cv_split(self, data: FitData) -> list[tuple[np.ndarray, np.ndarray]]:
        """``cv_folds`` (train, held) index pairs; whole questions when ``data`` has groups."""
        rng = np.random.default_rng(self.seed)
        if data.groups is None:
            if len(data) < 2:
                raise CalibrationError("cross-validation needs at least two examples")
            fold_of = rng.permutation(len(data)) % min(self.cv_folds, len(data))
        else:
            unique, inverse = np.unique(data.groups, return_inverse=True)
            if len(unique) < 2:
                raise CalibrationError("cross-validation by question needs at least two questions")
            fold_of = (rng.permutation(len(unique)) % min(self.cv_folds, len(unique)))[inverse]
        return [
            (np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold))
            for fold in np.unique(fold_of)
        ]

    def _objective(self, logits: np.ndarray, data: FitData) -> float:
        """The training loss without the penalty (pinball plus Brier of the mean), in numpy."""
        weights = data.trials / data.trials.sum()
        rates = data.success_rates[:, None]
        taus = np.asarray(self.levels)[None, :]
        error = rates - self._squash_numpy(logits[:, : len(self.levels)])
        loss = np.maximum(taus * error, (taus - 1.0) * error).mean(axis=1)
        if self.fit_mean:
            loss = loss + (sigmoid(logits[:, -1]) - rates[:, 0]) ** 2
        return float(np.sum(weights * loss))

    def _train(self, inputs: np.ndarray, data: FitData) -> None:
        torch = _import_torch()
        self._mean = inputs.mean(axis=0)
        std = inputs.std(axis=0)
        self._std = np.where(std > 1e-8, std, 1.0)
        device = torch.device(self.device)
        n_outputs = len(self.levels) + int(self.fit_mean)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            head = _quantile_network(
                inputs.shape[1],
                len(self.levels),
                self.hidden,
                n_extra=int(self.fit_mean),
                skip=self.platt_init,
            )
        anchors = {name: torch.zeros_like(value) for name, value in head.named_parameters()}
        if self.platt_init:
            weight, bias = self._platt_start(data, n_outputs)
            path = _linear_path(self.hidden)
            start = {f"{path}.weight": weight, f"{path}.bias": bias}
            if self.hidden > 0:  # the hidden layer adds nothing until it learns something
                start |= {
                    "body.2.weight": np.zeros((n_outputs, self.hidden)),
                    "body.2.bias": np.zeros(n_outputs),
                }
            with torch.no_grad():
                for name, parameter in head.named_parameters():
                    if name in start:
                        parameter.copy_(torch.as_tensor(start[name], dtype=parameter.dtype))
            for name in (f"{path}.weight", f"{path}.bias"):
                anchors[name] = dict(head.named_parameters())[name].detach().clone()
        head.to(device)
        anchors = {name: value.to(device) for name, value in anchors.items()}
        x = torch.as_tensor(self._standardize(inputs), dtype=torch.float32, device=device)
        y = torch.as_tensor(data.success_rates, dtype=torch.float32, device=device)[:, None]
        weights = torch.as_tensor(
            data.trials / data.trials.sum(), dtype=torch.float32, device=device
        )
        taus = torch.as_tensor(self.levels, dtype=torch.float32, device=device)[None, :]
        optimizer = torch.optim.Adam(head.parameters(), lr=self.learning_rate)
        decayed = [(value, anchors[name]) for name, value in head.named_parameters()]
        head.train()
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            for _ in range(self.epochs):
                optimizer.zero_grad(set_to_none=True)
                out = head(x)
                error = y - self._squash(out[:, : taus.shape[1]])
                pinball = torch.maximum(taus * error, (taus - 1.0) * error).mean(dim=1)
                loss = (weights * pinball).sum()
                if self.fit_mean:
                    brier = (torch.sigmoid(out[:, -1]) - y[:, 0]) ** 2
                    loss = loss + (weights * brier).sum()
                loss.backward()
                if self.weight_decay > 0:  # the gradient of wd / 2 * |parameter - anchor|^2
                    with torch.no_grad():
                        for parameter, anchor in decayed:
                            if parameter.grad is not None:  # None: not in this loss
                                parameter.grad.add_(parameter - anchor, alpha=self.weight_decay)
                optimizer.step()
        finally:
            torch.set_num_threads(threads)
        # float32 as trained and as saved, so a reloaded calibrator predicts identically.
        self._weights = {
            name: value.detach().cpu().float().numpy().astype(np.float64)
            for name, value in head.state_dict().items()
        }

    def _platt_start(self, data: FitData, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
        """The linear path's start on standardized inputs, all from Platt scaling.

        The mean output is Platt's logit ``slope * logit(raw) + intercept``; each
        quantile output is that logit shifted by the same quantile of the training
        residuals ``unsquash(rate) - platt_logit`` (weighted by trials), so it
        covers its share of the training examples from the start.
        """
        platt = PlattCalibrator(min_examples=1).fit(
            data.raw_scores, None, data.successes, data.trials
        )
        # slope * logit + intercept, with logit = mean + std * (standardized logit)
        slope = platt.slope * self._std[0]
        offset = platt.slope * self._mean[0] + platt.intercept
        platt_logits = platt.slope * clipped_logit(data.raw_scores) + platt.intercept
        residuals = self._unsquash(data.success_rates) - platt_logits
        shifts = np.array(
            [_weighted_quantile(residuals, data.trials, level) for level in self.levels]
        )
        n_levels = len(self.levels)
        weight = np.zeros((n_outputs, len(self._mean)))
        bias = np.zeros(n_outputs)
        weight[0, 0], bias[0] = slope, offset + shifts[0]
        bias[1:n_levels] = _inverse_softplus(np.maximum(np.diff(shifts), 1e-2))
        if self.fit_mean:
            weight[-1, 0], bias[-1] = slope, offset
        return weight, bias

    def _conformal_split(self, data: FitData) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        n = len(data)
        if data.groups is None:
            order = rng.permutation(n)
            n_held = min(n - 1, max(1, math.ceil(self.conformal_fraction * n)))
            return np.sort(order[n_held:]), np.sort(order[:n_held])
        unique, inverse, counts = np.unique(data.groups, return_inverse=True, return_counts=True)
        if len(unique) < 2:
            raise CalibrationError("a conformal split by question needs at least two questions")
        held_groups: list[int] = []
        held = 0
        for group in rng.permutation(len(unique)):
            if held >= self.conformal_fraction * n or len(held_groups) == len(unique) - 1:
                break
            held_groups.append(int(group))
            held += int(counts[group])
        mask = np.isin(inverse, held_groups)
        return np.flatnonzero(~mask), np.flatnonzero(mask)

    def _conformal_shift(self, logits: np.ndarray, rates: np.ndarray) -> float:
        """The smallest shift with at least ``conformal_coverage`` of held-out rates covered.

        A rate ``y`` is covered when ``squash(logit - shift) <= y``, that is when
        ``shift >= logit - unsquash(y)``; the finite-sample conformal quantile of
        those residuals is the ``ceil((n + 1) * coverage)``-th smallest.
        """
        assert self.conformal_coverage is not None
        residuals = np.sort(logits - self._unsquash(rates))
        rank = math.ceil((len(residuals) + 1) * self.conformal_coverage)
        shift = residuals[min(rank, len(residuals)) - 1]
        return float(shift + 1e-6)  # rounding must not uncover the boundary example

    # -- prediction ------------------------------------------------------------------

    def _raw_inputs(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        columns = [clipped_logit(raw_scores)[:, None]]
        if features is not None:
            columns.append(features)
        return np.concatenate(columns, axis=1)

    def _standardize(self, inputs: np.ndarray) -> np.ndarray:
        return (inputs - self._mean) / self._std

    def _logits(self, inputs: np.ndarray) -> np.ndarray:
        """The head's forward pass in numpy: tanh layer (if any), base logit, softplus steps."""
        if self._weights is None:
            raise CalibrationError("QuantileCalibrator is not fitted")
        w = self._weights
        x = self._standardize(inputs)
        if self.hidden > 0:
            hidden = np.tanh(x @ w["body.0.weight"].T + w["body.0.bias"])
            out = hidden @ w["body.2.weight"].T + w["body.2.bias"]
            if "skip.weight" in w:  # heads fitted with platt_init; older ones have none
                out = out + x @ w["skip.weight"].T + w["skip.bias"]
        else:
            out = x @ w["body.weight"].T + w["body.bias"]
        n_levels = len(self.levels)
        steps = np.logaddexp(0.0, out[:, 1:n_levels])
        quantiles = np.concatenate([out[:, :1], out[:, :1] + np.cumsum(steps, axis=1)], axis=1)
        return np.concatenate([quantiles, out[:, n_levels:]], axis=1)

    def _squash(self, logits: torch.Tensor) -> torch.Tensor:
        torch = _import_torch()
        return (1.0 + 2.0 * self.output_margin) * torch.sigmoid(logits) - self.output_margin

    def _squash_numpy(self, logits: np.ndarray) -> np.ndarray:
        stretched = (1.0 + 2.0 * self.output_margin) * sigmoid(logits)
        return np.clip(stretched - self.output_margin, 0.0, 1.0)

    def _unsquash(self, rates: np.ndarray) -> np.ndarray:
        """The logit that squashes to ``rates`` (finite for 0 and 1 when the margin is > 0)."""
        margin = max(self.output_margin, 1e-6)
        return clipped_logit((rates + margin) / (1.0 + 2.0 * margin), eps=1e-12)

    def _predict_quantiles(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        inputs = self._raw_inputs(raw_scores, features if self.uses_features else None)
        logits = self._logits(inputs)[:, : len(self.levels)]
        logits[:, 0] -= self._shift
        quantiles = self._squash_numpy(logits)
        if quantiles.shape[1] > 1:  # a negative shift must not lift the bound past the next level
            quantiles[:, 0] = np.minimum(quantiles[:, 0], quantiles[:, 1])
        return quantiles

    def _predict_mean(
        self, raw_scores: np.ndarray, features: np.ndarray | None
    ) -> np.ndarray | None:
        if not self.fit_mean:
            return None
        inputs = self._raw_inputs(raw_scores, features if self.uses_features else None)
        return sigmoid(self._logits(inputs)[:, -1])

    # -- persistence -----------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        if self._weights is None:
            raise CalibrationError("QuantileCalibrator is not fitted")
        arrays = {f"head.{name}": value.astype(np.float32) for name, value in self._weights.items()}
        arrays["input_mean"] = self._mean.astype(np.float64)
        arrays["input_std"] = self._std.astype(np.float64)
        arrays["conformal_shift"] = np.array([self._shift], dtype=np.float64)
        return arrays

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        stats = {
            name: np.asarray(arrays[name], dtype=np.float64)
            for name in ("input_mean", "input_std", "conformal_shift")
            if name in arrays
        }
        weights = {
            name.removeprefix("head."): np.asarray(value, dtype=np.float64)
            for name, value in arrays.items()
            if name.startswith("head.")
        }
        other = sorted(set(arrays) - set(stats) - {f"head.{name}" for name in weights})
        if other:
            raise CalibrationError(f"unexpected arrays in a quantile calibrator: {other}")
        dims = check_arrays(
            stats, {"input_mean": ("d",), "input_std": ("d",), "conformal_shift": (1,)}
        )
        n_inputs = dims["d"]
        allowed = {1, 1 + len(self.feature_names)} if self.use_features else {1}
        if n_inputs not in allowed:
            raise CalibrationError(
                f"quantile calibrator has {n_inputs} inputs; expected one of {sorted(allowed)} "
                f"(the raw score plus {len(self.feature_names)} features)"
            )
        if np.any(stats["input_std"] <= 0):
            raise CalibrationError("quantile calibrator 'input_std' must be positive")
        expected = _weight_shapes(
            n_inputs,
            len(self.levels) + int(self.fit_mean),
            self.hidden,
            skip=self.hidden > 0 and any(name.startswith("skip.") for name in weights),
        )
        shapes = {name: value.shape for name, value in weights.items()}
        if shapes != expected:
            raise CalibrationError(
                f"quantile head weights do not fit hidden={self.hidden}, "
                f"{len(self.levels)} levels, {n_inputs} inputs: got {shapes}, expected {expected}"
            )
        if not all(np.isfinite(value).all() for value in weights.values()):
            raise CalibrationError("quantile head weights contain NaN or infinite values")
        self._weights = weights
        self._mean = stats["input_mean"]
        self._std = stats["input_std"]
        self._shift = float(stats["conformal_shift"][0])


def _one_standard_error_choice(fold_scores: list[np.ndarray]) -> int:
    """The first candidate whose mean fold score exceeds the best one's by at most the
    standard error of their per-fold difference (lower scores are better)."""
    best = min(fold_scores, key=lambda scores: float(scores.mean()))
    for index, scores in enumerate(fold_scores):
        difference = scores - best
        error = difference.std(ddof=1) / math.sqrt(len(difference)) if len(difference) > 1 else 0.0
        if difference.mean() <= error + 1e-12:
            return index
    raise AssertionError("unreachable: the best candidate is within its own error")


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, level: float) -> float:
    """The smallest value with at least ``level`` of the total weight at or below it, or
    the midpoint of two values when exactly ``level`` lies at or below the first (as the
    median of an even sample), so that two atoms of equal weight give a middle start."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    cumulative = np.cumsum(weights[order])
    target = level * cumulative[-1]
    index = min(int(np.searchsorted(cumulative, target)), len(values) - 1)
    if index + 1 < len(values) and math.isclose(cumulative[index], target, rel_tol=1e-12):
        return float((ordered[index] + ordered[index + 1]) / 2.0)
    return float(ordered[index])


def _inverse_softplus(x: np.ndarray) -> np.ndarray:
    """``y`` with ``softplus(y) == x`` for ``x > 0``."""
    return x + np.log(-np.expm1(-x))


__all__ = ["CV_GRID_FIELDS", "DEFAULT_CV_GRID", "QuantileCalibrator"]
