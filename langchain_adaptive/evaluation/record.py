"""Record mode: draw a pool of samples per question once, with every PRM's estimates.

Per question: one ``draw`` call for ``samples`` solutions (a model that samples
``n`` natively evaluates the prompt once), each graded against the gold
answer; then each PRM estimates the question alone and, if asked, scores every
step of every sample. The :class:`~langchain_adaptive.evaluation.pools.QuestionPool`
is appended to the pool file as soon as it is complete.

In-process models (llama.cpp) are driven one question at a time; server
models go through :func:`arecord_pools`, which keeps ``max_concurrency``
questions in flight. A question whose model or PRM call fails is reported in
the summary and skipped; the others are kept, and a rerun retries it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import BaseModel, Field

from langchain_adaptive._jsonl import JsonlAppender, ProgressBar
from langchain_adaptive._sampling import (
    Sample,
    SamplingFailure,
    adraw,
    call_kwargs,
    draw,
    supports_confidence_stop,
)
from langchain_adaptive.answers import (
    DEFAULT_STEP_DELIMITER,
    AnswerEquivalence,
    AnswerExtractor,
    answers_match,
    extract_answer,
    split_steps,
)
from langchain_adaptive.errors import AdaptiveError, ConfigurationError
from langchain_adaptive.evaluation.datasets import Problem, check_gold
from langchain_adaptive.evaluation.pools import (
    PoolHeader,
    QuestionPool,
    RecordedSample,
    read_pools,
)
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION, Question, parse_input
from langchain_adaptive.prm._base import ProcessRewardModel

logger = logging.getLogger(__name__)


class RecordSummary(BaseModel):
    """What a recording run did."""

    path: Path
    recorded: int
    """Questions recorded by this run."""
    already_recorded: int
    """Questions found in the file and skipped."""
    failed: dict[str, str] = Field(default_factory=dict)
    """Question id -> error, for questions skipped because a call failed."""
    generated_tokens: int = 0
    wall_s: float = 0.0


def model_identity(model: BaseLanguageModel) -> str:
    """A name that tells models apart in pool headers (the model's own name when it has one)."""
    for attribute in ("model_name", "model", "model_id", "repo_id"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


@dataclass
class _Recorder:
    """Settings shared by the sync and async drivers, and the per-question work."""

    model: BaseLanguageModel
    prms: Mapping[str, ProcessRewardModel]
    score_steps_with: Collection[str]
    samples: int
    kwargs: dict[str, Any]
    instruction: str | None
    system_prompt: str | None
    step_delimiter: str
    answer_extractor: AnswerExtractor
    equivalent: AnswerEquivalence
    config: RunnableConfig
    confidence_top_k: int | None = None
    """Record each token's confidence from this many top logprobs (``None``: do not)."""
    tokens: int = 0
    recorded: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def question(self, problem: Problem) -> Question:
        return parse_input(
            {"question": problem.question, "gold": problem.gold},
            system_prompt=self.system_prompt,
            instruction=self.instruction,
        )

    def pool(
        self, problem: Problem, samples: Sequence[Sample], elapsed: float, scores: dict[str, Any]
    ) -> QuestionPool:
        per_sample = elapsed / max(1, len(samples))
        recorded = []
        for index, sample in enumerate(samples):
            if self.confidence_top_k and not sample.token_confidences and sample.text:
                raise ConfigurationError(
                    f"sample {index} came without top-k logprobs, so its token confidences "
                    "cannot be recorded (--record-logprobs); use a model that reports them "
                    "(ChatLlamaCpp, or ChatOpenAI(logprobs=True, top_logprobs=K))"
                )
            answer = self.answer_extractor(sample.text)
            recorded.append(
                RecordedSample(
                    text=sample.text,
                    steps=split_steps(sample.text, self.step_delimiter),
                    answer=answer,
                    correct=answer is not None and self.equivalent(problem.gold or "", answer),
                    output_tokens=sample.usage.output_tokens,
                    input_tokens=sample.usage.input_tokens,
                    latency_s=per_sample,
                    finish_reason=sample.finish_reason,
                    step_estimates={
                        name: rows[index] for name, (_, rows) in scores.items() if rows is not None
                    },
                    token_confidences=(sample.token_confidences or [])
                    if self.confidence_top_k
                    else None,
                )
            )
        self.tokens += sum(s.usage.output_tokens for s in samples)
        return QuestionPool(
            id=problem.id,
            question=problem.question,
            gold=problem.gold,
            level=problem.level,
            question_estimates={name: estimate for name, (estimate, _) in scores.items()},
            samples=recorded,
        )

    def steps_of(self, samples: Sequence[Sample]) -> list[list[str]]:
        return [split_steps(s.text, self.step_delimiter) for s in samples]

    def record_one(self, problem: Problem) -> QuestionPool:
        question = self.question(problem)
        started = time.perf_counter()
        samples = draw(self.model, question, self.samples, kwargs=self.kwargs, config=self.config)
        elapsed = time.perf_counter() - started
        scores: dict[str, Any] = {}
        solutions = self.steps_of(samples)
        for name, prm in self.prms.items():
            estimate = prm.estimate_question(question.text, self.config)
            rows = (
                prm.score(question.text, solutions, self.config)
                if name in self.score_steps_with
                else None
            )
            scores[name] = (estimate, rows)
        return self.pool(problem, samples, elapsed, scores)

    async def arecord_one(self, problem: Problem) -> QuestionPool:
        question = self.question(problem)
        started = time.perf_counter()
        samples = await adraw(
            self.model, question, self.samples, kwargs=self.kwargs, config=self.config
        )
        elapsed = time.perf_counter() - started
        scores: dict[str, Any] = {}
        solutions = self.steps_of(samples)
        for name, prm in self.prms.items():
            estimate = await prm.aestimate_question(question.text, self.config)
            rows = (
                await prm.ascore(question.text, solutions, self.config)
                if name in self.score_steps_with
                else None
            )
            scores[name] = (estimate, rows)
        return self.pool(problem, samples, elapsed, scores)

    def settle(
        self,
        problem: Problem,
        outcome: QuestionPool | Exception,
        appender: JsonlAppender,
        bar: ProgressBar,
    ) -> None:
        """Append a finished pool, or note why the question failed; advance the bar."""
        if isinstance(outcome, QuestionPool):
            appender.append(outcome)
            self.recorded += 1
            bar.add("tokens", sum(s.output_tokens for s in outcome.samples))
        else:
            cause = outcome.error if isinstance(outcome, SamplingFailure) else outcome
            message = f"{type(cause).__name__}: {cause}"
            logger.warning("question %s failed and was skipped: %s", problem.id, message)
            self.failed[problem.id] = message
        bar.step()

    def summary(self, path: Path, skipped: int) -> RecordSummary:
        return RecordSummary(
            path=path,
            recorded=self.recorded,
            already_recorded=skipped,
            failed=self.failed,
            generated_tokens=self.tokens,
            wall_s=time.perf_counter() - self.started,
        )


def _logprob_kwargs(model: BaseLanguageModel, top_k: int | None) -> dict[str, Any]:
    """Call kwargs that make ``model`` report each token's top-``top_k`` confidence."""
    if not top_k:
        return {}
    if supports_confidence_stop(model):  # computed in the decode loop: one float a token
        return {"confidence_stop": {"threshold": None, "window": 1, "top_k": top_k}}
    return {"logprobs": True, "top_logprobs": top_k}


_QUESTION_ERRORS = (AdaptiveError, SamplingFailure, ValueError, RuntimeError)
"""Failures that skip one question (reported in the summary) instead of stopping the run."""


def _prepare(
    model: BaseLanguageModel,
    problems: Sequence[Problem],
    out: str | os.PathLike[str],
    *,
    samples: int,
    prms: Mapping[str, ProcessRewardModel] | None,
    score_steps_with: Collection[str] | None,
    model_name: str | None,
    temperature: float | None,
    max_tokens_per_sample: int,
    max_tokens_kwarg: str | None,
    instruction: str | None,
    system_prompt: str | None,
    step_delimiter: str,
    answer_extractor: AnswerExtractor,
    equivalent: AnswerEquivalence,
    settings: Mapping[str, Any] | None,
    config: RunnableConfig | None,
    record_logprobs: int | None = None,
) -> tuple[_Recorder, PoolHeader, Path, list[Problem], int]:
    if samples < 1:
        raise ConfigurationError(f"samples must be >= 1, got {samples}")
    if record_logprobs is not None and record_logprobs < 1:
        raise ConfigurationError(f"record_logprobs must be >= 1, got {record_logprobs}")
    prms = dict(prms or {})
    scorers = set(prms) if score_steps_with is None else set(score_steps_with)
    unknown = sorted(scorers - set(prms))
    if unknown:
        raise ConfigurationError(f"score_steps_with names PRM(s) {unknown} that were not given")
    check_gold(problems)
    header = PoolHeader(
        model=model_name or model_identity(model),
        prms=sorted(prms),
        samples_per_question=samples,
        max_tokens_per_sample=max_tokens_per_sample,
        temperature=temperature,
        settings={
            "instruction": instruction,
            "system_prompt": system_prompt,
            "step_delimiter": step_delimiter,
            "scored_steps": sorted(scorers),
            **({"record_logprobs": record_logprobs} if record_logprobs else {}),
            **(settings or {}),
        },
    )
    path = Path(out)
    done: set[str] = set()
    if path.exists() and path.stat().st_size > 0:
        existing = read_pools(path)
        existing.header.check_matches(header, path)
        done = {pool.id for pool in existing.pools}
    todo = [p for p in problems if p.id not in done]
    recorder = _Recorder(
        model=model,
        prms=prms,
        score_steps_with=scorers,
        samples=samples,
        kwargs={
            **call_kwargs(temperature, max_tokens_per_sample, max_tokens_kwarg),
            **_logprob_kwargs(model, record_logprobs),
        },
        confidence_top_k=record_logprobs,
        instruction=instruction,
        system_prompt=system_prompt,
        step_delimiter=step_delimiter,
        answer_extractor=answer_extractor,
        equivalent=equivalent,
        config=ensure_config(config),
    )
    return recorder, header, path, todo, len(problems) - len(todo)


def record_pools(
    model: BaseLanguageModel,
    problems: Sequence[Problem],
    out: str | os.PathLike[str],
    *,
    samples: int = 16,
    prms: Mapping[str, ProcessRewardModel] | None = None,
    score_steps_with: Collection[str] | None = None,
    model_name: str | None = None,
    temperature: float | None = 0.7,
    max_tokens_per_sample: int = 256,
    max_tokens_kwarg: str | None = "max_tokens",
    instruction: str | None = DEFAULT_INSTRUCTION,
    system_prompt: str | None = None,
    step_delimiter: str = DEFAULT_STEP_DELIMITER,
    answer_extractor: AnswerExtractor = extract_answer,
    equivalent: AnswerEquivalence = answers_match,
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
    config: RunnableConfig | None = None,
    record_logprobs: int | None = None,
) -> RecordSummary:
    """Record ``samples`` solutions per problem (and PRM estimates) into a pool file.

    One question at a time: the right driver for an in-process model. Rerunning
    with the same settings resumes; other settings raise
    :class:`~langchain_adaptive.evaluation.pools.PoolMismatchError`.

    Args:
        model: Any LangChain chat model or completion LLM.
        problems: Questions with gold answers and unique ids.
        out: The pool file (JSONL), created or resumed.
        samples: Solutions drawn per question: the largest N replay can evaluate.
        prms: Name -> PRM; each estimates every question alone.
        score_steps_with: PRM names that also score every step of every sample
            (default: all; judges are costly per step, probes are not).
        model_name: The name stored in the header (default: the model's own).
        settings: Extra facts to store in the header (e.g. the dataset's name).
        record_logprobs: Also store each token's confidence ``C_i`` from the top
            ``record_logprobs`` logprobs (compact: one number a token, not the
            alternatives), so ``deepconf`` replays exactly, early stops included.
            The model must report top-k logprobs (``ChatLlamaCpp`` does when
            asked); a sample without them fails its question.

    Raises:
        ConfigurationError: Bad settings.
        AdaptiveInputError: Problems without gold, or repeated ids.
        PoolMismatchError: ``out`` holds pools recorded with other settings.
    """
    recorder, header, path, todo, skipped = _prepare(**_arguments(locals()))
    with _session(path, header, skipped, len(todo), progress) as (appender, bar):
        for problem in todo:
            try:
                outcome: QuestionPool | Exception = recorder.record_one(problem)
            except _QUESTION_ERRORS as error:
                outcome = error
            recorder.settle(problem, outcome, appender, bar)
    return recorder.summary(path, skipped)


async def arecord_pools(
    model: BaseLanguageModel,
    problems: Sequence[Problem],
    out: str | os.PathLike[str],
    *,
    samples: int = 16,
    prms: Mapping[str, ProcessRewardModel] | None = None,
    score_steps_with: Collection[str] | None = None,
    model_name: str | None = None,
    temperature: float | None = 0.7,
    max_tokens_per_sample: int = 256,
    max_tokens_kwarg: str | None = "max_tokens",
    instruction: str | None = DEFAULT_INSTRUCTION,
    system_prompt: str | None = None,
    step_delimiter: str = DEFAULT_STEP_DELIMITER,
    answer_extractor: AnswerExtractor = extract_answer,
    equivalent: AnswerEquivalence = answers_match,
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
    config: RunnableConfig | None = None,
    max_concurrency: int = 8,
    record_logprobs: int | None = None,
) -> RecordSummary:
    """Async :func:`record_pools` with ``max_concurrency`` questions in flight (for servers)."""
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}")
    arguments = _arguments(locals())
    arguments.pop("max_concurrency")
    recorder, header, path, todo, skipped = _prepare(**arguments)
    gate = asyncio.Semaphore(max_concurrency)

    async def one(problem: Problem, appender: JsonlAppender, bar: ProgressBar) -> None:
        async with gate:
            try:
                outcome: QuestionPool | Exception = await recorder.arecord_one(problem)
            except _QUESTION_ERRORS as error:
                outcome = error
            recorder.settle(problem, outcome, appender, bar)

    with _session(path, header, skipped, len(todo), progress) as (appender, bar):
        await asyncio.gather(*(one(problem, appender, bar) for problem in todo))
    return recorder.summary(path, skipped)


def _arguments(scope: dict[str, Any]) -> dict[str, Any]:
    """The public verbs' arguments, as :func:`_prepare` takes them."""
    arguments = dict(scope)
    model, problems, out = arguments.pop("model"), arguments.pop("problems"), arguments.pop("out")
    arguments.pop("progress")
    return {"model": model, "problems": problems, "out": out, **arguments}


@contextmanager
def _session(
    path: Path,
    header: PoolHeader,
    skipped: int,
    todo: int,
    progress: bool,
    desc: str = "recording",
) -> Iterator[tuple[JsonlAppender, ProgressBar]]:
    """The pool file open for appending (header first when new) and the progress bar."""
    new = not path.exists() or path.stat().st_size == 0
    appender = JsonlAppender(
        path,
        busy_message=f"{path} is being recorded by another run; wait for it or choose "
        "another --out",
    )
    bar = ProgressBar(skipped + todo, skipped, desc=desc, unit="question", enabled=progress)
    try:
        with appender:
            if new:
                appender.append(header)
            yield appender, bar
    finally:
        bar.close()


def score_pools(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    prms: Mapping[str, ProcessRewardModel],
    *,
    progress: bool = True,
    config: RunnableConfig | None = None,
) -> RecordSummary:
    """Score every step of every recorded sample with ``prms``, without drawing again.

    Recording is the expensive part; a PRM trained or calibrated after the
    recording can still score its samples, so replay can select with it and
    run sequential IAS on it. Each PRM scores the question text and the
    recorded steps, exactly what a PRM saw while recording; a question
    estimate already recorded under the same name is kept (IAS budgets on
    it), a missing one is added. The scored pools go to a new file,
    appended a question at a time, so an interrupted run resumes; a question
    whose PRM call fails is reported and left out, and a rerun retries it.

    Raises:
        ConfigurationError: No PRMs, or ``out`` is ``source``.
        PoolMismatchError: ``out`` holds pools scored from other settings.
    """
    if not prms:
        raise ConfigurationError("score_pools needs at least one PRM")
    path = Path(out)
    if path.exists() and path.resolve() == Path(source).resolve():
        raise ConfigurationError(f"write the scored pools to another file than {source}")
    recorded = read_pools(source)
    settings = recorded.header.settings
    header = recorded.header.model_copy(
        update={
            "prms": sorted({*recorded.header.prms, *prms}),
            "settings": {
                **settings,
                "scored_steps": sorted({*settings.get("scored_steps", []), *prms}),
            },
        }
    )
    done: set[str] = set()
    if path.exists() and path.stat().st_size > 0:
        existing = read_pools(path)
        existing.header.check_matches(header, path)
        done = {pool.id for pool in existing.pools}
    todo = [pool for pool in recorded.pools if pool.id not in done]
    scored, failed, started = 0, {}, time.perf_counter()
    run_config = ensure_config(config)
    with _session(path, header, len(done), len(todo), progress, "scoring") as (appender, bar):
        for pool in todo:
            try:
                question = parse_input(pool.question, instruction=None).text
                appender.append(_scored(pool, question, prms, run_config))
                scored += 1
            except _QUESTION_ERRORS as error:
                logger.warning("question %s was not scored: %s", pool.id, error)
                failed[pool.id] = f"{type(error).__name__}: {error}"
            bar.add("samples", len(pool.samples))
            bar.step()
    return RecordSummary(
        path=path,
        recorded=scored,
        already_recorded=len(done),
        failed=failed,
        wall_s=time.perf_counter() - started,
    )


def _scored(
    pool: QuestionPool,
    question: str,
    prms: Mapping[str, ProcessRewardModel],
    config: RunnableConfig,
) -> QuestionPool:
    estimates = dict(pool.question_estimates)
    rows: dict[str, list[Any]] = {}
    for name, prm in prms.items():
        if name not in estimates:
            estimates[name] = prm.estimate_question(question, config)
        rows[name] = list(prm.score(question, [s.steps for s in pool.samples], config))
    samples = [
        sample.model_copy(
            update={
                "step_estimates": {
                    **sample.step_estimates,
                    **{name: scores[index] for name, scores in rows.items()},
                }
            }
        )
        for index, sample in enumerate(pool.samples)
    ]
    return pool.model_copy(update={"question_estimates": estimates, "samples": samples})


__all__ = ["RecordSummary", "arecord_pools", "model_identity", "record_pools", "score_pools"]
