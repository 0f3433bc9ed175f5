"""``langchain-adaptive bench record|score-steps|replay|live|...``: the benchmark.

``record`` draws a pool of samples per question from a local GGUF model (the
bundled SmolLM2 by default) with the on-device PRMs; ``score-steps`` adds an
on-device PRM's step scores to a recorded pool file; ``replay`` compares every
policy on a pool file without calling a model and writes a JSON report, a
Markdown table and PNG plots; ``live`` runs chosen policies against the model
and measures wall time too; ``choose-policy`` replays a validation pool and
saves the compute-optimal choice of policy per difficulty bin and budget;
``import`` turns anyone's recorded samples into a pool file by a field mapping
or a preset (:mod:`.importing`), and ``import-game24`` is its Tree-of-Thoughts
Game-of-24 preset.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_adaptive.budget import DEFAULT_MAX_SAMPLES
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.datasets import (
    Problem,
    arithmetic_suite,
    load_gsm8k,
    load_jsonl,
    load_math,
)
from langchain_adaptive.evaluation.pools import (
    ORACLE,
    QuestionPool,
    answer_equivalence,
    read_pool_header,
    read_pools,
)
from langchain_adaptive.evaluation.report import BenchReport, report_markdown

if TYPE_CHECKING:
    from langchain_adaptive._selection import SelectionRule
    from langchain_adaptive.answers import AnswerEquivalence
    from langchain_adaptive.calibration import Calibrator
    from langchain_adaptive.evaluation.pools import PoolFile
    from langchain_adaptive.evaluation.replay import Outcomes, Policy
    from langchain_adaptive.strategies._compute_optimal import ComputeOptimalPolicy

logger = logging.getLogger(__name__)

DATASET_KINDS = ("arithmetic", "gsm8k", "math", "jsonl")


ON_DEVICE_PRMS = ("probe", "judge", "confidence")
"""The on-device PRMs: the bundled probe, the model as its own judge, its token confidence."""

SELECTION_RULES = [
    "majority_vote",
    "weighted_vote",
    "prm",
    "filtered_vote_top10",
    "filtered_vote_top90",
]
"""The ``--selection`` choices: a vote, or rules that read a PRM's step scores."""


