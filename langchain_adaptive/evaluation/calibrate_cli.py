"""``langchain-adaptive calibrate collect|rescore|fit|eval|fit-probe``: the calibration pipeline.

``collect`` writes Monte-Carlo success rates of solution prefixes (resumable
JSONL); ``rescore`` writes the same records with another PRM's raw scores (no
new rollouts, so PRMs compare on one set of labels); ``fit`` fits one
calibrator on the training questions and saves it; ``eval`` fits every
requested calibrator on the training questions and compares them, the raw PRM
and an optional probe on the held-out questions (JSON, Markdown and a
reliability diagram); ``fit-probe`` trains a probe head on the policy's own
embeddings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from langchain_adaptive.calibration._records import CalibrationRecord
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.inputs import FewShotExample

METHODS = ("quantile", "platt", "isotonic", "binning")


def add_calibrate_commands(commands: Any) -> None:
    """Register ``calibrate`` and its sub-commands on the top-level sub-parsers."""
    calibrate = commands.add_parser("calibrate", help="collect data, fit and evaluate calibrators")
    sub = calibrate.add_subparsers(dest="calibrate_command", required=True)

    collect = sub.add_parser("collect", help="Monte-Carlo success rates of solution prefixes")
    _problem_arguments(collect)
    _model_arguments(collect)
    collect.add_argument("--n-val", type=int, default=4, help="trajectories per question")
    collect.add_argument("--n-mc", type=int, default=4, help="rollouts per prefix")
    collect.add_argument("--max-steps", type=int, default=20, help="prefixes per trajectory")
    collect.add_argument("--max-tokens", type=int, default=64, help="tokens per sample")
    collect.add_argument("--temperature", type=float, default=0.7)
    few_shot_arguments(collect)
    collect.add_argument("--out", type=Path, required=True, help="records JSONL (resumable)")

    rescore = sub.add_parser(
        "rescore", help="the same records with another PRM's raw scores (no new rollouts)"
    )
    rescore.add_argument("--data", type=Path, required=True, help="records JSONL from collect")
    _problem_arguments(rescore)
    _model_arguments(rescore)
    few_shot_arguments(rescore)
    rescore.add_argument("--out", type=Path, required=True, help="rescored records JSONL")

    fit = sub.add_parser("fit", help="fit one calibrator on the training questions and save it")
    _data_arguments(fit)
    fit.add_argument("--method", choices=METHODS, default="quantile")
    fit.add_argument("--conformal-coverage", type=float, default=0.9, help="quantile only")
    _select_argument(fit)
    fit.add_argument("--out", type=Path, required=True, help="directory to save to")

    evaluate = sub.add_parser("eval", help="compare calibrators on held-out questions")
    _data_arguments(evaluate)
    evaluate.add_argument(
        "--fit", default=",".join(METHODS), help=f"methods to fit on train ({','.join(METHODS)})"
    )
    evaluate.add_argument(
        "--calibrator", action="append", default=[], metavar="NAME=DIR", help="a saved one"
    )
    evaluate.add_argument("--conformal-coverage", type=float, default=0.9)
    _select_argument(evaluate)
    evaluate.add_argument("--probe", type=Path, default=None, help="a saved probe head")
    evaluate.add_argument(
        "--fit-embedding",
        action="store_true",
        help="also fit the quantile calibrator with the policy's embedding of each prefix "
        "as extra features (row quantile+embedding; embeds every record)",
    )
    evaluate.add_argument("--dims", type=int, default=16, help="embedding components kept")
    evaluate.add_argument(
        "--reference",
        default=None,
        help="row to compare Brier scores against (default: the best baseline)",
    )
    evaluate.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        help="question resamples of the Brier intervals (0: none)",
    )
    _problem_arguments(evaluate)
    _model_arguments(evaluate, prm=False)
    evaluate.add_argument("--out", type=Path, required=True, help="report JSON (.md, .png beside)")

    probe = sub.add_parser("fit-probe", help="train a probe head on the policy's embeddings")
    _data_arguments(probe)
    _problem_arguments(probe)
    _model_arguments(probe, prm=False)
    probe.add_argument("--dims", type=int, default=16, help="principal components kept")
    probe.add_argument(
        "--with-score",
        action="store_true",
        help="the head also reads the PRM's raw score (ProbePRM(prm=...) supplies it)",
    )
    probe.add_argument("--conformal-coverage", type=float, default=0.9)
    _select_argument(probe)
    probe.add_argument("--out", type=Path, required=True, help="directory to save the head to")


def _select_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--select-by-cv",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="quantile head: choose hidden units, weight decay and features by "
        "cross-validation over the training questions (default: on)",
    )


def _problem_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("questions (--dataset overrides --suite)")
    group.add_argument(
        "--suite", default="arithmetic", choices=["arithmetic"], help="the seeded arithmetic suite"
    )
    group.add_argument("--per-level", type=int, default=5, help="suite questions per level")
    group.add_argument("--suite-seed", type=int, default=0)
    group.add_argument("--levels", default=None, help="comma-separated suite levels (default: all)")
    group.add_argument("--dataset", type=Path, default=None, help="JSONL with question and gold")


def few_shot_arguments(parser: argparse.ArgumentParser) -> None:
    """``--few-shot K`` and ``--few-shot-seed``: worked examples shown before each question."""
    group = parser.add_argument_group("few-shot prompt")
    group.add_argument(
        "--few-shot",
        type=int,
        default=0,
        metavar="K",
        help="show K worked examples a level of the suite (drawn at --few-shot-seed) before "
        "each question, as earlier chat turns; questions equal to one are left out",
    )
    group.add_argument("--few-shot-seed", type=int, default=3)


def few_shot_examples(
    args: argparse.Namespace, problems: list[Problem]
) -> tuple[list[FewShotExample], list[Problem]]:
    """The ``--few-shot`` examples, and ``problems`` without the questions they show."""
    from langchain_adaptive.evaluation.datasets import (
        _question_key,
        arithmetic_suite,
        worked_examples,
    )

    if args.few_shot <= 0:
        return [], problems
    levels = tuple(dict.fromkeys(p.level for p in problems if p.level is not None))
    examples = worked_examples(
        arithmetic_suite(args.few_shot, seed=args.few_shot_seed, levels=levels)
    )
    shown = {_question_key(e.question) for e in examples}
    kept = [p for p in problems if _question_key(p.question) not in shown]
    if len(kept) < len(problems):
        print(f"left out {len(problems) - len(kept)} question(s) shown as worked examples")
    return examples, kept


def _model_arguments(parser: argparse.ArgumentParser, *, prm: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help="GGUF path or repo id (default: bundled)")
    group.add_argument("--model-file", default=None)
    group.add_argument("--n-gpu-layers", type=int, default=0)
    group.add_argument("--threads", type=int, default=None)
    group.add_argument("--seed", type=int, default=0, help="sampling seed")
    if prm:
        group.add_argument(
            "--prm",
            choices=["judge", "confidence"],
            default="judge",
            help="PRM to calibrate: the model as its own judge, or its token confidence",
        )


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="records JSONL from collect")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="held-out questions")
    parser.add_argument("--split-seed", type=int, default=0)


def run_calibrate(args: argparse.Namespace) -> int:
    """Dispatch a ``calibrate`` sub-command."""
    handlers = {
        "collect": _collect,
        "rescore": _rescore,
        "fit": _fit,
        "eval": _eval,
        "fit-probe": _fit_probe,
    }
    return handlers[args.calibrate_command](args)


# -- sub-commands ---------------------------------------------------------------------


def _collect(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.collect import collect_calibration_data

    chat = _chat_model(args)
    examples, problems = few_shot_examples(args, _problems(args))
    records = collect_calibration_data(
        chat,
        _prm(args, chat, examples),
        problems,
        out=args.out,
        examples=examples,
        n_val=args.n_val,
        n_mc=args.n_mc,
        max_steps=args.max_steps,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
    )
    print(f"{len(records)} records in {args.out}")
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from langchain_adaptive.evaluation.collect import read_records, rescore_records

    chat = _chat_model(args)
    problems = _problems(args)
    examples, _ = few_shot_examples(args, problems)
    records = rescore_records(
        read_records(args.data),
        {p.id: p.question for p in problems},
        _prm(args, chat, examples),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text("".join(r.model_dump_json() + "\n" for r in records))
    partial.replace(args.out)
    print(f"{len(records)} records rescored by the {args.prm} PRM in {args.out}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    train, _ = _split(args)
    calibrator = _new_calibrator(args.method, args.conformal_coverage, args.select_by_cv)
    calibrator.metadata = {"data": args.data.name, "train_questions": _questions(train)}
    calibrator.fit_records(train)
    calibrator.save(args.out)
    print(f"fitted {args.method} on {len(train)} records; saved to {args.out}")
    if getattr(calibrator, "cv_results", None):
        print(f"cross-validation chose {_chosen(calibrator)}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from langchain_adaptive.calibration._base import Calibrator
    from langchain_adaptive.calibration.metrics import (
        evaluate,
        reliability_diagram,
        report_markdown,
    )

    train, test = _split(args)
    entries: dict[str, Any] = {"raw": None}
    methods = [m for m in args.fit.split(",") if m]
    for method in methods:
        if method not in METHODS:
            raise SystemExit(f"error: unknown method {method!r}; choose from {METHODS}")
    for method in methods:
        calibrator = _new_calibrator(method, args.conformal_coverage, args.select_by_cv)
        entries[method] = calibrator.fit_records(train)
    for spec in args.calibrator:
        name, _, directory = spec.partition("=")
        entries[name] = Calibrator.load(directory)
    # The paper's calibrator with the policy's embedding as its extra feature.
    embedding_head = (
        _fit_head(args, train, uses_score=True, dims=args.dims) if args.fit_embedding else None
    )
    if embedding_head is not None:
        entries["quantile+embedding"] = _head_predictions(args, embedding_head, test, "quantile")
    if args.probe is not None:
        from langchain_adaptive.calibration._probe import ProbeHead

        entries["probe"] = _head_predictions(args, ProbeHead.load(args.probe), test, "probe")
    report = evaluate(entries, test, reference=args.reference, bootstrap=args.bootstrap)
    fitted = dict(entries)
    if embedding_head is not None:
        fitted["quantile+embedding"] = embedding_head.calibrator
    payload = {
        "data": str(args.data),
        "train_records": len(train),
        "train_questions": _questions(train),
        "test_fraction": args.test_fraction,
        "split_seed": args.split_seed,
        "cross_validation": {
            name: _cv_summary(calibrator)
            for name, calibrator in fitted.items()
            if getattr(calibrator, "cv_results", None)
        },
        "report": report.model_dump(mode="json"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    markdown = report_markdown(report)
    args.out.with_suffix(".md").write_text(markdown + "\n")
    try:
        reliability_diagram(report, args.out.with_suffix(".png"))
    except ImportError:
        print("matplotlib not installed: no reliability diagram", file=sys.stderr)
    print(markdown)
    return 0


def _fit_probe(args: argparse.Namespace) -> int:
    train, _ = _split(args)
    head = _fit_head(args, train, uses_score=args.with_score, dims=args.dims)
    head.save(args.out)
    print(f"fitted a probe head on {len(train)} records; saved to {args.out}")
    if head.calibrator.cv_results:
        print(f"cross-validation chose {_chosen(head.calibrator)}")
    return 0


# -- helpers ----------------------------------------------------------------------------


def _chat_model(args: argparse.Namespace) -> Any:
    from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, default_threads

    return ChatLlamaCpp(
        model=args.model,
        model_file=args.model_file,
        n_gpu_layers=args.n_gpu_layers,
        n_threads=args.threads or default_threads(),
        seed=args.seed,
    )


def _prm(args: argparse.Namespace, chat: Any, examples: list[FewShotExample]) -> Any:
    """The ``--prm`` named, reading ``chat``; the confidence PRM sees the policy's prompt."""
    from langchain_adaptive._prm_factory import make_prm

    prompt: dict[str, Any] = {"examples": examples} if args.prm == "confidence" else {}
    return make_prm(args.prm, chat=chat, **prompt)


