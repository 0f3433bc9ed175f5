"""The evaluation harness: record sample pools, replay any policy on them, or run live.

The data path, top to bottom:

datasets (:mod:`langchain_adaptive.evaluation.datasets`, Game of 24 in :mod:`.game24`) ->
``record_pools`` (one model run, every PRM's estimates) -> a pool file
(:mod:`.pools`; ``score_pools`` adds a later PRM's step scores) -> ``replay``
of every policy (:mod:`.policies`, :mod:`.replay`; no model calls, bootstrap
over sample orders and questions) -> ``summarize`` (:mod:`.report`: accuracy,
compute, the headline match ratio, the oracle gap) -> JSON, Markdown and PNG
plots (:mod:`.plots`). ``run_live`` (:mod:`.live`) runs policies against the
model itself and reports the same way, with wall time.
"""

from __future__ import annotations

from langchain_adaptive.evaluation.external import game24_completion_tokens, game24_pools
from langchain_adaptive.evaluation.game24 import (
    Game24Puzzle,
    check_game24,
    evaluate_expression,
    game24_answer,
    game24_matches,
    load_game24_puzzles,
    load_game24_recorded,
)
from langchain_adaptive.evaluation.live import (
    LivePolicy,
    RecordedBaselines,
    live_policy,
    recorded_baselines,
    run_live,
    spec_prm,
)
from langchain_adaptive.evaluation.policies import (
    OracleBestOfN,
    batch_allocation_policy,
    batch_budget_policies,
    batch_policies,
    ias_total_samples,
    standard_policies,
)
from langchain_adaptive.evaluation.pools import (
    ORACLE,
    PoolFile,
    PoolHeader,
    PoolMismatchError,
    QuestionPool,
    RecordedSample,
    add_calibrated_estimates,
    answer_equivalence,
    exact_match,
    read_pools,
    write_pools,
)
from langchain_adaptive.evaluation.record import (
    RecordSummary,
    arecord_pools,
    record_pools,
    score_pools,
)
from langchain_adaptive.evaluation.replay import (
    Outcomes,
    Policy,
    PreparedPool,
    oracle_samples,
    prepare_pools,
    replay,
    replay_question,
)
from langchain_adaptive.evaluation.report import (
    BenchReport,
    MatchRatio,
    OracleGap,
    PairedDifference,
    ParityMatch,
    PolicySummary,
    report_markdown,
    summarize,
)

__all__ = [
    "ORACLE",
    "BenchReport",
    "Game24Puzzle",
    "LivePolicy",
    "MatchRatio",
    "OracleBestOfN",
    "OracleGap",
    "Outcomes",
    "PairedDifference",
    "ParityMatch",
    "Policy",
    "PolicySummary",
    "PoolFile",
    "PoolHeader",
    "PoolMismatchError",
    "PreparedPool",
    "QuestionPool",
    "RecordSummary",
    "RecordedBaselines",
    "RecordedSample",
    "add_calibrated_estimates",
    "answer_equivalence",
    "arecord_pools",
    "batch_allocation_policy",
    "batch_budget_policies",
    "batch_policies",
    "check_game24",
    "evaluate_expression",
    "exact_match",
    "game24_answer",
    "game24_completion_tokens",
    "game24_matches",
    "game24_pools",
    "ias_total_samples",
    "live_policy",
    "load_game24_puzzles",
    "load_game24_recorded",
    "oracle_samples",
    "prepare_pools",
    "read_pools",
    "record_pools",
    "recorded_baselines",
    "replay",
    "replay_question",
    "report_markdown",
    "run_live",
    "score_pools",
    "spec_prm",
    "standard_policies",
    "summarize",
    "write_pools",
]
