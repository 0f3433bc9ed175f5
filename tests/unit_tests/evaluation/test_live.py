"""Live mode's policies by spec, and fixed baselines replayed from pools of the same questions."""

from __future__ import annotations

import pytest

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation import (
    PoolFile,
    live_policy,
    prepare_pools,
    read_pools,
    record_pools,
    recorded_baselines,
    run_live,
    spec_prm,
)
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.evaluation.pools import PoolMismatchError
from langchain_adaptive.evaluation.replay import replay_question
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION
from langchain_adaptive.prm import SplitPRM
from langchain_adaptive.strategies import AdaptiveBestOfN
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."
PROBLEMS = [
    Problem(id="a", question="What is 7 + 8?", gold="15"),
    Problem(id="b", question="What is 8 + 7?", gold="15"),
]
RECORDED = {
    "model": "scripted",
    "max_tokens_per_sample": 64,
    "temperature": 0.7,
    "prompt": {"instruction": DEFAULT_INSTRUCTION, "system_prompt": None},
}
SERIAL = {"max_concurrency": 1}


def _prms() -> dict[str, ScriptedPRM]:
    # "budget" says every question is hopeless (IAS floors); "steps" trusts right steps
    return {"budget": ScriptedPRM(default_p=0.01), "steps": ScriptedPRM()}


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory: pytest.TempPathFactory) -> PoolFile:
    out = tmp_path_factory.mktemp("pools") / "pools.jsonl"
    record_pools(
        ScriptedChatModel(responses=[WRONG, WRONG, RIGHT, WRONG]),
        PROBLEMS,
        out,
        samples=8,
        prms={"steps": ScriptedPRM()},
        model_name="scripted",
        max_tokens_per_sample=64,
        progress=False,
        config=SERIAL,
    )
    return read_pools(out)


def test_floored_ias_with_a_separate_scorer_is_named_as_in_replay() -> None:
    prms = _prms()
    live = live_policy(
        "ias:budget",
        prms=prms,
        max_samples=8,
        target_confidence=0.9,
        selection="prm",
        scorer="steps",
        floor_samples=2,
    )
    assert live.policy.name == "ias-floor2[budget]@0.9"
    assert live.policy.family == "ias-floor2[budget]"
    assert (live.policy.estimator, live.policy.scorer) == ("budget", "steps")
    strategy = live.policy.strategy
    assert isinstance(strategy, AdaptiveBestOfN)
    assert (strategy.unreachable, strategy.floor_samples, strategy.selection) == ("floor", 2, "prm")
    assert isinstance(live.prm, SplitPRM)
    assert live.prm.question_prm is prms["budget"] and live.prm.step_prm is prms["steps"]