def add_bench_commands(commands: Any) -> None:
    """Register ``bench`` and its subcommands on the top-level parser."""
    bench = commands.add_parser("bench", help="record pools, replay policies, run live")
    sub = bench.add_subparsers(dest="bench_command", required=True)

    record = sub.add_parser("record", help="draw N samples per question and store them")
    _dataset_arguments(record)
    _model_arguments(record)
    record.add_argument("--samples", type=int, default=16, help="samples per question")
    record.add_argument(
        "--prms",
        default="probe,judge",
        help="comma-separated on-device PRMs whose estimates are stored (probe, judge, confidence)",
    )
    record.add_argument(
        "--score-steps",
        default="",
        help="comma-separated PRMs that also score every step of every sample, for PRM and "
        "weighted-vote selection (default: none; costs one PRM pass per step)",
    )
    record.add_argument(
        "--record-logprobs",
        type=int,
        default=None,
        metavar="K",
        help="also store each token's confidence from its top-K logprobs (one number a "
        "token), so deepconf replays exactly, early stops included (e.g. 20)",
    )
    record.add_argument("--out", type=Path, required=True, help="pool file (JSONL, resumable)")

    score = sub.add_parser(
        "score-steps",
        help="score every step of every recorded sample with on-device PRMs, no new samples",
    )
    score.add_argument("pools", type=Path, help="pool file from `bench record`")
    score.add_argument(
        "--prms",
        default="probe",
        help="comma-separated on-device PRMs (probe, judge, confidence: the policy's token "
        "confidence, read under the prompt the pool was recorded with)",
    )
    _model_arguments(score)
    score.add_argument("--out", type=Path, required=True, help="scored pool file (resumable)")

    replay = sub.add_parser("replay", help="compare policies on a pool file, no model calls")
    replay.add_argument("pools", type=Path, help="pool file from `bench record` or `bench import`")
    replay.add_argument(
        "--estimators",
        default=None,
        help="IAS estimators (default: every one with a question estimate on every question)",
    )
    replay.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="estimator whose step scores select (repeatable or a comma list): each gets its "
        "best-of-N prm and weighted families; the first also selects for IAS",
    )
    _calibrator_argument(replay)
    replay.add_argument("--confidences", default="0.5,0.7,0.9,0.95,0.99")
    replay.add_argument("--quantile", type=float, default=0.1, help="IAS budgets on this quantile")
    replay.add_argument(
        "--replicates",
        type=int,
        default=None,
        help="bootstrap replicates (default 200; with --orders, one per order after the first)",
    )
    replay.add_argument("--seed", type=int, default=0)
    replay.add_argument("--limit", type=int, default=None, help="first N questions only")
    _subset_arguments(replay)
    replay.add_argument(
        "--fit",
        action="append",
        default=[],
        metavar="NAME=SOURCE:KIND",
        help="add estimator NAME: a KIND (identity, platt, isotonic, histogram) calibrator "
        "of SOURCE's sample scores fitted on the questions NOT replayed (the other --split "
        "half, or those not in --questions), so it is judged on questions it never saw",
    )
    replay.add_argument(
        "--cross-fit",
        action="store_true",
        help="two-fold cross-fitting: every --fit calibrator and --fit-stop rule is fitted on "
        "one half of the questions (split by --split-seed) and replayed on the other, and "
        "both halves go in one report (instead of --split)",
    )
    replay.add_argument(
        "--sample-rules",
        action="append",
        default=[],
        metavar="SCORER[,SCORER...]",
        help="rules for scorers that score samples, not questions: first-sample IAS and "
        "sequential IAS at round size 1, stopping on SCORER's (calibrated) scores at each "
        "--sample-confidences target, selecting by --selection",
    )
    replay.add_argument(
        "--sample-confidences",
        default="0.5,0.7,0.9,0.95,0.99,0.999",
        help="targets C of the --sample-rules families",
    )
    replay.add_argument(
        "--filtered-vote",
        action="append",
        default=[],
        metavar="SCORER",
        help="DeepConf's offline filter as best-of-N: a SCORER-weighted vote over the 10%% "
        "and 90%% most confident samples (bonN-top10[SCORER], bonN-top90[SCORER])",
    )
    replay.add_argument(
        "--fit-stop",
        action="append",
        default=[],
        metavar="NAME=SCORER",
        help="fit the answer-level stop rule on SCORER's (calibrated) scores of the questions "
        "NOT replayed, and replay it at every --stop-thresholds value (answer-stop[NAME]@T) "
        "and at every --futilities level (answer-stop-futile[NAME]@F); selects by "
        "--selection (weighted_vote when that is majority_vote)",
    )
    replay.add_argument(
        "--stop-thresholds",
        default="0.5,0.6,0.7,0.8,0.9,0.95",
        help="targets of the answer-level stop rule",
    )
    replay.add_argument(
        "--futilities",
        default="0.01,0.02,0.03,0.05,0.08,0.12",
        help="the giving-up curve of the answer-level stop rule: at threshold 0.9, it also "
        "stops once P(more samples fix the answer) is below each of these",
    )
    replay.add_argument(
        "--orders",
        type=Path,
        default=None,
        help="JSON of fixed sample orders ({question_id: [[perm], ...]} or one [[perm], ...] "
        "for every question): replicate r draws in order r, to compare with another tool "
        "on exactly the same draws",
    )
    replay.add_argument(
        "--ac-thresholds",
        default=None,
        help="comma-separated Adaptive-Consistency thresholds, one family "
        "(default 0.6,0.7,0.8,0.9,0.95,0.99)",
    )
    replay.add_argument(
        "--esc-windows",
        default=None,
        help="comma-separated ESC windows, one family (default 2,3,4,5,6,8)",
    )
    replay.add_argument(
        "--cost", choices=["tokens", "samples"], default="tokens", help="compute measure"
    )
    replay.add_argument(
        "--no-batch",
        dest="batch",
        action="store_false",
        help="leave out batch allocation (batch[EST]@C: IAS@C's total samples, split by "
        "greedy coverage gain across the questions)",
    )
    replay.add_argument(
        "--batch-budgets",
        default="",
        help="comma-separated mean samples a question: also replay batch allocation at "
        "these totals for every estimator (batch[EST]@Bs), to compare estimators at "
        "equal compute",
    )
    replay.add_argument(
        "--round-size", type=int, default=2, help="samples per round of sequential IAS"
    )
    replay.add_argument(
        "--selection",
        choices=SELECTION_RULES,
        default="majority_vote",
        help="how IAS, sequential IAS, batch allocation and the oracle pick the answer "
        "(weighted_vote and prm read --scorer's step scores); fixed best-of-N is replayed "
        "with every rule the scorer allows",
    )
    replay.add_argument(
        "--floor-samples",
        type=int,
        default=None,
        help="also replay IAS that draws only this many samples where C is out of reach "
        "within the cap (ias-floorK[EST]), beside the paper's spending the cap",
    )
    replay.add_argument(
        "--compare",
        nargs=2,
        action="append",
        default=[],
        metavar=("FIRST", "SECOND"),
        help="also compare two policies directly: FIRST minus SECOND, paired interval",
    )
    replay.add_argument("--expect-model", default=None, help="fail unless recorded by this model")
    replay.add_argument("--out", type=Path, required=True, help="report JSON (.md, .png beside)")

    live = sub.add_parser("live", help="run policies against the model, wall time included")
    _dataset_arguments(live)
    _model_arguments(live)
    live.add_argument(
        "--policies",
        default="majority_vote:16,ias:probe",
        help="comma-separated POLICY[:ARG]: majority_vote:N, ias:PRM, sequential_ias:PRM, "
        "adaptive_consistency, esc, first_sample_ias:PRM, sequential_ias_1:PRM, "
        "answer_stop:PRM (with --stop-model), beam_search:PRM (ias_of_k:PRM, ias_of_m:PRM; "
        "--max-tokens caps each step); a PRM-budgeted policy may take its own C "
        "(ias:judge@0.7) and IAS its own floor (ias-floor1:probe@0.9)",
    )
    live.add_argument("--max-samples", type=int, default=DEFAULT_MAX_SAMPLES)
    live.add_argument("--target-confidence", type=float, default=0.9)
    live.add_argument(
        "--selection",
        choices=SELECTION_RULES,
        default="majority_vote",
        help="how PRM-budgeted policies (ias, sequential_ias) pick the answer; majority "
        "vote (the default, as in replay and the majority_vote:N baseline) or one that "
        "scores every step of every sample with the PRM",
    )
    live.add_argument(
        "--scorer",
        default=None,
        help="on-device PRM whose step scores select (prm and weighted_vote selection) "
        "instead of the PRM that budgets, as in replay",
    )
    live.add_argument(
        "--floor-samples",
        type=int,
        default=None,
        help="ias policies draw only this many samples where C is out of reach within the "
        "cap (ias-floorK[PRM], as in replay)",
    )
    _calibrator_argument(live)
    live.add_argument(
        "--launch",
        choices=("rounds", "eager"),
        default="rounds",
        help="eager: round-drawing policies start their samples at once and cancel the rest "
        "when they stop (tokens then include the cancelled samples'); default: %(default)s",
    )
    live.add_argument(
        "--stop-model",
        type=Path,
        default=None,
        help="saved answer-level stop rule (bench fit-stop-rule) for answer_stop:PRM policies",
    )
    live.add_argument(
        "--baseline-pools",
        type=Path,
        default=None,
        help="pool file recorded on the same questions with the same model and settings: "
        "its fixed best-of-N (majority, and --scorer's when scored) join the report, "
        "compared question by question without drawing again",
    )
    live.add_argument("--out", type=Path, required=True, help="report JSON (.md beside)")

    choose = sub.add_parser(
        "choose-policy",
        help="compute-optimal choice: the best policy per difficulty bin and budget, as JSON",
    )
    choose.add_argument("pools", type=Path, nargs="?", help="validation pool file (replayed)")
    choose.add_argument(
        "--records",
        type=Path,
        default=None,
        help="instead of a pool: per-question outcome records (JSON lines) of any policies, "
        "e.g. a live run of revisions, lookahead and particle filtering",
    )
    choose.add_argument("--estimator", required=True, help="estimator whose estimates bin")
    choose.add_argument("--scorer", default=None, help="estimator whose step scores select")
    _calibrator_argument(choose)
    choose.add_argument(
        "--budgets", default="1,2,4,8,16", help="mean samples (or tokens) per question"
    )
    choose.add_argument(
        "--budget-unit",
        choices=("samples", "tokens"),
        default=None,
        help="what a budget counts (default: tokens with --records, samples with a pool)",
    )
    choose.add_argument("--bins", type=int, default=5, help="difficulty bins (quantile)")
    choose.add_argument("--confidences", default="0.5,0.7,0.9,0.95,0.99")
    choose.add_argument(
        "--quantile", type=float, default=0.1, help="the estimate level IAS budgets on"
    )
    choose.add_argument(
        "--bin-quantile",
        type=float,
        default=0.5,
        help="the estimate level binned (the median: a low bound ties at 0 on hard questions)",
    )
    choose.add_argument(
        "--selection",
        choices=SELECTION_RULES,
        default="majority_vote",
        help="the selection rule every chosen strategy uses (prm rules need --scorer)",
    )
    choose.add_argument("--limit", type=int, default=None, help="first N questions only")
    choose.add_argument("--expect-model", default=None, help="fail unless recorded by this model")
    choose.add_argument("--out", type=Path, required=True, help="policy file (JSON)")

    fit = sub.add_parser(
        "fit-calibrator",
        help="fit a calibrator of a recorded score on one half of a pool's questions, for "
        "--calibrator",
    )
    fit.add_argument("--pools", type=Path, required=True, help="pool file")
    _subset_arguments(fit)
    fit.add_argument("--source", required=True, help="estimator whose sample scores to fit")
    fit.add_argument(
        "--kind",
        choices=["identity", "platt", "isotonic", "histogram"],
        default="isotonic",
        help="calibrator kind (any real score; identity needs probabilities)",
    )
    fit.add_argument("--expect-model", default=None, help="fail unless recorded by this model")
    fit.add_argument("--out", type=Path, required=True, help="calibrator directory")

    stop = sub.add_parser(
        "fit-stop-rule",
        help="fit the answer-level stop rule (strategy answer_stop) on a pool's questions, "
        "for ask/bench live --stop-model",
    )
    stop.add_argument("--pools", type=Path, required=True, help="pool file")
    _subset_arguments(stop)
    _calibrator_argument(stop)
    stop.add_argument(
        "--scorer",
        required=True,
        help="estimator whose (calibrated) sample scores the rule reads: a recorded one or "
        "a --calibrator NAME; live, the PRM must give the same scores",
    )
    stop.add_argument(
        "--selection",
        choices=["weighted_vote", "prm", "majority_vote"],
        default="weighted_vote",
        help="the selection rule whose answer the rule judges (the strategy must use it)",
    )
    stop.add_argument("--orders", type=int, default=10, help="sample orders per question")
    stop.add_argument("--seed", type=int, default=0)
    stop.add_argument("--expect-model", default=None, help="fail unless recorded by this model")
    stop.add_argument("--out", type=Path, required=True, help="stop-rule directory")

    _import_arguments(sub)
    game24 = sub.add_parser(
        "import-game24",
        help="pool file from a Tree-of-Thoughts Game-of-24 log "
        "(= bench import --preset game24-tot)",
    )
    game24.add_argument(
        "--samples", type=Path, required=True, help="the log JSON (infos or accs form)"
    )
    game24.add_argument("--puzzles", type=Path, required=True, help="24.csv")
    game24.add_argument("--model", default=None, help="model label (default: the log's name)")
    game24.add_argument("--out", type=Path, required=True)


