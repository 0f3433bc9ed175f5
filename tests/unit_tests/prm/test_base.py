"""Tests for langchain_adaptive.prm._base: the PRM protocol, shape checks, tracing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tracers.context import collect_runs
from langchain_core.tracers.schemas import Run

from langchain_adaptive.errors import AdaptiveError, CalibrationError, PRMError
from langchain_adaptive.prm._base import (
    PRMRequest,
    ProcessRewardModel,
    check_scores,
    estimate_from_probability,
)
from langchain_adaptive.results import SuccessEstimate

QUESTION_P = 0.25


def _step_probability(step: str) -> float:
    return min(1.0, len(step) / 10)


class LengthPRM(ProcessRewardModel):
    """Question alone: 0.25; after each step: that step's length / 10 (capped at 1)."""

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> list[list[SuccessEstimate]]:
        # A nested runnable, invoked with the child config, must nest under the PRM run.
        RunnableLambda(lambda x: x, name="prm_inner").invoke(question, config)
        out = []
        for steps in solutions:
            if not steps:
                out.append([SuccessEstimate.point(QUESTION_P)])
            else:
                out.append([SuccessEstimate.point(_step_probability(s)) for s in steps])
        return out


class FixedOutputPRM(ProcessRewardModel):
    """Returns whatever it was built with, to exercise the shape checks end to end."""

    output: Any = None

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> Any:
        return self.output


class RaisingPRM(ProcessRewardModel):
    """Raises the exception it was built with."""

    error: Any = None

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> Any:
        raise self.error


def _medians(scores: list[list[SuccessEstimate]]) -> list[list[float]]:
    return [[e.median for e in estimates] for estimates in scores]


# -- score / ascore / estimate_question ---------------------------------------------


def test_score_returns_one_estimate_per_step() -> None:
    scores = LengthPRM().score("q", [["abc", "abcdefghijkl"], [], ["a"]])
    assert _medians(scores) == [[0.3, 1.0], [QUESTION_P], [0.1]]


async def test_ascore_matches_score() -> None:
    prm = LengthPRM()
    solutions = [["ab", "abcd"], []]
    assert await prm.ascore("q", solutions) == prm.score("q", solutions)


def test_estimate_question() -> None:
    est = LengthPRM().estimate_question("how many?")
    assert isinstance(est, SuccessEstimate)
    assert est.median == QUESTION_P


async def test_aestimate_question() -> None:
    assert (await LengthPRM().aestimate_question("q")).lower == QUESTION_P


def test_invoke_accepts_dict_and_defaults_to_question_alone() -> None:
    assert PRMRequest(question="q").solutions == [[]]
    scores = LengthPRM().invoke({"question": "q"})
    assert _medians(scores) == [[QUESTION_P]]
    assert LengthPRM().invoke(PRMRequest(question="q", solutions=[["abcde"]])) == [
        [SuccessEstimate.point(0.5)]
    ]


def test_score_accepts_tuples_of_steps() -> None:
    scores = LengthPRM().score("q", (("ab",), ()))
    assert _medians(scores) == [[0.2], [QUESTION_P]]


def test_prm_batch_works_as_a_runnable() -> None:
    outputs = LengthPRM().batch([{"question": "a"}, {"question": "b", "solutions": [["xy"]]}])
    assert [_medians(o) for o in outputs] == [[[QUESTION_P]], [[0.2]]]


# -- broken PRMs fail with PRMError -------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        [],  # no score list for the one solution
        [[SuccessEstimate.point(0.5)], [SuccessEstimate.point(0.5)]],  # one list too many
        [[]],  # empty solution still needs one estimate
        [[SuccessEstimate.point(0.5), SuccessEstimate.point(0.5)]],
        [[0.5]],  # a float, not a SuccessEstimate
        [[{"quantiles": {0.5: 0.5}}]],
        [(SuccessEstimate.point(0.5),)],  # tuple, not list
        ([SuccessEstimate.point(0.5)],),
        None,
        "oops",
    ],
)
def test_wrong_output_raises_prm_error(output: Any) -> None:
    prm = FixedOutputPRM(output=output)
    with pytest.raises(PRMError):
        prm.estimate_question("q")


async def test_wrong_output_raises_prm_error_async() -> None:
    with pytest.raises(PRMError):
        await FixedOutputPRM(output=[]).aestimate_question("q")


def test_fixed_output_prm_passes_when_shape_is_right() -> None:
    # Guards the parametrized test above: the same PRM with a good output does not raise.
    good = [[SuccessEstimate.point(0.5)]]
    assert FixedOutputPRM(output=good).score("q", [[]]) == good


def test_prm_exception_is_wrapped_in_prm_error() -> None:
    original = RuntimeError("CUDA out of memory")
    with pytest.raises(PRMError, match="RaisingPRM failed: RuntimeError: CUDA out of memory") as e:
        RaisingPRM(error=original).estimate_question("q")
    assert e.value.__cause__ is original