def _policy_name(args: argparse.Namespace) -> str:
    from langchain_adaptive.integrations.llamacpp import resolve_model_path

    return resolve_model_path(args.model, filename=args.model_file).name


def _problems(args: argparse.Namespace) -> list[Problem]:
    from langchain_adaptive.evaluation.datasets import arithmetic_suite, load_jsonl

    if args.dataset is not None:
        return load_jsonl(args.dataset)
    if args.suite == "arithmetic":
        levels = {"levels": tuple(args.levels.split(","))} if args.levels else {}
        return arithmetic_suite(args.per_level, seed=args.suite_seed, **levels)
    raise SystemExit("error: pass --suite arithmetic or --dataset PATH to name the questions")


def _split(args: argparse.Namespace) -> tuple[list[CalibrationRecord], list[CalibrationRecord]]:
    from langchain_adaptive.calibration.metrics import split_by_question
    from langchain_adaptive.evaluation.collect import read_records

    return split_by_question(read_records(args.data), args.test_fraction, args.split_seed)


def _questions(records: list[CalibrationRecord]) -> int:
    return len({r.question_id for r in records})


def _cv_summary(calibrator: Any) -> dict[str, Any]:
    return {
        "chosen": _chosen(calibrator),
        "results": [
            {"candidate": params, "objective": score} for params, score in calibrator.cv_results
        ],
    }


