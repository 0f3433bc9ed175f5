"""Classical calibrators: Platt scaling, isotonic regression and histogram binning (numpy).

Each maps a raw score to a point estimate of the success probability. IAS needs
a lower bound too, so every baseline turns its point estimate ``p`` into
quantiles with a Wilson score interval on ``n`` trials: level 0.5 is ``p``, a
level ``tau`` below it is the one-sided lower bound at confidence ``1 - tau``
(0.1 -> 90%), a level above it the upper bound at confidence ``tau``. ``n`` is the
number of rollouts the estimate rests on where the method has one (a bin's or
an isotonic block's total), which bounds the mean rate of the scores it holds;
for Platt it is ``interval_trials`` (default: the median rollouts per example),
which bounds a single prefix's Monte-Carlo success rate, the scale quantile
coverage is measured on. Every baseline takes ``interval_trials`` to choose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr

from langchain_adaptive.calibration._base import Calibrator, FitData, check_arrays
from langchain_adaptive.calibration._utils import clipped_logit, sigmoid, softplus
from langchain_adaptive.errors import CalibrationError


def wilson_quantiles(
    probabilities: np.ndarray, trials: np.ndarray, levels: Sequence[float]
) -> np.ndarray:
    """Wilson score bounds of ``probabilities`` at one-sided ``levels``.

    Args:
        probabilities: Point estimates, shape ``(n,)``.
        trials: The trials behind each estimate (> 0), shape ``(n,)``.
        levels: Quantile levels in (0, 1).

    Returns:
        Shape ``(n, len(levels))``, non-decreasing along the levels: the bound
        widens monotonically with the normal quantile ``z`` of the level.

    Example:
        >>> wilson_quantiles(np.array([0.5]), np.array([8.0]), (0.1, 0.5, 0.9)).round(3)
        array([[0.294, 0.5  , 0.706]])
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)[:, None]
    n = np.asarray(trials, dtype=np.float64)[:, None]
    z = np.array([NormalDist().inv_cdf(level) for level in levels])[None, :]
    z2n = z**2 / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * np.sqrt(p * (1.0 - p) / n + z**2 / (4.0 * n**2)) / (1.0 + z2n)
    return np.maximum.accumulate(np.clip(centre + half, 0.0, 1.0), axis=1)


