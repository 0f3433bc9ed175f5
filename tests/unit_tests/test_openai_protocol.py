"""The OpenAI wire format of the adaptive server: request checks and tool-call normal forms."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage

from langchain_adaptive.integrations.http._openai_protocol import (
    ProtocolError,
    openai_tool_calls,
    parse_request,
    to_langchain_messages,
    tool_call_answer,
    tool_calls_text,
)


def calls(*pairs: tuple[str, dict]) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": n, "args": a, "id": f"id{i}"} for i, (n, a) in enumerate(pairs)],
    )


def test_equal_calls_vote_together_whatever_the_key_order_or_call_order() -> None:
    one = calls(("add", {"a": 1, "b": {"x": [1, 2]}}), ("mul", {"a": 2}))
    other = calls(("mul", {"a": 2}), ("add", {"b": {"x": [1, 2]}, "a": 1}))
    assert tool_call_answer(tool_calls_text(one)) == tool_call_answer(tool_calls_text(other))
    different = calls(("add", {"a": 1, "b": {"x": [2, 1]}}), ("mul", {"a": 2}))
    assert tool_call_answer(tool_calls_text(different)) != tool_call_answer(tool_calls_text(one))
    assert tool_call_answer("The answer is 5.") is None


def test_a_call_keeps_its_words_and_its_id() -> None:
    message = AIMessage(
        content="Let me look.", tool_calls=[{"name": "f", "args": {"q": "é"}, "id": "call_7"}]
    )
    assert tool_calls_text(message).startswith("Let me look.\n\n<tool_call>")
    (call,) = openai_tool_calls(message, lambda: "new")
    assert call["id"] == "call_7" and json.loads(call["function"]["arguments"]) == {"q": "é"}
    assert openai_tool_calls(calls(("f", {})).model_copy(), lambda: "new")[0]["id"] == "id0"


def test_requests_are_checked_field_by_field() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert parse_request(json.dumps(base).encode()).model == "m"
    with pytest.raises(ProtocolError, match="unknown field 'best_of'"):
        parse_request(json.dumps({**base, "best_of": 2}).encode())
    with pytest.raises(ProtocolError, match="nested deeper than 64"):
        parse_request(b'{"model": "m", "messages": ' + b"[" * 70 + b"]" * 70 + b"}")
    with pytest.raises(ProtocolError, match="not valid JSON"):
        parse_request(b"[" * 100_000)  # deeper than Python's recursion limit
    with pytest.raises(ProtocolError, match="must be a JSON object"):
        parse_request(b"[]")
    request = parse_request(json.dumps({**base, "n": 3}).encode())
    assert "n=3 is not supported" in (request.unsupported() or "")


def test_messages_become_langchain_messages_with_tool_turns() -> None:
    request = parse_request(
        json.dumps(
            {
                "model": "m",
                "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "w", "arguments": '{"city": "Paris"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                ],
            }
        ).encode()
    )
    system, human, ai, tool = to_langchain_messages(request.messages)
    assert (system.type, human.text, tool.tool_call_id) == ("system", "Weather?", "c1")
    assert ai.tool_calls[0]["args"] == {"city": "Paris"}


def test_the_request_policy_keeps_the_served_models_mid_generation_stops() -> None:
    """deepconf's aborts must survive a request that wraps the policy (tools, seed, stop)."""
    from langchain_adaptive._sampling import supports_confidence_stop
    from langchain_adaptive.integrations.http.openai_server import RequestPolicy
    from tests.unit_tests.fakes import ScriptedChatModel

    class Stopping(ScriptedChatModel):
        supports_confidence_stop: bool = True

    assert supports_confidence_stop(RequestPolicy(model=Stopping(responses=["a"])))
    assert not supports_confidence_stop(RequestPolicy(model=ScriptedChatModel(responses=["a"])))
