"""Drawing samples from any LangChain chat model or completion LLM, with token accounting.

Whole solutions come from :func:`draw`; one reasoning step at a time, continuing
a partial solution, from :func:`draw_steps` (step-level search).

Token counts come from the model's own report (``usage_metadata`` on chat
messages) where it gives one; otherwise they are counted with the model's
tokenizer (or, without one, approximated at four characters a token) and
marked ``estimated``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLanguageModel, BaseLLM
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.confidence import ConfidenceStop, token_confidences
from langchain_adaptive.errors import ConfigurationError, ModelError
from langchain_adaptive.inputs import Question
from langchain_adaptive.results import TokenUsage


class Sample(BaseModel):
    """One generated solution and what it cost."""

    text: str
    usage: TokenUsage
    finish_reason: str | None = None
    token_logprobs: list[float] | None = None
    """Each generated token's log-probability, when the model reported them."""
    token_confidences: list[float] | None = None
    """Each generated token's DeepConf confidence ``C_i`` (see
    :mod:`langchain_adaptive.confidence`), when the model reported top-k logprobs."""


class SamplingFailure(Exception):
    """Some samples of a round failed; carries the ones that succeeded."""

    def __init__(self, samples: list[Sample], error: BaseException) -> None:
        super().__init__(str(error))
        self.samples = samples
        self.error = error


def supports_native_n(model: BaseLanguageModel) -> bool:
    """Whether the model draws ``n`` samples of one prompt in one call (prompt evaluated once)."""
    return bool(getattr(model, "supports_n_samples", False))


def supports_confidence_stop(model: BaseLanguageModel) -> bool:
    """Whether the model takes a ``confidence_stop`` call kwarg and stops a sample mid-generation
    on low token confidence (see :class:`~langchain_adaptive.confidence.ConfidenceStop`)."""
    return bool(getattr(model, "supports_confidence_stop", False))


def confidence_kwargs(
    model: BaseLanguageModel, kwargs: dict[str, Any], request: ConfidenceStop | None
) -> dict[str, Any]:
    """``kwargs`` plus ``confidence_stop`` where the model supports it and a draw asks for it.

    Other models get ``kwargs`` unchanged: whoever drew the samples scores them
    once finished, from the top-k logprobs the model reports.
    """
    if request is None or not supports_confidence_stop(model):
        return kwargs
    return {**kwargs, "confidence_stop": request.model_dump()}


def call_kwargs(
    temperature: float | None, max_tokens: int, max_tokens_kwarg: str | None
) -> dict[str, Any]:
    """Per-call sampling settings in the names LangChain models accept."""
    kwargs: dict[str, Any] = {}
    if temperature is not None:
        kwargs["temperature"] = temperature
    if max_tokens_kwarg:
        kwargs[max_tokens_kwarg] = max_tokens
    return kwargs


