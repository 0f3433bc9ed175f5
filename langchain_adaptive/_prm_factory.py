"""Choosing a process reward model by name: the command lines' one factory.

``ask``, ``serve-prm``, ``bench`` and ``calibrate`` each take a PRM name on the
command line; :func:`make_prm` turns it into the PRM, so a name means the same
PRM in every command. It sits above the integrations: it imports them inside the
function, and only command-line modules import it, so the runtime (runnable,
strategies, PRMs, calibrators) never loads an integration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_adaptive.errors import ConfigurationError

if TYPE_CHECKING:
    from langchain_adaptive.prm._base import ProcessRewardModel

PRM_NAMES = ("auto", "probe", "judge", "confidence", "hf")
"""Every name :func:`make_prm` takes: the on-device PRMs on llama.cpp, and ``hf``."""


def make_prm(
    name: str,
    *,
    chat: Any = None,
    model: str | None = None,
    model_file: str | None = None,
    head: str | None = None,
    n_ctx: int = 2048,
    n_gpu_layers: int = 0,
    n_threads: int | None = None,
    **options: Any,
) -> ProcessRewardModel:
    """The PRM called ``name``; nothing heavy is loaded until its first score.

    Args:
        name: ``"hf"``: a Hugging Face PRM, ``HuggingFacePRM.from_pretrained(model,
            **options)`` (the ``hf`` extra). ``"probe"``, ``"judge"``,
            ``"confidence"`` or ``"auto"``: an on-device PRM on llama.cpp (the
            ``llamacpp`` extra), as ``integrations.llamacpp.on_device_prm`` builds it.
        chat: The policy chat model the judge and the confidence PRM read (a
            ``ChatLlamaCpp``); ``None`` loads ``model`` for them.
        model: ``hf``: a hub repo id or local folder (required). On device: a GGUF
            path or repo id, ``None`` for the bundled SmolLM2.
        model_file: File name (or glob) inside a GGUF repo.
        head: A probe head folder (``None``: the one bundled for SmolLM2).
        n_ctx: Context window of a GGUF model loaded here.
        n_gpu_layers: Layers of a GGUF model to offload to a GPU (``-1``: all).
        n_threads: CPU threads for llama.cpp (``None``: the usable cores, at most 8).
        **options: Further settings of that PRM (``hf``: ``family``, ``adapter``,
            ``device`` ...; ``confidence``: ``examples``, ``instruction`` ...).

    Raises:
        ConfigurationError: An unknown name, ``hf`` without ``model``, or the
            bundled probe head asked to read another model.
        ImportError: The extra the PRM needs is not installed.

    Example:
        ```python
        from langchain_adaptive._prm_factory import make_prm

        judge = make_prm("judge", n_threads=2)  # an LLM judge on the bundled SmolLM2
        ```
    """
    if name not in PRM_NAMES:
        raise ConfigurationError(
            f"unknown PRM {name!r}; choose one of {', '.join(map(repr, PRM_NAMES))}"
        )
    if name == "hf":
        if not model:
            raise ConfigurationError("the 'hf' PRM needs a model: a hub repo id or a local folder")
        from langchain_adaptive.integrations.huggingface import HuggingFacePRM

        return HuggingFacePRM.from_pretrained(model, **options)
    from langchain_adaptive.integrations.llamacpp._default import on_device_prm

    return on_device_prm(
        name,
        chat=chat,
        model=model,
        model_file=model_file,
        head=head,
        n_ctx=n_ctx,
        n_gpu_layers=n_gpu_layers,
        n_threads=n_threads,
        **options,
    )


__all__ = ["PRM_NAMES", "make_prm"]
