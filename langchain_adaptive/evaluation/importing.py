"""``bench import``: anyone's recorded samples into a pool file, by a field mapping.

Replay needs a pool file; people already hold samples from bigger models in
their own JSON shapes. An :class:`ImportSpec` names where each thing sits, and
:func:`import_pools` reads, grades and writes, top to bottom:

questions file(s) (a JSON list, a JSON object holding the list at
``records_field``, or JSON Lines) -> one record per question (id, question,
gold, level) -> its samples, either a list of objects at ``samples_field``, a
separate ``samples`` file joined by question id, or parallel per-question lists
-> each sample's text, answer, grade, tokens and named scores, read through
dotted paths -> :class:`~langchain_adaptive.evaluation.pools.RecordedSample`
-> one :class:`~langchain_adaptive.evaluation.pools.QuestionPool` per question
id (records with one id in several files are pooled, in file order) -> a
:class:`~langchain_adaptive.evaluation.pools.PoolHeader` -> ``write_pools``
(a temporary file renamed into place, so a failure leaves nothing half-written).

Field paths:
    ``a.b`` reaches into nested objects (a key that itself contains the dot
    wins); an integer part indexes a list (``choices.0.text``); any other part
    applied to a list maps over its elements (``infos.r`` on
    ``{"infos": [{"r": 1}, {"r": 0}]}`` is ``[1, 0]``).

Samples as objects or as parallel lists:
    When ``samples_field`` resolves in a question record, it must be a list of
    objects and every sample field is a path inside each object. When it does
    not resolve (or is ``None``), the record holds its samples as parallel
    lists: every sample field is a path from the question record that must
    give one entry per sample (Tree-of-Thoughts logs: ``ys`` + ``infos.r``).
    With a separate ``samples`` file, each of its records is one sample object
    whose ``join_field`` holds its question's id.

Scores:
    A score is a number (a whole-solution score) or a list of numbers (one per
    step; a one-element list is a whole-solution score). It is stored as one
    :class:`~langchain_adaptive.results.SuccessEstimate` a step, the squashed
    value as the probability and the number as read as ``raw_score``, so a
    whole-solution score is exactly what calibrators and ``weighted_vote`` /
    ``prm`` selection read as a last-step score. A mean token logprob becomes
    the scorer ``logprob`` (its exponential, the geometric-mean token
    probability); per-token logprobs add ``logprob-window`` (the exponential of
    the lowest mean over a sliding window of ``logprob_window`` tokens).

Steps:
    A sample scored only per whole solution (or not scored) has the steps a
    live run would record: the whole text as one step when scored, else the
    text split at ``step_delimiter``. When a score has ``n > 1`` per-step
    values, the text is split at ``step_delimiter`` and, failing that, at line
    breaks, and used when it gives exactly ``n`` steps; otherwise the whole
    text stays one step (the scores are kept; the header counts such samples
    under ``settings["steps_unsplit"]``). Steps are never invented: an empty
    step list would make a calibrator read sample scores as question scores.

Grading:
    ``correct_field`` is taken as recorded. Without it each sample's answer
    (``answer_field``, or extracted from the text with
    :func:`~langchain_adaptive.answers.extract_answer`; an empty or null answer
    is an abstention) is compared with the gold answer by ``equivalence``
    (:func:`~langchain_adaptive.answers.answers_match` or exact text), or, with
    ``verifier="game24"``, checked by the exact Game-of-24 verifier.

Tokens:
    ``tokens_field`` per sample; else ``question_tokens_field``, a question's
    total split over its samples in proportion to text length (optionally a
    running counter over the file, as Tree-of-Thoughts' ``usage_so_far``);
    else estimated as ``ceil(characters / 4)``, and the header says
    ``settings["tokens_estimated"] = True``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from langchain_adaptive.answers import DEFAULT_STEP_DELIMITER, answers_match, extract_answer
from langchain_adaptive.errors import ConfigurationError, DatasetError
from langchain_adaptive.evaluation.pools import (
    ORACLE,
    PoolHeader,
    QuestionPool,
    RecordedSample,
    exact_match,
    write_pools,
)
from langchain_adaptive.prm._self_confidence import lowest_window_mean
from langchain_adaptive.results import SuccessEstimate

logger = logging.getLogger(__name__)

Transform = Literal["identity", "sigmoid", "exp"]
"""How a raw score becomes a probability: as is (must lie in [0, 1]), a logistic
squash of a logit, or the exponential of a log-probability."""

LOGPROB = "logprob"
"""Scorer name of the geometric-mean token probability, ``exp(mean token logprob)``."""
LOGPROB_WINDOW = "logprob-window"
"""Scorer name of ``exp`` of the lowest sliding-window mean of per-token logprobs."""

CHARS_PER_TOKEN = 4
"""Estimated tokens of a sample without counts: ``ceil(len(text) / CHARS_PER_TOKEN)``."""

_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_MISSING: Any = object()
_SHOWN = 5


class ScoreField(BaseModel):
    """One named score read from each sample: ``NAME=FIELD[:TRANSFORM]`` on the command line."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    """The scorer name the pool stores the estimates under (a header ``prms`` entry)."""
    field: str = Field(min_length=1)
    """Path to the score: a number, or a list of per-step numbers."""
    transform: Transform = "identity"
    """How the raw number becomes the stored probability; the raw number is kept."""

    @classmethod
    def parse(cls, text: str) -> ScoreField:
        """Read ``NAME=FIELD[:identity|sigmoid|exp]``.

        Raises:
            ConfigurationError: The text is not of that form.
        """
        name, equals, rest = text.partition("=")
        if not equals or not name.strip() or not rest.strip():
            raise ConfigurationError(f"a score is NAME=FIELD[:identity|sigmoid|exp], got {text!r}")
        path, colon, transform = rest.rpartition(":")
        if not colon:
            path, transform = rest, "identity"
        if transform not in ("identity", "sigmoid", "exp"):
            raise ConfigurationError(
                f"unknown score transform {transform!r} in {text!r} (identity, sigmoid or exp)"
            )
        return cls(name=name.strip(), field=path.strip(), transform=transform)  # type: ignore[arg-type]


class ImportSpec(BaseModel):
    """Where each thing sits in a user's sample files, and how to grade and label them.

    Every ``*_field`` is a dotted path (see the module docstring for the rules,
    including samples as objects or as parallel lists).

    Example:
        >>> spec = ImportSpec(
        ...     questions=["runs.jsonl"], model="my-model", samples_field="completions",
        ...     scores=[ScoreField.parse("rm=reward:sigmoid")],
        ... )
        >>> spec.scores[0].transform
        'sigmoid'
    """

    model_config = ConfigDict(frozen=True)

    questions: list[Path] = Field(min_length=1)
    """Question files (JSON list, JSON object with ``records_field``, or JSON Lines);
    records sharing an id across files are pooled into one question."""
    samples: Path | None = None
    """A separate file of sample objects, one a record, joined to questions by ``join_field``."""
    records_field: str | None = None
    """Path to the list of questions inside a JSON object document (e.g. ``records``)."""
    id_field: str | None = None
    """The question id; ``None`` numbers the records of each file 0, 1, 2, ..."""
    question_field: str | None = "question"
    """The question text; ``None`` uses the id (replay keys questions by their text)."""
    gold_field: str | None = "gold"
    """The gold answer (needed unless ``correct_field`` is given or ``puzzles`` supplies it)."""
    level_field: str | None = None
    """An optional difficulty level or subset name."""
    samples_field: str | None = "samples"
    """The question's list of sample objects; absent or ``None``: parallel lists."""
    join_field: str | None = None
    """In the ``samples`` file, each sample's question id (default: ``id_field``)."""
    text_field: str = "text"
    """The sample's text."""
    answer_field: str | None = None
    """The sample's extracted answer; ``None`` extracts it from the text."""
    correct_field: str | None = None
    """The sample's recorded verdict (boolean or 0/1); ``None`` grades the answer."""
    tokens_field: str | None = None
    """The sample's generated tokens."""
    question_tokens_field: str | None = None
    """A question's total generated tokens, split over its samples by text length."""
    cumulative_tokens: bool = False
    """``question_tokens_field`` is a running counter over the file: take differences
    (a drop is a restart, and then that question's own count)."""
    finish_reason_field: str | None = None
    """Why the sample ended (``stop``, ``length``), when recorded."""
    scores: list[ScoreField] = Field(default_factory=list)
    """Named scores per sample, one number or one per step."""
    logprob_field: str | None = None
    """A mean token logprob, or the list of per-token logprobs."""
    logprob_window: int = Field(default=64, ge=1)
    """Tokens in the sliding window of ``logprob-window``."""
    step_delimiter: str = DEFAULT_STEP_DELIMITER
    """Regex that separates a sample's steps (default: a blank line)."""
    equivalence: Literal["math", "exact"] = "math"
    """How answers are graded and grouped for votes: math equivalence or exact text."""
    verifier: Literal["answers", "game24"] = "answers"
    """``game24`` grades with the exact Game-of-24 verifier against the gold numbers."""
    puzzles: Path | None = None
    """Game of 24: ``24.csv``; each question's id is a puzzle ``idx`` (rank ``idx + 1``),
    which sets its id (``game24-<rank>``), question, gold numbers and level."""
    verdict_fields: list[str] = Field(default_factory=list)
    """The file's own verdicts, checked against our grading (the first path that
    resolves); the header records how many agree."""
    model: str | None = None
    """The model label; else read at ``model_field``."""
    model_field: str | None = None
    """Path to the model label in the top-level JSON object (else the first record);
    several paths, comma-separated, are tried in turn."""
    temperature: float | None = None
    temperature_field: str | None = None
    """Path to the sampling temperature, read like ``model_field``."""
    max_tokens_per_sample: int | None = Field(default=None, ge=1)
    """The token limit per sample; default: the largest count in the data."""
    preset: str | None = None
    """The preset this mapping started from (recorded in the header)."""

    @field_validator("scores")
    @classmethod
    def _distinct_scores(cls, scores: list[ScoreField]) -> list[ScoreField]:
        names = [s.name for s in scores]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"score names repeat: {repeated}")
        if ORACLE in names:
            raise ValueError(f"{ORACLE!r} is reserved for replay's oracle")
        return scores

    @model_validator(mode="after")
    def _consistent(self) -> ImportSpec:
        if self.puzzles is not None and self.verifier != "game24":
            raise ValueError("puzzles (24.csv) go with verifier='game24'")
        if self.logprob_field is not None:
            clash = {LOGPROB, LOGPROB_WINDOW} & {s.name for s in self.scores}
            if clash:
                raise ValueError(f"score names {sorted(clash)} are taken by logprob_field")
        if self.samples is not None and (self.join_field or self.id_field) is None:
            raise ValueError("a separate samples file needs join_field (or id_field)")
        try:
            re.compile(self.step_delimiter)
        except re.error as error:
            raise ValueError(f"step_delimiter is not a regex: {error}") from None
        return self

    def scorer_names(self) -> list[str]:
        """The scorers a sample may carry, in header order."""
        names = [s.name for s in self.scores]
        return [*names, LOGPROB, LOGPROB_WINDOW] if self.logprob_field else names


