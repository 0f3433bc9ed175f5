"""One exception hierarchy for the package, so callers catch what they mean.

Every error raised while a question is being answered carries what was already
computed (``partial``), so a failure late in a run never throws work away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_adaptive.results import AdaptiveResult


class AdaptiveError(Exception):
    """Base class of every error this package raises on purpose.

    Attributes:
        partial: The result assembled so far (candidates already generated,
            the success estimate, the budget spent), or ``None`` when the error
            happened before any work was done.
    """

    def __init__(self, message: str, *, partial: AdaptiveResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial

    def __reduce__(self) -> tuple[Any, ...]:
        # Every attribute (partial, prompt_tokens, ...) travels as state.
        return (type(self), (str(self),), dict(self.__dict__))


class AdaptiveInputError(AdaptiveError, ValueError):
    """The input cannot be answered as given (empty, too long, not text)."""


class EmptyQuestionError(AdaptiveInputError):
    """The question is empty or only whitespace."""


class UnsupportedInputError(AdaptiveInputError, TypeError):
    """The input is not a question string, a dict with ``question``, a PromptValue or messages."""


class ContextLengthExceededError(AdaptiveInputError):
    """The prompt does not fit the model's context window."""

    def __init__(
        self,
        message: str,
        *,
        prompt_tokens: int | None = None,
        context_size: int | None = None,
        partial: AdaptiveResult | None = None,
    ) -> None:
        super().__init__(message, partial=partial)
        self.prompt_tokens = prompt_tokens
        self.context_size = context_size


class DatasetError(AdaptiveInputError):
    """A dataset file cannot be loaded: a malformed record, a missing field, a repeated id.

    Attributes:
        path: The file, when the error is about one.
        line: Where in it: the 1-based line of a JSON Lines or CSV file, or the
            1-based item of a JSON list.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        partial: AdaptiveResult | None = None,
    ) -> None:
        super().__init__(message, partial=partial)
        self.path = path
        self.line = line


class ConfigurationError(AdaptiveError, ValueError):
    """The runnable, a strategy or a model was configured inconsistently."""


class UnknownStrategyError(ConfigurationError, KeyError):
    """No strategy is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class ModelError(AdaptiveError):
    """The wrapped language model failed or returned something unusable."""


class EmptyGenerationError(ModelError):
    """Every sample the model returned was empty."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model file or hub repository is not available locally."""


class PRMError(AdaptiveError):
    """The process reward model raised, returned NaN, or returned the wrong shape."""


class CalibrationError(AdaptiveError):
    """A calibrator cannot be fitted, loaded or applied."""


class AdaptiveTimeoutError(AdaptiveError, TimeoutError):
    """A run passed its deadline (``timeout_s``); ``partial`` holds what was done by then.

    Attributes:
        timeout_s: The deadline that was passed, in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        timeout_s: float | None = None,
        partial: AdaptiveResult | None = None,
    ) -> None:
        super().__init__(message, partial=partial)
        self.timeout_s = timeout_s


class CallbackHandlerError(AdaptiveError):
    """A callback handler with ``raise_error=True`` raised; the model and PRM did not fail.

    LangChain re-raises a handler's exception only when the handler asks for it
    (``raise_error=True``); this type says whose failure it was, keeps the
    handler's exception as ``__cause__`` and, like every error here, ``partial``.
    """


__all__ = [
    "AdaptiveError",
    "AdaptiveInputError",
    "AdaptiveTimeoutError",
    "CalibrationError",
    "CallbackHandlerError",
    "ConfigurationError",
    "ContextLengthExceededError",
    "DatasetError",
    "EmptyGenerationError",
    "EmptyQuestionError",
    "ModelError",
    "ModelNotFoundError",
    "PRMError",
    "UnknownStrategyError",
    "UnsupportedInputError",
]
