"""The paper's calibration by fine-tuning: a quantile head and LoRA, trained with the pinball loss.

For each calibration record (a prefix of a sampled solution and the share of
Monte-Carlo rollouts from it that reached the right answer) the PRM's quantile
head should output the 0.1/0.5/0.9 quantiles of that success rate. The data
path of :func:`finetune_quantile_prm` reads top to bottom:

records → training sequences (every prefix of one trajectory is read from one
pass over the whole trajectory, at its separators; the question alone is its
own sequence) → token ids, checked like scoring inputs → for a few epochs:
batches → backbone (with LoRA) → features at the separators → quantile head →
pinball loss against the success rates → AdamW on the LoRA and head weights →
the fine-tuned PRM, saved as safetensors and JSON when ``output_dir`` is given.

It runs on a CPU (slowly: use a GPU for a 7B PRM).
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.calibration._base import DEFAULT_LEVELS
from langchain_adaptive.calibration._records import CalibrationRecord
from langchain_adaptive.errors import CalibrationError, ConfigurationError

from ._loading import import_torch
from ._prm import HuggingFacePRM
from ._quantile_head import QuantileHead, pinball_loss

torch = import_torch()
logger = logging.getLogger(__name__)

FINETUNE_SUMMARY = "finetune.json"
"""Written beside the adapter: the settings and losses of the run."""


class QuantileFinetuneResult(BaseModel):
    """What :func:`finetune_quantile_prm` produced and how the loss moved."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prm: HuggingFacePRM
    """The fine-tuned PRM: its estimates carry the trained quantiles."""
    initial_loss: float
    """Mean pinball loss over all records before training (the converted head)."""
    final_loss: float
    """Mean pinball loss over all records after training, in evaluation mode."""
    epoch_losses: list[float]
    """Mean training loss of each epoch (with dropout, while the weights moved)."""
    records: int
    sequences: int
    """Forward-pass inputs the records became."""
    output_dir: str | None = None


@dataclass
class _Sequence:
    """One training input: a question, steps, and the rates to fit at its separators."""

    question: str
    steps: list[str]
    targets: list[tuple[int, float, float]] = field(default_factory=list)
    """(separator index, success rate, weight) per record read from this input."""
    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