IMPORT_HELP = """\
Turn recorded samples (JSON list, JSON object with --records-field, or JSONL) into
a pool file for `bench replay`. Every *-field is a dotted path: `meta.gold` reaches
into objects, an integer part indexes a list (`choices.0.text`), any other part
applied to a list maps over it (`infos.r` on [{"r": 1}, {"r": 0}] is [1, 0]).

Samples: when --samples-field (default `samples`) is in a question record, it is a
list of objects and the sample fields are paths inside each object. When it is not
there (or is `none`), samples are PARALLEL LISTS in the question record: each sample
field must give one entry per sample (`--text-field ys --correct-field infos.r`).
With --samples FILE, each record of FILE is one sample object whose --join-field
(default: --id-field) names its question.

Scores: a number per sample (whole solution) or a list per step; stored per step as
the squashed probability with the number as read as its raw score. Grading: the
--correct-field if given, else the answer (--answer-field, or extracted from the
text; "" or null abstains) against --gold-field. Tokens: --tokens-field, else
estimated as ceil(characters / 4) and flagged in the header (tokens_estimated).
A preset fills defaults; flags override it.
"""


def _import_arguments(sub: Any) -> None:
    from langchain_adaptive.evaluation.importing import PRESETS

    parser = sub.add_parser(
        "import",
        help="pool file from anyone's recorded samples, by a field mapping",
        description=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None)
    parser.add_argument(
        "--questions",
        type=Path,
        action="extend",
        nargs="+",
        required=True,
        help="question file(s); records with one id in several files are pooled",
    )
    parser.add_argument("--samples", type=Path, default=None, help="separate file of samples")
    parser.add_argument("--out", type=Path, required=True, help="the pool file (JSONL)")
    fields = parser.add_argument_group("fields (dotted paths)")
    for flag, what in [
        ("--records-field", "the list of questions in a JSON object document (e.g. records)"),
        ("--id-field", "question id (default: the record's 0-based position)"),
        ("--question-field", "question text (default question; 'none': the id)"),
        ("--gold-field", "gold answer (default gold)"),
        ("--level-field", "difficulty level or subset"),
        ("--samples-field", "list of sample objects (default samples; 'none': parallel lists)"),
        ("--join-field", "in --samples, the sample's question id (default: --id-field)"),
        ("--text-field", "sample text (default text)"),
        ("--answer-field", "extracted answer (default: extract from the text)"),
        ("--correct-field", "recorded verdict, true/false or 0/1 (default: grade the answer)"),
        ("--tokens-field", "generated tokens (default: ceil(characters / 4), flagged)"),
        ("--question-tokens-field", "a question's total tokens, split by text length"),
        ("--finish-reason-field", "why the sample ended"),
        ("--logprob-field", "mean token logprob or per-token logprobs (scorers logprob[-window])"),
        ("--model-field", "model label in the top-level object or first record (a,b: either)"),
        ("--temperature-field", "sampling temperature, read like --model-field"),
    ]:
        fields.add_argument(flag, default=None, help=what)
    fields.add_argument(
        "--score",
        dest="scores",
        action="append",
        default=None,
        metavar="NAME=FIELD[:sigmoid|identity|exp]",
        help="a named score, repeatable: sigmoid squashes a logit, exp a mean logprob",
    )
    parser.add_argument("--logprob-window", type=int, default=None, help="tokens (default 64)")
    parser.add_argument("--step-delimiter", default=None, help="regex between steps")
    parser.add_argument("--equivalence", choices=["math", "exact"], default=None)
    parser.add_argument("--verifier", choices=["answers", "game24"], default=None)
    parser.add_argument("--puzzles", type=Path, default=None, help="Game of 24: 24.csv")
    parser.add_argument("--cumulative-tokens", action="store_true", default=None)
    parser.add_argument("--model", default=None, help="model label (else --model-field)")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--max-tokens-per-sample", type=int, default=None)


