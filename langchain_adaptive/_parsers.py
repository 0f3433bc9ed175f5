"""Turning an :class:`AdaptiveResult` into what the next step of a chain wants."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig, RunnableSerializable

from langchain_adaptive.results import AdaptiveResult


class AdaptiveAnswerParser(RunnableSerializable[AdaptiveResult, str]):
    """Gives the selected answer as plain text, for ``prompt | reasoner | parser`` chains.

    Example:
        .. code-block:: python

            chain = prompt | reasoner | AdaptiveAnswerParser()
            chain.invoke({"topic": "arithmetic"})  # -> "15"
    """

    field: str = "answer"
    """``"answer"`` for the extracted final answer, ``"solution"`` for the full text."""
    default: str = ""
    """Returned when no candidate had an answer."""

    def invoke(
        self, input: AdaptiveResult, config: RunnableConfig | None = None, **kwargs: Any
    ) -> str:
        return self._call_with_config(self._parse, input, config, run_type="parser")

    def _parse(self, result: AdaptiveResult) -> str:
        if not isinstance(result, AdaptiveResult):
            raise TypeError(
                f"AdaptiveAnswerParser expects an AdaptiveResult, got {type(result).__name__}"
            )
        value = getattr(result, self.field)
        return self.default if value is None else str(value)


__all__ = ["AdaptiveAnswerParser"]