async def test_prm_exception_is_wrapped_in_prm_error_async() -> None:
    original = ValueError("bad logits")
    with pytest.raises(PRMError, match="ValueError: bad logits") as e:
        await RaisingPRM(error=original).aestimate_question("q")
    assert e.value.__cause__ is original


@pytest.mark.parametrize("error", [CalibrationError("no fit"), PRMError("already wrapped")])
async def test_adaptive_errors_from_a_prm_pass_through(error: AdaptiveError) -> None:
    with pytest.raises(type(error)) as sync_caught:
        RaisingPRM(error=error).estimate_question("q")
    assert sync_caught.value is error
    with pytest.raises(type(error)) as async_caught:
        await RaisingPRM(error=error).aestimate_question("q")
    assert async_caught.value is error


# -- check_scores -------------------------------------------------------------------


def test_check_scores_returns_valid_scores_unchanged() -> None:
    request = PRMRequest(question="q", solutions=[["a", "b"], []])
    scores = [
        [SuccessEstimate.point(0.1), SuccessEstimate.point(0.2)],
        [SuccessEstimate.point(0.3)],
    ]
    assert check_scores(request, scores) is scores


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([[SuccessEstimate.point(0.1)]], "1 score lists for 2 solutions"),
        ("nope", "str score lists for 2 solutions"),
        (
            [[SuccessEstimate.point(0.1)], [SuccessEstimate.point(0.3)]],
            "1 estimates for solution 0 with 2 step",
        ),
        (
            [[SuccessEstimate.point(0.1)] * 2, []],
            "0 estimates for solution 1 with 1 step",
        ),
        ([[SuccessEstimate.point(0.1)] * 2, None], "None estimates for solution 1"),
        ([[SuccessEstimate.point(0.1), 0.2], [SuccessEstimate.point(0.3)]], "returned float"),
    ],
)
def test_check_scores_rejects_wrong_shapes(scores: Any, message: str) -> None:
    request = PRMRequest(question="q", solutions=[["a", "b"], []])
    with pytest.raises(PRMError, match=message):
        check_scores(request, scores)


# -- estimate_from_probability ------------------------------------------------------


@pytest.mark.parametrize("probability", [0.0, 0.3, 1.0, 1, 0])
def test_estimate_from_probability_valid(probability: float) -> None:
    est = estimate_from_probability(probability, source="test-prm")
    assert est == SuccessEstimate.point(float(probability))
    assert isinstance(est.raw_score, float)


@pytest.mark.parametrize(
    ("probability", "message"),
    [
        (math.nan, "test-prm returned a non-finite score nan"),
        (math.inf, "non-finite"),
        (-math.inf, "non-finite"),
        ("0.5", "non-finite"),
        (None, "non-finite"),
        (-0.01, "test-prm returned score -0.01 outside"),
        (1.0001, "outside \\[0, 1\\]"),
    ],
)
def test_estimate_from_probability_rejects(probability: Any, message: str) -> None:
    with pytest.raises(PRMError, match=message):
        estimate_from_probability(probability, source="test-prm")


def test_prm_error_is_an_adaptive_error() -> None:
    with pytest.raises(AdaptiveError):
        estimate_from_probability(math.nan, source="x")


# -- tracing: the PRM shows up as a child run of run_type "prm" ------------------------


def _find(run: Run, name: str) -> Run | None:
    if run.name == name:
        return run
    for child in run.child_runs:
        found = _find(child, name)
        if found is not None:
            return found
    return None


def test_prm_run_is_traced_with_run_type_prm() -> None:
    prm = LengthPRM()
    with collect_runs() as collector:
        prm.score("q", [["abc"]])
    [root] = collector.traced_runs
    assert root.run_type == "prm"
    assert root.name == "LengthPRM"
    assert root.error is None
    # The inner runnable got the child config: it is nested under the PRM run.
    assert [child.name for child in root.child_runs] == ["prm_inner"]
    assert root.child_runs[0].parent_run_id == root.id


def test_prm_is_a_child_run_of_its_caller() -> None:
    prm = LengthPRM()

    def strategy(question: str, config: RunnableConfig) -> float:
        return prm.estimate_question(question, config).median

    with collect_runs() as collector:
        assert RunnableLambda(strategy, name="strategy").invoke("q") == QUESTION_P
    [root] = collector.traced_runs
    assert root.name == "strategy"
    prm_run = _find(root, "LengthPRM")
    assert prm_run is not None
    assert prm_run.run_type == "prm"
    assert prm_run.parent_run_id == root.id
    assert _find(prm_run, "prm_inner") is not None


async def test_async_prm_run_nests_inner_runs() -> None:
    prm = LengthPRM()
    with collect_runs() as collector:
        await prm.aestimate_question("q")
    [root] = collector.traced_runs
    assert root.run_type == "prm"
    assert [child.name for child in root.child_runs] == ["prm_inner"]


def test_prm_error_is_recorded_on_the_run() -> None:
    with collect_runs() as collector, pytest.raises(PRMError):
        FixedOutputPRM(output=[]).estimate_question("q")
    [root] = collector.traced_runs
    assert root.run_type == "prm"
    assert root.error is not None and "PRMError" in root.error
