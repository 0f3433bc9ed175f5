"""Every input form gets the same prompt: instruction, examples and system prompt alike."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import StringPromptValue
from langchain_core.prompts import ChatPromptTemplate

from langchain_adaptive.errors import EmptyQuestionError, UnsupportedInputError
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION, FewShotExample, parse_input

QUESTION = "What is 2 + 3?"
EXAMPLE = FewShotExample(question="What is 1 + 1?", solution="1 + 1 = 2\n\nThe answer is 2.")


@pytest.mark.parametrize(
    "value",
    [
        QUESTION,
        {"question": QUESTION},
        ChatPromptTemplate.from_messages([("human", "What is {a} + {b}?")]).invoke(
            {"a": 2, "b": 3}
        ),
        StringPromptValue(text=QUESTION),
        [HumanMessage(QUESTION)],
    ],
    ids=["str", "dict", "chat-prompt-value", "string-prompt-value", "messages"],
)
def test_every_input_form_sends_the_same_prompt(value: object) -> None:
    """A PromptValue once went out without the instruction, so its answers were unextractable."""
    settings = {"system_prompt": "Be brief.", "examples": [EXAMPLE]}
    expected = parse_input(QUESTION, **settings).messages
    question = parse_input(value, **settings)
    assert question.text == QUESTION
    assert question.messages == expected
    assert question.messages[-1].content == f"{QUESTION}\n\n{DEFAULT_INSTRUCTION}"


def test_a_conversation_keeps_its_turns_and_its_own_system_prompt() -> None:
    history = [
        SystemMessage("You are terse."),
        HumanMessage("Hi."),
        AIMessage("Hello."),
        HumanMessage(QUESTION),
    ]
    sent = parse_input(history, system_prompt="ignored", examples=[EXAMPLE]).messages
    assert [m.type for m in sent] == ["system", "human", "ai", "human", "ai", "human"]
    assert sent[0] == history[0]
    assert sent[1].content == f"{EXAMPLE.question}\n\n{DEFAULT_INSTRUCTION}"
    assert sent[3:5] == history[1:3]
    assert sent[5].content == f"{QUESTION}\n\n{DEFAULT_INSTRUCTION}"
    assert history[-1].content == QUESTION  # the caller's messages are not changed


def test_instruction_none_sends_the_messages_as_given() -> None:
    history = [HumanMessage(QUESTION)]
    assert parse_input(history, instruction=None).messages == history
    assert parse_input(QUESTION, instruction=None).messages == history


def test_an_instruction_already_there_is_not_added_twice() -> None:
    once = parse_input(QUESTION).messages
    assert parse_input(once).messages == once


def test_a_multimodal_question_gets_the_instruction_as_a_text_block() -> None:
    blocks = [{"type": "text", "text": QUESTION}]
    sent = parse_input([HumanMessage(content=blocks)]).messages
    assert sent[-1].content == [*blocks, {"type": "text", "text": f"\n\n{DEFAULT_INSTRUCTION}"}]


def test_bad_message_inputs_raise_typed_errors() -> None:
    with pytest.raises(UnsupportedInputError, match="no human message"):
        parse_input([AIMessage("hi")])
    with pytest.raises(EmptyQuestionError):
        parse_input([HumanMessage("  ")])