def finetune_quantile_prm(
    prm: HuggingFacePRM,
    records: Sequence[CalibrationRecord],
    questions: Mapping[str, str],
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    epochs: int = 3,
    learning_rate: float = 1e-4,
    head_learning_rate: float = 1e-3,
    batch_size: int = 4,
    lora: bool = True,
    lora_rank: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    target_modules: Sequence[str] | None = None,
    non_crossing: bool = True,
    weight_by_trials: bool = False,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    output_dir: str | os.PathLike[str] | None = None,
) -> QuantileFinetuneResult:
    """Fine-tune ``prm`` so its quantile head predicts quantiles of Monte-Carlo success rates.

    The binary head is converted with :meth:`HuggingFacePRM.with_quantile_head`
    (unless ``prm`` already has a quantile head, which then keeps training), LoRA
    adapters are added to the backbone with peft, and both are trained with the
    pinball loss at each record's separator.

    The LoRA layers are injected into ``prm``'s model in place (peft's way, which
    avoids a second copy of the weights): after this call use the returned PRM.

    Args:
        prm: A PRM from :meth:`HuggingFacePRM.from_pretrained`.
        records: Calibration records, e.g. from
            :func:`~langchain_adaptive.calibration.collect_calibration_data`.
        questions: Question text by ``question_id`` (records store only the id).
        levels: Quantile levels of a new head.
        epochs: Passes over the data.
        learning_rate: AdamW step size of the LoRA weights.
        head_learning_rate: AdamW step size of the quantile head.
        batch_size: Sequences per step.
        lora: Train LoRA adapters; ``False`` trains the quantile head alone.
        lora_rank: LoRA rank ``r``.
        lora_alpha: LoRA scaling ``alpha``.
        lora_dropout: Dropout on the LoRA path while training.
        target_modules: Modules to adapt; ``None`` lets peft pick for known
            architectures (``q_proj``, ``v_proj`` for Qwen2 and Mistral).
        non_crossing: Sort the head's outputs, so quantiles never cross.
        weight_by_trials: Weight each record by its rollouts (rates from more
            rollouts are less noisy); ``False`` weighs every record the same.
        max_grad_norm: Gradient clipping.
        seed: Seeds the LoRA initialisation and the batch order.
        output_dir: If set, the adapter, head and ``finetune.json`` are written
            there (see :meth:`HuggingFacePRM.save_adapter`).

    Returns:
        The fine-tuned PRM and the losses before, during and after training.

    Raises:
        CalibrationError: No records, or a record whose question is missing or
            whose prefix does not split into ``k`` steps.
        ContextLengthExceededError: A prefix is longer than ``prm.max_length``.
        ConfigurationError: peft cannot pick LoRA target modules for this model.

    Example:
        ```python
        result = finetune_quantile_prm(prm, records, {p.id: p.question for p in problems})
        print(result.initial_loss, "->", result.final_loss)
        calibrated = result.prm
        ```
    """
    if not records:
        raise CalibrationError("fine-tuning needs at least one calibration record")
    if epochs < 1 or batch_size < 1:
        raise ConfigurationError("epochs and batch_size must be at least 1")
    sequences = _sequences(prm, records, questions, weight_by_trials=weight_by_trials)
    for sequence in sequences:
        sequence.ids, sequence.positions = prm.encode(
            sequence.question, sequence.steps, where=f"fine-tuning input {sequence.question[:40]!r}"
        )
    torch.manual_seed(seed)
    tuned = (
        prm
        if prm.quantile_head is not None
        else prm.with_quantile_head(levels, non_crossing=non_crossing)
    )
    head = tuned.quantile_head
    assert head is not None
    model = _trainable_model(tuned, lora, lora_rank, lora_alpha, lora_dropout, target_modules)
    tuned = tuned.derive(model=model, quantile_head=head)
    head.requires_grad_(True)

    initial = _dataset_loss(tuned, head, sequences, batch_size)
    lora_parameters = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": list(head.parameters()), "lr": head_learning_rate}]
    if lora_parameters:
        groups.append({"params": lora_parameters, "lr": learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    epoch_losses: list[float] = []
    for epoch in range(epochs):
        model.train()
        head.train()
        order = torch.randperm(len(sequences), generator=generator).tolist()
        total, count = 0.0, 0.0
        for start in range(0, len(order), batch_size):
            batch = [sequences[i] for i in order[start : start + batch_size]]
            loss, weight = _batch_loss(tuned, head, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(
                [p for group in groups for p in group["params"]], max_grad_norm
            )
            optimizer.step()
            total += float(loss.detach()) * weight
            count += weight
        epoch_losses.append(total / count)
        logger.info(
            "quantile fine-tuning: epoch %d/%d, loss %.5f", epoch + 1, epochs, total / count
        )
    model.eval()
    head.eval()
    head.requires_grad_(False)
    final = _dataset_loss(tuned, head, sequences, batch_size)

    saved = None
    if output_dir is not None:
        folder = tuned.save_adapter(output_dir)
        summary = {
            "records": len(records),
            "sequences": len(sequences),
            "epochs": epochs,
            "learning_rate": learning_rate,
            "head_learning_rate": head_learning_rate,
            "batch_size": batch_size,
            "lora": lora,
            "lora_rank": lora_rank,
            "lora_alpha": lora_alpha,
            "lora_dropout": lora_dropout,
            "weight_by_trials": weight_by_trials,
            "seed": seed,
            "initial_loss": initial,
            "final_loss": final,
            "epoch_losses": epoch_losses,
        }
        (folder / FINETUNE_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        tuned.adapter = os.fspath(folder)
        saved = os.fspath(folder)
    return QuantileFinetuneResult(
        prm=tuned,
        initial_loss=initial,
        final_loss=final,
        epoch_losses=epoch_losses,
        records=len(records),
        sequences=len(sequences),
        output_dir=saved,
    )


def quantile_pinball_loss(
    prm: HuggingFacePRM,
    records: Sequence[CalibrationRecord],
    questions: Mapping[str, str],
    *,
    batch_size: int = 8,
) -> float:
    """Mean pinball loss of ``prm``'s quantile head on ``records`` (lower is better).

    The same quantity :func:`finetune_quantile_prm` reports as its initial and
    final loss, for scoring a fine-tuned PRM on held-out records.
    """
    head = prm.quantile_head
    if head is None:
        raise ConfigurationError("this PRM has no quantile head; see with_quantile_head")
    sequences = _sequences(prm, records, questions, weight_by_trials=False)
    for sequence in sequences:
        sequence.ids, sequence.positions = prm.encode(sequence.question, sequence.steps)
    return _dataset_loss(prm, head, sequences, batch_size)


# -- data ----------------------------------------------------------------------------


def _steps_of(record: CalibrationRecord) -> list[str]:
    """The steps of a record's prefix (joined by a blank line when it was collected)."""
    if record.k == 0:
        return []
    steps = record.prefix.split(STEP_JOINER)
    if len(steps) != record.k:
        raise CalibrationError(
            f"record {record.key}: its prefix splits into {len(steps)} steps at blank lines, "
            f"but k={record.k}"
        )
    return steps


def _sequences(
    prm: HuggingFacePRM,
    records: Sequence[CalibrationRecord],
    questions: Mapping[str, str],
    *,
    weight_by_trials: bool,
) -> list[_Sequence]:
    """Training inputs: one per trajectory (its prefixes share a pass), one per question alone.

    A bidirectional model (``shared_prefix_pass`` off) gets one input per prefix.
    """
    missing = sorted({r.question_id for r in records} - set(questions))
    if missing:
        raise CalibrationError(f"no question text for question ids {missing[:10]}")
    alone: dict[str, _Sequence] = {}
    by_trajectory: dict[tuple[str, int], list[tuple[CalibrationRecord, list[str]]]] = defaultdict(
        list
    )
    sequences: list[_Sequence] = []
    for record in records:
        weight = float(record.trials) if weight_by_trials else 1.0
        target = record.success_rate, weight
        if record.k == 0:
            question = questions[record.question_id]
            sequence = alone.setdefault(record.question_id, _Sequence(question, []))
            sequence.targets.append((0, *target))
        else:
            by_trajectory[(record.question_id, record.trajectory)].append(
                (record, _steps_of(record))
            )
    sequences.extend(alone.values())
    for (question_id, _), group in by_trajectory.items():
        question = questions[question_id]
        if not prm.shared_prefix_pass:
            for record, steps in group:
                weight = float(record.trials) if weight_by_trials else 1.0
                sequences.append(
                    _Sequence(question, steps, [(record.k - 1, record.success_rate, weight)])
                )
            continue
        deepest = max(group, key=lambda item: item[0].k)[1]
        shared = _Sequence(question, deepest)
        for record, steps in group:
            weight = float(record.trials) if weight_by_trials else 1.0
            if deepest[: record.k] == steps:
                shared.targets.append((record.k - 1, record.success_rate, weight))
            else:  # a prefix of another sample under the same trajectory number
                sequences.append(
                    _Sequence(question, steps, [(record.k - 1, record.success_rate, weight)])
                )
        sequences.append(shared)
    return sequences


# -- training ------------------------------------------------------------------------


def _trainable_model(
    prm: HuggingFacePRM,
    lora: bool,
    rank: int,
    alpha: int,
    dropout: float,
    target_modules: Sequence[str] | None,
) -> Any:
    """The model to train: with LoRA layers (new or already loaded) or fully frozen."""
    model = prm._require_model()
    if not lora:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return model
    if hasattr(model, "peft_config"):  # an adapter loaded with adapter=: keep training it
        for name, parameter in model.named_parameters():
            parameter.requires_grad_("lora_" in name)
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise ImportError(
            'LoRA fine-tuning needs peft: pip install "langchain-adaptive[hf]"'
        ) from error
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules) if target_modules is not None else None,
        bias="none",
    )
    try:
        return get_peft_model(prm.transformers_model, config)
    except ValueError as error:
        raise ConfigurationError(
            f"peft cannot add LoRA to {type(prm.transformers_model).__name__}: {error}. "
            "Pass target_modules=[...] (the names of its attention projections)."
        ) from error


def _targets(batch: Sequence[_Sequence]) -> tuple[list[list[int]], Any, Any]:
    positions = [[s.positions[index] for index, _, _ in s.targets] for s in batch]
    rates = torch.tensor([rate for s in batch for _, rate, _ in s.targets], dtype=torch.float32)
    weights = torch.tensor([w for s in batch for _, _, w in s.targets], dtype=torch.float32)
    return positions, rates, weights


def _batch_loss(
    prm: HuggingFacePRM, head: QuantileHead, batch: Sequence[_Sequence]
) -> tuple[Any, float]:
    """The weighted pinball loss of one batch (with gradients) and its total weight."""
    positions, rates, weights = _targets(batch)
    input_ids, mask = prm.batch_inputs([s.ids for s in batch])
    features = prm.head_features(input_ids, mask, positions)
    quantiles = head.probabilities(features)
    device = quantiles.device
    loss = pinball_loss(quantiles, rates.to(device), head.levels, weights.to(device))
    return loss, float(weights.sum())


def _dataset_loss(
    prm: HuggingFacePRM, head: QuantileHead, sequences: Sequence[_Sequence], batch_size: int
) -> float:
    """The weighted mean pinball loss over all sequences, in evaluation mode."""
    model = prm._require_model()
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    with torch.inference_mode():
        for start in range(0, len(sequences), batch_size):
            loss, weight = _batch_loss(prm, head, sequences[start : start + batch_size])
            total += float(loss) * weight
            count += weight
    model.train(was_training)
    return total / count


def load_finetune_summary(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``finetune.json`` written by :func:`finetune_quantile_prm` into ``directory``."""
    return json.loads((Path(directory) / FINETUNE_SUMMARY).read_text())


__all__ = [
    "FINETUNE_SUMMARY",
    "QuantileFinetuneResult",
    "finetune_quantile_prm",
    "load_finetune_summary",
    "quantile_pinball_loss",
]