def _chosen(calibrator: Any) -> dict[str, Any]:
    """The hyper-parameters a ``select_by_cv`` fit settled on."""
    return {name: getattr(calibrator, name) for name in calibrator.cv_grid}


def _new_calibrator(method: str, conformal_coverage: float | None, select_by_cv: bool) -> Any:
    from langchain_adaptive.calibration._baselines import (
        HistogramBinningCalibrator,
        IsotonicCalibrator,
        PlattCalibrator,
    )

    if method == "quantile":
        from langchain_adaptive.calibration._quantile import QuantileCalibrator

        return QuantileCalibrator(
            seed=0, conformal_coverage=conformal_coverage, select_by_cv=select_by_cv
        )
    return {
        "platt": PlattCalibrator,
        "isotonic": IsotonicCalibrator,
        "binning": HistogramBinningCalibrator,
    }[method]()


def _fit_head(
    args: argparse.Namespace, train: list[CalibrationRecord], *, uses_score: bool, dims: int
) -> Any:
    """A :class:`ProbeHead` fitted on the policy's embeddings of the training records."""
    from langchain_adaptive.calibration._probe import ProbeHead
    from langchain_adaptive.calibration._quantile import QuantileCalibrator

    head = ProbeHead(
        dims=dims,
        uses_score=uses_score,
        calibrator=QuantileCalibrator(
            seed=0, conformal_coverage=args.conformal_coverage, select_by_cv=args.select_by_cv
        ),
        metadata={"policy": _policy_name(args), "data": args.data.name},
    )
    return head.fit(
        _embed_records(args, train),
        [r.features for r in train],
        [r.successes for r in train],
        [r.trials for r in train],
        raw_scores=[r.raw_score for r in train] if uses_score else None,
        groups=[r.question_id for r in train],
    )


