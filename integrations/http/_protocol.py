"""The wire format both ends speak: vLLM's ``/pooling`` API for process reward models.

A request holds one conversation (``messages``) or a batch of rendered prompts
(``input``); the solution is the assistant turn, every step followed by the step
separator (``<extra_0>`` for Qwen2.5-Math-PRM). The response holds, per input,
one ``[p_incorrect, p_correct]`` row per separator, as vLLM returns for a PRM
served with STEP pooling::

    {"id": "pool-...", "object": "list", "created": 1730000000, "model": "prm",
     "data": [{"index": 0, "object": "pooling", "data": [[0.1, 0.9], [0.7, 0.3]]}]}

Our server adds one field vLLM does not send, ``estimates`` (one
:class:`~langchain_adaptive.results.SuccessEstimate` per row), so quantiles of a
calibrated PRM survive the trip; vLLM clients ignore it, and :class:`RemotePRM`
uses it when present.

The question alone (no steps) is an assistant turn holding only the separator,
the same definition :class:`~langchain_adaptive.integrations.huggingface.HuggingFacePRM`
uses, so a served PRM and a local one score the question identically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_adaptive.results import SuccessEstimate

STEP_SEPARATOR = "<extra_0>"
"""Qwen2.5-Math-PRM's step separator (token id 151651 in its vocabulary)."""

QWEN_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""The system prompt of the Qwen2.5-Math-PRM model card (as HuggingFacePRM uses)."""

_CHATML = re.compile(
    r"<\|im_start\|>user\n(?P<question>.*?)<\|im_end\|>\n"
    r"<\|im_start\|>assistant\n(?P<solution>.*?)<\|im_end\|>",
    re.DOTALL,
)


class ProtocolError(ValueError):
    """A request or response that does not follow the ``/pooling`` format."""


# -- building a request --------------------------------------------------------------


def solution_text(steps: Sequence[str], separator: str = STEP_SEPARATOR) -> str:
    """The assistant turn: every step followed by the separator; none: the separator alone."""
    return "".join(f"{step}{separator}" for step in steps) if steps else separator


def pooling_messages(
    question: str,
    steps: Sequence[str],
    *,
    system_prompt: str | None = QWEN_SYSTEM_PROMPT,
    separator: str = STEP_SEPARATOR,
) -> list[dict[str, str]]:
    """The chat messages of one scoring input, as the Qwen PRM model card builds them."""
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": question})
    messages.append({"role": "assistant", "content": solution_text(steps, separator)})
    return messages


def chatml_text(
    question: str,
    steps: Sequence[str],
    *,
    system_prompt: str | None = QWEN_SYSTEM_PROMPT,
    separator: str = STEP_SEPARATOR,
) -> str:
    """The messages rendered as Qwen2.5's chat template renders them (ChatML).

    Used for the ``input`` form of a request, which batches many prompts in one
    call but leaves the chat template to the client.
    """
    return "".join(
        f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
        for m in pooling_messages(question, steps, system_prompt=system_prompt, separator=separator)
    )


# -- reading a request ---------------------------------------------------------------


def split_solution(text: str, separator: str = STEP_SEPARATOR) -> list[str]:
    """The steps of an assistant turn; a turn holding only the separator is the question alone."""
    if text == separator:
        return []
    if not text.endswith(separator):
        raise ProtocolError(
            f"the assistant turn must end with the step separator {separator!r} (one after "
            "every step)"
        )
    return text[: -len(separator)].split(separator)


def _content_text(content: Any) -> str:
    """Message content as text: a string, or OpenAI-style ``[{"type": "text", ...}]`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, Mapping) and part.get("type") == "text"):
                raise ProtocolError("only text content parts can be scored")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise ProtocolError(f"message content must be text, not {type(content).__name__}")


def parse_messages(
    messages: Sequence[Mapping[str, Any]], separator: str = STEP_SEPARATOR
) -> tuple[str, list[str]]:
    """The question (the last user turn) and steps (the final assistant turn) of a conversation."""
    if not messages or messages[-1].get("role") != "assistant":
        raise ProtocolError("the last message must be the assistant turn holding the steps")
    users = [m for m in messages[:-1] if m.get("role") == "user"]
    if not users:
        raise ProtocolError("the conversation has no user turn (the question)")
    question = _content_text(users[-1].get("content"))
    return question, split_solution(_content_text(messages[-1].get("content")), separator)


def parse_chatml(text: str, separator: str = STEP_SEPARATOR) -> tuple[str, list[str]]:
    """The question and steps of a prompt rendered by :func:`chatml_text`."""
    matches = list(_CHATML.finditer(text))
    if not matches:
        raise ProtocolError(
            "an input prompt must be ChatML with a user turn followed by an assistant turn"
        )
    last = matches[-1]
    return last["question"], split_solution(last["solution"], separator)


class PoolingRequest(BaseModel):
    """A ``/pooling`` request: ``messages`` (one conversation) or ``input`` (prompts)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]] | None = None
    messages: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> PoolingRequest:
        if (self.input is None) == (self.messages is None):
            raise ValueError("give exactly one of 'input' and 'messages'")
        return self

    def conversations(self, separator: str = STEP_SEPARATOR) -> list[tuple[str, list[str]]]:
        """(question, steps) of every input, in order."""
        if self.messages is not None:
            return [parse_messages(self.messages, separator)]
        given = [self.input] if isinstance(self.input, str) else list(self.input or [])
        texts = [text for text in given if isinstance(text, str)]
        if len(texts) != len(given):
            raise ProtocolError("token-id inputs are not supported: send text or messages")
        if not texts:
            raise ProtocolError("'input' is empty")
        return [parse_chatml(text, separator) for text in texts]


# -- the response --------------------------------------------------------------------


class PoolingItem(BaseModel):
    """The rows of one input: ``[p_incorrect, p_correct]`` per separator."""

    model_config = ConfigDict(extra="allow")

    index: int = Field(ge=0)
    object: str = "pooling"
    data: list[list[float]]
    estimates: list[SuccessEstimate] | None = None
    """Our extension: the full estimate behind each row (quantiles and raw score)."""


class PoolingResponse(BaseModel):
    """A ``/pooling`` response."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    object: str = "list"
    created: int | None = None
    model: str | None = None
    data: list[PoolingItem]


__all__ = [
    "QWEN_SYSTEM_PROMPT",
    "STEP_SEPARATOR",
    "PoolingItem",
    "PoolingRequest",
    "PoolingResponse",
    "ProtocolError",
    "chatml_text",
    "parse_chatml",
    "parse_messages",
    "pooling_messages",
    "solution_text",
    "split_solution",
]
