"""The embedded default: SmolLM2-135M-Instruct on device, with a calibrated on-device PRM."""

from __future__ import annotations

import os
from typing import Any, Literal

from langchain_adaptive.budget import DEFAULT_MAX_SAMPLES
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.prm._base import ProcessRewardModel
from langchain_adaptive.prm._judge import LLMJudgePRM
from langchain_adaptive.runnable import AdaptiveReasoningRunnable
from langchain_adaptive.strategies import AdaptiveBestOfN

from ._chat_models import ChatLlamaCpp
from ._confidence import TokenConfidencePRM
from ._probe import BUNDLED_HEAD, ProbePRM

DEFAULT_MAX_TOKENS_PER_SAMPLE = 192


def default_threads() -> int:
    """CPU threads for llama.cpp: the cores this process may use, at most 8.

    llama-cpp-python's own default (half the CPUs) leaves a small machine idle;
    beyond about 8 threads a small model gains nothing.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        available = os.cpu_count() or 1
    return max(1, min(8, available))


def default_reasoner(
    model: str | None = None,
    *,
    model_file: str | None = None,
    n_gpu_layers: int = 0,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    seed: int | None = None,
    prm: Literal["auto", "probe", "judge", "confidence"] | ProcessRewardModel = "auto",
    **settings: Any,
) -> AdaptiveReasoningRunnable:
    """An :class:`AdaptiveReasoningRunnable` on one local GGUF model and an on-device PRM.

    Without ``model`` it is the SmolLM2-135M-Instruct bundled with the
    ``llamacpp`` extra, so it runs offline on any CPU. The PRM's question
    estimate sets the IAS budget and the samples are chosen by majority vote
    (pass ``strategy=`` to change that). Where the target is out of reach within
    the cap it spends the cap (``unreachable="spend_max"``): giving up on a floor
    instead cost accuracy on the bundled model (docs: results, floored IAS).
    The PRM is, with ``prm="auto"``, the calibrated :class:`ProbePRM` shipped for
    the bundled model (it reads the policy's own embedding of the question: one
    prompt evaluation, no generation), or for other models an :class:`LLMJudgePRM`
    sharing the policy's weights.

    Args:
        model: A GGUF path or Hugging Face repo id; ``None`` for the bundled model.
        model_file: File name (or glob) inside a repo id.
        n_gpu_layers: Layers to offload to a GPU (``-1``: all); ``0`` runs on the CPU.
        n_ctx: Context window in tokens.
        n_threads: CPU threads; ``None`` uses :func:`default_threads`.
        seed: Base seed for reproducible sampling.
        prm: ``"probe"``, ``"judge"``, ``"confidence"``, ``"auto"`` (the probe when a
            head for this model is bundled, else the judge; see :func:`on_device_prm`),
            or any :class:`ProcessRewardModel`.
        **settings: Fields of :class:`AdaptiveReasoningRunnable` (``strategy``,
            ``target_confidence``, ``max_samples``, ...).

    Example:
        .. code-block:: python

            from langchain_adaptive.integrations.llamacpp import default_reasoner

            result = default_reasoner().invoke("What is 7 + 8?")
            print(result.answer, result.budget.samples_used)
    """
    chat = ChatLlamaCpp(
        model=model,
        model_file=model_file,
        n_gpu_layers=n_gpu_layers,
        n_ctx=n_ctx,
        n_threads=n_threads or default_threads(),
        seed=seed,
    )
    # Step-level scores of the small on-device PRMs are near noise, so by default the PRM
    # only sets the budget and the samples vote.
    settings.setdefault("strategy", AdaptiveBestOfN(selection="majority_vote"))
    settings.setdefault("max_samples", DEFAULT_MAX_SAMPLES)
    settings.setdefault("max_tokens_per_sample", DEFAULT_MAX_TOKENS_PER_SAMPLE)
    if not isinstance(prm, ProcessRewardModel):
        prm = on_device_prm(
            prm,
            chat=chat,
            model=model,
            model_file=model_file,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
        )
    return AdaptiveReasoningRunnable(model=chat, prm=prm, **settings)


ON_DEVICE_PRMS = ("auto", "probe", "judge", "confidence")
"""The PRMs :func:`on_device_prm` builds by name, all on llama.cpp."""


def on_device_prm(
    name: str,
    *,
    chat: ChatLlamaCpp | None = None,
    model: str | None = None,
    model_file: str | None = None,
    head: str | None = None,
    n_ctx: int = 2048,
    n_gpu_layers: int = 0,
    n_threads: int | None = None,
    **options: Any,
) -> ProcessRewardModel:
    """The on-device PRM called ``name``; nothing is loaded until its first score.

    ``default_reasoner(prm=...)`` and the command lines (through
    ``langchain_adaptive._prm_factory.make_prm``) choose a PRM by name here, so each
    name means the same PRM everywhere.

    Args:
        name: ``"probe"`` (a :class:`ProbePRM` reading ``model``'s own embedding
            through a probe head), ``"judge"`` (an :class:`LLMJudgePRM` on ``chat``),
            ``"confidence"`` (a :class:`TokenConfidencePRM` on ``chat``), or
            ``"auto"``: the probe when ``model`` is the bundled one and its head
            ships, else the judge.
        chat: The policy, which the judge and the confidence PRM read; ``None``
            loads ``model`` (lazily) for them.
        model: A GGUF path or repo id; ``None`` for the bundled SmolLM2.
        model_file: File name (or glob) inside a repo id.
        head: A probe head folder; ``None`` for the one bundled for SmolLM2.
        n_ctx: Context window of a model loaded here.
        n_gpu_layers: Layers to offload to a GPU (``-1``: all).
        n_threads: CPU threads; ``None``: ``chat``'s, else :func:`default_threads`.
        **options: Further fields of the PRM (``examples``, ``instruction`` ...).

    Raises:
        ConfigurationError: An unknown name, or the bundled probe head asked to
            read another model.
    """
    if name == "auto":
        bundled = model is None and head is None and (BUNDLED_HEAD / "probe.json").is_file()
        name = "probe" if bundled or head is not None else "judge"
    if name not in ON_DEVICE_PRMS:
        raise ConfigurationError(
            f"prm must be one of {', '.join(map(repr, ON_DEVICE_PRMS))} or a PRM, got {name!r}"
        )
    threads = n_threads or (chat.n_threads if chat is not None else None) or default_threads()
    if name == "probe":
        if model is not None and head is None:
            raise ConfigurationError(
                "the bundled probe head was trained for the bundled SmolLM2; for another model "
                "train one (`langchain-adaptive calibrate fit-probe`) and pass its folder "
                "(head=..., --head), or use the judge"
            )
        return ProbePRM(
            model=model,
            model_file=model_file,
            head_path=head,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_threads=threads,
            **options,
        )
    if chat is None:
        chat = ChatLlamaCpp(
            model=model,
            model_file=model_file,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_threads=threads,
        )
    if name == "judge":
        return LLMJudgePRM(model=chat, **options)
    return TokenConfidencePRM(policy=chat, **options)


__all__ = ["ON_DEVICE_PRMS", "default_reasoner", "default_threads", "on_device_prm"]