def _embed_records(args: argparse.Namespace, records: list[CalibrationRecord]) -> list[list[float]]:
    from langchain_adaptive.integrations.llamacpp import LlamaCppEmbedder
    from langchain_adaptive.integrations.llamacpp._probe import probe_text

    questions = {p.id: p.question for p in _problems(args)}
    missing = sorted({r.question_id for r in records} - set(questions))
    if missing:
        raise SystemExit(
            f"error: {len(missing)} question id(s) in {args.data} are not in the question "
            f"source (e.g. {missing[0]!r}); pass the --suite/--dataset used to collect"
        )
    # One embedder per run: its cache serves records embedded for an earlier row.
    key = (args.model, args.model_file, args.n_gpu_layers, args.threads)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = LlamaCppEmbedder(
            args.model,
            model_file=args.model_file,
            n_gpu_layers=args.n_gpu_layers,
            n_threads=args.threads,
            cache_size=100_000,
        )
    return _EMBEDDERS[key].embed([probe_text(questions[r.question_id], r.prefix) for r in records])


_EMBEDDERS: dict[tuple[Any, ...], Any] = {}


def _head_predictions(
    args: argparse.Namespace, head: Any, records: list[CalibrationRecord], kind: str
) -> Any:
    """A probe head's predictions for ``records``, as a row of the evaluation table."""
    from langchain_adaptive.calibration.metrics import FixedPredictions

    estimates = head.predict(
        _embed_records(args, records),
        [r.features for r in records],
        [r.raw_score for r in records] if head.uses_score else None,
    )
    return FixedPredictions(
        tuple(head.calibrator.levels),
        [list(e.quantiles.values()) for e in estimates],
        kind,
        [e.expected for e in estimates],
    )


__all__ = ["METHODS", "add_calibrate_commands", "run_calibrate"]
