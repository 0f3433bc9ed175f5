"""``AdaptiveReasoningTool``: an agent hands a hard sub-question to the adaptive reasoner.

An agent's own model decides *when* to think hard; the tool decides *how hard*:
the reasoner's calibrated success estimate sets the number of samples, and the
tool's message tells the agent the answer together with how sure it is, so the
agent can trust it, double-check it, or ask the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive.errors import AdaptiveInputError
from langchain_adaptive.results import AdaptiveResult
from langchain_adaptive.runnable import AdaptiveReasoningRunnable

DEFAULT_TOOL_NAME = "think_hard"
DEFAULT_TOOL_DESCRIPTION = (
    "Think hard about one self-contained question (arithmetic, math, logic) by sampling "
    "several step-by-step solutions and voting. Returns the answer and a calibrated "
    "confidence that it is right; use it when a wrong answer would be costly."
)


class AdaptiveToolInput(BaseModel):
    """What the agent's model fills in when it calls the tool."""

    question: str = Field(
        description="The self-contained question to answer, with every number it needs."
    )


def format_tool_content(result: AdaptiveResult) -> str:
    """The text an agent's model reads: answer first, then how much to trust it.

    Args:
        result: The reasoner's result for the tool call's question.

    Returns:
        A few short lines: the answer (or why there is none), the confidence that
        some drawn sample is correct against its target, and the per-sample success
        estimate that set the budget.
    """
    used = result.budget.samples_used
    lines = [
        f"Answer: {result.answer}"
        if result.answer is not None
        else f"No answer: none of the {used} sample(s) stated a final answer."
    ]
    if result.confidence is not None:
        reach = (
            f"target not reached within the cap of {result.budget.max_samples} samples"
            if result.low_confidence
            else "target reached"
        )
        lines.append(f"Confidence: {result.confidence:.3f} ({reach})")
    else:
        lines.append("Confidence: unknown (the strategy gives none)")
    if result.question_estimate is not None:
        estimate = result.question_estimate
        lines.append(
            f"Per-sample success estimate: lower {estimate.lower:.3f}, median {estimate.median:.3f}"
        )
    lines.append(f"Samples: {used} ({result.strategy}, stop: {result.stop_reason})")
    lines.extend(f"Warning: {warning}" for warning in result.warnings)
    return "\n".join(lines)


class AdaptiveReasoningTool(BaseTool):
    """A LangChain tool that answers ``question`` with an :class:`AdaptiveReasoningRunnable`.

    The tool message's content names the answer and the confidence (see
    :func:`format_tool_content`); its ``artifact`` is the full
    :class:`AdaptiveResult`, for code that inspects the candidates or the budget
    (``response_format="content_and_artifact"``). A bad question (empty, or too
    long for the model's context) comes back to the agent as a tool error it can
    correct; model and PRM failures raise, carrying the partial result.

    The reasoner's run is a child of the tool's run, so model and PRM calls show
    under the agent's trace.

    Example:
        .. code-block:: python

            from langchain_adaptive.integrations.llamacpp import default_reasoner

            tool = default_reasoner(max_samples=4).as_tool()
            message = tool.invoke(
                {"type": "tool_call", "id": "1", "name": tool.name,
                 "args": {"question": "What is 7 + 8?"}}
            )
            message.content   # "Answer: 15\\nConfidence: ..."
            message.artifact  # the AdaptiveResult
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reasoner: AdaptiveReasoningRunnable
    """The runnable that answers; its fields set the budget of every call."""
    name: str = DEFAULT_TOOL_NAME
    description: str = DEFAULT_TOOL_DESCRIPTION
    args_schema: type[BaseModel] = AdaptiveToolInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Callable[[ToolException], str] | None = True
    """Bad questions go back to the agent as a tool error message (the base default raises)."""

    def _run(
        self,
        question: str,
        run_manager: CallbackManagerForToolRun | None = None,
        config: RunnableConfig | None = None,
    ) -> tuple[str, AdaptiveResult]:
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        try:
            result = self.reasoner.invoke(question, child)
        except AdaptiveInputError as error:
            raise ToolException(f"{type(error).__name__}: {error}") from error
        return self._respond(result)

    async def _arun(
        self,
        question: str,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        config: RunnableConfig | None = None,
    ) -> tuple[str, AdaptiveResult]:
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        try:
            result = await self.reasoner.ainvoke(question, child)
        except AdaptiveInputError as error:
            raise ToolException(f"{type(error).__name__}: {error}") from error
        return self._respond(result)

    def _respond(self, result: AdaptiveResult) -> tuple[str, AdaptiveResult]:
        content = format_tool_content(result)
        if self.response_format == "content":
            return content  # type: ignore[return-value]
        return content, result


def adaptive_tool(
    reasoner: AdaptiveReasoningRunnable,
    *,
    name: str = DEFAULT_TOOL_NAME,
    description: str = DEFAULT_TOOL_DESCRIPTION,
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact",
) -> AdaptiveReasoningTool:
    """Wrap ``reasoner`` as a tool taking ``question: str``; same as ``reasoner.as_tool()``.

    Args:
        reasoner: The adaptive runnable that answers the question.
        name: The tool name the agent's model sees.
        description: Tells the agent's model when the tool is worth its cost.
        response_format: ``"content_and_artifact"`` (the default) also returns the
            :class:`AdaptiveResult` as the tool message's artifact.

    Returns:
        An :class:`AdaptiveReasoningTool`.
    """
    return AdaptiveReasoningTool(
        reasoner=reasoner, name=name, description=description, response_format=response_format
    )


__all__ = [
    "AdaptiveReasoningTool",
    "AdaptiveToolInput",
    "adaptive_tool",
    "format_tool_content",
]
