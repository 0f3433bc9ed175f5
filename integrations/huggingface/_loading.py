"""Find a model on disk or the hub, pick a device and dtype, and load it with transformers.

The order a PRM needs them in:

1. :func:`resolve_snapshot` turns what a user wrote (a local folder or a hub repo
   id) into a local folder, through ``huggingface_hub.snapshot_download`` with
   ``local_files_only`` (forced on when ``HF_HUB_OFFLINE`` is set).
2. :func:`pick_device` and :func:`pick_dtype` choose CUDA, then MPS, then CPU,
   and bfloat16 only where the GPU supports it.
3. :func:`load_model` picks the transformers class for a PRM family (see its
   docstring) and loads the weights from that folder.

A hub id and a local folder take the same path from step 2 on, so a model saved
with ``save_pretrained`` to a folder tests exactly what a download would run.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_adaptive.errors import ConfigurationError, ModelNotFoundError

if TYPE_CHECKING:
    import torch

Family = Literal["qwen", "math-shepherd", "token-classification"]
"""How a PRM reads out step scores: see :class:`HuggingFacePRM`."""

INSTALL_HINT = 'pip install "langchain-adaptive[hf]"'

_UNNEEDED_FILES = ["*.gguf", "*.onnx", "*.msgpack", "*.h5", "*.ot", "*.tflite", "original/*"]
"""Weights in formats transformers does not load here; never downloaded."""


def import_torch() -> Any:
    """``torch``, or an ImportError that says which extra installs it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"HuggingFacePRM needs torch: {INSTALL_HINT}") from error
    return torch


