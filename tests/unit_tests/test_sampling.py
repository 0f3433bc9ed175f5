"""sampling: what a model's output must be for it to become samples."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_adaptive._sampling import adraw, draw
from langchain_adaptive.errors import ModelError
from langchain_adaptive.inputs import parse_input


class NativeNChatModel(BaseChatModel):
    """Draws ``n`` replies in one call; ``assistant_role`` answers as a ChatMessage."""

    supports_n_samples: ClassVar[bool] = True
    assistant_role: bool = False

    @property
    def _llm_type(self) -> str:
        return "native-n"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        replies: list[BaseMessage] = [
            ChatMessage(role="assistant", content=f"The answer is {i}.")
            if self.assistant_role
            else AIMessage(content=f"The answer is {i}.")
            for i in range(kwargs.get("n", 1))
        ]
        return ChatResult(generations=[ChatGeneration(message=m) for m in replies])


def test_a_native_n_call_gives_one_sample_per_reply_counted_once() -> None:
    samples = draw(NativeNChatModel(), parse_input("What is 1 + 1?"), 3, kwargs={}, config={})
    assert [s.text for s in samples] == [f"The answer is {i}." for i in range(3)]
    assert [s.usage.model_calls for s in samples] == [1, 0, 0]


def test_a_native_n_reply_that_is_not_an_ai_message_is_a_model_error() -> None:
    model = NativeNChatModel(assistant_role=True)
    with pytest.raises(ModelError, match="ChatMessage, not an AIMessage"):
        draw(model, parse_input("What is 1 + 1?"), 3, kwargs={}, config={})


async def test_the_async_native_n_call_checks_the_replies_too() -> None:
    model = NativeNChatModel(assistant_role=True)
    with pytest.raises(ModelError, match="ChatMessage, not an AIMessage"):
        await adraw(model, parse_input("What is 1 + 1?"), 3, kwargs={}, config={})