def draw(
    model: BaseLanguageModel,
    question: Question,
    n: int,
    *,
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """Draw ``n`` samples for ``question``; model calls are child runs of ``config``.

    Raises:
        SamplingFailure: Some calls failed; the samples that succeeded are attached.
    """
    return _sample(
        model, question.messages, question.prompt_text(), n, stop=(), kwargs=kwargs, config=config
    )


async def adraw(
    model: BaseLanguageModel,
    question: Question,
    n: int,
    *,
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """Async twin of :func:`draw`."""
    return await _asample(
        model, question.messages, question.prompt_text(), n, stop=(), kwargs=kwargs, config=config
    )


DEFAULT_STEP_STOP = STEP_JOINER
"""Generation stops at a blank line: the end of one reasoning step."""


def step_prefix(steps: Sequence[str]) -> str:
    """The partial solution a model continues: the steps so far, each ended by a blank line.

    The trailing blank line matters: the model starts the next step instead of
    ending the current one (which would stop at once at the step delimiter).
    """
    return "".join(f"{step}{STEP_JOINER}" for step in steps)


def continuation_messages(question: Question, steps: Sequence[str]) -> list[BaseMessage]:
    """The chat prompt that continues ``steps``: the question plus a trailing AI prefill."""
    if not steps:
        return list(question.messages)
    return [*question.messages, AIMessage(step_prefix(steps))]


def continuation_prompt(question: Question, steps: Sequence[str]) -> str:
    """The raw completion prompt that continues ``steps``."""
    return f"{question.prompt_text()}{STEP_JOINER}{step_prefix(steps)}"


def draw_steps(
    model: BaseLanguageModel,
    question: Question,
    steps: Sequence[str],
    n: int,
    *,
    stop: Sequence[str] = (DEFAULT_STEP_STOP,),
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """Draw ``n`` next steps continuing the partial solution ``steps``.

    A chat model continues the assistant turn: the partial solution is sent as
    a final ``AIMessage`` (assistant prefill), so the model must support
    prefill; :class:`~langchain_adaptive.integrations.llamacpp.ChatLlamaCpp`
    does and reuses the prompt's KV cache, and draws the ``n`` continuations
    together when ``n > 1``. A completion LLM gets the raw prompt followed by
    the prefix. Generation stops at ``stop`` (a blank line by default), so
    each sample's text is one step; the stop string itself is not included.

    Raises:
        SamplingFailure: Some calls failed; the steps that arrived are attached
            (none when a single call for all ``n`` failed).
    """
    messages = continuation_messages(question, steps)
    prompt = continuation_prompt(question, steps)
    try:
        return _sample(model, messages, prompt, n, stop=stop, kwargs=kwargs, config=config)
    except (SamplingFailure, ConfigurationError):
        raise
    except Exception as error:
        raise SamplingFailure([], error) from error


async def adraw_steps(
    model: BaseLanguageModel,
    question: Question,
    steps: Sequence[str],
    n: int,
    *,
    stop: Sequence[str] = (DEFAULT_STEP_STOP,),
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """Async twin of :func:`draw_steps`."""
    messages = continuation_messages(question, steps)
    prompt = continuation_prompt(question, steps)
    try:
        return await _asample(model, messages, prompt, n, stop=stop, kwargs=kwargs, config=config)
    except (SamplingFailure, ConfigurationError):
        raise
    except Exception as error:
        raise SamplingFailure([], error) from error


def draw_prompts(
    model: BaseLanguageModel,
    prompts: Sequence[Sequence[BaseMessage]],
    *,
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """One sample for each of several prompts (sequential revisions), in their order.

    A chat model gets them as one ``batch``; a completion LLM gets each
    prompt's text. A prompt the model did not count is counted with
    :func:`count_tokens` (marked ``estimated``): revision prompts grow with the
    attempts they show, and their cost belongs in the budget.

    Raises:
        SamplingFailure: Some calls failed; the samples of the prompts before
            the first failure are attached.
    """
    outputs: list[Any]  # messages from a chat model, samples from an LLM, or the errors
    if isinstance(model, BaseChatModel):
        outputs = model.batch([list(p) for p in prompts], config, return_exceptions=True, **kwargs)
    elif isinstance(model, BaseLLM):
        outputs = []
        for messages in prompts:
            text = _prompt_text(messages)
            try:
                result = model.generate([text], **_run_args(config), **kwargs)
                outputs.append(_llm_samples(model, text, result)[0])
            except Exception as error:
                outputs.append(error)
    else:
        raise _not_a_model(model)
    return _with_prompt_tokens(model, prompts, outputs)


async def adraw_prompts(
    model: BaseLanguageModel,
    prompts: Sequence[Sequence[BaseMessage]],
    *,
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """Async twin of :func:`draw_prompts`."""
    outputs: list[Any]  # messages from a chat model, samples from an LLM, or the errors
    if isinstance(model, BaseChatModel):
        outputs = await model.abatch(
            [list(p) for p in prompts], config, return_exceptions=True, **kwargs
        )
    elif isinstance(model, BaseLLM):
        outputs = []
        for messages in prompts:
            text = _prompt_text(messages)
            try:
                result = await model.agenerate([text], **_run_args(config), **kwargs)
                outputs.append(_llm_samples(model, text, result)[0])
            except Exception as error:
                outputs.append(error)
    else:
        raise _not_a_model(model)
    return _with_prompt_tokens(model, prompts, outputs)


def _prompt_text(messages: Sequence[BaseMessage]) -> str:
    return "\n\n".join(str(m.content) for m in messages)


def _with_prompt_tokens(
    model: BaseLanguageModel, prompts: Sequence[Sequence[BaseMessage]], outputs: list[Any]
) -> list[Sample]:
    """Samples (chat messages made samples) with every prompt counted; stops at a failure."""
    samples: list[Sample] = []
    for messages, output in zip(prompts, outputs, strict=True):
        if isinstance(output, BaseException):
            raise SamplingFailure(samples, output)
        sample = _chat_sample(model, output) if isinstance(output, AIMessage) else output
        if sample.usage.input_tokens == 0:
            counted = count_tokens(model, _prompt_text(messages))
            usage = sample.usage.model_copy(update={"input_tokens": counted, "estimated": True})
            sample = sample.model_copy(update={"usage": usage})
        samples.append(sample)
    return samples


def _sample(
    model: BaseLanguageModel,
    messages: Sequence[BaseMessage],
    prompt: str,
    n: int,
    *,
    stop: Sequence[str],
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """``n`` generations of ``messages`` (a chat model) or ``prompt`` (a completion LLM)."""
    call = {**kwargs, "stop": list(stop)} if stop else kwargs
    if isinstance(model, BaseChatModel):
        if supports_native_n(model) and n > 1:
            result = model.generate(
                [list(messages)], **_run_args(config), n=n, stream=False, **call
            )
            return _one_call(model, result)
        outputs = model.batch([list(messages)] * n, config, return_exceptions=True, **call)
        return _collect(
            [_chat_sample(model, o) if isinstance(o, AIMessage) else o for o in outputs]
        )
    if isinstance(model, BaseLLM):
        result = model.generate([prompt] * n, **_run_args(config), **call)
        return _llm_samples(model, prompt, result)
    raise _not_a_model(model)


async def _asample(
    model: BaseLanguageModel,
    messages: Sequence[BaseMessage],
    prompt: str,
    n: int,
    *,
    stop: Sequence[str],
    kwargs: dict[str, Any],
    config: RunnableConfig,
) -> list[Sample]:
    """Async twin of :func:`_sample`."""
    call = {**kwargs, "stop": list(stop)} if stop else kwargs
    if isinstance(model, BaseChatModel):
        if supports_native_n(model) and n > 1:
            result = await model.agenerate(
                [list(messages)], **_run_args(config), n=n, stream=False, **call
            )
            return _one_call(model, result)
        outputs = await model.abatch([list(messages)] * n, config, return_exceptions=True, **call)
        return _collect(
            [_chat_sample(model, o) if isinstance(o, AIMessage) else o for o in outputs]
        )
    if isinstance(model, BaseLLM):
        result = await model.agenerate([prompt] * n, **_run_args(config), **call)
        return _llm_samples(model, prompt, result)
    raise _not_a_model(model)


def _not_a_model(model: object) -> ConfigurationError:
    return ConfigurationError(
        f"model must be a LangChain BaseChatModel or BaseLLM, got {type(model).__name__}"
    )


def _run_args(config: RunnableConfig) -> dict[str, Any]:
    return {
        "callbacks": config.get("callbacks"),
        "tags": config.get("tags"),
        "metadata": config.get("metadata"),
    }


def _collect(outputs: list[Sample | Any]) -> list[Sample]:
    samples = [o for o in outputs if isinstance(o, Sample)]
    errors = [o for o in outputs if isinstance(o, BaseException)]
    if errors:
        raise SamplingFailure(samples, errors[0])
    return samples


def _one_call(model: BaseLanguageModel, result: LLMResult) -> list[Sample]:
    """Samples of one native ``n`` call: the call is counted once, on the first sample."""
    samples = []
    for generation in result.generations[0]:
        message = generation.message if isinstance(generation, ChatGeneration) else None
        if not isinstance(message, AIMessage):  # a chat model that answers in another form
            raise ModelError(
                f"{type(model).__name__} answered a native n call with a "
                f"{type(message).__name__}, not an AIMessage"
            )
        samples.append(_chat_sample(model, message))
    for sample in samples[1:]:
        sample.usage.model_calls = 0
    return samples


def _chat_sample(model: BaseLanguageModel, message: AIMessage) -> Sample:
    text = str(message.text)
    finish = message.response_metadata.get("finish_reason")
    if message.usage_metadata is not None:
        usage = TokenUsage(
            input_tokens=message.usage_metadata.get("input_tokens", 0),
            output_tokens=message.usage_metadata.get("output_tokens", 0),
            model_calls=1,
        )
    else:
        usage = TokenUsage(output_tokens=count_tokens(model, text), model_calls=1, estimated=True)
    return Sample(
        text=text,
        usage=usage,
        finish_reason=finish,
        token_logprobs=reported_logprobs(message.response_metadata.get("logprobs")),
        token_confidences=reported_confidences(message.response_metadata),
    )


def reported_confidences(metadata: Mapping[str, Any]) -> list[float] | None:
    """Token confidences ``C_i`` from a message's ``response_metadata``.

    ``ChatLlamaCpp`` called with ``confidence_stop`` reports them as
    ``"token_confidences"`` (computed in its decode loop); otherwise they are
    computed from the top-k alternatives of ``"logprobs"`` where the model
    reported them (``top_logprobs=k``); else ``None``.
    """
    values = metadata.get("token_confidences")
    if isinstance(values, list) and values:
        if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return [float(v) for v in values]
        return None
    return token_confidences(metadata.get("logprobs"))


def reported_logprobs(value: Any) -> list[float] | None:
    """Token log-probabilities from a message's ``response_metadata["logprobs"]``.

    Reads OpenAI's shape (``{"content": [{"token", "logprob", ...}, ...]}``, which
    ``ChatOpenAI`` and ``ChatLlamaCpp`` report) or a bare list of such entries;
    anything else, or a non-finite value, is ``None``: no signal rather than a
    wrong one.
    """
    entries = value.get("content") if isinstance(value, dict) else value
    if not isinstance(entries, list) or not entries:
        return None
    out: list[float] = []
    for entry in entries:
        logprob = entry.get("logprob") if isinstance(entry, dict) else None
        if not isinstance(logprob, int | float) or not math.isfinite(logprob):
            return None
        out.append(float(logprob))
    return out


def _llm_samples(model: BaseLLM, prompt: str, result: LLMResult) -> list[Sample]:
    """Samples of a completion call, with usage from ``llm_output`` when the model reports it.

    ``llm_output["token_usage"]`` (OpenAI style) gives totals for the whole call:
    they are split over the samples in proportion to tokenizer counts, so the
    totals are exact and marked as reported; without it every count is estimated.
    """
    texts = [generations[0].text for generations in result.generations]
    infos = [generations[0].generation_info or {} for generations in result.generations]
    guessed_out = [count_tokens(model, text) for text in texts]
    guessed_in = [count_tokens(model, prompt)] * len(texts)
    reported = (result.llm_output or {}).get("token_usage") or {}
    out_total, in_total = reported.get("completion_tokens"), reported.get("prompt_tokens")
    estimated = not isinstance(out_total, int)
    outputs = _split(out_total, guessed_out) if isinstance(out_total, int) else guessed_out
    inputs = guessed_in if not isinstance(in_total, int) else _split(in_total, guessed_in)
    return [
        Sample(
            text=text,
            usage=TokenUsage(
                input_tokens=n_in, output_tokens=n_out, model_calls=1, estimated=estimated
            ),
            finish_reason=info.get("finish_reason"),
        )
        for text, info, n_in, n_out in zip(texts, infos, inputs, outputs, strict=True)
    ]


def _split(total: int, weights: list[int]) -> list[int]:
    """Integers proportional to ``weights`` that sum exactly to ``total`` (largest remainder)."""
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    shares = [total * w / weight_sum for w in weights]
    parts = [int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def count_tokens(model: BaseLanguageModel, text: str) -> int:
    """Tokens in ``text`` by the model's own tokenizer, else about four characters a token.

    LangChain's fallback tokenizer (GPT-2 through transformers) would download
    files, so it is only used when the model defines its own.
    """
    has_tokenizer = model.custom_get_token_ids is not None or (
        type(model).get_token_ids is not BaseLanguageModel.get_token_ids
    )
    if has_tokenizer:
        return len(model.get_token_ids(text))
    return max(1, round(len(text) / 4)) if text else 0


__all__ = [
    "DEFAULT_STEP_STOP",
    "Sample",
    "SamplingFailure",
    "adraw",
    "adraw_prompts",
    "adraw_steps",
    "call_kwargs",
    "confidence_kwargs",
    "continuation_messages",
    "continuation_prompt",
    "count_tokens",
    "draw",
    "draw_prompts",
    "draw_steps",
    "reported_confidences",
    "reported_logprobs",
    "step_prefix",
    "supports_confidence_stop",
    "supports_native_n",
]