class PlattCalibrator(Calibrator):
    """Logistic recalibration: ``p = sigmoid(slope * logit(raw) + intercept)``.

    On real-valued scores (``score_scale="real"``: a mean logprob, a reward
    logit) the raw score itself takes the logit's place: ``sigmoid(slope * raw
    + intercept)``, logistic regression on the score.

    Fitted by Newton's method on the binomial likelihood of ``successes`` out of
    ``trials``, with a tiny L2 penalty so perfectly separable data still gives
    finite coefficients. An overconfident PRM gets a slope below 1.

    Example:
        .. code-block:: python

            platt = PlattCalibrator().fit(raw, None, successes, trials)
            platt.slope, platt.intercept
            platt.predict([0.95])[0].lower  # Wilson lower bound on interval_trials
    """

    kind: ClassVar[str | None] = "platt"
    accepts_real_scores: ClassVar[bool] = True

    l2: float = Field(default=1e-3, ge=0.0)
    """L2 penalty on (slope, intercept), in units of one rollout's log-likelihood."""
    max_iter: int = Field(default=100, ge=1)
    """Newton steps at most; it usually converges in fewer than ten."""
    interval_trials: float | None = Field(default=None, gt=0.0)
    """``n`` of the Wilson interval; ``None`` takes the median trials per example of the fit."""

    _coef: np.ndarray = PrivateAttr(default_factory=lambda: np.array([1.0, 0.0]))
    _n: float = PrivateAttr(default=1.0)

    @property
    def slope(self) -> float:
        """The fitted multiplier of the raw score's logit."""
        return float(self._coef[0])

    @property
    def intercept(self) -> float:
        """The fitted offset added to the scaled logit."""
        return float(self._coef[1])

    def _fit(self, data: FitData) -> None:
        x = np.stack([self._inputs(data.raw_scores), np.ones(len(data))], axis=1)
        s, t = data.successes, data.trials

        def objective(w: np.ndarray) -> float:
            z = x @ w
            nll = np.sum(s * softplus(-z) + (t - s) * softplus(z))
            return float(nll + 0.5 * self.l2 * w @ w)

        w = np.array([1.0, 0.0])  # start at the identity: the raw scores as they are
        value = objective(w)
        for _ in range(self.max_iter):
            p = sigmoid(x @ w)
            grad = x.T @ (t * p - s) + self.l2 * w
            hess = (x * (t * p * (1.0 - p))[:, None]).T @ x + (self.l2 + 1e-12) * np.eye(2)
            try:
                step = np.linalg.solve(hess, grad)
            except np.linalg.LinAlgError:
                step = grad / (np.trace(hess) + 1e-12)
            scale = 1.0
            while scale > 1e-8:  # backtracking keeps every step a descent step
                candidate = w - scale * step
                new_value = objective(candidate)
                if new_value <= value:
                    break
                scale /= 2.0
            else:
                break
            converged = abs(value - new_value) <= 1e-12 * max(1.0, abs(value))
            w, value = candidate, new_value
            if converged or np.max(np.abs(scale * step)) < 1e-10:
                break
        if not np.all(np.isfinite(w)):
            raise CalibrationError("Platt scaling diverged; check the scores and outcomes")
        self._coef = w
        self._n = float(self.interval_trials or np.median(data.trials))

    def _inputs(self, raw_scores: np.ndarray) -> np.ndarray:
        """What the slope multiplies: a probability's logit, or a real score as it is."""
        return raw_scores if self.score_scale == "real" else clipped_logit(raw_scores)

    def _predict_quantiles(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        p = sigmoid(self._coef[0] * self._inputs(raw_scores) + self._coef[1])
        return wilson_quantiles(p, np.full(len(p), self._n), self.levels)

    def _state(self) -> dict[str, np.ndarray]:
        return {"coef": self._coef.copy(), "interval_trials": np.array([self._n])}

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        check_arrays(arrays, {"coef": (2,), "interval_trials": (1,)})
        if arrays["interval_trials"][0] <= 0:
            raise CalibrationError("calibrator array 'interval_trials' must be positive")
        self._coef = np.asarray(arrays["coef"], dtype=np.float64)
        self._n = float(arrays["interval_trials"][0])


class IsotonicCalibrator(Calibrator):
    """A non-decreasing step fit of success rate on raw score (pool adjacent violators).

    Examples are weighted by their trials. Predictions interpolate linearly
    between the trial-weighted centres of the pooled blocks (constant beyond
    the first and last), so the map is continuous and monotone. The Wilson
    interval's ``n`` is a block's total trials, the smaller of the two blocks
    a score falls between.

    Example:
        .. code-block:: python

            isotonic = IsotonicCalibrator().fit(raw, None, successes, trials)
            isotonic.predict([0.3, 0.9])
    """

    kind: ClassVar[str | None] = "isotonic"
    accepts_real_scores: ClassVar[bool] = True

    interval_trials: float | None = Field(default=None, gt=0.0)
    """``n`` of the Wilson interval; ``None`` takes the block's trials (a bound on its mean
    rate), a number such as the rollouts per prefix bounds a single prefix's rate instead."""

    _centres: np.ndarray = PrivateAttr(default_factory=lambda: np.zeros(0))
    _values: np.ndarray = PrivateAttr(default_factory=lambda: np.zeros(0))
    _trials: np.ndarray = PrivateAttr(default_factory=lambda: np.zeros(0))

    def _fit(self, data: FitData) -> None:
        unique, inverse = np.unique(data.raw_scores, return_inverse=True)
        wins = np.bincount(inverse, weights=data.successes, minlength=len(unique))
        tries = np.bincount(inverse, weights=data.trials, minlength=len(unique))
        moment = np.bincount(inverse, weights=data.trials * data.raw_scores, minlength=len(unique))
        blocks: list[list[float]] = []  # [successes, trials, trials * score]
        for block in zip(wins, tries, moment, strict=True):
            blocks.append(list(block))
            # Pool while the previous block's rate is not below the new one's.
            while (
                len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] >= blocks[-1][0] * blocks[-2][1]
            ):
                last = blocks.pop()
                blocks[-1] = [a + b for a, b in zip(blocks[-1], last, strict=True)]
        table = np.array(blocks)
        self._values = table[:, 0] / table[:, 1]
        self._trials = table[:, 1]
        self._centres = table[:, 2] / table[:, 1]

    @property
    def blocks(self) -> list[tuple[float, float, float]]:
        """The fitted blocks as ``(centre score, success rate, trials)``, in score order."""
        return [
            (float(c), float(v), float(t))
            for c, v, t in zip(self._centres, self._values, self._trials, strict=True)
        ]

    def _predict_quantiles(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        p = np.interp(raw_scores, self._centres, self._values)
        right = np.clip(np.searchsorted(self._centres, raw_scores), 0, len(self._centres) - 1)
        left = np.clip(right - 1, 0, None)
        own = (
            (raw_scores <= self._centres[0])
            | (raw_scores >= self._centres[-1])
            | (self._centres[right] == raw_scores)
        )
        n = np.where(own, self._trials[right], np.minimum(self._trials[left], self._trials[right]))
        if self.interval_trials is not None:
            n = np.full(len(p), self.interval_trials)
        return wilson_quantiles(p, n, self.levels)

    def _state(self) -> dict[str, np.ndarray]:
        return {"centres": self._centres, "values": self._values, "trials": self._trials}

    def _derived_base_rate(self) -> float | None:
        # The blocks partition the fit's trials, so their pooled rate is the fit's.
        return float(np.sum(self._values * self._trials) / np.sum(self._trials))

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        dims = check_arrays(arrays, {"centres": ("m",), "values": ("m",), "trials": ("m",)})
        centres = np.asarray(arrays["centres"], dtype=np.float64)
        values = np.asarray(arrays["values"], dtype=np.float64)
        trials = np.asarray(arrays["trials"], dtype=np.float64)
        if dims["m"] < 1 or np.any(np.diff(centres) < 0) or np.any(np.diff(values) < 0):
            raise CalibrationError("isotonic blocks must be non-empty and sorted")
        if np.any(trials <= 0):
            raise CalibrationError("isotonic block trials must be positive")
        self._centres, self._values, self._trials = centres, values, trials


class HistogramBinningCalibrator(Calibrator):
    """The success rate of the raw-score bin a score falls in.

    Bins hold equal numbers of examples (``"equal_mass"``, robust when scores
    crowd near 0 or 1) or equal widths of [0, 1] (of the fitted scores' range for
    real-valued scores). A bin that received no
    examples borrows its nearest non-empty neighbour's rate and trials. The
    Wilson interval's ``n`` is the bin's total trials.

    Example:
        .. code-block:: python

            binning = HistogramBinningCalibrator(n_bins=10).fit(raw, None, successes, trials)
            binning.predict([0.42])
    """

    kind: ClassVar[str | None] = "histogram"
    accepts_real_scores: ClassVar[bool] = True

    interval_trials: float | None = Field(default=None, gt=0.0)
    """``n`` of the Wilson interval; ``None`` takes the bin's trials (a bound on its mean
    rate), a number such as the rollouts per prefix bounds a single prefix's rate instead."""

    n_bins: int = Field(default=10, ge=1)
    """Bins requested; equal-mass bins may merge when many scores tie."""
    strategy: Literal["equal_mass", "equal_width"] = "equal_mass"
    """How bin edges are placed."""

    _edges: np.ndarray = PrivateAttr(default_factory=lambda: np.zeros(0))
    _rates: np.ndarray = PrivateAttr(default_factory=lambda: np.zeros(1))
    _trials: np.ndarray = PrivateAttr(default_factory=lambda: np.ones(1))

    def _fit(self, data: FitData) -> None:
        if self.strategy == "equal_width":
            low, high = (
                (float(data.raw_scores.min()), float(data.raw_scores.max()))
                if self.score_scale == "real"
                else (0.0, 1.0)
            )
            inner = np.unique(np.linspace(low, high, self.n_bins + 1)[1:-1])
        else:
            edges = np.quantile(data.raw_scores, np.linspace(0.0, 1.0, self.n_bins + 1))
            inner = np.unique(edges[1:-1])
        index = np.searchsorted(inner, data.raw_scores, side="right")
        bins = len(inner) + 1
        wins = np.bincount(index, weights=data.successes, minlength=bins)
        tries = np.bincount(index, weights=data.trials, minlength=bins)
        filled = np.flatnonzero(tries > 0)
        nearest = filled[np.argmin(np.abs(np.arange(bins)[:, None] - filled[None, :]), axis=1)]
        self._edges = inner
        self._rates = wins[nearest] / tries[nearest]
        self._trials = tries[nearest]

    @property
    def bins(self) -> list[tuple[float, float, float, float]]:
        """The fitted bins as ``(low edge, high edge, success rate, trials)``.

        The outer edges are 0 and 1 for probabilities, infinite for real scores.
        """
        outer = (-np.inf, np.inf) if self.score_scale == "real" else (0.0, 1.0)
        edges = np.concatenate([[outer[0]], self._edges, [outer[1]]])
        return [
            (float(edges[i]), float(edges[i + 1]), float(self._rates[i]), float(self._trials[i]))
            for i in range(len(self._rates))
        ]

    def _predict_quantiles(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        index = np.searchsorted(self._edges, raw_scores, side="right")
        n = (
            self._trials[index]
            if self.interval_trials is None
            else np.full(len(index), self.interval_trials)
        )
        return wilson_quantiles(self._rates[index], n, self.levels)

    def _state(self) -> dict[str, np.ndarray]:
        return {"inner_edges": self._edges, "rates": self._rates, "trials": self._trials}

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        dims = check_arrays(arrays, {"inner_edges": ("e",), "rates": ("b",), "trials": ("b",)})
        if dims["b"] != dims["e"] + 1:
            raise CalibrationError(
                f"histogram has {dims['b']} bins but {dims['e']} inner edges (expected bins - 1)"
            )
        edges = np.asarray(arrays["inner_edges"], dtype=np.float64)
        rates = np.asarray(arrays["rates"], dtype=np.float64)
        trials = np.asarray(arrays["trials"], dtype=np.float64)
        if np.any(np.diff(edges) < 0) or np.any((rates < 0) | (rates > 1)) or np.any(trials <= 0):
            raise CalibrationError("histogram arrays are inconsistent (unsorted edges or bad bins)")
        self._edges, self._rates, self._trials = edges, rates, trials


__all__ = [
    "HistogramBinningCalibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "wilson_quantiles",
]
