"""Tool calls and structured output for ``ChatLlamaCpp``, by grammar-constrained decoding.

The data path of one call with tools or a response format reads top to bottom:

call kwargs (``tools``, ``tool_choice``, ``response_format``, set by
``bind_tools`` / ``with_structured_output``) → an :class:`OutputPlan`: a GBNF
grammar built from the JSON schemas (llama.cpp's own schema converter) and a
short instruction for the system message → the sampler decodes under the
grammar, so every token keeps the reply well-formed → :func:`parse_reply` turns
the text into an ``AIMessage``'s content or ``tool_calls``.

A tool call is written as one JSON object, ``{"name": ..., "arguments": {...}}``,
the format OpenAI-style models are trained on; a message holds at most one call.
With ``tool_choice="auto"`` the grammar is an honest either-or decided by the
model's first character: ``{`` starts a tool call (and the rest is then held to
the tools' schemas), any other character starts a plain answer that runs free.
A small model that was never trained on tools will mostly answer in text under
``"auto"``; ``"any"`` or a tool's name forces a call.
"""

from __future__ import annotations

import copy
import functools
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.messages.tool import InvalidToolCall, ToolCall, ToolCallChunk
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_adaptive.errors import ConfigurationError

OUTPUT_KWARGS = frozenset({"tools", "tool_choice", "response_format"})
"""Call kwargs this module reads (``bind_tools`` and ``with_structured_output`` set them)."""

Mode = Literal["auto", "call", "json"]
"""``auto``: a plain answer or one tool call; ``call``: exactly one tool call; ``json``:
a JSON value that is the whole reply (structured output)."""

_ANSWER_RULES = (
    # A plain answer is any text whose first character is not "{" (that one opens a call).
    "answer ::= [^{] answer-rest\nanswer-rest ::= [\\U00000000-\\U0010FFFF]*"
)


@dataclass(frozen=True)
class OutputPlan:
    """How one call's reply is constrained and read back."""

    mode: Mode
    grammar: str
    """GBNF text, root rule ``root``."""
    instructions: str
    """Appended to the system message, so the model knows what the grammar holds it to."""
    tool_names: tuple[str, ...] = ()


def tool_call_id() -> str:
    """A fresh id for a tool call, in OpenAI's ``call_...`` shape."""
    return f"call_{secrets.token_hex(12)}"


