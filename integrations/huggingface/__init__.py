"""Hugging Face binding: process reward models run locally with transformers.

Install with ``pip install "langchain-adaptive[hf]"`` (torch, transformers, peft).

- :class:`HuggingFacePRM`: Qwen2.5-Math-PRM, Math-Shepherd and token-classification
  PRMs from the hub or a local folder (``prm.py``).
- :class:`QuantileHead`: the paper's calibrated head, converted from a PRM's binary
  head so that it starts equal to the PRM's score (``quantile_head.py``).
- :func:`finetune_quantile_prm`: pinball-loss fine-tuning of that head with LoRA on
  Monte-Carlo success rates (``finetune.py``).

Names are imported lazily, so importing this package does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .finetune import QuantileFinetuneResult, finetune_quantile_prm, quantile_pinball_loss
    from .prm import HuggingFacePRM
    from .quantile_head import QuantileHead

__all__ = (
    "HuggingFacePRM",
    "QuantileFinetuneResult",
    "QuantileHead",
    "finetune_quantile_prm",
    "quantile_pinball_loss",
)

_MODULE_OF: dict[str, str] = {
    "HuggingFacePRM": "prm",
    "QuantileFinetuneResult": "finetune",
    "QuantileHead": "quantile_head",
    "finetune_quantile_prm": "finetune",
    "quantile_pinball_loss": "finetune",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
