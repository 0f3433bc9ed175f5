"""OpenAI's chat-completions wire format as the adaptive server reads and writes it.

A request is validated by :class:`ChatCompletionRequest`: every field OpenAI
defines is known (``extra="forbid"``, so a misspelt or invented field is a 400,
not silently dropped), the fields an adaptive run cannot honour are refused by
:meth:`ChatCompletionRequest.unsupported` with the reason, and per-request
adaptive settings travel in the extension field ``adaptive``
(:class:`AdaptiveOverrides`). Messages become LangChain messages
(:func:`to_langchain_messages`); tools stay OpenAI tool dicts, which every
LangChain ``bind_tools`` accepts.

Tool calls are voted on by their normal form: :func:`tool_calls_text` renders an
``AIMessage``'s calls as ``<tool_call>{"arguments":...,"name":...}</tool_call>``
lines (keys sorted, no spaces), and :func:`tool_call_answer` reads them back as
one answer string, so two samples calling the same tool with the same arguments
in a different key order or spacing vote together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.strategies import STRATEGIES

MAX_JSON_DEPTH = 64
"""Deepest JSON nesting a request may have (a tool schema needs far less)."""


class ProtocolError(ValueError):
    """A request the server refuses with HTTP 400; the message says why."""


# -- the request ---------------------------------------------------------------------


class AdaptiveOverrides(BaseModel):
    """The ``adaptive`` extension field: per-request settings of the served runnable.

    Limits may lower the server's own (``--max-samples``, ``--max-tokens``), not
    raise them, so one client cannot buy more compute than the operator allows.
    """

    model_config = ConfigDict(extra="forbid")

    target_confidence: float | None = Field(default=None, gt=0.0, lt=1.0)
    """IAS's C for this request."""
    max_samples: int | None = Field(default=None, ge=1)
    """Sample cap for this request (at most the server's)."""
    max_tokens_per_sample: int | None = Field(default=None, ge=1)
    """Generated-token cap per sample (at most the server's); ``max_tokens`` says the same."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """Generated-token cap over all samples of this request."""
    strategy: str | None = None
    """A strategy registry name (``adaptive_best_of_n``, ``adaptive_consistency``, ...)."""
    selection: SelectionRule | None = None
    """How the answer is chosen: ``prm``, ``weighted_vote`` or ``majority_vote``."""

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str | None) -> str | None:
        if value is not None and value not in STRATEGIES:
            raise ValueError(f"unknown strategy {value!r}; choose one of {sorted(STRATEGIES)}")
        return value


class StreamOptions(BaseModel):
    """``stream_options``: only ``include_usage`` changes what is sent."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class FunctionSpec(BaseModel):
    """The ``function`` of a tool: name, description and JSON-schema parameters."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(BaseModel):
    """One entry of ``tools``: only function tools exist in chat completions."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: FunctionSpec


