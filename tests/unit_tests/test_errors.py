"""Tests for langchain_adaptive.errors: the hierarchy, partial results, pickling."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from langchain_adaptive import errors
from langchain_adaptive.errors import (
    AdaptiveError,
    AdaptiveInputError,
    AdaptiveTimeoutError,
    CalibrationError,
    CallbackHandlerError,
    ConfigurationError,
    ContextLengthExceededError,
    EmptyGenerationError,
    EmptyQuestionError,
    ModelError,
    ModelNotFoundError,
    PRMError,
    UnknownStrategyError,
    UnsupportedInputError,
)
from langchain_adaptive.results import AdaptiveResult, BudgetReport, Candidate

ALL_ERRORS = [getattr(errors, name) for name in errors.__all__]


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (AdaptiveInputError, (AdaptiveError, ValueError)),
        (EmptyQuestionError, (AdaptiveInputError, AdaptiveError, ValueError)),
        (UnsupportedInputError, (AdaptiveInputError, ValueError, TypeError)),
        (ContextLengthExceededError, (AdaptiveInputError, ValueError)),
        (ConfigurationError, (AdaptiveError, ValueError)),
        (UnknownStrategyError, (ConfigurationError, ValueError, KeyError, LookupError)),
        (ModelError, (AdaptiveError,)),
        (EmptyGenerationError, (ModelError, AdaptiveError)),
        (ModelNotFoundError, (ModelError, FileNotFoundError, OSError)),
        (PRMError, (AdaptiveError,)),
        (CalibrationError, (AdaptiveError,)),
        (AdaptiveTimeoutError, (AdaptiveError, TimeoutError, OSError)),
        (CallbackHandlerError, (AdaptiveError,)),
    ],
)
def test_hierarchy(cls: type[AdaptiveError], bases: tuple[type[BaseException], ...]) -> None:
    error = cls("boom")
    for base in bases:
        assert isinstance(error, base), base


@pytest.mark.parametrize(
    ("cls", "not_bases"),
    [
        (ModelError, (ValueError,)),
        (PRMError, (ValueError, ModelError)),
        (CalibrationError, (ValueError,)),
        (EmptyQuestionError, (TypeError, ConfigurationError)),
        (ConfigurationError, (AdaptiveInputError, KeyError)),
        (CallbackHandlerError, (ModelError, PRMError, ValueError)),
        (AdaptiveTimeoutError, (ModelError, ValueError)),
    ],
)
def test_hierarchy_is_not_too_broad(
    cls: type[AdaptiveError], not_bases: tuple[type[BaseException], ...]
) -> None:
    error = cls("boom")
    for base in not_bases:
        assert not isinstance(error, base), base


def test_every_exported_error_is_an_adaptive_error() -> None:
    assert len(ALL_ERRORS) == 15
    for cls in ALL_ERRORS:
        assert issubclass(cls, AdaptiveError)


def test_unknown_strategy_error_has_a_clean_str() -> None:
    error = UnknownStrategyError("no strategy named 'foo'")
    assert str(error) == "no strategy named 'foo'"
    with pytest.raises(KeyError) as caught:
        raise error
    assert str(caught.value) == "no strategy named 'foo'"


def test_plain_key_error_would_quote() -> None:
    # Guards the test above: KeyError's own str adds quotes, which the subclass removes.
    assert str(KeyError("x")) == "'x'"
    assert str(UnknownStrategyError("x")) == "x"


def _partial() -> AdaptiveResult:
    return AdaptiveResult(
        question="q",
        answer="4",
        solution="2+2=4",
        selected_index=0,
        candidates=[Candidate(index=0, text="2+2=4", answer="4")],
        strategy="ias",
        stop_reason="max_samples",
        budget=BudgetReport(
            decided_samples=3,
            max_samples=1,
            samples_used=1,
            generated_tokens=5,
            prompt_tokens=2,
            model_calls=1,
        ),
        selection="prm_best",
    )


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_partial_defaults_to_none_and_is_kept(cls: type[AdaptiveError]) -> None:
    assert cls("boom").partial is None
    partial = _partial()
    error = cls("boom", partial=partial)
    assert error.partial is partial
    assert str(error) == "boom"


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_pickle_round_trip_keeps_type_message_and_partial(cls: type[AdaptiveError]) -> None:
    error = cls("went wrong", partial=_partial())
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is cls
    assert str(restored) == "went wrong"
    assert restored.partial == _partial()
    assert restored.partial is not error.partial


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_pickle_round_trip_without_partial(cls: type[AdaptiveError]) -> None:
    restored = pickle.loads(pickle.dumps(cls("x")))
    assert type(restored) is cls
    assert restored.partial is None


def test_context_length_error_attributes() -> None:
    error = ContextLengthExceededError("too long", prompt_tokens=5000, context_size=4096)
    assert (error.prompt_tokens, error.context_size, error.partial) == (5000, 4096, None)
    assert ContextLengthExceededError("too long").prompt_tokens is None


@pytest.mark.parametrize("roundtrip", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy])
def test_context_length_error_pickle_keeps_token_counts(
    roundtrip: Callable[[BaseException], ContextLengthExceededError],
) -> None:
    error = ContextLengthExceededError("too long", prompt_tokens=5000, context_size=4096)
    restored = roundtrip(error)
    assert (restored.prompt_tokens, restored.context_size) == (5000, 4096)