def test_a_spec_sets_its_own_confidence_and_floor() -> None:
    """Settings that land on equal compute (a floored probe at 0.9, the judge at 0.7)
    run side by side in one live run, named as replay names them."""
    prms = _prms()
    floored = live_policy("ias-floor1:budget@0.9", prms=prms, max_samples=8, target_confidence=0.5)
    assert floored.policy.name == "ias-floor1[budget]@0.9"
    assert floored.policy.target_confidence == 0.9
    strategy = floored.policy.strategy
    assert isinstance(strategy, AdaptiveBestOfN)
    assert (strategy.unreachable, strategy.floor_samples) == ("floor", 1)
    plain = live_policy(
        "ias:budget@0.7", prms=prms, max_samples=8, target_confidence=0.5, floor_samples=4
    )
    assert plain.policy.name == "ias-floor4[budget]@0.7" and plain.policy.target_confidence == 0.7
    assert (
        live_policy(
            "ias-floor2:budget", prms=prms, max_samples=8, target_confidence=0.5, floor_samples=4
        ).policy.name
        == "ias-floor2[budget]@0.5"
    )
    specs = ("ias-floor1:probe@0.9", "ias:judge", "majority_vote:16", "esc")
    assert [spec_prm(spec) for spec in specs] == ["probe", "judge", None, None]
    for spec, message in [
        ("ias:budget@1.5", r"confidence in \(0, 1\)"),
        ("ias:budget@high", r"confidence in \(0, 1\)"),
        ("majority_vote:4@0.9", "only a PRM-budgeted"),
        ("sequential_ias-floor2:budget", "only IAS takes a floor"),
        ("ias-floor0:budget", "at least 1 sample"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            live_policy(spec, prms=prms, max_samples=8, target_confidence=0.9)


def test_fixed_best_of_n_selecting_by_score_reads_the_scorer() -> None:
    prms = _prms()
    live = live_policy(
        "best_of_n:4", prms=prms, max_samples=8, target_confidence=0.9, scorer="steps"
    )
    assert live.prm is prms["steps"] and live.policy.max_samples == 4
    assert live.policy.name == "best_of_n:4" and live.policy.scorer == "steps"
    with pytest.raises(ConfigurationError, match="name a scorer"):
        live_policy("best_of_n:4", prms=prms, max_samples=8, target_confidence=0.9)
    with pytest.raises(ConfigurationError, match="takes a number"):
        live_policy("majority_vote:many", prms=prms, max_samples=8, target_confidence=0.9)
    with pytest.raises(ConfigurationError, match="scorer 'judge'"):
        live_policy("ias:budget", prms=prms, max_samples=8, target_confidence=0.9, scorer="judge")


def test_recorded_baselines_join_the_live_report_question_by_question(
    pool_file: PoolFile,
) -> None:
    recorded = recorded_baselines(
        pool_file, PROBLEMS[::-1], source="pools.jsonl", scorer="steps", **RECORDED
    )
    assert [p.pool.id for p in recorded.pools] == ["b", "a"]  # the live run's order
    assert {p.name for p in recorded.policies} >= {"bon8-majority", "bon8-prm[steps]"}
    live = live_policy(
        "ias:budget",
        prms=_prms(),
        max_samples=8,
        target_confidence=0.9,
        selection="prm",
        scorer="steps",
        floor_samples=2,
    )
    report = run_live(
        ScriptedChatModel(responses=[WRONG, RIGHT]),
        PROBLEMS[::-1],
        [live],
        source="scripted",
        max_tokens_per_sample=64,
        replicates=20,
        progress=False,
        config=SERIAL,
        recorded=recorded,
    )
    rows = {s.name: s for s in report.policies}
    ias = rows["ias-floor2[budget]@0.9"]
    assert ias.mean_samples == 2  # floored: the budget PRM says hopeless
    assert ias.accuracy == 1.0  # the step scorer picks the right one of WRONG, RIGHT
    assert report.question_ids == ["b", "a"]  # raw outcomes kept: a live run cannot be replayed
    assert report.per_question["ias-floor2[budget]@0.9"][0].samples == 2
    for policy in recorded.policies:
        expected = [replay_question(policy, prepared) for prepared in recorded.pools]
        assert report.per_question[policy.name] == expected
        assert rows[policy.name].accuracy == sum(o.correct for o in expected) / 2
        assert rows[policy.name].mean_tokens == sum(o.tokens for o in expected) / 2
    assert rows["bon8-majority"].accuracy == 0.0  # 6 WRONG against 2 RIGHT
    parity = {(p.baseline, p.family, p.metric) for p in report.parity}
    assert ("bon8-majority", "ias-floor2[budget]", "accuracy") in parity
    assert any("replayed in recorded order from pools.jsonl" in note for note in report.notes)


def test_live_compares_every_two_budgeted_policies_directly() -> None:
    prms = _prms()
    policies = [
        live_policy(spec, prms=prms, max_samples=4, target_confidence=0.9, selection="prm")
        for spec in ("ias:budget", "ias:steps", "esc")
    ]
    report = run_live(
        ScriptedChatModel(responses=[WRONG, RIGHT]),
        PROBLEMS,
        policies,
        source="scripted",
        replicates=10,
        progress=False,
        config=SERIAL,
    )
    pairs = {(d.first, d.second, d.metric) for d in report.differences}
    assert pairs == {
        ("ias[budget]@0.9", "ias[steps]@0.9", "accuracy"),
        ("ias[budget]@0.9", "ias[steps]@0.9", "coverage"),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "another"}, "model: pools have 'scripted', live has 'another'"),
        ({"max_tokens_per_sample": 128}, "max_tokens_per_sample"),
        ({"temperature": 0.0}, "temperature"),
        ({"prompt": {"instruction": "Be brief."}}, "instruction"),
    ],
)
def test_pools_drawn_otherwise_are_refused_naming_the_difference(
    pool_file: PoolFile, change: dict[str, object], message: str
) -> None:
    with pytest.raises(PoolMismatchError, match=message):
        recorded_baselines(pool_file, PROBLEMS, source="pools.jsonl", **{**RECORDED, **change})


def test_pools_lacking_a_live_question_or_its_scores_are_refused(pool_file: PoolFile) -> None:
    other = Problem(id="a", question="What is 9 + 9?", gold="18")
    with pytest.raises(PoolMismatchError, match="lacks 1 live question"):
        recorded_baselines(pool_file, [other], source="pools.jsonl", **RECORDED)
    with pytest.raises(PoolMismatchError, match="no step scores from 'judge'"):
        recorded_baselines(pool_file, PROBLEMS, source="pools.jsonl", scorer="judge", **RECORDED)
    recorded = recorded_baselines(pool_file, PROBLEMS[:1], source="pools.jsonl", **RECORDED)
    with pytest.raises(ConfigurationError, match="one pool per problem"):
        run_live(
            ScriptedChatModel(responses=[RIGHT]),
            PROBLEMS,
            [live_policy("esc", prms={}, max_samples=2, target_confidence=0.9)],
            source="scripted",
            progress=False,
            recorded=recorded,
        )
    assert len(prepare_pools(pool_file.pools)) == 2  # nothing consumed the file
