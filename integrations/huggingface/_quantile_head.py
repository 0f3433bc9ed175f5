"""The paper's calibrated head: a PRM's two-class head turned into quantile outputs.

Park et al. (2025) calibrate a PRM by replacing its binary head with one sigmoid
output per quantile level and fine-tuning with the pinball loss. A binary head
gives ``softmax(z)[pos] = sigmoid(z_pos - z_neg)``, and ``z_pos - z_neg`` is a
linear function of the features with weights ``w_pos - w_neg`` and bias
``b_pos - b_neg``. :meth:`QuantileHead.from_binary_head` starts every quantile
output at exactly those weights, so before fine-tuning each quantile equals the
PRM's own score and fine-tuning starts from the uncalibrated model, not from
noise.

Saved as two files a machine can read without running code: ``quantile_head.json``
(levels, shape and how the PRM reads its input) and ``quantile_head.safetensors``.
The default levels and the format version are the calibrators' own
(:mod:`langchain_adaptive.calibration._base`): one artefact format, one version.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from langchain_adaptive.calibration._base import DEFAULT_LEVELS, FORMAT_VERSION
from langchain_adaptive.errors import CalibrationError

HEAD_CONFIG = "quantile_head.json"
"""The JSON file of a saved head: levels, input size, and the PRM settings it was trained with."""
HEAD_WEIGHTS = "quantile_head.safetensors"
"""The safetensors file of a saved head: ``linear.weight`` and ``linear.bias``."""


class QuantileHead(nn.Module):
    """One logit per quantile level from a PRM's head features; probabilities are sigmoids.

    Args:
        in_features: Size of the features the PRM's last linear layer reads.
        levels: Quantile levels, strictly increasing in (0, 1).
        non_crossing: Sort the logits, so a higher level never gets a lower value
            (the monotone rearrangement of Chernozhukov et al.; it is the identity
            when the outputs are already ordered, as they are at initialisation).

    Example:
        ```python
        import torch
        from torch import nn

        from langchain_adaptive.integrations.huggingface import QuantileHead

        binary = nn.Linear(16, 2)
        head = QuantileHead.from_binary_head(binary, positive_index=1, negative_index=0)
        features = torch.randn(4, 16)
        expected = binary(features).softmax(-1)[:, 1]
        assert torch.allclose(head.probabilities(features)[:, 0], expected, atol=1e-6)
        ```
    """

    def __init__(
        self,
        in_features: int,
        levels: Sequence[float] = DEFAULT_LEVELS,
        *,
        non_crossing: bool = True,
    ) -> None:
        super().__init__()
        self.levels = check_levels(levels)
        self.non_crossing = non_crossing
        self.linear = nn.Linear(in_features, len(self.levels), dtype=torch.float32)

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @classmethod
    def from_binary_head(
        cls,
        head: nn.Linear,
        *,
        positive_index: int,
        negative_index: int,
        levels: Sequence[float] = DEFAULT_LEVELS,
        non_crossing: bool = True,
    ) -> QuantileHead:
        """A quantile head whose every output starts at ``sigmoid(z_pos - z_neg)`` of ``head``.

        ``head`` is the PRM's last linear layer: a two-label classifier, or a
        language-model head where the labels are the good and bad tokens' rows.
        """
        out_features = head.weight.shape[0]
        for name, index in (("positive_index", positive_index), ("negative_index", negative_index)):
            if not 0 <= index < out_features:
                raise CalibrationError(f"{name} {index} is outside the head's {out_features} rows")
        if positive_index == negative_index:
            raise CalibrationError("positive_index and negative_index must differ")
        quantile = cls(head.in_features, levels, non_crossing=non_crossing)
        with torch.no_grad():
            weight = head.weight[positive_index].float() - head.weight[negative_index].float()
            quantile.linear.weight.copy_(weight.unsqueeze(0).expand_as(quantile.linear.weight))
            if head.bias is not None:
                bias = head.bias[positive_index].float() - head.bias[negative_index].float()
                quantile.linear.bias.fill_(float(bias))
            else:
                quantile.linear.bias.zero_()
        return quantile.to(head.weight.device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Quantile logits, shape ``(..., len(levels))``, sorted when ``non_crossing``."""
        logits = self.linear(features.to(self.linear.weight.dtype))
        return logits.sort(dim=-1).values if self.non_crossing else logits

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """The quantiles of the success probability: sigmoids of :meth:`forward`."""
        return torch.sigmoid(self(features))

    # -- persistence -----------------------------------------------------------------

    def save(
        self, directory: str | os.PathLike[str], metadata: dict[str, Any] | None = None
    ) -> Path:
        """Write ``quantile_head.json`` and ``quantile_head.safetensors`` into ``directory``.

        ``metadata`` (JSON values) records what the head belongs to: the base
        model, how prompts were built, the training run.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "linear.weight": self.linear.weight.detach().float().cpu().contiguous(),
            "linear.bias": self.linear.bias.detach().float().cpu().contiguous(),
        }
        save_file(tensors, folder / HEAD_WEIGHTS)
        config = {
            "format_version": FORMAT_VERSION,
            "levels": list(self.levels),
            "in_features": self.in_features,
            "non_crossing": self.non_crossing,
            "metadata": metadata or {},
        }
        (folder / HEAD_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> tuple[QuantileHead, dict[str, Any]]:
        """Read a head written by :meth:`save`; returns it and its metadata.

        Raises:
            CalibrationError: Files missing, from a newer version, or inconsistent.
        """
        folder = Path(directory)
        try:
            config = json.loads((folder / HEAD_CONFIG).read_text())
            tensors = load_file(folder / HEAD_WEIGHTS)
        except (OSError, ValueError) as error:
            raise CalibrationError(f"cannot read a quantile head from {folder}: {error}") from error
        version = config.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CalibrationError(
                f"{folder / HEAD_CONFIG} has format_version {version!r}; this version reads "
                f"up to {FORMAT_VERSION}: upgrade langchain-adaptive"
            )
        head = cls(
            int(config["in_features"]),
            config["levels"],
            non_crossing=bool(config.get("non_crossing", True)),
        )
        expected = {name: tuple(p.shape) for name, p in head.state_dict().items()}
        found = {name: tuple(t.shape) for name, t in tensors.items()}
        if expected != found:
            raise CalibrationError(f"quantile head weights {found} do not match {expected}")
        if not all(torch.isfinite(t).all() for t in tensors.values()):
            raise CalibrationError(f"quantile head in {folder} has NaN or infinite weights")
        head.load_state_dict(tensors)
        return head, dict(config.get("metadata") or {})


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """``levels`` as a tuple, if strictly increasing and inside (0, 1)."""
    values = tuple(float(level) for level in levels)
    if not values:
        raise CalibrationError("a quantile head needs at least one level")
    if any(not (0.0 < v < 1.0) or math.isnan(v) for v in values):
        raise CalibrationError(f"quantile levels must lie in (0, 1), got {values}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise CalibrationError(f"quantile levels must be strictly increasing, got {values}")
    return values


def pinball_loss(
    quantiles: torch.Tensor,
    rates: torch.Tensor,
    levels: Sequence[float],
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean pinball loss of predicted ``quantiles`` ``(n, L)`` against success ``rates`` ``(n,)``.

    ``rho_t(u) = max(t * u, (t - 1) * u)`` with ``u = rate - quantile``, averaged
    over levels, then over examples (weighted by ``weights`` when given): the
    loss whose minimiser is the ``t``-quantile, as in
    :func:`langchain_adaptive.calibration.metrics.pinball_loss`.
    """
    tau = torch.tensor(levels, dtype=quantiles.dtype, device=quantiles.device)
    error = rates.to(quantiles.dtype).unsqueeze(-1) - quantiles
    per_example = torch.maximum(tau * error, (tau - 1.0) * error).mean(dim=-1)
    if weights is None:
        return per_example.mean()
    weights = weights.to(per_example.dtype)
    return (per_example * weights).sum() / weights.sum()


__all__ = [
    "HEAD_CONFIG",
    "HEAD_WEIGHTS",
    "QuantileHead",
    "check_levels",
    "pinball_loss",
]