def format_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Tools of any kind LangChain accepts, as OpenAI tool dicts, one per name.

    The same tool given twice (a pydantic model and its JSON schema) is kept
    once; two different tools with one name are an error, since a call names
    its tool.
    """
    formatted: dict[str, dict[str, Any]] = {}
    for tool in tools:
        converted = convert_to_openai_tool(tool)
        name = converted["function"]["name"]
        seen = formatted.setdefault(name, converted)
        if _strip_titles(seen) != _strip_titles(converted):
            raise ConfigurationError(
                f"Two different tools are named {name!r}; names must be unique."
            )
    return list(formatted.values())


def normalize_tool_choice(
    tool_choice: Any, names: Sequence[str]
) -> Literal["auto", "none", "any"] | str:
    """``tool_choice`` as ``"auto"``, ``"none"``, ``"any"`` or one tool's name.

    Accepts what LangChain's chat models accept: ``None``/``"auto"``,
    ``"none"``, ``"any"``/``"required"``/``True``, a tool name, or
    ``{"type": "function", "function": {"name": ...}}``.

    Raises:
        ConfigurationError: If it names no bound tool or has an unknown shape.
    """
    if tool_choice is None or tool_choice == "auto":
        return "auto"
    if tool_choice is False or tool_choice == "none":
        return "none"
    if tool_choice is True or tool_choice in ("any", "required"):
        return "any"
    name = tool_choice
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if isinstance(name, str) and name in names:
        return name
    raise ConfigurationError(
        f"tool_choice={tool_choice!r} is not 'auto', 'none', 'any', 'required' or the name "
        f"of a bound tool {list(names)}."
    )


def plan_output(kwargs: Mapping[str, Any]) -> OutputPlan | None:
    """The plan for a call's ``tools``/``tool_choice``/``response_format``; ``None``: free text.

    Raises:
        ConfigurationError: If both tools and a response format are given, a
            response format has an unknown type, or ``tool_choice`` names no tool.
    """
    tools = kwargs.get("tools") or []
    response_format = kwargs.get("response_format")
    if tools and response_format is not None:
        raise ConfigurationError(
            "ChatLlamaCpp takes tools or a response_format in one call, not both; use "
            "with_structured_output(method='function_calling') to get a schema as a tool."
        )
    if response_format is not None:
        return _json_plan(response_format)
    if not tools:
        if kwargs.get("tool_choice") not in (None, "auto", "none"):
            raise ConfigurationError(f"tool_choice={kwargs['tool_choice']!r} needs tools.")
        return None
    formatted = format_tools(tools)
    names = tuple(t["function"]["name"] for t in formatted)
    choice = normalize_tool_choice(kwargs.get("tool_choice"), names)
    if choice == "none":
        return None
    chosen = (
        formatted
        if choice in ("auto", "any")
        else [t for t in formatted if t["function"]["name"] == choice]
    )
    call_grammar = _call_grammar(json.dumps(_calls_schema(chosen)))
    listing = "\n".join(json.dumps(_tool_summary(t)) for t in formatted)
    lead = (
        "You can call these tools:\n"
        f"{listing}\n"
        'To call a tool, reply with only a JSON object: {"name": <tool name>, "arguments": '
        "{<argument name>: <value>, ...}}."
    )
    if choice == "auto":
        grammar = call_grammar.replace("root ::=", "tool-call ::=", 1)
        grammar = f"root ::= tool-call | answer\n{grammar}\n{_ANSWER_RULES}"
        return OutputPlan(
            "auto", grammar, f"{lead} Otherwise answer in plain text.", tool_names=names
        )
    must = "one of the tools" if choice == "any" else f"the tool {choice}"
    return OutputPlan("call", call_grammar, f"{lead} You must call {must}.", tool_names=names)


def _json_plan(response_format: Any) -> OutputPlan:
    if not isinstance(response_format, Mapping):
        raise ConfigurationError(
            f"response_format must be a dict such as {{'type': 'json_object'}} or "
            f"{{'type': 'json_schema', 'json_schema': {{'schema': ...}}}}; got {response_format!r}."
        )
    kind = response_format.get("type")
    if kind == "json_object":
        schema: dict[str, Any] = {"type": "object"}
        instructions = "Reply with only a JSON object."
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None  # type: ignore[assignment]
        if not isinstance(schema, Mapping):
            raise ConfigurationError(
                "response_format {'type': 'json_schema'} needs json_schema.schema, a JSON schema."
            )
        instructions = (
            "Reply with only a JSON object that matches this JSON schema:\n"
            f"{json.dumps(_strip_titles(schema))}"
        )
    else:
        raise ConfigurationError(
            f"response_format type must be 'json_object' or 'json_schema'; got {kind!r}."
        )
    return OutputPlan("json", _schema_grammar(json.dumps(schema)), instructions)


@functools.lru_cache(maxsize=128)
def _schema_grammar(schema_json: str) -> str:
    """GBNF for one JSON schema (llama.cpp's converter), cached by the schema's text."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(schema_json)
    except Exception as error:  # the converter raises bare asserts and ValueErrors
        raise ConfigurationError(
            f"Cannot build a grammar from the JSON schema {schema_json[:200]}: "
            f"{type(error).__name__}: {error}"
        ) from error


@functools.lru_cache(maxsize=128)
def _call_grammar(schema_json: str) -> str:
    """GBNF for a tool call: ``name`` first, then ``arguments``."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(schema_json, prop_order=["name", "arguments"])
    except Exception as error:
        raise ConfigurationError(
            f"Cannot build a grammar from the tools' JSON schemas: {type(error).__name__}: {error}"
        ) from error


def _calls_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One JSON schema that accepts a call of any of ``tools``.

    Each tool's ``$defs`` (or ``definitions``) move to the root, where
    ``$ref`` resolves; a definition name two tools use for different schemas
    is renamed in the second.
    """
    definitions: dict[str, Any] = {}
    alternatives = []
    for index, tool in enumerate(tools):
        parameters = copy.deepcopy(tool["function"].get("parameters") or {})
        parameters.setdefault("type", "object")
        if parameters.get("type") == "object":
            parameters.setdefault("properties", {})
        own: dict[str, Any] = {}
        renames: dict[str, str] = {}
        for key in ("$defs", "definitions"):
            for name, schema in (parameters.pop(key, None) or {}).items():
                target = name
                if target in definitions and definitions[target] != schema:
                    target = f"{name}_{index}"
                own[target] = schema
                renames[f"#/{key}/{name}"] = f"#/$defs/{target}"
        for name, schema in own.items():
            definitions[name] = _rewrite_refs(schema, renames)
        alternatives.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": tool["function"]["name"]},
                    "arguments": _rewrite_refs(parameters, renames),
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    root: dict[str, Any] = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    if definitions:
        root = {**root, "$defs": definitions}
    return root


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    if isinstance(node, dict):
        out = {key: _rewrite_refs(value, renames) for key, value in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref in renames:
            out["$ref"] = renames[ref]
        return out
    return node


def _strip_titles(schema: Any) -> Any:
    """The schema without ``title`` keys: shorter prompts, and the grammar ignores them."""
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    if isinstance(schema, dict):
        return {
            key: _strip_titles(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str))
        }
    return schema


def _tool_summary(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    summary: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        summary["description"] = function["description"]
    summary["arguments"] = _strip_titles(function.get("parameters") or {}).get("properties", {})
    return summary


def with_instructions(messages: Sequence[BaseMessage], instructions: str) -> list[BaseMessage]:
    """``messages`` with ``instructions`` appended to the system message (one is added if none).

    Raises:
        ConfigurationError: If the last message is an AI prefill: the grammar
            constrains a whole reply, not the rest of a partial one.
    """
    if messages and messages[-1].type == "ai":
        raise ConfigurationError(
            "Tools and structured output constrain a whole reply; they cannot continue a "
            "partial AI message (a prefill). Drop the final AIMessage."
        )
    if messages and messages[0].type == "system":
        first = messages[0]
        merged = f"{first.text}\n\n{instructions}" if first.text else instructions
        return [SystemMessage(merged), *messages[1:]]
    return [SystemMessage(instructions), *messages]


def render_tool_calls(tool_calls: Sequence[Mapping[str, Any]]) -> str:
    """Tool calls of a past AI message as the model writes them, one JSON object a line."""
    return "\n".join(
        json.dumps({"name": call["name"], "arguments": call.get("args") or {}})
        for call in tool_calls
    )


@dataclass
class ParsedReply:
    """What a reply's text holds: content, or one tool call (valid or not)."""

    content: str
    tool_calls: list[ToolCall]
    invalid_tool_calls: list[InvalidToolCall]

    def chunks(self) -> list[ToolCallChunk]:
        """The call as one streamed chunk (the whole call arrives with the last chunk)."""
        return [
            ToolCallChunk(
                name=call["name"],
                args=json.dumps(call["args"]),
                id=call["id"],
                index=0,
                type="tool_call_chunk",
            )
            for call in self.tool_calls
        ] + [
            ToolCallChunk(
                name=call.get("name"),
                args=call.get("args"),
                id=call.get("id"),
                index=0,
                type="tool_call_chunk",
            )
            for call in self.invalid_tool_calls
        ]


def starts_tool_call(text: str) -> bool:
    """Whether a reply in ``auto`` mode took the tool-call branch (its first character)."""
    return text.startswith("{")


def parse_reply(text: str, plan: OutputPlan | None) -> ParsedReply:
    """Read a reply decoded under ``plan``: a tool call becomes ``tool_calls`` with an id.

    A call the grammar could not finish (``max_tokens`` or a stop string cut
    it) becomes an ``invalid_tool_call`` carrying the text and the error, so
    nothing generated is lost.
    """
    if plan is None or plan.mode == "json" or (plan.mode == "auto" and not starts_tool_call(text)):
        return ParsedReply(text, [], [])
    call_id = tool_call_id()
    try:
        value = json.loads(text)
        name, arguments = value["name"], value["arguments"]
        if name not in plan.tool_names or not isinstance(arguments, dict):
            raise ValueError(f"{name!r} is not a bound tool or its arguments are not an object")
    except (ValueError, KeyError, TypeError) as error:
        return ParsedReply(
            "",
            [],
            [
                InvalidToolCall(
                    name=None,
                    args=text,
                    id=call_id,
                    error=f"The reply is not a complete tool call ({error}); was it cut "
                    "by max_tokens or a stop string?",
                    type="invalid_tool_call",
                )
            ],
        )
    return ParsedReply("", [ToolCall(name=name, args=arguments, id=call_id, type="tool_call")], [])


__all__ = [
    "OUTPUT_KWARGS",
    "OutputPlan",
    "ParsedReply",
    "format_tools",
    "normalize_tool_choice",
    "parse_reply",
    "plan_output",
    "render_tool_calls",
    "starts_tool_call",
    "tool_call_id",
    "with_instructions",
]