class Message(BaseModel):
    """One chat message, checked for what the policy can read (text content)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body: OpenAI's fields plus ``adaptive``."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1)
    model: str
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # Informational: accepted and ignored.
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None
    # Defined by OpenAI; refused by unsupported() unless at their neutral value.
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, int] | None = None
    modalities: list[str] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    adaptive: AdaptiveOverrides | None = None
    """Our extension: per-request adaptive settings."""

    @property
    def sample_max_tokens(self) -> int | None:
        """The per-sample generated-token cap asked for (``max_completion_tokens`` first)."""
        return self.max_completion_tokens or self.max_tokens

    def unsupported(self) -> str | None:
        """Why this request cannot be served as asked, or ``None``."""
        if self.n is not None and self.n > 1:
            return (
                f"n={self.n} is not supported: this server draws as many samples as the question "
                "needs and returns the one it selects; bound them with adaptive.max_samples"
            )
        if self.logprobs or self.top_logprobs:
            return "logprobs are not supported: the answer is selected from several samples"
        if self.response_format and self.response_format.get("type") not in (None, "text"):
            return (
                f"response_format {self.response_format.get('type')!r} is not supported; only "
                "'text'"
            )
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name):
                return f"{name} is not supported by this server"
        if self.logit_bias:
            return "logit_bias is not supported by this server"
        if self.modalities and set(self.modalities) != {"text"}:
            return "only the 'text' modality is supported"
        if self.functions is not None or self.function_call is not None:
            return "functions/function_call are deprecated and not supported: use tools"
        for name in ("audio", "prediction", "reasoning_effort", "verbosity", "web_search_options"):
            if getattr(self, name) is not None:
                return f"{name} is not supported by this server"
        if self.moderation is not None:
            return "moderation is not supported by this server"
        if self.tool_choice is not None and not self.tools:
            return "tool_choice needs tools"
        return None

    def bind_tool_choice(self) -> str | None:
        """``tool_choice`` in the form LangChain's ``bind_tools`` takes (a name or a mode)."""
        choice = self.tool_choice
        if isinstance(choice, Mapping):
            function = choice.get("function")
            if choice.get("type") != "function" or not isinstance(function, Mapping):
                raise ProtocolError('tool_choice must be a mode or {"type": "function", ...}')
            return str(function.get("name"))
        if choice not in (None, "auto", "none", "required"):
            raise ProtocolError(f"tool_choice {choice!r} is not 'auto', 'none' or 'required'")
        return choice


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (without recursion, so it cannot overflow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise ProtocolError(f"the request's JSON is nested deeper than {limit} levels")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """The validated request of a body.

    Raises:
        ProtocolError: Not JSON, too deep, an unknown field or a bad value; the
            message names the field.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"the body is not valid JSON: {error}") from None
    check_depth(data)
    if not isinstance(data, dict):
        raise ProtocolError("the body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as error:
        raise ProtocolError(describe(error)) from None


def describe(error: ValidationError) -> str:
    """One line naming the first bad field, with a hint for unknown ones."""
    first = error.errors()[0]
    place = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        if place.startswith("adaptive."):
            return (
                f"unknown field {place!r}: adaptive takes {sorted(AdaptiveOverrides.model_fields)}"
            )
        return (
            f"unknown field {place!r}: not an OpenAI chat-completions field; per-request "
            "adaptive settings go in the 'adaptive' object"
        )
    return f"invalid field {place!r}: {first['msg']}" if place else first["msg"]


def to_langchain_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """The request's messages as LangChain messages (tool calls and results included).

    Raises:
        ProtocolError: A content part is not text.
    """
    converted = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": _text(message.content)}
        if message.name is not None:
            item["name"] = message.name
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
        if message.tool_call_id is not None:
            item["tool_call_id"] = message.tool_call_id
        converted.append(item)
    try:
        return convert_to_messages(converted)
    except (ValueError, KeyError, TypeError) as error:
        raise ProtocolError(f"invalid messages: {error}") from None


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise ProtocolError(f"only text content parts are supported, got {part.get('type')!r}")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


# -- tool calls as votes -------------------------------------------------------------

TOOL_CALL_PREFIX = "tool_calls:"
"""How a tool-call answer starts, so it never equals a text answer."""
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def canonical_tool_call(name: str, args: Mapping[str, Any]) -> str:
    """A tool call's normal form: JSON of name and arguments, keys sorted, no spaces."""
    return json.dumps(
        {"name": name, "arguments": args}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def tool_calls_text(message: AIMessage) -> str:
    """The candidate text of a tool-calling sample: its words, then one tagged line per call."""
    calls = "\n".join(
        f"<tool_call>{canonical_tool_call(call['name'], call['args'])}</tool_call>"
        for call in message.tool_calls
    )
    words = str(message.text).strip()
    return f"{words}\n\n{calls}" if words else calls


def tool_call_answer(text: str) -> str | None:
    """The answer a candidate votes for when it calls tools: its calls in a fixed order."""
    calls = _TOOL_CALL.findall(text)
    if not calls:
        return None
    return TOOL_CALL_PREFIX + "[" + ",".join(sorted(calls)) + "]"


def openai_tool_calls(message: AIMessage, new_id: Any) -> list[dict[str, Any]]:
    """``message.tool_calls`` in OpenAI's format; a call without an id gets ``new_id()``."""
    return [
        {
            "id": call.get("id") or new_id(),
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": json.dumps(call["args"], ensure_ascii=False),
            },
        }
        for call in message.tool_calls
    ]


__all__ = [
    "MAX_JSON_DEPTH",
    "TOOL_CALL_PREFIX",
    "AdaptiveOverrides",
    "ChatCompletionRequest",
    "Message",
    "ProtocolError",
    "canonical_tool_call",
    "check_depth",
    "describe",
    "openai_tool_calls",
    "parse_request",
    "to_langchain_messages",
    "tool_call_answer",
    "tool_calls_text",
]