# -- presets ---------------------------------------------------------------------------


def _game24_tot(questions: Sequence[Path]) -> dict[str, Any]:
    log = questions[0]
    return {
        "id_field": "idx",
        "question_field": None,
        "gold_field": None,
        "samples_field": None,
        "text_field": "ys",
        "verifier": "game24",
        "puzzles": log.parent / "24.csv",
        "equivalence": "exact",
        "question_tokens_field": "usage_so_far.completion_tokens",
        "cumulative_tokens": True,
        "step_delimiter": r"\n",
        "verdict_fields": ["infos.r", "accs"],
        "model": log.stem,
    }


def _gsm8k_qwen(questions: Sequence[Path]) -> dict[str, Any]:
    return {
        "id_field": "gsm8k_id",
        "question_field": "question",
        "gold_field": "gold",
        "samples_field": "trajectories",
        "text_field": "text",
        "answer_field": "answer",
        "tokens_field": "n_tokens",
        "finish_reason_field": "finish_reason",
        "logprob_field": "logprob",
        "equivalence": "math",
        # The file names no model; this preset is for this one source's recording.
        "model": "Qwen2.5-0.5B-Instruct",
    }


def _crucible(questions: Sequence[Path]) -> dict[str, Any]:
    return {
        "records_field": "records",
        "id_field": "problem_id",
        "question_field": None,
        "gold_field": "gold",
        "level_field": "difficulty",
        "samples_field": "traces",
        "text_field": "text",
        "tokens_field": "tokens",
        "correct_field": "correct",
        "scores": [ScoreField(name="prm", field="prm_score", transform="identity")],
        "model_field": "meta.model,meta.policy",
        "temperature_field": "meta.temperature",
        "equivalence": "math",
    }


