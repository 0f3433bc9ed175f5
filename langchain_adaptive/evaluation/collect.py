"""Calibration data: Monte-Carlo success rates of solution prefixes, collected resumably.

For each problem the data path reads top to bottom:

question → ``n_val`` sampled trajectories (one ``draw`` call, so a model that
samples ``n`` natively evaluates the prompt once) → steps → one PRM call that
scores every prefix of every trajectory and the question alone → for each
prefix k = 0..K: its own 0/1 grade if it is the whole trajectory, else
``n_mc`` rollouts continuing it, graded against the gold answer → one
:class:`~langchain_adaptive.calibration._records.CalibrationRecord` per prefix,
appended to a JSONL file the moment it is known.

Files (``out`` and a sidecar next to it):

- ``out`` (e.g. ``calib.jsonl``): one ``CalibrationRecord`` as JSON per line.
- ``calib.trajectories.jsonl``: one :class:`QuestionTrajectories` per line, the
  sampled trajectories of a question, written before any of its records. A
  rerun continues a half-done question from the same trajectories instead of
  drawing new ones, so the prefixes of one trajectory never mix two samples.

Resuming: on start both files are read; a record whose ``key`` (question id,
trajectory, k) is already written is not computed again, and a question whose
records are all written costs nothing (not even a PRM call). A crash loses at
most the records in flight. Lines that do not parse (typically the truncated
last line of a crash) are skipped with one warning that counts them; they stay
in the file, and a newline is added after a truncated last line so new records
start on their own line. Rerun with the same settings: they are not stored,
and changing ``n_mc`` or the prompt midway mixes two collections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
from collections.abc import (
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel, BaseLanguageModel, BaseLLM
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import BaseModel, Field

from langchain_adaptive._jsonl import JsonlAppender, ProgressBar, read_jsonl_models
from langchain_adaptive._sampling import Sample, SamplingFailure, adraw, call_kwargs, draw
from langchain_adaptive.answers import (
    DEFAULT_STEP_DELIMITER,
    STEP_JOINER,
    AnswerEquivalence,
    AnswerExtractor,
    extract_answer,
    split_steps,
)
from langchain_adaptive.answers import answers_match as default_answers_match
from langchain_adaptive.calibration._records import CalibrationRecord
from langchain_adaptive.errors import AdaptiveError, ConfigurationError, ModelError, PRMError
from langchain_adaptive.evaluation.datasets import Problem, check_gold
from langchain_adaptive.inputs import DEFAULT_INSTRUCTION, FewShotExample, Question, parse_input
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate

logger = logging.getLogger(__name__)

Key = tuple[str, int, int]
"""A record's identity: (question id, trajectory, k)."""

TRAJECTORIES_SUFFIX = ".trajectories.jsonl"
"""The sidecar of ``calib.jsonl`` is ``calib.trajectories.jsonl``."""


class SampledTrajectory(BaseModel):
    """One solution the policy wrote for a question, as drawn."""

    text: str
    output_tokens: int = Field(default=0, ge=0)


class QuestionTrajectories(BaseModel):
    """The ``n_val`` trajectories of one question: a line of the sidecar file."""

    question_id: str
    trajectories: list[SampledTrajectory]


def trajectories_path(out: str | os.PathLike[str]) -> Path:
    """The sidecar file of a records file: ``calib.jsonl`` → ``calib.trajectories.jsonl``."""
    path = Path(out)
    stem = path.name.removesuffix(".jsonl")
    return path.with_name(stem + TRAJECTORIES_SUFFIX)


