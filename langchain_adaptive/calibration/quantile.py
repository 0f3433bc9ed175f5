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

An optional one-sided split-conformal step holds out ``conformal_fraction`` of
the questions and shifts the lowest quantile's logit so that at least
``conformal_coverage`` of held-out examples have a success rate at or above it.

Fitting needs torch; prediction is a few numpy matrix products, so a saved
calibrator (for example the probe head shipped for the bundled model) loads and
runs without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field, PrivateAttr

from langchain_adaptive.calibration._utils import clipped_logit, sigmoid
from langchain_adaptive.calibration.base import Calibrator, FitData, check_arrays
from langchain_adaptive.errors import CalibrationError

if TYPE_CHECKING:
    import torch

_TORCH_HINT = (
    "fitting a QuantileCalibrator needs torch: pip install torch, or the 'calibration' or "
    "'hf' extra: pip install 'langchain-adaptive[calibration]'"
)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise ImportError(_TORCH_HINT) from error
    return torch


def quantile_head(n_inputs: int, n_levels: int, hidden: int, n_extra: int = 0) -> torch.nn.Module:
    """A torch module mapping inputs to non-crossing quantile logits (for training).

    ``n_extra`` more outputs follow the quantile logits unconstrained (the mean's logit).
    """
    torch = _import_torch()
    from torch import nn

    class QuantileHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if hidden > 0:
                self.body: nn.Module = nn.Sequential(
                    nn.Linear(n_inputs, hidden), nn.Tanh(), nn.Linear(hidden, n_levels + n_extra)
                )
            else:
                self.body = nn.Linear(n_inputs, n_levels + n_extra)

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            out = self.body(inputs)
            base = out[:, :1]
            steps = torch.nn.functional.softplus(out[:, 1:n_levels])
            quantiles = torch.cat([base, base + torch.cumsum(steps, dim=1)], dim=1)
            return torch.cat([quantiles, out[:, n_levels:]], dim=1)

    return QuantileHead()


def _weight_shapes(n_inputs: int, n_outputs: int, hidden: int) -> dict[str, tuple[int, ...]]:
    if hidden > 0:
        return {
            "body.0.weight": (hidden, n_inputs),
            "body.0.bias": (hidden,),
            "body.2.weight": (n_outputs, hidden),
            "body.2.bias": (n_outputs,),
        }
    return {"body.weight": (n_outputs, n_inputs), "body.bias": (n_outputs,)}


class QuantileCalibrator(Calibrator):
    """Quantiles of the success rate from the PRM score and prefix features (pinball loss).

    Setup:
        Fitting needs torch: ``pip install 'langchain-adaptive[calibration]'`` (or
        ``[hf]``); loading and predicting need only numpy.

    Key init args:
        levels: Quantile levels, default (0.1, 0.5, 0.9); IAS budgets on the lowest.
        hidden: Hidden units (0 for a linear head).
        use_features: Feed features besides the raw score when fit gets them.
        conformal_coverage: If set, e.g. 0.9, shift the lowest quantile on a
            held-out split so that it covers at least that fraction.
        seed: Makes the fit reproducible.

    Example:
        .. code-block:: python

            from langchain_adaptive.calibration import QuantileCalibrator

            calibrator = QuantileCalibrator(conformal_coverage=0.9, seed=0)
            calibrator.fit_records(train_records)
            estimate = calibrator.predict([0.9], [[2.0, 4.1]])[0]
            estimate.lower, estimate.median
    """

    kind: ClassVar[str | None] = "quantile"
    _unsaved_fields: ClassVar[frozenset[str]] = frozenset({"device", "num_threads"})

    hidden: int = Field(default=32, ge=0)
    """Hidden units of the head's single hidden layer; 0 makes the head linear."""
    epochs: int = Field(default=300, ge=1)
    """Full-batch Adam steps."""
    learning_rate: float = Field(default=0.02, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    seed: int = 0
    """Seeds the head's initialisation and the conformal split."""
    fit_mean: bool = True
    """Also learn the expected success probability (Brier loss): the point estimate
    that Brier score and ECE reward, which the median of a skewed rate is not."""
    use_features: bool = True
    """Use the features passed to fit (otherwise the raw score alone)."""
    output_margin: float = Field(default=0.01, ge=0.0, lt=0.5)
    """How far the sigmoid is stretched past [0, 1] so exact 0 and 1 are reachable."""
    conformal_coverage: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Target fraction of held-out examples at or above the lowest quantile; ``None``: no shift."""
    conformal_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    """Share of examples (of questions, when fit gets groups) held out for the conformal shift."""
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

    @property
    def uses_features(self) -> bool:
        return len(self._mean) > 1

    @property
    def conformal_shift(self) -> float:
        """How far the conformal step moved the lowest quantile's logit down (negative: up)."""
        return self._shift

    # -- fitting ---------------------------------------------------------------------

    def _fit(self, data: FitData) -> None:
        if not self.use_features:
            data = FitData(data.raw_scores, None, data.successes, data.trials, data.groups)
        inputs = self._raw_inputs(data.raw_scores, data.features)
        if self.conformal_coverage is None:
            self._train(inputs, data)
            self._shift = 0.0
            return
        train_index, held_index = self._conformal_split(data)
        self._train(inputs[train_index], data.subset(train_index))
        logits = self._logits(inputs[held_index])[:, 0]
        self._shift = self._conformal_shift(logits, data.success_rates[held_index])

    def _train(self, inputs: np.ndarray, data: FitData) -> None:
        torch = _import_torch()
        self._mean = inputs.mean(axis=0)
        std = inputs.std(axis=0)
        self._std = np.where(std > 1e-8, std, 1.0)
        device = torch.device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            head = quantile_head(
                inputs.shape[1], len(self.levels), self.hidden, n_extra=int(self.fit_mean)
            )
        head.to(device)
        x = torch.as_tensor(self._standardize(inputs), dtype=torch.float32, device=device)
        y = torch.as_tensor(data.success_rates, dtype=torch.float32, device=device)[:, None]
        weights = torch.as_tensor(
            data.trials / data.trials.sum(), dtype=torch.float32, device=device
        )
        taus = torch.as_tensor(self.levels, dtype=torch.float32, device=device)[None, :]
        optimizer = torch.optim.Adam(
            head.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
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
                optimizer.step()
        finally:
            torch.set_num_threads(threads)
        # float32 as trained and as saved, so a reloaded calibrator predicts identically.
        self._weights = {
            name: value.detach().cpu().float().numpy().astype(np.float64)
            for name, value in head.state_dict().items()
        }

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
        expected = _weight_shapes(n_inputs, len(self.levels) + int(self.fit_mean), self.hidden)
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


__all__ = ["QuantileCalibrator", "quantile_head"]