def import_transformers() -> Any:
    """``transformers``, or an ImportError that says which extra installs it."""
    try:
        import transformers
    except ImportError as error:
        raise ImportError(f"HuggingFacePRM needs transformers: {INSTALL_HINT}") from error
    return transformers


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network access."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_snapshot(
    repo_id_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
) -> Path:
    """The local folder holding a model: ``repo_id_or_path`` itself, or a hub snapshot.

    Args:
        repo_id_or_path: A folder written by ``save_pretrained`` or a hub repo id.
        revision: Branch, tag or commit of a hub repo.
        local_files_only: Only use the local cache; never touch the network.
            ``HF_HUB_OFFLINE=1`` has the same effect.
        cache_dir: The hub cache to use instead of the default one.
        token: A hub token for gated or private repos (``None``: the saved login).

    Returns:
        A local folder with ``config.json`` and the weights.

    Raises:
        ModelNotFoundError: The folder does not exist, or the repo cannot be
            found or downloaded (offline and not cached, gated, unknown).
    """
    text = os.fspath(repo_id_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ModelNotFoundError(
            f"{text!r} is neither a model folder nor a Hugging Face repo id like 'org/name'."
        )
    offline = local_files_only or hub_offline()
    try:
        import huggingface_hub
    except ImportError as error:  # pragma: no cover - a core dependency
        raise ModelNotFoundError(
            f"Loading {text!r} needs huggingface-hub: {INSTALL_HINT}"
        ) from error
    ignore = list(_UNNEEDED_FILES)
    if not offline:
        ignore += _duplicate_pickles(text, revision, token)
    try:
        folder = huggingface_hub.snapshot_download(
            text,
            revision=revision,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            local_files_only=offline,
            token=token,
            ignore_patterns=ignore,
        )
    except Exception as error:
        raise ModelNotFoundError(_hub_failure(text, offline, error)) from error
    return Path(folder)


def _duplicate_pickles(repo_id: str, revision: str | None, token: str | bool | None) -> list[str]:
    """Skip ``*.bin``/``*.pt`` weights when the repo also has safetensors (half the download)."""
    try:
        import huggingface_hub

        files = huggingface_hub.list_repo_files(repo_id, revision=revision, token=token)
    except Exception:  # the download below reports the real problem
        return []
    if any(name.endswith(".safetensors") for name in files):
        return ["*.bin", "*.pt", "*.pth"]
    return []


def _hub_failure(repo_id: str, offline: bool, cause: BaseException) -> str:
    if offline:
        fix = (
            f"It is not in the local cache: download it once with `hf download {repo_id}`, "
            "or pass local_files_only=False (and unset HF_HUB_OFFLINE)."
        )
    else:
        fix = (
            "Check the repo id on huggingface.co, your network and, for a gated repo, "
            "your token (`hf auth login`)."
        )
    return (
        f"Could not get the Hugging Face repo {repo_id!r}: {type(cause).__name__}: {cause}. {fix}"
    )


def pick_device(device: str | None) -> str:
    """``device`` as given, or the best available one: CUDA, then Apple MPS, then CPU."""
    if device is not None:
        return device
    torch = import_torch()
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """``dtype`` as given, else bfloat16 on a CUDA GPU that supports it, else float32.

    float32 elsewhere because CPUs and MPS run bfloat16 slowly or inexactly, and a
    PRM's scores are compared against thresholds.
    """
    torch = import_torch()
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        resolved = getattr(torch, str(dtype).removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ConfigurationError(f"unknown dtype {dtype!r}; use e.g. 'float32' or 'bfloat16'")
        return resolved
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _dtype_kwarg() -> str:
    """transformers renamed ``torch_dtype`` to ``dtype`` in 4.56."""
    major, minor = (int(part) for part in version("transformers").split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def load_model(
    folder: Path,
    family: Family,
    *,
    dtype: torch.dtype,
    trust_remote_code: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Load the PRM in ``folder`` with the transformers class its family needs.

    - ``math-shepherd``: ``AutoModelForCausalLM`` (the score is read from the
      language-model head's logits of the good and bad tokens).
    - ``qwen`` and ``token-classification``: the class named in ``config.json``.
      Qwen2.5-Math-PRM names ``Qwen2ForProcessRewardModel``, which transformers
      does not ship: its repo maps ``AutoModel`` to its own modeling file
      (``auto_map``), which runs only with ``trust_remote_code=True``. Any other
      architecture loads through ``AutoModelForTokenClassification``, for example
      ``Qwen2ForTokenClassification`` with two labels, which has the same output
      contract (two logits per token, positive label 1).

    Raises:
        ConfigurationError: The repo needs its own code and ``trust_remote_code``
            is off.
        ModelError: transformers failed to load the weights.
    """
    transformers = import_transformers()
    kwargs = {_dtype_kwarg(): dtype, "trust_remote_code": trust_remote_code}
    kwargs.update(model_kwargs or {})
    if family == "math-shepherd":
        return transformers.AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    architectures = list(getattr(config, "architectures", None) or [])
    auto_map = dict(getattr(config, "auto_map", None) or {})
    custom = [name for name in architectures if not hasattr(transformers, name)]
    if custom and "AutoModel" in auto_map:
        if not trust_remote_code:
            raise ConfigurationError(
                f"{folder} defines its own model class {custom[0]} (auto_map "
                f"{auto_map['AutoModel']!r}); loading it runs code from the repo. Pass "
                "trust_remote_code=True if you trust it (Qwen2.5-Math-PRM needs this)."
            )
        return transformers.AutoModel.from_pretrained(folder, **kwargs)
    return transformers.AutoModelForTokenClassification.from_pretrained(folder, **kwargs)


def default_max_length(model: Any, tokenizer: Any) -> int:
    """The longest input the model was built for: the tokenizer's or the config's limit."""
    limits = []
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 10**8:  # unset limits are ~1e30
        limits.append(model_max)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    if not limits:
        raise ConfigurationError(
            "neither the tokenizer nor the model config states a maximum length; pass max_length"
        )
    return min(limits)


__all__ = [
    "INSTALL_HINT",
    "Family",
    "default_max_length",
    "hub_offline",
    "import_torch",
    "import_transformers",
    "load_model",
    "pick_device",
    "pick_dtype",
    "resolve_snapshot",
]