def _subset_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("question subset")
    group.add_argument(
        "--split",
        choices=["train", "test"],
        default=None,
        help="keep one half of the questions (a deterministic split of their ids, "
        "langchain_adaptive.evaluation.holdout.split_questions)",
    )
    group.add_argument("--split-seed", type=int, default=0, help="seed of --split")
    group.add_argument(
        "--questions",
        type=Path,
        default=None,
        help="file of question ids, one a line: keep only those (before --split)",
    )


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("questions")
    group.add_argument("--dataset", choices=DATASET_KINDS, default="arithmetic")
    group.add_argument("--path", type=Path, default=None, help="dataset file (not arithmetic)")
    group.add_argument("--per-level", type=int, default=20, help="arithmetic questions per level")
    group.add_argument("--suite-seed", type=int, default=1)
    group.add_argument("--levels", default=None, help="comma-separated arithmetic levels")
    group.add_argument(
        "--exclude-suite",
        default="5:0",
        help="comma-separated PER_LEVEL:SEED of arithmetic suites whose questions are "
        "left out (default: the bundled probe's training suite; add a recorded suite to "
        "draw a held-out one, e.g. 5:0,21:1); 'none' keeps all",
    )
    group.add_argument("--limit", type=int, default=None, help="first N questions only")


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (in-process llama.cpp)")
    group.add_argument("--model", default=None, help="GGUF path or repo id (default: bundled)")
    group.add_argument("--model-file", default=None)
    group.add_argument("--n-gpu-layers", type=int, default=0)
    group.add_argument("--threads", type=int, default=None)
    group.add_argument("--seed", type=int, default=0, help="sampling seed")
    group.add_argument("--max-tokens", type=int, default=192, help="tokens per sample")
    group.add_argument("--temperature", type=float, default=0.7)


def load_problems(args: argparse.Namespace) -> list[Problem]:
    """The questions named by the dataset arguments."""
    if args.dataset == "arithmetic":
        levels = {"levels": tuple(args.levels.split(","))} if args.levels else {}
        problems = arithmetic_suite(args.per_level, seed=args.suite_seed, **levels)
        if args.exclude_suite != "none":
            seen = {p.question for suite in _excluded_suites(args.exclude_suite) for p in suite}
            problems = [p for p in problems if p.question not in seen]
        problems = interleave_levels(problems)
    else:
        if args.path is None:
            raise ConfigurationError(f"--dataset {args.dataset} needs --path")
        loaders: dict[str, Callable[[Path], list[Problem]]] = {
            "gsm8k": load_gsm8k,
            "math": load_math,
            "jsonl": load_jsonl,
        }
        problems = loaders[args.dataset](args.path)
    return problems[: args.limit] if args.limit else problems


def _excluded_suites(spec: str) -> list[list[Problem]]:
    suites = []
    for item in spec.split(","):
        try:
            per_level, seed = (int(x) for x in item.split(":"))
        except ValueError:
            raise ConfigurationError(
                f"--exclude-suite takes PER_LEVEL:SEED[,PER_LEVEL:SEED...] or 'none', got {spec!r}"
            ) from None
        suites.append(arithmetic_suite(per_level, seed=seed))
    return suites


def interleave_levels(problems: list[Problem]) -> list[Problem]:
    """Round-robin over levels, so any prefix of a run (an interrupted recording, a
    ``--limit``) covers every level in proportion."""
    by_level: dict[str | None, list[Problem]] = {}
    for problem in problems:
        by_level.setdefault(problem.level, []).append(problem)
    rounds = itertools.zip_longest(*by_level.values())
    return [problem for round_ in rounds for problem in round_ if problem is not None]


def run_bench(args: argparse.Namespace) -> int:
    """Dispatch ``bench`` subcommands; returns the exit status."""
    command = args.bench_command
    if command == "record":
        return _record(args)
    if command == "score-steps":
        return _score_steps(args)
    if command == "replay":
        return _replay(args)
    if command == "live":
        return _live(args)
    if command == "choose-policy":
        return _choose_policy(args)
    if command == "fit-calibrator":
        return _fit_calibrator(args)
    if command == "fit-stop-rule":
        return _fit_stop_rule(args)
    if command == "import-game24":
        return _import_game24(args)
    if command == "import":
        return _import(args)
    return 2  # pragma: no cover - argparse enforces the choices


def _chat_model(args: argparse.Namespace) -> Any:
    from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, default_threads

    return ChatLlamaCpp(
        model=args.model,
        model_file=args.model_file,
        n_gpu_layers=args.n_gpu_layers,
        n_threads=args.threads or default_threads(),
        seed=args.seed,
    )


