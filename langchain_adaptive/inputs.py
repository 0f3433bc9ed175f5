"""Normalising what a runnable receives into a question and the prompt to sample from.

The one home of the input types: :data:`AdaptiveInput` (what a runnable takes),
:func:`parse_input` (it, made a :class:`Question`) and :func:`question_id` (the
id traces group its runs by).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import PromptValue
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive.errors import (
    AdaptiveInputError,
    EmptyQuestionError,
    UnsupportedInputError,
)

AdaptiveInput = str | dict[str, Any] | PromptValue | Sequence[BaseMessage]
"""A question string, ``{"question": ..., "gold": ...}``, a PromptValue, or messages."""

DEFAULT_INSTRUCTION = (
    "Solve the problem step by step, with a blank line between steps. "
    'End with "The answer is X." where X is the final answer.'
)
"""Appended to a plain question so samples have steps and an extractable answer."""


class FewShotExample(BaseModel):
    """A worked example shown before a question, as an earlier user turn and its answer.

    Small models follow a demonstrated format far better than a described one:
    with worked examples the bundled SmolLM2 solves two-step arithmetic one
    operation a step, which it almost never does from the instruction alone.

    Example:
        >>> FewShotExample(question="What is 2 + 5?", solution="The answer is 7.").solution
        'The answer is 7.'
    """

    model_config = ConfigDict(frozen=True)

    question: str = Field(min_length=1)
    solution: str = Field(min_length=1)


class Question(BaseModel):
    """A question to answer: its text, the messages to sample from, and an optional gold answer."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    text: str
    messages: list[BaseMessage]
    gold: str | None = None

    def prompt_text(self) -> str:
        """The prompt for completion (non-chat) models."""
        return "\n\n".join(str(m.content) for m in self.messages)


def parse_input(
    value: Any,
    *,
    system_prompt: str | None = None,
    instruction: str | None = DEFAULT_INSTRUCTION,
    examples: Sequence[FewShotExample] = (),
) -> Question:
    """Turn runnable input into a :class:`Question`.

    Accepts a string, a mapping with ``question`` (and optional ``gold``), a
    ``PromptValue``, or a list of messages (the last human message is the
    question). Every form is sent the same way: the ``instruction`` is appended
    to the question (so samples have steps and an extractable answer), the
    ``examples`` come before the conversation (after its system messages), each
    as a user turn (with the instruction) and the assistant's worked solution,
    and ``system_prompt`` is added when the input has no system message.
    ``instruction=None`` and no ``examples`` send messages exactly as given.

    Raises:
        EmptyQuestionError: The question is empty or whitespace.
        UnsupportedInputError: The value is none of the accepted kinds.
        AdaptiveInputError: The text holds a lone surrogate (bytes that were not
            UTF-8, as ``sys.argv`` or ``errors="surrogateescape"`` decode them).
    """
    if isinstance(value, str):
        return _from_text(value, None, system_prompt, instruction, examples)
    if isinstance(value, Mapping):
        if "question" not in value:
            raise UnsupportedInputError(
                f"a dict input needs a 'question' key; got keys {sorted(map(str, value))}"
            )
        gold = value.get("gold")
        if not isinstance(value["question"], str):
            raise UnsupportedInputError(
                f"'question' must be a string, got {type(value['question']).__name__}"
            )
        return _from_text(
            value["question"],
            None if gold is None else str(gold),
            system_prompt,
            instruction,
            examples,
        )
    if isinstance(value, PromptValue):
        return _from_messages(value.to_messages(), system_prompt, instruction, examples)
    if isinstance(value, Sequence) and value and all(isinstance(m, BaseMessage) for m in value):
        return _from_messages(list(value), system_prompt, instruction, examples)
    raise UnsupportedInputError(
        "expected a question string, a dict with 'question', a PromptValue or a list of "
        f"messages; got {type(value).__name__}"
    )


def _from_text(
    text: str,
    gold: str | None,
    system_prompt: str | None,
    instruction: str | None,
    examples: Sequence[FewShotExample],
) -> Question:
    if not text.strip():
        raise EmptyQuestionError("the question is empty")
    if gold is not None:
        _check_unicode(gold, "the gold answer")
    question = _from_messages([HumanMessage(text.strip())], system_prompt, instruction, examples)
    return question.model_copy(update={"gold": gold})


def _with_instruction(text: str, instruction: str | None) -> str:
    return f"{text.strip()}\n\n{instruction}" if instruction else text.strip()


def _from_messages(
    messages: list[BaseMessage],
    system_prompt: str | None,
    instruction: str | None,
    examples: Sequence[FewShotExample],
) -> Question:
    asked = [i for i, m in enumerate(messages) if m.type == "human"]
    if not asked:
        raise UnsupportedInputError("the messages contain no human message to answer")
    last = asked[-1]
    text = str(messages[last].text)
    if not text.strip():
        raise EmptyQuestionError("the last human message is empty")
    for message in messages:
        _check_unicode(str(message.text), "the question" if message.type == "human" else "a turn")
    messages = list(messages)
    messages[last] = _instructed(messages[last], instruction)
    shown: list[BaseMessage] = []
    for example in examples:
        shown += [
            HumanMessage(_with_instruction(example.question, instruction)),
            AIMessage(example.solution.strip()),
        ]
    start = next((i for i, m in enumerate(messages) if m.type != "system"), len(messages))
    messages[start:start] = shown
    if system_prompt and not any(m.type == "system" for m in messages):
        messages.insert(0, SystemMessage(system_prompt))
    return Question(text=text.strip(), messages=messages)


def _check_unicode(text: str, what: str) -> None:
    """Reject text no model can be sent: a lone surrogate does not encode as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise AdaptiveInputError(
            f"{what} is not valid text: it holds a lone surrogate ({text[error.start]!r} at "
            f"character {error.start}), the mark of bytes that were not UTF-8; decode the "
            "input as UTF-8 (or with errors='replace') before passing it"
        ) from None


def _instructed(message: BaseMessage, instruction: str | None) -> BaseMessage:
    """The question's message with the instruction appended, unless it already ends with it."""
    if not instruction or message.text.rstrip().endswith(instruction):
        return message
    if isinstance(message.content, str):
        content = _with_instruction(message.content, instruction)
        return message.model_copy(update={"content": content})
    block = {"type": "text", "text": f"\n\n{instruction}"}
    return message.model_copy(update={"content": [*message.content, block]})


def question_id(input: AdaptiveInput, question: Question) -> str:
    """The id traces group a question's runs by: a dict input's ``id``, else a text hash.

    The hash (16 hex digits of SHA-256 over the question text) is stable across
    runs and processes, so repeated runs of one question group together.
    """
    if isinstance(input, Mapping) and input.get("id") is not None:
        return str(input["id"])
    return hashlib.sha256(question.text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


__all__ = [
    "DEFAULT_INSTRUCTION",
    "AdaptiveInput",
    "FewShotExample",
    "Question",
    "parse_input",
    "question_id",
]