def read_records(path: str | os.PathLike[str]) -> list[CalibrationRecord]:
    """Read a records file as written by :func:`collect_calibration_data`.

    Lines that do not parse are skipped with one warning that counts them (a
    crash can truncate the last line; everything before it is intact). A key
    written twice keeps its first record.

    Args:
        path: The JSONL file.

    Returns:
        The records in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    records = read_jsonl_models(Path(path), CalibrationRecord)
    unique: dict[Key, CalibrationRecord] = {}
    for record in records:
        unique.setdefault(record.key, record)
    if len(unique) < len(records):
        logger.warning(
            "%s: %d record(s) repeat a key already read; kept the first of each",
            path,
            len(records) - len(unique),
        )
    return list(unique.values())


def rescore_records(
    records: Iterable[CalibrationRecord],
    questions: Mapping[str, str],
    prm: ProcessRewardModel,
) -> list[CalibrationRecord]:
    """The same records with ``raw_score`` from another PRM: compare PRMs on one set of labels.

    The Monte-Carlo success rates (the costly part) are kept; only the PRM is
    run again, one call per question for all its prefixes.

    Args:
        records: Records as read by :func:`read_records`.
        questions: Question text by question id.
        prm: The PRM whose raw scores replace the recorded ones.

    Raises:
        ConfigurationError: A record's question id is not in ``questions``.
    """
    by_question: dict[str, list[CalibrationRecord]] = {}
    for record in records:
        by_question.setdefault(record.question_id, []).append(record)
    missing = sorted(by_question.keys() - questions.keys())
    if missing:
        raise ConfigurationError(
            f"{len(missing)} question id(s) of the records have no question text "
            f"(e.g. {missing[0]!r}); pass the questions the records were collected on"
        )
    rescored: dict[Key, CalibrationRecord] = {}
    for question_id, group in by_question.items():
        solutions = [r.prefix.split(STEP_JOINER) if r.k else [] for r in group]
        for record, row in zip(group, prm.score(questions[question_id], solutions), strict=True):
            raw = row[-1].raw_score if row[-1].raw_score is not None else row[-1].median
            rescored[record.key] = record.model_copy(update={"raw_score": raw})
    return [rescored[r.key] for group in by_question.values() for r in group]


# -- the public verbs ------------------------------------------------------------------


def collect_calibration_data(
    model: BaseLanguageModel,
    prm: ProcessRewardModel,
    problems: Iterable[Problem],
    *,
    out: str | os.PathLike[str],
    n_val: int = 8,
    n_mc: int = 8,
    max_steps: int = 20,
    max_tokens: int = 256,
    temperature: float = 0.7,
    max_concurrency: int = 1,
    pool_trajectories: bool = True,
    step_delimiter: str = DEFAULT_STEP_DELIMITER,
    answer_extractor: AnswerExtractor = extract_answer,
    answers_match: AnswerEquivalence = default_answers_match,
    system_prompt: str | None = None,
    instruction: str | None = DEFAULT_INSTRUCTION,
    examples: Sequence[FewShotExample] = (),
    max_tokens_kwarg: str | None = "max_tokens",
    progress: bool = True,
    config: RunnableConfig | None = None,
) -> list[CalibrationRecord]:
    """Collect Monte-Carlo success rates of solution prefixes, appending them to ``out``.

    For each problem: draw ``n_val`` trajectories in one call; split each into
    steps; for every prefix k = 0..min(steps, ``max_steps``) record the PRM's raw
    score and how often rollouts from it reach the gold answer. The prefix that
    is the whole trajectory takes its own 0/1 grade (one trial, no rollouts);
    any other prefix gets ``n_mc`` rollouts. Rollouts continue the prefix: a
    chat model receives the question's messages and
    ``AIMessage(prefix + STEP_JOINER)`` as an assistant prefill (the model must
    continue a final AI message, as ``ChatLlamaCpp`` does; for vLLM's OpenAI
    server pass ``extra_body={"continue_final_message": True,
    "add_generation_prompt": False}``); a completion LLM receives the prompt
    text followed by the prefix. Each rollout is graded on prefix plus
    continuation, so an answer already stated in the prefix counts.

    The question alone (k = 0) is shared by every trajectory, so its rollouts
    run once and give one record, ``trajectory=0`` (its ``num_steps`` and
    ``trajectory_correct`` are trajectory 0's). With ``pool_trajectories`` the
    ``n_val`` trajectories count as k = 0 rollouts too (they are draws from the
    same question with the same settings): ``trials = n_mc + n_val``. The k = 0
    record's ``tokens`` include the trajectories' tokens, so the file's tokens
    add up to everything generated.

    Records append to ``out`` as they finish (one flushed line each) and a
    rerun skips every key already written; see the module docstring for the
    files and resume rules.

    Args:
        model: The policy: any LangChain chat model or completion LLM.
        prm: The PRM whose raw scores are being calibrated; called once per question.
        problems: Problems with gold answers and unique ids.
        out: The records file (created with its folder if missing).
        n_val: Trajectories sampled per question.
        n_mc: Rollouts per prefix that is not a whole trajectory.
        max_steps: Longest prefix recorded, in steps. ``0`` records the question
            alone: one record per question from ``n_val + n_mc`` samples, the
            cheapest collection and all that IAS budgets on.
        max_tokens: Generated-token cap of each trajectory and rollout.
        temperature: Sampling temperature of trajectories and rollouts.
        max_concurrency: Questions in flight at once (threads here, tasks in
            :func:`acollect_calibration_data`). Keep 1 for an in-process model,
            whose calls are serialised anyway and which reuses the KV cache of
            consecutive prefixes; raise it for a server.
        pool_trajectories: Count the trajectories as k = 0 rollouts.
        step_delimiter: Regex that splits a solution into steps.
        answer_extractor: Final answer of a text (``None`` when there is none).
        answers_match: Whether ``(gold, answer)`` are equivalent.
        system_prompt: Optional system message, as in ``parse_input``.
        instruction: Appended to the question, as in ``parse_input``.
        examples: Worked examples shown before each question, as in ``parse_input``
            (the policy that is calibrated is the few-shot one).
        max_tokens_kwarg: Name of the model's generated-token cap keyword
            (``None`` to pass none).
        progress: Show a tqdm bar (questions, ETA, generated tokens) when tqdm
            is installed.
        config: Runnable config for every model and PRM call (callbacks, tags).

    Returns:
        The records of ``problems`` (those resumed from ``out`` and the new
        ones), ordered by problem, trajectory and k.

    Raises:
        AdaptiveInputError: A problem has no gold answer or ids repeat (before
            any work).
        ConfigurationError: A setting is out of range or ``model`` is neither
            a chat model nor an LLM.
        PRMError: The PRM failed; records already written stay on disk.
        ModelError: The policy model failed; records already written stay on disk.

    Example:
        ```python
        from langchain_adaptive.evaluation.collect import collect_calibration_data
        from langchain_adaptive.evaluation.datasets import arithmetic_suite
        from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp
        from langchain_adaptive.prm._judge import LLMJudgePRM

        policy = ChatLlamaCpp()
        records = collect_calibration_data(
            policy,
            LLMJudgePRM(model=policy),
            arithmetic_suite(1, seed=0, levels=("add1",)),
            out="calib.jsonl",
            n_val=2,
            n_mc=2,
            max_tokens=48,
        )
        print(len(records), records[0].success_rate)
        ```
    """
    job = _Job.create(
        model,
        prm,
        problems,
        out=out,
        n_val=n_val,
        n_mc=n_mc,
        max_steps=max_steps,
        max_tokens=max_tokens,
        temperature=temperature,
        max_concurrency=max_concurrency,
        pool_trajectories=pool_trajectories,
        step_delimiter=step_delimiter,
        answer_extractor=answer_extractor,
        answers_match=answers_match,
        system_prompt=system_prompt,
        instruction=instruction,
        examples=examples,
        max_tokens_kwarg=max_tokens_kwarg,
        progress=progress,
        config=config,
    )
    with job.opened() as todo:
        if max_concurrency == 1:
            for problem in todo:
                job.drive(problem)
        else:
            job.drive_threads(todo, max_concurrency)
    return job.result()


async def acollect_calibration_data(
    model: BaseLanguageModel,
    prm: ProcessRewardModel,
    problems: Iterable[Problem],
    *,
    out: str | os.PathLike[str],
    n_val: int = 8,
    n_mc: int = 8,
    max_steps: int = 20,
    max_tokens: int = 256,
    temperature: float = 0.7,
    max_concurrency: int = 1,
    pool_trajectories: bool = True,
    step_delimiter: str = DEFAULT_STEP_DELIMITER,
    answer_extractor: AnswerExtractor = extract_answer,
    answers_match: AnswerEquivalence = default_answers_match,
    system_prompt: str | None = None,
    instruction: str | None = DEFAULT_INSTRUCTION,
    examples: Sequence[FewShotExample] = (),
    max_tokens_kwarg: str | None = "max_tokens",
    progress: bool = True,
    config: RunnableConfig | None = None,
) -> list[CalibrationRecord]:
    """Async twin of :func:`collect_calibration_data`, for server models.

    Up to ``max_concurrency`` questions run at once (an ``asyncio.Semaphore``);
    within a question the calls go one after another, each call's ``n``
    samples concurrently (``abatch``), so at most about
    ``max_concurrency * max(n_val, n_mc)`` requests are in flight. Appends are
    serialised; the first failure cancels the other questions, whose finished
    records stay on disk.
    """
    job = _Job.create(
        model,
        prm,
        problems,
        out=out,
        n_val=n_val,
        n_mc=n_mc,
        max_steps=max_steps,
        max_tokens=max_tokens,
        temperature=temperature,
        max_concurrency=max_concurrency,
        pool_trajectories=pool_trajectories,
        step_delimiter=step_delimiter,
        answer_extractor=answer_extractor,
        answers_match=answers_match,
        system_prompt=system_prompt,
        instruction=instruction,
        examples=examples,
        max_tokens_kwarg=max_tokens_kwarg,
        progress=progress,
        config=config,
    )
    with job.opened() as todo:
        await job.adrive_tasks(todo, max_concurrency)
    return job.result()


# -- the plan of one question (no I/O: shared by the sync and async drivers) ----------


@dataclass(frozen=True)
class _Draw:
    """Ask the policy for ``n`` samples of ``question``."""

    question: Question
    n: int


@dataclass(frozen=True)
class _Score:
    """Ask the PRM to score ``solutions`` (each a list of steps) of ``question``."""

    question: str
    solutions: list[list[str]]


_Request = _Draw | _Score
_Plan = Generator[_Request, Any, None]


@dataclass(frozen=True)
class _Settings:
    n_val: int
    n_mc: int
    max_steps: int
    pool_trajectories: bool
    step_delimiter: str
    answer_extractor: AnswerExtractor
    answers_match: AnswerEquivalence
    system_prompt: str | None
    instruction: str | None
    examples: tuple[FewShotExample, ...]


@dataclass(frozen=True)
class _Trajectory:
    steps: list[str]
    output_tokens: int
    correct: bool

    @property
    def last_k(self) -> int:
        return len(self.steps)


def _expected_keys(
    problem_id: str, trajectories: Sequence[_Trajectory], max_steps: int
) -> set[Key]:
    """Every key a question's records will have, given its trajectories."""
    keys: set[Key] = {(problem_id, 0, 0)}
    for index, trajectory in enumerate(trajectories):
        for k in range(1, min(trajectory.last_k, max_steps) + 1):
            keys.add((problem_id, index, k))
    return keys


def _plan(problem: Problem, settings: _Settings, store: _Store) -> _Plan:
    """The requests of one question, in order; records go to ``store`` as they finish.

    A generator of requests (``x = yield request``) so one plan serves both the
    sync and the async driver.
    """
    gold = str(problem.gold)
    question = parse_input(
        {"question": problem.question, "gold": gold},
        system_prompt=settings.system_prompt,
        instruction=settings.instruction,
        examples=settings.examples,
    )

    def grade(text: str) -> bool:
        answer = settings.answer_extractor(text)
        return answer is not None and settings.answers_match(gold, answer)

    saved = store.trajectories.get(problem.id)
    if saved is None:
        samples: list[Sample] = yield _Draw(question, settings.n_val)
        saved = QuestionTrajectories(
            question_id=problem.id,
            trajectories=[
                SampledTrajectory(text=s.text, output_tokens=s.usage.output_tokens) for s in samples
            ],
        )
        store.save_trajectories(saved)
    trajectories = [
        _Trajectory(
            steps=split_steps(t.text, settings.step_delimiter),
            output_tokens=t.output_tokens,
            correct=grade(t.text),
        )
        for t in saved.trajectories
    ]
    if not trajectories:
        raise ModelError(f"the policy returned no trajectories for problem {problem.id!r}")
    todo = {
        key
        for key in _expected_keys(problem.id, trajectories, settings.max_steps)
        if key not in store.records
    }
    if not todo:
        return

    solutions: list[list[str]] = [[]]
    if settings.max_steps > 0:
        solutions += [t.steps[: settings.max_steps] for t in trajectories]
    scores: PRMScores = yield _Score(question.text, solutions)
    where = f"problem {problem.id!r}"

    def record(
        trajectory: int, k: int, successes: int, trials: int, tokens: int, raw: SuccessEstimate
    ) -> CalibrationRecord:
        source = trajectories[trajectory]
        return CalibrationRecord(
            question_id=problem.id,
            trajectory=trajectory,
            k=k,
            num_steps=source.last_k,
            prefix=STEP_JOINER.join(source.steps[:k]),
            complete=k > 0 and k == source.last_k,
            raw_score=_raw_score(raw, f"{where}, trajectory {trajectory}, k={k}"),
            successes=successes,
            trials=trials,
            trajectory_correct=source.correct,
            tokens=tokens,
        )

    # Whole trajectories first: they cost nothing, so a crash keeps them.
    for index, trajectory in enumerate(trajectories):
        k = trajectory.last_k
        if 0 < k <= settings.max_steps and (problem.id, index, k) in todo:
            won = int(trajectory.correct)
            store.append(record(index, k, won, 1, 0, scores[index + 1][k - 1]))

    if (problem.id, 0, 0) in todo:
        rollouts: list[Sample] = yield _Draw(question, settings.n_mc)
        successes = sum(grade(r.text) for r in rollouts)
        trials = len(rollouts)
        tokens = sum(r.usage.output_tokens for r in rollouts)
        tokens += sum(t.output_tokens for t in trajectories)
        if settings.pool_trajectories:
            successes += sum(t.correct for t in trajectories)
            trials += len(trajectories)
        store.append(record(0, 0, successes, trials, tokens, scores[0][0]))

    for index, trajectory in enumerate(trajectories):
        for k in range(1, min(trajectory.last_k, settings.max_steps) + 1):
            if k == trajectory.last_k or (problem.id, index, k) not in todo:
                continue
            prefix = STEP_JOINER.join(trajectory.steps[:k]) + STEP_JOINER
            rollouts = yield _Draw(_continuing(question, prefix), settings.n_mc)
            successes = sum(grade(prefix + r.text) for r in rollouts)
            tokens = sum(r.usage.output_tokens for r in rollouts)
            estimate = scores[index + 1][k - 1]
            store.append(record(index, k, successes, len(rollouts), tokens, estimate))


def _continuing(question: Question, prefix: str) -> Question:
    """The question with ``prefix`` as a partial assistant answer to continue.

    Chat models get it as a final ``AIMessage`` (a prefill); completion LLMs
    read ``Question.prompt_text()``, which joins it after the prompt.
    """
    return Question(
        text=question.text, messages=[*question.messages, AIMessage(prefix)], gold=question.gold
    )


def _raw_score(estimate: SuccessEstimate, where: str) -> float:
    """The PRM's raw probability (its median when it reports none), checked."""
    value = estimate.raw_score if estimate.raw_score is not None else estimate.median
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise PRMError(f"the PRM's raw score for {where} is {value!r}, not a probability")
    return float(value)


# -- files -----------------------------------------------------------------------------


class _Store:
    """The records file and its trajectories sidecar: what is done, and appends."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.sidecar = trajectories_path(out)
        self.records: dict[Key, CalibrationRecord] = {}
        self.trajectories: dict[str, QuestionTrajectories] = {}
        self.written = 0
        self._appender = JsonlAppender(
            out,
            self.sidecar,
            busy_message=f"{out} is being written by another collection run; wait for it "
            "or choose another --out",
        )
        self.on_append: Callable[[], None] = lambda: None
        """Called after each record is written (the progress bar's counter)."""
        for record in read_records(out) if out.exists() else []:
            self.records[record.key] = record
        self.question_ids = {key[0] for key in self.records}
        if self.sidecar.exists():
            for entry in read_jsonl_models(self.sidecar, QuestionTrajectories):
                self.trajectories.setdefault(entry.question_id, entry)

    def open(self) -> None:
        self._appender.open()

    def close(self) -> None:
        self._appender.close()

    def append(self, record: CalibrationRecord) -> None:
        self._appender.append(record)
        self.records[record.key] = record
        self.written += 1
        self.on_append()

    def save_trajectories(self, entry: QuestionTrajectories) -> None:
        self._appender.append(entry, self.sidecar)
        self.trajectories[entry.question_id] = entry


# -- the job: settings, files, drivers -------------------------------------------------

_T = TypeVar("_T")


class _Stopped(Exception):
    """Another question failed; this one stops between requests."""


@dataclass
class _Job:
    model: BaseLanguageModel
    prm: ProcessRewardModel
    problems: list[Problem]
    settings: _Settings
    kwargs: dict[str, Any]
    config: RunnableConfig
    store: _Store
    progress_enabled: bool
    progress: ProgressBar | None = None

    @classmethod
    def create(
        cls,
        model: BaseLanguageModel,
        prm: ProcessRewardModel,
        problems: Iterable[Problem],
        *,
        out: str | os.PathLike[str],
        n_val: int,
        n_mc: int,
        max_steps: int,
        max_tokens: int,
        temperature: float,
        max_concurrency: int,
        pool_trajectories: bool,
        step_delimiter: str,
        answer_extractor: AnswerExtractor,
        answers_match: AnswerEquivalence,
        system_prompt: str | None,
        instruction: str | None,
        examples: Sequence[FewShotExample],
        max_tokens_kwarg: str | None,
        progress: bool,
        config: RunnableConfig | None,
    ) -> _Job:
        """Check everything that can be checked before any work, then read ``out``."""
        if not isinstance(model, BaseChatModel | BaseLLM):
            raise ConfigurationError(
                f"model must be a LangChain BaseChatModel or BaseLLM, got {type(model).__name__}"
            )
        if not isinstance(prm, ProcessRewardModel):
            raise ConfigurationError(f"prm must be a ProcessRewardModel, got {type(prm).__name__}")
        for name, value, least in (
            ("n_val", n_val, 1),
            ("n_mc", n_mc, 1),
            ("max_steps", max_steps, 0),
            ("max_tokens", max_tokens, 1),
            ("max_concurrency", max_concurrency, 1),
        ):
            if value < least:
                raise ConfigurationError(f"{name} must be at least {least}, got {value}")
        problem_list = [
            p if isinstance(p, Problem) else Problem.model_validate(p) for p in problems
        ]
        check_gold(problem_list)
        settings = _Settings(
            n_val=n_val,
            n_mc=n_mc,
            max_steps=max_steps,
            pool_trajectories=pool_trajectories,
            step_delimiter=step_delimiter,
            answer_extractor=answer_extractor,
            answers_match=answers_match,
            system_prompt=system_prompt,
            instruction=instruction,
            examples=tuple(examples),
        )
        return cls(
            model=model,
            prm=prm,
            problems=problem_list,
            settings=settings,
            kwargs=call_kwargs(temperature, max_tokens, max_tokens_kwarg),
            config=ensure_config(config),
            store=_Store(Path(out)),
            progress_enabled=progress,
        )

    @contextlib.contextmanager
    def opened(self) -> Iterator[list[Problem]]:
        """Open the files and the bar; yield the problems that still have work."""
        todo = [p for p in self.problems if not self._finished(p)]
        if len(todo) < len(self.problems):
            logger.info(
                "%s: %d of %d question(s) already collected; resuming the rest",
                self.store.out,
                len(self.problems) - len(todo),
                len(self.problems),
            )
        self.progress = ProgressBar(
            len(self.problems),
            len(self.problems) - len(todo),
            desc="calibration data",
            unit="question",
            enabled=self.progress_enabled,
        )
        progress = self.progress
        self.store.on_append = lambda: progress.add("records")
        self.store.open()
        try:
            yield todo
        finally:
            self.store.close()
            self.progress.close()
            logger.info(
                "%s: wrote %d record(s), generated %d token(s)",
                self.store.out,
                self.store.written,
                self.progress.counts.get("tokens", 0),
            )

    def _finished(self, problem: Problem) -> bool:
        """Whether ``problem`` needs no more work (no model or PRM call).

        A question with records but no saved trajectories (the sidecar was
        deleted or is from another run) counts as finished: drawing new
        trajectories would mix two samples under the same keys.
        """
        saved = self.store.trajectories.get(problem.id)
        if saved is None:
            if problem.id in self.store.question_ids:
                logger.warning(
                    "%s: question %r has records but no trajectories in %s; leaving it as "
                    "it is (delete its records to collect it again)",
                    self.store.out,
                    problem.id,
                    self.store.sidecar,
                )
                return True
            return False
        trajectories = [
            _Trajectory(
                steps=split_steps(t.text, self.settings.step_delimiter),
                output_tokens=t.output_tokens,
                correct=False,
            )
            for t in saved.trajectories
        ]
        keys = _expected_keys(problem.id, trajectories, self.settings.max_steps)
        return bool(trajectories) and all(key in self.store.records for key in keys)

    def result(self) -> list[CalibrationRecord]:
        order = {p.id: i for i, p in enumerate(self.problems)}
        chosen = [r for r in self.store.records.values() if r.question_id in order]
        return sorted(chosen, key=lambda r: (order[r.question_id], r.trajectory, r.k))

    # -- executing requests ------------------------------------------------------------

    def _draw(self, request: _Draw) -> list[Sample]:
        with _model_errors():
            samples = draw(
                self.model, request.question, request.n, kwargs=self.kwargs, config=self.config
            )
        self._count(samples)
        return samples

    async def _adraw(self, request: _Draw) -> list[Sample]:
        with _model_errors():
            samples = await adraw(
                self.model, request.question, request.n, kwargs=self.kwargs, config=self.config
            )
        self._count(samples)
        return samples

    def _count(self, samples: Sequence[Sample]) -> None:
        assert self.progress is not None
        self.progress.add("tokens", sum(s.usage.output_tokens for s in samples))

    # -- drivers -----------------------------------------------------------------------

    def drive(self, problem: Problem, stop: threading.Event | None = None) -> None:
        """Run one question's plan with blocking calls."""
        plan = _plan(problem, self.settings, self.store)
        answer: Any = None
        while True:
            try:
                request = plan.send(answer)
            except StopIteration:
                break
            if stop is not None and stop.is_set():
                plan.close()
                raise _Stopped
            if isinstance(request, _Draw):
                answer = self._draw(request)
            else:
                answer = self.prm.score(request.question, request.solutions, self.config)
        assert self.progress is not None
        self.progress.step()

    async def adrive(self, problem: Problem) -> None:
        """Run one question's plan with async calls."""
        plan = _plan(problem, self.settings, self.store)
        answer: Any = None
        while True:
            try:
                request = plan.send(answer)
            except StopIteration:
                break
            if isinstance(request, _Draw):
                answer = await self._adraw(request)
            else:
                answer = await self.prm.ascore(request.question, request.solutions, self.config)
        assert self.progress is not None
        self.progress.step()

    def drive_threads(self, problems: Sequence[Problem], workers: int) -> None:
        """Run questions on ``workers`` threads; the first failure stops the rest."""
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self.drive, problem, stop) for problem in problems]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
                errors = [f.exception() for f in futures if f.done() and not f.cancelled()]
                first = next((e for e in errors if e is not None), None)
                if first is not None:
                    raise first
            finally:  # on failure or Ctrl-C, running questions stop at their next call
                stop.set()
                for future in futures:
                    future.cancel()

    async def adrive_tasks(self, problems: Sequence[Problem], limit: int) -> None:
        """Run questions as tasks, ``limit`` at a time; the first failure cancels the rest."""
        semaphore = asyncio.Semaphore(limit)

        async def bounded(problem: Problem) -> None:
            async with semaphore:
                await self.adrive(problem)

        tasks = [asyncio.create_task(bounded(problem)) for problem in problems]
        try:
            await _first_error(tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _first_error(tasks: Sequence[Awaitable[_T]]) -> None:
    """Wait for every task; raise the first exception as soon as it happens."""
    for next_done in asyncio.as_completed(tasks):
        await next_done


@contextlib.contextmanager
def _model_errors() -> Iterator[None]:
    """The policy's failures become :class:`ModelError`; the package's own pass through."""
    try:
        yield
    except SamplingFailure as failure:
        if isinstance(failure.error, AdaptiveError):
            raise failure.error from failure
        raise ModelError(
            f"the policy model failed: {type(failure.error).__name__}: {failure.error}"
        ) from failure.error
    except AdaptiveError:
        raise
    except Exception as error:
        raise ModelError(f"the policy model failed: {type(error).__name__}: {error}") from error


__all__ = [
    "TRAJECTORIES_SUFFIX",
    "QuestionTrajectories",
    "SampledTrajectory",
    "acollect_calibration_data",
    "collect_calibration_data",
    "read_records",
    "rescore_records",
    "trajectories_path",
]