def _on_device_prms(
    names: list[str],
    chat: Any,
    args: argparse.Namespace,
    prompt: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Name -> PRM; ``chat`` (the policy model) is needed by the judge and the confidence PRM.

    ``prompt`` holds the ``instruction`` and ``system_prompt`` the samples were
    drawn with (a pool header's settings): the confidence PRM reads the
    policy's probabilities under the prompt it sampled from.
    """
    from langchain_adaptive._prm_factory import make_prm

    prms: dict[str, Any] = {}
    for name in names:
        if name not in ON_DEVICE_PRMS:
            raise ConfigurationError(
                f"unknown on-device PRM {name!r}; choose one of {', '.join(ON_DEVICE_PRMS)}"
            )
        prms[name] = make_prm(
            name,
            chat=chat,
            model=args.model,
            n_gpu_layers=args.n_gpu_layers,
            n_threads=args.threads,
            **((prompt or {}) if name == "confidence" else {}),
        )
    return prms


def _live_prms(
    names: set[str],
    calibrators: list[tuple[str, str, Calibrator]],
    chat: Any,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The on-device PRMs ``names`` asks for, plus each calibrated one as a ``CalibratedPRM``.

    A calibrated PRM wraps the very on-device PRM its source names, so a run that
    budgets on both the raw judge and the calibrated judge loads the judge once.
    """
    from langchain_adaptive.prm import CalibratedPRM

    taken = {name for name, _, _ in calibrators} & set(ON_DEVICE_PRMS)
    if taken:
        raise ConfigurationError(
            f"--calibrator names {sorted(taken)} shadow on-device PRMs; choose another name"
        )
    sources = {source for _, source, _ in calibrators}
    calibrated_names = {name for name, _, _ in calibrators}
    prms = _on_device_prms(sorted((names - calibrated_names) | sources), chat, args)
    for name, source, calibrator in calibrators:
        prms[name] = CalibratedPRM(prm=prms[source], calibrator=calibrator)
    return prms


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _record(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.record import record_pools

    problems = load_problems(args)
    chat = _chat_model(args)
    prms = _on_device_prms(_names(args.prms), chat, args)
    summary = record_pools(
        chat,
        problems,
        args.out,
        samples=args.samples,
        prms=prms,
        score_steps_with=_names(args.score_steps),
        temperature=args.temperature,
        max_tokens_per_sample=args.max_tokens,
        settings={"dataset": args.dataset, "seed": args.seed},
        record_logprobs=args.record_logprobs,
    )
    print(summary.model_dump_json(indent=2))
    return 0 if not summary.failed else 1


def _score_steps(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.record import score_pools

    names = _names(args.prms)
    chat = _chat_model(args) if {"judge", "confidence"} & set(names) else None
    settings = read_pool_header(args.pools).settings
    prompt = {key: settings.get(key) for key in ("instruction", "system_prompt")}
    prms = _on_device_prms(names, chat, args, prompt)
    summary = score_pools(args.pools, args.out, prms)
    print(summary.model_dump_json(indent=2))
    return 0 if not summary.failed else 1


def _replay(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.policies import (
        AC_THRESHOLDS,
        ESC_WINDOWS,
        batch_budget_policies,
        batch_policies,
        standard_policies,
    )
    from langchain_adaptive.evaluation.replay import load_orders, prepare_pools, replay
    from langchain_adaptive.evaluation.report import check_pairs, summarize

    pool_file = read_pools(args.pools, model=args.expect_model)
    calibrators = _calibrators(args)  # a bad directory or spec fails before any work
    fits = _fit_specs(args.fit)
    orders = load_orders(args.orders) if args.orders is not None else None
    pools, others, notes = _chosen_pools(args, pool_file.pools)
    names: list[str] = list(pool_file.header.prms)
    folds = []
    for chosen, rest in _folds(args, pools, others, notes):
        chosen, rest, added, fit_notes = _add_estimators(chosen, rest, calibrators, fits)
        folds.append((chosen, rest))
        notes += fit_notes
    names += added
    order = {pool.id: i for i, pool in enumerate(pools)}
    pools = sorted((pool for chosen, _ in folds for pool in chosen), key=lambda p: order[p.id])
    scorers = [name for spec in args.scorer for name in _names(spec)]
    if args.estimators:
        estimators = _names(args.estimators)
    else:  # those IAS can budget on: a question estimate on every question
        estimators = [n for n in names if all(n in pool.question_estimates for pool in pools)]
    estimators = [e for e in dict.fromkeys(estimators) if e != ORACLE]
    size = min(len(pool.samples) for pool in pools)
    confidences = [float(c) for c in _names(args.confidences)]
    policies = standard_policies(
        size,
        estimators=estimators,
        scorer=scorers,
        confidences=confidences,
        selection=args.selection,
        quantile=args.quantile,
        round_size=args.round_size,
        floor_samples=args.floor_samples,
        ac_thresholds=_floats(args.ac_thresholds, AC_THRESHOLDS),
        esc_windows=[int(w) for w in _floats(args.esc_windows, ESC_WINDOWS)],
    )
    scorer = scorers[0] if scorers and args.selection != "majority_vote" else None
    selection: dict[str, Any] = {"selection": args.selection, "scorer": scorer}
    if args.batch:
        policies += batch_policies(
            pools,
            estimators,
            max_samples=size,
            confidences=confidences,
            quantile=args.quantile,
            **selection,
        )
    if args.batch_budgets:
        policies += batch_budget_policies(
            pools,
            estimators,
            [float(b) for b in _names(args.batch_budgets)],
            max_samples=size,
            quantile=args.quantile,
            **selection,
        )
    equivalence = pool_file.header.equivalence
    policies += _sample_score_policies(args, size, folds, answer_equivalence(equivalence), notes)
    prepared = prepare_pools(pools, answer_equivalence(equivalence))
    pairs = [(first, second) for first, second in args.compare]
    check_pairs(pairs, [policy.name for policy in policies])  # before the replay: minutes
    replicates = args.replicates
    if replicates is None:
        replicates = 200 if orders is None else _order_count(orders, pools) - 1
    run = replay(prepared, policies, replicates=replicates, seed=args.seed, orders=orders)
    if orders is not None:
        notes.append(f"sample orders from {args.orders}: replicate r draws in order r")
    report = summarize(
        run,
        source=f"{args.pools.name} ({pool_file.header.model})",
        seed=args.seed,
        costs=(args.cost,),
        pairs=pairs,
        notes=notes,
    )
    _write_report(report, args.out, plots=True)
    return 0


def _choose_policy(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.compute_optimal_fit import (
        cross_validate,
        fit_policy,
        outcomes_from_replay,
        read_outcomes,
    )
    from langchain_adaptive.evaluation.pools import add_calibrated_estimates

    if (args.pools is None) == (args.records is None):
        raise ConfigurationError("choose-policy takes a pool file or --records, one of them")
    budgets = [float(b) for b in _names(args.budgets)]
    unit = args.budget_unit or ("tokens" if args.records else "samples")
    if args.records is not None:
        outcomes = read_outcomes(args.records)
        origin = args.records.name
    pool_file = None if args.pools is None else read_pools(args.pools, model=args.expect_model)
    if pool_file is None:
        pools = []
    else:
        pools = pool_file.pools[: args.limit] if args.limit else pool_file.pools
    for name, source, calibrator in _calibrators(args):
        pools = add_calibrated_estimates(pools, source, calibrator, name)
    if pool_file is not None and unit == "samples":
        policy = _choose_from_replay(args, pool_file, pools, budgets)
    else:
        if pool_file is not None:
            outcomes = outcomes_from_replay(
                _replay_for_choice(args, pool_file, pools), pools, estimator=args.estimator
            )
            origin = f"{args.pools.name} ({pool_file.header.model})"
        fit = {"estimator": args.estimator, "budgets": budgets, "budget_unit": unit}
        fit |= {"quantile": args.bin_quantile, "bins": args.bins}
        policy = fit_policy(outcomes, **fit, source=origin)
        for held in cross_validate(outcomes, **fit):
            print(
                f"2-fold held-out accuracy at budget {held.budget:g} {unit}: "
                f"{held.accuracy:.3f} ({held.mean_tokens:.0f} tokens, "
                f"{held.mean_samples:.1f} samples per question)"
            )
    policy.save(args.out)
    edges = ", ".join(f"{e:.3f}" for e in policy.bin_edges)
    print(f"bin edges ({args.estimator} at q={args.bin_quantile:g}): {edges}")
    for level in policy.levels:
        picks = " | ".join(
            f"{c.policy} (acc {c.accuracy:.2f}, {c.mean_samples:.1f} s/q"
            + (f", {c.mean_tokens:.0f} tok/q)" if c.mean_tokens is not None else ")")
            for c in level.choices
        )
        print(f"budget {level.budget:g}: {picks}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _replay_for_choice(
    args: argparse.Namespace, pool_file: PoolFile, pools: list[QuestionPool]
) -> Outcomes:
    from langchain_adaptive.evaluation.policies import standard_policies
    from langchain_adaptive.evaluation.replay import prepare_pools, replay

    size = min(len(pool.samples) for pool in pools)
    policies = standard_policies(
        size,
        estimators=[args.estimator],
        scorer=args.scorer,
        confidences=[float(c) for c in _names(args.confidences)],
        selection=args.selection,
        quantile=args.quantile,
        oracle=False,
    )
    prepared = prepare_pools(pools, answer_equivalence(pool_file.header.equivalence))
    return replay(prepared, policies, replicates=0)


def _choose_from_replay(
    args: argparse.Namespace, pool_file: PoolFile, pools: list[QuestionPool], budgets: list[float]
) -> ComputeOptimalPolicy:
    from langchain_adaptive.evaluation.compute_optimal_fit import choose_policy

    return choose_policy(
        _replay_for_choice(args, pool_file, pools),
        pools,
        estimator=args.estimator,
        budgets=budgets,
        quantile=args.bin_quantile,
        selection=args.selection,
        bins=args.bins,
        source=f"{args.pools.name} ({pool_file.header.model})",
    )


def _calibrator_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calibrator",
        action="append",
        default=[],
        metavar="NAME=SOURCE:DIR",
        help="add estimator NAME: a saved calibrator DIR applied to SOURCE's raw scores",
    )


def _calibrators(args: argparse.Namespace) -> list[tuple[str, str, Calibrator]]:
    """``(name, source, calibrator)`` for each ``--calibrator NAME=SOURCE:DIR``, loaded."""
    from langchain_adaptive.calibration import Calibrator

    loaded = []
    for spec in args.calibrator:
        try:
            name, rest = spec.split("=", 1)
            source, directory = rest.split(":", 1)
        except ValueError:
            raise ConfigurationError(
                f"--calibrator takes NAME=SOURCE:DIR (e.g. judge-quantile=judge:calib/quantile), "
                f"got {spec!r}"
            ) from None
        loaded.append((name, source, Calibrator.load(Path(directory))))
    return loaded


def _floats(text: str | None, default: Sequence[float]) -> list[float]:
    return [float(x) for x in _names(text)] if text else list(default)


def _fit_specs(specs: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(name, source, kind)`` for each ``--fit NAME=SOURCE:KIND``, checked."""
    from langchain_adaptive.evaluation.holdout import CALIBRATOR_KINDS

    out: list[tuple[str, str, str]] = []
    for spec in specs:
        try:
            name, rest = spec.split("=", 1)
            source, kind = rest.split(":", 1)
        except ValueError:
            raise ConfigurationError(
                f"--fit takes NAME=SOURCE:KIND (e.g. rm-iso=rm:isotonic), got {spec!r}"
            ) from None
        if kind not in CALIBRATOR_KINDS:
            raise ConfigurationError(
                f"--fit {spec!r}: KIND must be one of {', '.join(CALIBRATOR_KINDS)}"
            )
        out.append((name, source, kind))
    return out


def _chosen_pools(
    args: argparse.Namespace, pools: Sequence[QuestionPool]
) -> tuple[list[QuestionPool], list[QuestionPool], list[str]]:
    """The questions to evaluate (--questions, --split, --limit), the rest, and a note."""
    from langchain_adaptive.evaluation.holdout import read_question_ids, select_questions

    ids = read_question_ids(args.questions) if args.questions is not None else None
    chosen, others = select_questions(pools, split=args.split, seed=args.split_seed, ids=ids)
    notes = []
    if args.split is not None or ids is not None:
        what = [f"ids in {args.questions}"] if ids is not None else []
        if args.split is not None:
            what.append(f"the {args.split} half of split seed {args.split_seed}")
        notes.append(f"questions: {' and '.join(what)} ({len(chosen)} of {len(pools)})")
    limit = getattr(args, "limit", None)
    if limit:
        chosen = chosen[:limit]
    return chosen, others, notes


def _folds(
    args: argparse.Namespace,
    pools: list[QuestionPool],
    others: list[QuestionPool],
    notes: list[str],
) -> list[tuple[list[QuestionPool], list[QuestionPool]]]:
    """``(evaluated, fitted on)`` question sets: one, or both halves with --cross-fit."""
    from langchain_adaptive.evaluation.holdout import split_questions

    if not args.cross_fit:
        return [(pools, others)]
    if args.split is not None:
        raise ConfigurationError("--cross-fit replays both halves; leave out --split")
    first, _ = split_questions([pool.id for pool in pools], args.split_seed)
    inside = set(first)
    halves = [p for p in pools if p.id in inside], [p for p in pools if p.id not in inside]
    notes.append(
        f"two-fold cross-fitting (split seed {args.split_seed}): each half's calibrators and "
        f"stop rules are fitted on the other half ({len(halves[0])} and {len(halves[1])} "
        "questions)"
    )
    return [(halves[0], halves[1]), (halves[1], halves[0])]


def _sample_score_policies(
    args: argparse.Namespace,
    size: int,
    folds: Sequence[tuple[list[QuestionPool], list[QuestionPool]]],
    equivalent: AnswerEquivalence,
    notes: list[str],
) -> list[Policy]:
    """The --sample-rules, --filtered-vote and --fit-stop policies (each fold's stop rules
    fitted on its other questions, the ones it does not replay)."""
    from langchain_adaptive.evaluation.replay import prepare_pools
    from langchain_adaptive.evaluation.stop_rule import (
        answer_stop_policies,
        cross_fitted_policies,
        fit_answer_stop,
        sample_scorer_policies,
    )

    selection: SelectionRule = (
        args.selection if args.selection != "majority_vote" else "weighted_vote"
    )
    policies: list[Policy] = []
    confidences = _floats(args.sample_confidences, ())
    for scorer in dict.fromkeys(n for spec in args.sample_rules for n in _names(spec)):
        policies += sample_scorer_policies(
            size, scorer, confidences=confidences, selection=selection, quantile=args.quantile
        )
    for scorer in dict.fromkeys(args.filtered_vote):
        policies += sample_scorer_policies(size, scorer, confidences=(), filtered=True)
    specs = [_fit_stop_spec(spec) for spec in args.fit_stop]
    if specs and not all(others for _, others in folds):
        raise ConfigurationError(
            "--fit-stop fits on the questions not replayed: choose a subset with --split, "
            "--questions or --cross-fit so that some are left"
        )
    for name, scorer in specs:
        per_fold = []
        for chosen, others in folds:
            model = fit_answer_stop(
                prepare_pools(others, equivalent),
                scorer,
                selection=selection,
                seed=args.seed,
                metadata={"pools": str(args.pools), "questions": len(others)},
            )
            notes.append(
                f"answer-stop[{name}]: stop rule on {scorer!r} fitted on the other "
                f"{len(others)} question(s)"
            )
            fold_policies = answer_stop_policies(
                name,
                model,
                scorer,
                max_samples=size,
                thresholds=_floats(args.stop_thresholds, ()),
                futilities=_floats(args.futilities, ()),
            )
            per_fold.append((chosen, fold_policies))
        policies += per_fold[0][1] if len(per_fold) == 1 else cross_fitted_policies(per_fold)
    return policies


def _stop_model(directory: Path | None) -> Any:
    """The saved answer-level stop rule of ``--stop-model`` (``None`` without one)."""
    from langchain_adaptive.calibration._answer_stop import AnswerStopModel

    return None if directory is None else AnswerStopModel.load(directory)


def _fit_stop_spec(spec: str) -> tuple[str, str]:
    name, _, scorer = spec.partition("=")
    if not name or not scorer:
        raise ConfigurationError(f"--fit-stop takes NAME=SCORER (e.g. rm=rm-iso), got {spec!r}")
    return name, scorer


def _add_estimators(
    pools: list[QuestionPool],
    others: Sequence[QuestionPool],
    calibrators: Sequence[tuple[str, str, Calibrator]],
    fits: Sequence[tuple[str, str, str]],
) -> tuple[list[QuestionPool], list[QuestionPool], list[str], list[str]]:
    """``pools`` and ``others`` with every --calibrator and --fit estimator added, their
    names, and notes.

    A --fit calibrator is fitted on ``others`` (the questions not evaluated);
    ``others`` are calibrated too, so a stop rule fitted on them reads the same
    calibrated scores it will meet.
    """
    from langchain_adaptive.evaluation.holdout import fit_pool_calibrator
    from langchain_adaptive.evaluation.pools import add_calibrated_estimates

    added: list[str] = []
    notes: list[str] = []
    loaded = list(calibrators)
    if fits and not others:
        raise ConfigurationError(
            "--fit fits on the questions not replayed: choose a subset with --split or "
            "--questions so that some are left"
        )
    for name, source, kind in fits:
        calibrator = fit_pool_calibrator(others, source, kind)  # type: ignore[arg-type]
        loaded.append((name, source, calibrator))
        notes.append(
            f"{name}: {kind} calibration of {source!r} fitted on the other {len(others)} "
            f"question(s) (base rate {calibrator.base_rate:.3f})"
        )
    others = list(others)
    for name, source, calibrator in loaded:
        pools = add_calibrated_estimates(pools, source, calibrator, name)
        if others:
            others = add_calibrated_estimates(others, source, calibrator, name)
        added.append(name)
    return pools, others, added, notes


def _order_count(orders: Any, pools: Sequence[QuestionPool]) -> int:
    """Orders available to every question (at least 1: the run itself)."""
    if isinstance(orders, dict):
        return max(1, min((len(orders.get(pool.id, ())) for pool in pools), default=1))
    return max(1, len(orders))


def _fit_calibrator(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.holdout import fit_pool_calibrator

    pool_file = read_pools(args.pools, model=args.expect_model)
    pools, _, notes = _chosen_pools(args, pool_file.pools)
    calibrator = fit_pool_calibrator(pools, args.source, args.kind)
    calibrator.metadata["model"] = pool_file.header.model
    calibrator.save(args.out)
    subset = notes[0] if notes else f"questions: all {len(pools)}"
    rate = "none" if calibrator.base_rate is None else f"{calibrator.base_rate:.4f}"
    print(
        f"{args.kind} calibrator of {args.source!r} ({calibrator.score_scale} scores, "
        f"base rate {rate}); {subset}"
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _fit_stop_rule(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.pools import add_calibrated_estimates
    from langchain_adaptive.evaluation.replay import prepare_pools
    from langchain_adaptive.evaluation.stop_rule import fit_answer_stop

    pool_file = read_pools(args.pools, model=args.expect_model)
    pools, _, notes = _chosen_pools(args, pool_file.pools)
    for name, source, calibrator in _calibrators(args):
        pools = add_calibrated_estimates(pools, source, calibrator, name)
    prepared = prepare_pools(pools, answer_equivalence(pool_file.header.equivalence))
    model = fit_answer_stop(
        prepared,
        args.scorer,
        selection=args.selection,
        orders=args.orders,
        seed=args.seed,
        metadata={
            "pools": str(args.pools),
            "model": pool_file.header.model,
            "questions": len(pools),
        },
    )
    model.save(args.out)
    subset = notes[0] if notes else f"questions: all {len(pools)}"
    weights = ", ".join(f"{k} {v:+.2f}" for k, v in model.weights("correct").items())
    print(f"answer-stop rule on {args.scorer!r} ({args.selection}); {subset}; correct: {weights}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _live(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.live import (
        live_policy,
        recorded_baselines,
        run_live,
        spec_prm,
    )
    from langchain_adaptive.evaluation.record import model_identity
    from langchain_adaptive.inputs import DEFAULT_INSTRUCTION

    problems = load_problems(args)
    calibrators = _calibrators(args)  # a bad directory fails before the model loads
    stop_model = _stop_model(args.stop_model)
    chat = _chat_model(args)
    recorded = None
    if args.baseline_pools is not None:
        recorded = recorded_baselines(
            read_pools(args.baseline_pools),
            problems,
            source=args.baseline_pools.name,
            model=model_identity(chat),
            max_tokens_per_sample=args.max_tokens,
            temperature=args.temperature,
            prompt={"instruction": DEFAULT_INSTRUCTION, "system_prompt": None},
            scorer=args.scorer,
        )
    specs = _names(args.policies)
    prm_names = {name for name in map(spec_prm, specs) if name is not None}
    prms = _live_prms(prm_names | {args.scorer} - {None}, calibrators, chat, args)
    policies = [
        live_policy(
            spec,
            prms=prms,
            max_samples=args.max_samples,
            target_confidence=args.target_confidence,
            selection=args.selection,
            scorer=args.scorer,
            floor_samples=args.floor_samples,
            stop_model=stop_model,
        )
        for spec in specs
    ]
    report = run_live(
        chat,
        problems,
        policies,
        source=f"live ({chat.model_name})",
        max_tokens_per_sample=args.max_tokens,
        temperature=args.temperature,
        recorded=recorded,
        launch=args.launch,
    )
    _write_report(report, args.out, plots=False)
    return 0


def _import_game24(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.importing import import_pools, preset_spec

    spec = preset_spec(
        "game24-tot", questions=[args.samples], puzzles=args.puzzles, model=args.model
    )
    _, _, pools = import_pools(spec, args.out)
    print(f"wrote {len(pools)} question pools to {args.out}", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.importing import ScoreField, import_pools, preset_spec

    names = (
        "questions samples records_field id_field question_field gold_field level_field "
        "samples_field join_field text_field answer_field correct_field tokens_field "
        "question_tokens_field finish_reason_field logprob_field model_field "
        "temperature_field logprob_window step_delimiter equivalence verifier puzzles "
        "cumulative_tokens model temperature max_tokens_per_sample"
    )
    given = {name: getattr(args, name) for name in names.split()}
    if args.scores is not None:
        given["scores"] = [ScoreField.parse(text) for text in args.scores]
    spec = preset_spec(args.preset, **given)
    out, header, pools = import_pools(spec, args.out)
    samples = sum(len(p.samples) for p in pools)
    correct = sum(s.correct for p in pools for s in p.samples)
    print(
        f"wrote {len(pools)} questions, {samples} samples ({correct / samples:.3f} correct), "
        f"scorers {header.prms or 'none'}, model {header.model!r} to {out}",
        file=sys.stderr,
    )
    return 0


def _write_report(report: BenchReport, out: Path, *, plots: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    markdown = report_markdown(report)
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    written = [out, out.with_suffix(".md")]
    if plots:
        from langchain_adaptive.evaluation.plots import plot_allocation, plot_tradeoff

        written.append(plot_tradeoff(report, out.with_suffix(".png")))
        written.append(
            plot_allocation(
                report,
                out.with_name(out.stem + "-allocation.png"),
                policies=_allocation_policies(report),
            )
        )
    print(markdown)
    print("wrote " + ", ".join(map(str, written)), file=sys.stderr)


def _allocation_policies(report: BenchReport) -> list[str]:
    """The biggest fixed baseline and each adaptive family's policy at C = 0.9 (or its middle)."""
    names = [s.name for s in report.policies]
    fixed = [s.name for s in report.policies if s.name.endswith("-majority")]
    chosen = fixed[-1:]
    families: dict[str, list[str]] = {}
    for summary in report.policies:
        if not summary.family.startswith("best-of-n"):
            families.setdefault(summary.family, []).append(summary.name)
    for members in families.values():
        at_09 = [m for m in members if m.endswith("@0.9")]
        chosen.append(at_09[0] if at_09 else members[len(members) // 2])
    return [n for n in names if n in chosen]


__all__ = ["add_bench_commands", "load_problems", "run_bench"]