PRESETS: dict[str, Callable[[Sequence[Path]], dict[str, Any]]] = {
    "game24-tot": _game24_tot,
    "gsm8k-qwen": _gsm8k_qwen,
    "crucible": _crucible,
}
"""Field mappings for files people already have, by name; each fills defaults only.

``game24-tot``: Tree-of-Thoughts Game-of-24 logs (``ys`` with ``infos`` or
``accs``), puzzles from the ``24.csv`` beside the log, graded by the exact
verifier, model label = the log's file name. ``gsm8k-qwen``: the GSM8K
trajectories of Qwen2.5-0.5B-Instruct (mean logprob per sample). ``crucible``:
crucible-ttc best-of-N fixtures (``records`` / ``traces`` with a PRM score per
sample; several files pool by ``problem_id``)."""


def preset_spec(name: str | None, **overrides: Any) -> ImportSpec:
    """An :class:`ImportSpec` from a preset's defaults, then ``overrides``.

    An override of ``None`` keeps the default (it is a flag not given); a field
    path of ``"none"`` or ``""`` switches that field off.

    Raises:
        ConfigurationError: An unknown preset, or an inconsistent mapping.
    """
    given: dict[str, Any] = {
        k: None if k.endswith("_field") and isinstance(v, str) and v.lower() in ("", "none") else v
        for k, v in overrides.items()
        if v is not None
    }
    defaults: dict[str, Any] = {}
    if name is not None:
        if name not in PRESETS:
            raise ConfigurationError(f"unknown preset {name!r} (presets: {sorted(PRESETS)})")
        questions = [Path(p) for p in given.get("questions", [])]
        if not questions:
            raise ConfigurationError(f"preset {name!r} needs the questions file(s)")
        defaults = PRESETS[name](questions)
    try:
        return ImportSpec(**{**defaults, **given, "preset": name})
    except ValidationError as error:
        raise ConfigurationError(f"invalid import mapping: {_first_error(error)}") from error


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


# -- field paths -----------------------------------------------------------------------


def resolve_path(value: Any, path: str) -> Any:
    """The value at a dotted ``path`` in parsed JSON, or ``None`` when it is absent.

    A key containing the dot wins over a nested path; an integer part indexes
    a list; any other part applied to a list maps over its elements.

    Example:
        >>> resolve_path({"infos": [{"r": 1}, {"r": 0}], "meta": {"gold": "7"}}, "infos.r")
        [1, 0]
        >>> resolve_path({"choices": [{"text": "a"}]}, "choices.0.text")
        'a'
    """
    found = _resolve(value, path.split("."))
    return None if found is _MISSING else found


def _lookup(value: Any, path: str) -> Any:
    return _resolve(value, path.split("."))


