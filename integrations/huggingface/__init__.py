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

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports

if TYPE_CHECKING:
    from ._finetune import QuantileFinetuneResult, finetune_quantile_prm, quantile_pinball_loss
    from ._prm import HuggingFacePRM
    from ._quantile_head import QuantileHead

__all__ = (
    "HuggingFacePRM",
    "QuantileFinetuneResult",
    "QuantileHead",
    "finetune_quantile_prm",
    "quantile_pinball_loss",
)

_MODULE_OF: dict[str, str] = {
    "HuggingFacePRM": "_prm",
    "QuantileFinetuneResult": "_finetune",
    "QuantileHead": "_quantile_head",
    "finetune_quantile_prm": "_finetune",
    "quantile_pinball_loss": "_finetune",
}


__getattr__, __dir__ = lazy_exports(
    __name__, _MODULE_OF, __all__, install_hint='pip install "langchain-adaptive[hf]"'
)