def _resolve(value: Any, parts: list[str]) -> Any:
    if not parts:
        return value
    if isinstance(value, dict):
        whole = ".".join(parts)
        if len(parts) > 1 and whole in value:
            return value[whole]
        return _resolve(value[parts[0]], parts[1:]) if parts[0] in value else _MISSING
    if isinstance(value, list):
        head = parts[0]
        if re.fullmatch(r"-?\d+", head):
            index = int(head)
            if -len(value) <= index < len(value):
                return _resolve(value[index], parts[1:])
            return _MISSING
        mapped = [_resolve(item, parts) for item in value]
        return _MISSING if any(m is _MISSING for m in mapped) else mapped
    return _MISSING


# -- reading files ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """A place in an input file, for error messages: file, line or item, question, sample."""

    path: Path
    unit: str
    number: int | None = None
    question: str | None = None
    sample: int | None = None

    def at(self, **changes: Any) -> _Where:
        return _Where(**{**self.__dict__, **changes})

    def __str__(self) -> str:
        text = str(self.path)
        if self.number is not None:
            text += f", {self.unit} {self.number}"
        if self.question is not None:
            text += f" (question {self.question!r})"
        if self.sample is not None:
            text += f", sample {self.sample}"
        return text

    def error(self, message: str, field: str | None = None) -> DatasetError:
        named = f"field {field!r}: " if field else ""
        return DatasetError(f"{self}: {named}{message}", path=str(self.path), line=self.number)


@dataclass
class _Document:
    """One input file: its top-level value (for header fields) and its records."""

    path: Path
    root: Any
    records: list[tuple[_Where, Any]] = field(default_factory=list)


def _read_document(path: Path, records_field: str | None) -> _Document:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file", path=str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error.reason})", path=str(path)) from error
    if path.suffix.lower() not in _JSONL_SUFFIXES:
        try:
            root = json.loads(text)
        except json.JSONDecodeError as error:
            if error.msg != "Extra data":  # several values: JSON Lines
                raise DatasetError(
                    f"{path}, line {error.lineno}: not valid JSON ({error.msg})",
                    path=str(path),
                    line=error.lineno,
                ) from error
        else:
            return _json_document(path, root, records_field)
    if records_field is not None:
        raise DatasetError(
            f"{path}: a JSON Lines file has one question a line; records_field "
            f"{records_field!r} applies to a JSON object",
            path=str(path),
        )
    document = _Document(path, None)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(
                f"{path}, line {number}: not valid JSON ({error.msg})", path=str(path), line=number
            ) from error
        document.records.append((_Where(path, "line", number), row))
    return document


def _json_document(path: Path, root: Any, records_field: str | None) -> _Document:
    rows = root
    if records_field is not None:
        rows = _lookup(root, records_field)
        if rows is _MISSING:
            raise _Where(path, "item").error(
                f"no such field in the top-level object ({_keys(root)})", records_field
            )
    elif isinstance(root, dict):
        raise DatasetError(
            f"{path}: a JSON object, not a list of questions; name the list with "
            f"records_field (--records-field); it has {_keys(root)}",
            path=str(path),
        )
    if not isinstance(rows, list):
        raise _Where(path, "item").error(
            f"expected a list of questions, got {_json_type(rows)}", records_field
        )
    document = _Document(path, root)
    document.records = [(_Where(path, "item", n), row) for n, row in enumerate(rows, start=1)]
    return document


def _keys(value: Any) -> str:
    if not isinstance(value, dict):
        return _json_type(value)
    keys = sorted(map(str, value))
    shown = ", ".join(repr(k) for k in keys[:10])
    return f"fields {shown}{', ...' if len(keys) > 10 else ''}" if keys else "no fields"


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


# -- values ----------------------------------------------------------------------------


def _text(value: Any, where: _Where, name: str, *, optional: bool = False) -> str | None:
    """A string field; numbers become text (``130.0`` -> ``"130"``); null only if optional."""
    if value is None and optional:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise where.error(f"expected text, got {_describe(value)}", name)


def _number(value: Any, where: _Where, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"expected a number, got {_describe(value)}", name)
    if not math.isfinite(value):
        raise where.error(f"not a finite number: {value!r}", name)
    return float(value)


def _numbers(value: Any, where: _Where, name: str) -> list[float]:
    """A number, or a non-empty list of numbers."""
    if isinstance(value, list):
        if not value:
            raise where.error("an empty list of scores", name)
        return [_number(v, where, name) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(
            f"expected a number or a list of numbers, got {_describe(value)}",
            name,
        )
    return [_number(value, where, name)]


def _count(value: Any, where: _Where, name: str) -> int:
    number = _number(value, where, name)
    if number < 0 or not number.is_integer():
        raise where.error(f"expected a whole number of tokens >= 0, got {value!r}", name)
    return int(number)


def _verdict(value: Any, where: _Where, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise where.error(f"expected true/false or 0/1, got {_show(value)}", name)


def _describe(value: Any) -> str:
    """What a wrong value is, for a message: its JSON type and, shortened, itself."""
    return "null" if value is None else f"{_json_type(value)} {_show(value)}"


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _squash(raw: float, transform: Transform, where: _Where, name: str) -> float:
    if transform == "sigmoid":
        return 1.0 / (1.0 + math.exp(-raw)) if raw >= 0 else math.exp(raw) / (1.0 + math.exp(raw))
    if transform == "exp":
        if raw > 1e-9:
            raise where.error(f"{raw} is not a log-probability (exp needs a value <= 0)", name)
        return math.exp(min(raw, 0.0))
    if not 0.0 <= raw <= 1.0:
        raise where.error(
            f"{raw} is not a probability; add :sigmoid for a logit or :exp for a logprob", name
        )
    return raw


def _estimates(
    raws: Sequence[float], transform: Transform, where: _Where, name: str
) -> list[SuccessEstimate]:
    return [
        SuccessEstimate.point(_squash(raw, transform, where, name), raw_score=raw) for raw in raws
    ]


# -- samples ---------------------------------------------------------------------------


class _Samples:
    """A question's samples, as objects or as parallel lists; ``get`` reads one field."""

    def __init__(
        self,
        objects: list[tuple[_Where, Any]] | None,
        record: Any,
        where: _Where,
        text_field: str,
    ) -> None:
        self.objects = objects
        self.record = record
        self.where = where
        self._columns: dict[str, Any] = {}
        if objects is None:
            texts = _lookup(record, text_field)
            if not isinstance(texts, list):
                found = "is absent" if texts is _MISSING else f"is {_json_type(texts)}"
                raise where.error(
                    f"no list of sample objects and the text {found}; samples are either "
                    f"objects (samples_field) or parallel per-question lists (this field a "
                    f"list); the record has {_keys(record)}",
                    text_field,
                )
            self.count = len(texts)
            self._columns[text_field] = texts
        else:
            self.count = len(objects)

    def sample_where(self, index: int) -> _Where:
        if self.objects is not None:
            return self.objects[index][0]
        return self.where.at(sample=index + 1)

    def column(self, name: str) -> Any:
        """Parallel form: the per-sample list at ``name`` (``_MISSING`` when absent)."""
        if name not in self._columns:
            values = _lookup(self.record, name)
            if values is not _MISSING and (
                not isinstance(values, list) or len(values) != self.count
            ):
                size = f"{len(values)}" if isinstance(values, list) else _describe(values)
                raise self.where.error(
                    f"parallel samples need one entry per sample ({self.count} samples), "
                    f"got {size}",
                    name,
                )
            self._columns[name] = values
        return self._columns[name]

    def get(self, index: int, name: str) -> Any:
        if self.objects is not None:
            return _lookup(self.objects[index][1], name)
        values = self.column(name)
        return _MISSING if values is _MISSING else values[index]

    def has(self, name: str) -> bool:
        """Whether the field is there (for the first sample: fields are all-or-none)."""
        return self.count > 0 and self.get(0, name) is not _MISSING


def _split_steps(text: str, delimiter: str) -> list[str]:
    return [step.strip() for step in re.split(delimiter, text) if step.strip()]


def _steps_for(text: str, lengths: Sequence[int], delimiter: str) -> tuple[list[str], bool]:
    """The sample's steps, and whether per-step scores could not be matched to the text."""
    per_step = max(lengths, default=0)
    if not lengths:
        return _split_steps(text, delimiter), False
    if per_step <= 1:
        return [text], False
    for splitter in (delimiter, r"\n"):
        steps = _split_steps(text, splitter)
        if len(steps) == per_step:
            return steps, False
    return [text], True


def _proportional(total: int, weights: Sequence[int]) -> list[int]:
    """Integers proportional to ``weights`` summing exactly to ``total`` (largest remainder)."""
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    shares = [total * w / weight_sum for w in weights]
    parts = [int(share) for share in shares]
    order = sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


# -- the import ------------------------------------------------------------------------


@dataclass
class _Tally:
    """What the header reports about the whole import."""

    estimated_tokens: bool = False
    steps_unsplit: int = 0
    verdict_field: str | None = None
    agree: int = 0
    disagree: list[str] = field(default_factory=list)
    labels: dict[str, set[Any]] = field(default_factory=lambda: {"model": set(), "temp": set()})


class _Importer:
    def __init__(self, spec: ImportSpec) -> None:
        self.spec = spec
        self.tally = _Tally(
            estimated_tokens=spec.tokens_field is None and spec.question_tokens_field is None
        )
        self.equivalent = exact_match if spec.equivalence == "exact" else answers_match
        self.puzzles: dict[int, Any] | None = None
        if spec.puzzles is not None:
            from langchain_adaptive.evaluation.game24 import load_game24_puzzles

            if not spec.puzzles.is_file():
                raise DatasetError(
                    f"{spec.puzzles}: no such file (the Game-of-24 puzzles, 24.csv)",
                    path=str(spec.puzzles),
                )
            problems = load_game24_puzzles(spec.puzzles)
            self.puzzles = {int(p.id.rsplit("-", 1)[1]): p for p in problems}
        self.joined: dict[str, list[tuple[_Where, Any]]] | None = None

    # -- top level

    def run(self) -> tuple[PoolHeader, list[QuestionPool]]:
        spec = self.spec
        documents = [_read_document(path, spec.records_field) for path in spec.questions]
        if spec.samples is not None:
            self.joined = self._read_joined(spec.samples)
        pools: dict[str, QuestionPool] = {}
        origin: dict[str, _Where] = {}
        for document in documents:
            self._header_labels(document)
            seen: set[str] = set()
            previous_total = 0
            for position, (where, record) in enumerate(document.records):
                pool, previous_total = self._question(where, record, position, previous_total)
                if pool.id in seen:
                    raise where.error(
                        f"question id {pool.id!r} repeats {origin[pool.id]}", spec.id_field
                    )
                seen.add(pool.id)
                if pool.id in pools:
                    pools[pool.id] = self._pooled(pools[pool.id], pool, where, origin[pool.id])
                else:
                    pools[pool.id] = pool
                    origin[pool.id] = where
        if self.joined:
            unknown = next(iter(self.joined.values()))[0][0]
            raise unknown.error("no question has this id", spec.join_field or spec.id_field)
        result = list(pools.values())
        if not result:
            raise DatasetError(
                f"{', '.join(map(str, spec.questions))}: no questions", path=str(spec.questions[0])
            )
        self._check_scorers(result)
        return self._header(result), result

    def _pooled(
        self, first: QuestionPool, more: QuestionPool, where: _Where, origin: _Where
    ) -> QuestionPool:
        if first.gold is not None and more.gold is not None and first.gold != more.gold:
            raise where.at(question=first.id).error(
                f"gold {more.gold!r} differs from {first.gold!r} in {origin}", self.spec.gold_field
            )
        return first.model_copy(update={"samples": [*first.samples, *more.samples]})

    def _header_labels(self, document: _Document) -> None:
        base = document.root if isinstance(document.root, dict) else None
        if base is None and document.records:
            base = document.records[0][1]
        where = _Where(document.path, "item")
        if self.spec.model is None and self.spec.model_field is not None:
            paths = [p.strip() for p in self.spec.model_field.split(",") if p.strip()]
            labels = [_lookup(base, p) for p in paths]
            label = next((v for v in labels if isinstance(v, str) and v.strip()), None)
            if label is None:
                raise where.error(
                    f"no model label there (the file has {_keys(base)}); pass --model LABEL",
                    self.spec.model_field,
                )
            self.tally.labels["model"].add(label.strip())
        if self.spec.temperature is None and self.spec.temperature_field is not None:
            value = _lookup(base, self.spec.temperature_field)
            if value is not _MISSING and value is not None:
                self.tally.labels["temp"].add(_number(value, where, self.spec.temperature_field))

    def _read_joined(self, path: Path) -> dict[str, list[tuple[_Where, Any]]]:
        name = self.spec.join_field or self.spec.id_field
        assert name is not None  # the spec validator requires one
        groups: dict[str, list[tuple[_Where, Any]]] = {}
        for where, row in _read_document(path, None).records:
            if not isinstance(row, dict):
                raise where.error(f"a sample must be an object, got {_json_type(row)}")
            key = _lookup(row, name)
            if key is _MISSING:
                raise where.error(f"the sample names no question (it has {_keys(row)})", name)
            groups.setdefault(_text(key, where, name) or "", []).append((where, row))
        return groups

    # -- one question

    def _question(
        self, where: _Where, record: Any, position: int, previous_total: int
    ) -> tuple[QuestionPool, int]:
        spec = self.spec
        if not isinstance(record, dict):
            raise where.error(f"a question must be an object, got {_json_type(record)}")
        qid, question, gold, level = self._identity(where, record, position)
        where = where.at(question=qid)
        samples = self._samples(where, record, qid)
        if samples.count == 0:
            raise where.error("the question has no samples", spec.samples_field or spec.text_field)
        totals = None
        if spec.tokens_field is None and spec.question_tokens_field is not None:
            raw = _lookup(record, spec.question_tokens_field)
            if raw is _MISSING:
                raise where.error(
                    f"absent (the record has {_keys(record)})", spec.question_tokens_field
                )
            total = _count(raw, where, spec.question_tokens_field)
            if spec.cumulative_tokens:
                total, previous_total = (
                    (total - previous_total if total >= previous_total else total),
                    total,
                )
            totals = total
        verdicts = self._verdicts(samples)
        recorded = [self._sample(samples, i, gold, where) for i in range(samples.count)]
        if totals is not None:
            counts = _proportional(totals, [len(s.text) for s in recorded])
            recorded = [
                s.model_copy(update={"output_tokens": n})
                for s, n in zip(recorded, counts, strict=True)
            ]
        if verdicts is not None:
            for index, (sample, verdict) in enumerate(zip(recorded, verdicts, strict=True)):
                if sample.correct == verdict:
                    self.tally.agree += 1
                else:
                    self.tally.disagree.append(f"{qid}#{index + 1}")
        try:
            pool = QuestionPool(id=qid, question=question, gold=gold, level=level, samples=recorded)
        except ValidationError as error:  # pragma: no cover - fields are checked above
            raise where.error(_first_error(error)) from error
        return pool, previous_total

    def _identity(
        self, where: _Where, record: dict[str, Any], position: int
    ) -> tuple[str, str, str | None, str | None]:
        spec = self.spec
        if spec.id_field is None:
            qid = str(position)
        else:
            value = _lookup(record, spec.id_field)
            if value is _MISSING:
                raise where.error(f"absent (the record has {_keys(record)})", spec.id_field)
            qid = _text(value, where, spec.id_field) or ""
            if not qid.strip():
                raise where.error("an empty question id", spec.id_field)
        if self.puzzles is not None:
            rank = _puzzle_rank(qid, where, spec.id_field)
            if rank not in self.puzzles:
                raise where.error(
                    f"idx {rank - 1} has no puzzle of rank {rank} in {spec.puzzles}", spec.id_field
                )
            problem = self.puzzles[rank]
            return problem.id, problem.question, problem.gold, problem.level
        question = qid
        if spec.question_field is not None:
            value = _lookup(record, spec.question_field)
            if value is _MISSING:
                raise where.error(f"absent (the record has {_keys(record)})", spec.question_field)
            question = _text(value, where, spec.question_field) or ""
        gold = None
        if spec.gold_field is not None:
            value = _lookup(record, spec.gold_field)
            if value is not _MISSING:
                gold = _text(value, where, spec.gold_field, optional=True)
                gold = (gold.strip() or None) if gold is not None else None
        if gold is None and spec.correct_field is None:
            raise where.at(question=qid).error(
                "no gold answer to grade the samples against; name it with --gold-field "
                "or give the samples' verdicts with --correct-field",
                spec.gold_field,
            )
        level = None
        if spec.level_field is not None:
            value = _lookup(record, spec.level_field)
            if value is not _MISSING:
                level = _text(value, where, spec.level_field, optional=True)
        return qid, question, gold, level

    def _samples(self, where: _Where, record: dict[str, Any], qid: str) -> _Samples:
        spec = self.spec
        if self.joined is not None:
            return _Samples(self.joined.pop(qid, []), record, where, spec.text_field)
        if spec.samples_field is not None:
            objects = _lookup(record, spec.samples_field)
            if objects is not _MISSING:
                if not isinstance(objects, list):
                    raise where.error(
                        f"expected a list of sample objects, got {_json_type(objects)}",
                        spec.samples_field,
                    )
                rows = []
                for index, row in enumerate(objects):
                    at = where.at(sample=index + 1)
                    if not isinstance(row, dict):
                        raise at.error(
                            f"a sample must be an object, got {_json_type(row)}", spec.samples_field
                        )
                    rows.append((at, row))
                return _Samples(rows, record, where, spec.text_field)
        return _Samples(None, record, where, spec.text_field)

    def _verdicts(self, samples: _Samples) -> list[bool] | None:
        for name in self.spec.verdict_fields:
            if samples.has(name):
                self.tally.verdict_field = self.tally.verdict_field or name
                return [
                    _verdict(samples.get(i, name), samples.sample_where(i), name)
                    for i in range(samples.count)
                ]
        return None

    # -- one sample

    def _sample(
        self, samples: _Samples, index: int, gold: str | None, question: _Where
    ) -> RecordedSample:
        spec = self.spec
        where = samples.sample_where(index)

        def required(name: str) -> Any:
            value = samples.get(index, name)
            if value is _MISSING:
                if samples.objects is not None:
                    raise where.error(
                        f"absent (the sample has {_keys(samples.objects[index][1])})", name
                    )
                raise where.error(f"absent (the question has {_keys(samples.record)})", name)
            return value

        text = _text(required(spec.text_field), where, spec.text_field) or ""
        answer = self._answer(text, required, where)
        if spec.correct_field is not None:
            correct = _verdict(required(spec.correct_field), where, spec.correct_field)
        else:
            correct = self._grade(answer, gold, question)
        if spec.tokens_field is not None:
            tokens = _count(required(spec.tokens_field), where, spec.tokens_field)
        else:
            tokens = math.ceil(len(text) / CHARS_PER_TOKEN)  # replaced by a question total
        finish = None
        if spec.finish_reason_field is not None:
            value = samples.get(index, spec.finish_reason_field)
            finish = (
                None
                if value is _MISSING
                else _text(value, where, spec.finish_reason_field, optional=True)
            )
        estimates: dict[str, list[SuccessEstimate]] = {}
        for score in spec.scores:
            raws = _numbers(required(score.field), where, score.field)
            estimates[score.name] = _estimates(raws, score.transform, where, score.field)
        if spec.logprob_field is not None:
            estimates.update(self._logprob(required(spec.logprob_field), where))
        steps, unsplit = _steps_for(text, [len(e) for e in estimates.values()], spec.step_delimiter)
        self.tally.steps_unsplit += unsplit
        return RecordedSample(
            text=text,
            steps=steps,
            answer=answer,
            correct=correct,
            output_tokens=tokens,
            finish_reason=finish,
            step_estimates=estimates,
        )

    def _answer(self, text: str, required: Callable[[str], Any], where: _Where) -> str | None:
        spec = self.spec
        if spec.answer_field is not None:
            value = _text(required(spec.answer_field), where, spec.answer_field, optional=True)
            value = None if value is None else value.strip()
            return value or None  # "" or null: the sample abstained
        if spec.verifier == "game24":
            from langchain_adaptive.evaluation.game24 import game24_answer

            return game24_answer(text)
        return extract_answer(text)

    def _grade(self, answer: str | None, gold: str | None, where: _Where) -> bool:
        if answer is None or gold is None:
            return False
        if self.spec.verifier == "game24":
            from langchain_adaptive.errors import AdaptiveInputError
            from langchain_adaptive.evaluation.game24 import check_game24, puzzle_numbers

            try:
                numbers = puzzle_numbers(gold)
            except AdaptiveInputError as error:
                raise where.error(
                    f"the gold is not a puzzle's numbers: {error}", self.spec.gold_field
                ) from error
            return check_game24(numbers, answer)
        return self.equivalent(gold, answer)

    def _logprob(self, value: Any, where: _Where) -> dict[str, list[SuccessEstimate]]:
        name = self.spec.logprob_field
        assert name is not None
        values = _numbers(value, where, name)
        if isinstance(value, list):
            mean = sum(values) / len(values)
            window = lowest_window_mean(values, self.spec.logprob_window)
            return {
                LOGPROB: _estimates([mean], "exp", where, name),
                LOGPROB_WINDOW: _estimates([window], "exp", where, name),
            }
        return {LOGPROB: _estimates(values, "exp", where, name)}

    # -- the header

    def _check_scorers(self, pools: list[QuestionPool]) -> None:
        """Every sample carries the same scorers (a mix of per-token and mean logprobs is not)."""
        wanted = set().union(*(s.step_estimates for p in pools for s in p.samples))
        for pool in pools:
            for index, sample in enumerate(pool.samples, start=1):
                lacking = wanted - set(sample.step_estimates)
                if lacking:
                    raise DatasetError(
                        f"{', '.join(map(str, self.spec.questions))}: question {pool.id!r}, "
                        f"sample {index}: field {self.spec.logprob_field!r}: a mean logprob where "
                        f"other samples have per-token logprobs (it lacks {sorted(lacking)})",
                        path=str(self.spec.questions[0]),
                    )

    def _header(self, pools: list[QuestionPool]) -> PoolHeader:
        spec = self.spec
        model = spec.model
        if model is None:
            labels = self.tally.labels["model"]
            if len(labels) > 1:
                raise ConfigurationError(
                    f"the files name different models {sorted(labels)} at "
                    f"{spec.model_field!r}; pass --model LABEL to pool them"
                )
            if not labels:
                raise ConfigurationError(
                    "no model label: pass --model LABEL, or --model-field PATH to read it"
                )
            model = next(iter(labels))
        temperature = spec.temperature
        temps = self.tally.labels["temp"]
        if temperature is None and len(temps) == 1:
            temperature = next(iter(temps))
        names = [
            n
            for n in spec.scorer_names()
            if any(n in s.step_estimates for p in pools for s in p.samples)
        ]
        largest = max((s.output_tokens for p in pools for s in p.samples), default=1)
        settings: dict[str, Any] = {
            "source": [str(p) for p in spec.questions],
            "mapping": spec.model_dump(mode="json", exclude={"questions", "samples", "preset"}),
            "tokens_estimated": self.tally.estimated_tokens,
        }
        if spec.samples is not None:
            settings["samples_source"] = str(spec.samples)
        if spec.preset is not None:
            settings["preset"] = spec.preset
        if self.tally.estimated_tokens:
            settings["tokens_rule"] = f"ceil(characters / {CHARS_PER_TOKEN})"
        elif spec.tokens_field is None and spec.question_tokens_field is not None:
            settings["tokens_rule"] = "question total split by text length"
        if self.tally.steps_unsplit:
            settings["steps_unsplit"] = self.tally.steps_unsplit
            logger.warning(
                "%d sample(s) have per-step scores that do not match their text's steps; "
                "each keeps its whole text as one step",
                self.tally.steps_unsplit,
            )
        if len(temps) > 1:
            settings["temperatures"] = sorted(temps)
        if self.tally.verdict_field is not None:
            settings["source_verdicts"] = {
                "field": self.tally.verdict_field,
                "agree": self.tally.agree,
                "disagree": len(self.tally.disagree),
                "first_disagreements": self.tally.disagree[:_SHOWN],
            }
        return PoolHeader(
            model=model,
            prms=names,
            samples_per_question=max(len(p.samples) for p in pools),
            max_tokens_per_sample=spec.max_tokens_per_sample or max(1, largest),
            temperature=temperature,
            equivalence=spec.equivalence,
            settings=settings,
        )


def _puzzle_rank(qid: str, where: _Where, name: str | None) -> int:
    try:
        idx = int(qid)
    except ValueError:
        raise where.error(f"a Game-of-24 idx is a whole number, got {qid!r}", name) from None
    return idx + 1


def read_samples(spec: ImportSpec) -> tuple[PoolHeader, list[QuestionPool]]:
    """The pool header and pools the files of ``spec`` describe, graded; nothing written.

    Raises:
        DatasetError: A file is missing or malformed, or a record lacks a field or
            holds a wrong value; the message names the file, the line or item,
            the question and sample, and the field.
        ConfigurationError: No model label, or files that name different models.
    """
    return _Importer(spec).run()


def import_pools(
    spec: ImportSpec, out: str | os.PathLike[str]
) -> tuple[Path, PoolHeader, list[QuestionPool]]:
    """Read, grade and write a pool file for replay; all or nothing.

    Everything is read and checked before the file is written (to a temporary
    file renamed into place), so bad input leaves no half-written pool.

    Raises:
        DatasetError: As :func:`read_samples`.
        ConfigurationError: As :func:`read_samples`, or ``out`` is an input file.
    """
    target = Path(out)
    inputs = [*spec.questions, *([spec.samples] if spec.samples else [])]
    if any(target.resolve() == Path(p).resolve() for p in inputs):
        raise ConfigurationError(f"--out {target} would overwrite an input file")
    header, pools = read_samples(spec)
    return write_pools(target, header, pools), header, pools


__all__ = [
    "CHARS_PER_TOKEN",
    "LOGPROB",
    "LOGPROB_WINDOW",
    "PRESETS",
    "ImportSpec",
    "ScoreField",
    "import_pools",
    "preset_spec",
    "read_samples",
    "resolve_path",
]
