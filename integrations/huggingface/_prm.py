"""``HuggingFacePRM``: a process reward model from the Hugging Face hub, run with transformers.

The data path of one scoring call reads top to bottom in this module:

question and solutions → one prompt per solution (the question, then every step
followed by a separator) → token ids, separator positions checked, lengths
checked against ``max_length`` → padded batches → the model's backbone → hidden
states at the separators → the PRM's head → one probability per step (and, with
a :class:`~.quantile_head.QuantileHead`, three calibrated quantiles).

Decoder models attend only to earlier tokens, so the hidden state at the k-th
separator depends on the question and the first k steps alone: one forward pass
over a whole solution scores every prefix of it. Bidirectional encoders (BERT
and friends) would see later steps, so for them every prefix is its own pass.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_adaptive.calibration._base import DEFAULT_LEVELS
from langchain_adaptive.errors import (
    ConfigurationError,
    ContextLengthExceededError,
    ModelError,
    ModelNotFoundError,
    PRMError,
)
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel, estimate_from_probability
from langchain_adaptive.results import SuccessEstimate

from ._loading import (
    Family,
    default_max_length,
    import_torch,
    import_transformers,
    load_model,
    pick_device,
    pick_dtype,
    resolve_snapshot,
)

torch = import_torch()
import_transformers()

from torch import nn  # noqa: E402  (after the import check above, for its hint)

from ._quantile_head import HEAD_CONFIG, QuantileHead  # noqa: E402

QWEN_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""The system prompt of the Qwen2.5-Math-PRM model card."""

ADAPTER_FOLDER = "adapter"
"""Where :meth:`HuggingFacePRM.save_adapter` puts the LoRA adapter, beside the quantile head."""

PromptFormat = Literal["chat", "plain"]

_BIDIRECTIONAL_TYPES = frozenset(
    {
        "albert",
        "bert",
        "camembert",
        "deberta",
        "deberta-v2",
        "distilbert",
        "electra",
        "ernie",
        "modernbert",
        "mpnet",
        "roberta",
        "xlm-roberta",
    }
)
"""Encoder model types whose tokens attend to later tokens: one pass per prefix."""

_PROMPT_FIELDS = (
    "prompt_format",
    "system_prompt",
    "question_joiner",
    "step_suffix",
    "step_joiner",
    "separator_token",
    "positive_index",
    "negative_index",
)
"""What a saved quantile head records about how its inputs were built."""


@dataclass(frozen=True)
class FamilyDefaults:
    """How a PRM family builds prompts and reads scores, before any override.

    ``positive`` and ``negative`` are label indices for classification heads and
    token texts (looked up in the vocabulary) for a causal LM's head.
    """

    prompt_format: PromptFormat
    system_prompt: str | None
    question_joiner: str
    step_suffix: str
    step_joiner: str
    separator_token: str
    positive: int | str
    negative: int | str | None


FAMILY_DEFAULTS: dict[str, FamilyDefaults] = {
    # Qwen2.5-Math-PRM: chat format, "<extra_0>" after each step, label 1 = correct.
    "qwen": FamilyDefaults("chat", QWEN_SYSTEM_PROMPT, "", "<extra_0>", "", "<extra_0>", 1, 0),
    # Math-Shepherd: "question step1 ки\nstep2 ки", P("+") vs P("-") at each tag.
    "math-shepherd": FamilyDefaults("plain", None, " ", " ки", "\n", "ки", "+", "-"),
    # Any token classifier: the chat format if the tokenizer has one, else plain text.
    "token-classification": FamilyDefaults("chat", None, "\n", "<extra_0>", "", "<extra_0>", 1, 0),
}


@dataclass(frozen=True)
class _Job:
    """One forward-pass input: token ids and the separator positions to read."""

    solution: int
    ids: list[int]
    positions: list[int]


class HuggingFacePRM(ProcessRewardModel):
    """A process reward model loaded with transformers: Qwen2.5-Math-PRM, Math-Shepherd, others.

    Setup:
        ``pip install "langchain-adaptive[hf]"`` (torch, transformers, peft).

    Families (``family=``), and how each scores a step and the question alone:

    - ``"qwen"`` (Qwen2.5-Math-PRM-7B/72B): the chat format with the system
      prompt, the question as the user turn and the steps as the assistant turn,
      each step followed by ``<extra_0>``. The head gives two logits per token;
      a step's score is the softmax probability of label 1 at its ``<extra_0>``.
      The question alone is scored at a ``<extra_0>`` that opens an empty
      assistant turn: the model's judgement before any step is written.
    - ``"math-shepherd"``: a causal LM over ``"{question} {step 1} ки\\n{step 2} ки"``;
      a step's score is ``P(+) / (P(+) + P(-))`` from the next-token logits at
      its ``ки`` tag; the question alone is ``"{question} ки"``.
    - ``"token-classification"``: any ``*ForTokenClassification`` model, with a
      configurable separator (``separator_token``, ``step_suffix``) and positive
      label (``positive_index``; with ``negative_index=None`` the softmax runs
      over all labels). The chat format is used when the tokenizer has a chat
      template, else ``"{question}\\n{step 1}<sep>{step 2}<sep>"``.

    With a quantile head (:meth:`with_quantile_head`, or a fine-tuned adapter
    loaded with ``adapter=``) every estimate carries the head's quantiles at
    0.1/0.5/0.9 and ``raw_score`` keeps the binary head's probability; without
    one, estimates are points (``raw_score`` = the probability).

    Prefixes longer than ``max_length`` tokens raise
    :class:`~langchain_adaptive.errors.ContextLengthExceededError`; steps are
    never dropped or truncated.

    Key init args (through :meth:`from_pretrained`):
        family: ``"qwen"``, ``"math-shepherd"`` or ``"token-classification"``.
        device: ``None`` picks CUDA, then MPS, then CPU.
        dtype: ``None`` picks bfloat16 on a CUDA GPU that supports it, else float32.
        batch_size: Sequences per forward pass.
        adapter: A folder (or hub repo) with a LoRA adapter and/or a quantile head.

    Example:
        ```python
        from langchain_adaptive.integrations.huggingface import HuggingFacePRM

        prm = HuggingFacePRM.from_pretrained(
            "Qwen/Qwen2.5-Math-PRM-7B", family="qwen", trust_remote_code=True
        )
        scores = prm.score("What is 2 + 3?", [["2 + 3 = 5.", "The answer is 5."]])
        print([round(e.median, 3) for e in scores[0]])
        ```
    """

    model_config = ConfigDict(use_attribute_docstrings=True, arbitrary_types_allowed=True)

    name_or_path: str
    """The hub repo id or folder the model was loaded from."""
    family: Family = "qwen"
    """How prompts are built and scores read; see the class docstring."""
    prompt_format: PromptFormat = "chat"
    """``"chat"``: the tokenizer's chat template; ``"plain"``: question and steps as text."""
    system_prompt: str | None = QWEN_SYSTEM_PROMPT
    """System message of the chat format (``None``: none)."""
    question_joiner: str = ""
    """Between the question and the first step in the plain format."""
    step_suffix: str = "<extra_0>"
    """Written after every step; its last token is where the step is scored."""
    step_joiner: str = ""
    """Between one step's suffix and the next step."""
    separator_token: str = "<extra_0>"
    """The token (or text whose last token) marks a scored position."""
    positive_index: int = Field(ge=0)
    """Label index (or vocabulary id, for a causal LM) of "this step is correct"."""
    negative_index: int | None = Field(default=0, ge=0)
    """Label index (or vocabulary id) of "incorrect"; ``None``: softmax over all labels."""
    batch_size: int = Field(default=8, ge=1)
    """Sequences per forward pass."""
    max_length: int = Field(ge=1)
    """Longest input in tokens; a longer prefix is an error, never truncated."""
    shared_prefix_pass: bool = True
    """Score all prefixes of a solution in one pass (right for decoder models)."""
    device: str = "cpu"
    """Where the weights were loaded (a record of the load; move models with from_pretrained)."""
    dtype: str = "float32"
    """The weights' dtype as loaded."""
    adapter: str | None = None
    """The adapter folder or repo loaded on top of the base model, if any."""

    _model: Any = PrivateAttr(default=None)
    """What runs: the transformers model, or a PEFT model wrapping it."""
    _tokenizer: Any = PrivateAttr(default=None)
    _separator_id: int = PrivateAttr(default=-1)
    _backbone: Any = PrivateAttr(default=None)
    _head_body: Any = PrivateAttr(default=None)
    _head_last: Any = PrivateAttr(default=None)
    _quantile_head: QuantileHead | None = PrivateAttr(default=None)
    _backbone_kwargs: dict[str, Any] = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_path: str | os.PathLike[str],
        *,
        family: Family = "qwen",
        device: str | None = None,
        dtype: str | Any | None = None,
        batch_size: int = 8,
        max_length: int | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        adapter: str | os.PathLike[str] | None = None,
        trust_remote_code: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        token: str | bool | None = None,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> HuggingFacePRM:
        """Load a PRM from a hub repo id or a local folder written by ``save_pretrained``.

        Args:
            repo_id_or_path: ``"Qwen/Qwen2.5-Math-PRM-7B"``, or a folder.
            family: ``"qwen"``, ``"math-shepherd"`` or ``"token-classification"``.
            device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``; ``None`` picks one.
            dtype: ``"bfloat16"``, ``"float32"``, a ``torch.dtype``; ``None`` picks one.
            batch_size: Sequences per forward pass.
            max_length: Longest input in tokens; ``None``: the model's own limit.
            local_files_only: Never touch the network (``HF_HUB_OFFLINE=1`` too).
            revision: Branch, tag or commit of a hub repo.
            adapter: A folder or repo with a PEFT/LoRA adapter (``adapter_config.json``)
                and/or a quantile head (``quantile_head.json``), such as the output
                of :func:`~.finetune.finetune_quantile_prm`.
            trust_remote_code: Run the repo's own modeling code (Qwen2.5-Math-PRM needs it).
            cache_dir: The hub cache to use instead of the default one.
            token: Hub token for gated or private repos.
            model_kwargs: Extra arguments for the transformers ``from_pretrained``
                (e.g. ``attn_implementation``).
            **kwargs: Overrides of the family's prompt settings: ``system_prompt``,
                ``prompt_format``, ``question_joiner``, ``step_suffix``,
                ``step_joiner``, ``separator_token``, ``positive_index``,
                ``negative_index``, ``positive_token``, ``negative_token``,
                ``shared_prefix_pass``.

        Raises:
            ModelNotFoundError: The folder or repo (or adapter) cannot be found.
            ConfigurationError: Inconsistent settings, or a repo needing
                ``trust_remote_code``.
            ModelError: transformers failed to load the model.
        """
        transformers = import_transformers()
        folder = resolve_snapshot(
            repo_id_or_path,
            revision=revision,
            local_files_only=local_files_only,
            cache_dir=cache_dir,
            token=token,
        )
        chosen_device = pick_device(device)
        chosen_dtype = pick_dtype(dtype, chosen_device)
        if chosen_device != "cpu" and importlib.util.find_spec("accelerate") is not None:
            # load the weights straight onto the GPU, not through a CPU copy first
            model_kwargs = {"device_map": chosen_device, **(model_kwargs or {})}
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, trust_remote_code=trust_remote_code
            )
            model = load_model(
                folder,
                family,
                dtype=chosen_dtype,
                trust_remote_code=trust_remote_code,
                model_kwargs=model_kwargs,
            )
        except (ConfigurationError, ModelNotFoundError):
            raise
        except Exception as error:
            raise ModelError(
                f"transformers could not load {os.fspath(repo_id_or_path)!r} as a {family!r} "
                f"PRM: {type(error).__name__}: {error}"
            ) from error
        model.to(chosen_device)
        adapter_folder = (
            resolve_snapshot(adapter, local_files_only=local_files_only, cache_dir=cache_dir)
            if adapter is not None
            else None
        )
        return cls.from_model(
            model,
            tokenizer,
            family=family,
            name_or_path=os.fspath(repo_id_or_path),
            batch_size=batch_size,
            max_length=max_length,
            adapter=adapter_folder,
            adapter_name=os.fspath(adapter) if adapter is not None else None,
            **kwargs,
        )

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        family: Family = "qwen",
        name_or_path: str | None = None,
        batch_size: int = 8,
        max_length: int | None = None,
        adapter: str | os.PathLike[str] | None = None,
        adapter_name: str | None = None,
        **kwargs: Any,
    ) -> HuggingFacePRM:
        """Wrap a transformers model and tokenizer already in memory.

        Same settings as :meth:`from_pretrained`; ``adapter`` must be a local folder.
        """
        if family not in FAMILY_DEFAULTS:
            raise ConfigurationError(
                f"unknown PRM family {family!r}; choose one of {sorted(FAMILY_DEFAULTS)}"
            )
        allowed = {
            *_PROMPT_FIELDS,
            "positive_token",
            "negative_token",
            "shared_prefix_pass",
        }
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ConfigurationError(
                f"unknown HuggingFacePRM settings {unknown}; allowed: {sorted(allowed)}"
            )
        settings = _prompt_settings(family, tokenizer, model, kwargs)
        model.eval()
        first = next(model.parameters())
        prm = cls(
            name_or_path=name_or_path or str(getattr(model, "name_or_path", "") or "in-memory"),
            family=family,
            batch_size=batch_size,
            max_length=max_length or default_max_length(model, tokenizer),
            shared_prefix_pass=kwargs.get(
                "shared_prefix_pass", model.config.model_type not in _BIDIRECTIONAL_TYPES
            ),
            device=str(first.device),
            dtype=str(first.dtype).removeprefix("torch."),
            **settings,
        )
        prm._attach(model, tokenizer)
        if adapter is not None:
            prm._load_adapter(Path(adapter))
            prm.adapter = adapter_name or os.fspath(adapter)
        return prm

    def _attach(self, model: Any, tokenizer: Any) -> None:
        """Hold the model and find its backbone, head and separator token."""
        self._model = model
        self._tokenizer = tokenizer
        self._separator_id = _separator_id(tokenizer, self.separator_token)
        backbone = getattr(model, "base_model", None)
        if backbone is None or backbone is model:
            raise ConfigurationError(
                f"{type(model).__name__} has no separate base model (base_model_prefix); "
                "HuggingFacePRM needs a transformer with a head on top"
            )
        self._backbone = backbone
        self._head_body, self._head_last = _split_head(model, self.family)
        rows = self._head_last.weight.shape[0]
        for name in ("positive_index", "negative_index"):
            index = getattr(self, name)
            if index is not None and index >= rows:
                raise ConfigurationError(f"{name}={index} but the model's head has {rows} outputs")
        parameters = inspect.signature(backbone.forward).parameters
        self._backbone_kwargs = {"use_cache": False} if "use_cache" in parameters else {}

    # -- quantile head and adapters ----------------------------------------------------

    @property
    def quantile_head(self) -> QuantileHead | None:
        """The calibrated head, when this PRM has one."""
        return self._quantile_head

    @property
    def transformers_model(self) -> Any:
        """The underlying transformers model (inside a PEFT wrapper, if any)."""
        model = self._require_model()
        get_base = getattr(model, "get_base_model", None)
        return get_base() if callable(get_base) else model

    @property
    def tokenizer(self) -> Any:
        self._require_model()
        return self._tokenizer

    @property
    def separator_id(self) -> int:
        """The vocabulary id read as "a step ends here"."""
        self._require_model()
        return self._separator_id

    def with_quantile_head(
        self, levels: Sequence[float] = DEFAULT_LEVELS, *, non_crossing: bool = True
    ) -> HuggingFacePRM:
        """This PRM with its binary head turned into a quantile head (the paper's conversion).

        Every quantile output starts at ``sigmoid(z_pos - z_neg)``, which equals the
        binary head's softmax probability, so the new PRM's quantiles equal the old
        PRM's score until :func:`~.finetune.finetune_quantile_prm` trains them. The
        model weights are shared, not copied.
        """
        self._require_model()
        if self.negative_index is None:
            raise ConfigurationError(
                "the quantile head starts from positive-minus-negative weights; set "
                "negative_index (a head scored by a softmax over all labels has none)"
            )
        head = QuantileHead.from_binary_head(
            self._head_last,
            positive_index=self.positive_index,
            negative_index=self.negative_index,
            levels=levels,
            non_crossing=non_crossing,
        )
        return self.derive(quantile_head=head)

    def derive(
        self, *, model: Any = None, quantile_head: QuantileHead | None = None
    ) -> HuggingFacePRM:
        """A copy sharing this PRM's model and tokenizer, with a new top model or head."""
        self._require_model()
        copy = self.model_copy()
        copy._lock = self._lock  # same weights, same lock
        if model is not None:
            copy._model = model
        if quantile_head is not None:
            copy._quantile_head = quantile_head
        return copy

    def save_adapter(self, directory: str | os.PathLike[str]) -> Path:
        """Save what sits on top of the base model: the LoRA adapter and the quantile head.

        Writes ``adapter/`` (PEFT's ``adapter_config.json`` and
        ``adapter_model.safetensors``) when the model has a LoRA adapter, and
        ``quantile_head.json`` plus ``quantile_head.safetensors`` when it has a
        quantile head. Nothing is pickled. Load it with ``from_pretrained(base,
        adapter=directory)``.
        """
        model = self._require_model()
        folder = Path(directory)
        has_lora = hasattr(model, "peft_config")
        if not has_lora and self._quantile_head is None:
            raise ConfigurationError("this PRM has neither a LoRA adapter nor a quantile head")
        folder.mkdir(parents=True, exist_ok=True)
        if has_lora:
            model.save_pretrained(folder / ADAPTER_FOLDER, safe_serialization=True)
        if self._quantile_head is not None:
            metadata = {name: getattr(self, name) for name in _PROMPT_FIELDS}
            metadata |= {"base_model": self.name_or_path, "family": self.family}
            self._quantile_head.save(folder, metadata=metadata)
        return folder

    def _load_adapter(self, folder: Path) -> None:
        lora = next(
            (
                candidate
                for candidate in (folder, folder / ADAPTER_FOLDER)
                if (candidate / "adapter_config.json").is_file()
            ),
            None,
        )
        has_head = (folder / HEAD_CONFIG).is_file()
        if lora is None and not has_head:
            raise ModelNotFoundError(
                f"{folder} holds neither a PEFT adapter (adapter_config.json) nor a quantile "
                f"head ({HEAD_CONFIG})"
            )
        if lora is not None:
            try:
                from peft import PeftModel
            except ImportError as error:
                raise ImportError(
                    'loading a LoRA adapter needs peft: pip install "langchain-adaptive[hf]"'
                ) from error
            device = next(self._model.parameters()).device
            self._model = PeftModel.from_pretrained(self._model, lora).to(device).eval()
        if has_head:
            head, metadata = QuantileHead.load(folder)
            if head.in_features != self._head_last.in_features:
                raise ConfigurationError(
                    f"the quantile head in {folder} reads {head.in_features} features, but "
                    f"this model's head reads {self._head_last.in_features}: it was trained "
                    "for another base model"
                )
            differences = {
                name: (metadata[name], getattr(self, name))
                for name in _PROMPT_FIELDS
                if name in metadata and metadata[name] != getattr(self, name)
            }
            if differences:
                raise ConfigurationError(
                    f"the quantile head in {folder} was trained with other prompt settings "
                    f"(saved, current): {differences}; pass the saved values to from_pretrained"
                )
            device = next(self._model.parameters()).device
            self._quantile_head = head.to(device).eval()

    # -- prompts ---------------------------------------------------------------------

    def render(self, question: str, steps: Sequence[str]) -> str:
        """The model input for ``question`` followed by ``steps`` (none: the question alone)."""
        tokenizer = self.tokenizer
        if steps:
            solution = self.step_joiner.join(f"{step}{self.step_suffix}" for step in steps)
        else:
            solution = self.step_suffix.lstrip()
        if self.prompt_format == "plain":
            return f"{question}{self.question_joiner}{solution}"
        messages = (
            []
            if self.system_prompt is None
            else [{"role": "system", "content": self.system_prompt}]
        )
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": solution},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def encode(
        self, question: str, steps: Sequence[str], *, where: str = "input"
    ) -> tuple[list[int], list[int]]:
        """Token ids of :meth:`render` and the positions of its separators, checked.

        Raises:
            PRMError: The separator count is not one per step (a step contains the
                separator, or the tokenizer merges it with its neighbours).
            ContextLengthExceededError: The input is longer than ``max_length``.
        """
        text = self.render(question, steps)
        ids = list(
            self.tokenizer(text, add_special_tokens=self.prompt_format == "plain")["input_ids"]
        )
        positions = [i for i, token in enumerate(ids) if token == self._separator_id]
        expected = max(1, len(steps))
        if len(positions) != expected:
            raise PRMError(
                f"HuggingFacePRM ({where}): expected {expected} separator token(s) "
                f"{self.separator_token!r} (id {self._separator_id}) but the input has "
                f"{len(positions)}: a step contains the separator, or the tokenizer merges it "
                "with the text around it. Set separator_token/step_suffix to the format the "
                "model was trained on."
            )
        if len(ids) > self.max_length:
            over = next((k for k, p in enumerate(positions) if p >= self.max_length), None)
            detail = (
                f"; steps from {over + 1} on end past the limit"
                if over is not None and steps
                else ""
            )
            raise ContextLengthExceededError(
                f"HuggingFacePRM ({where}): the input is {len(ids)} tokens, more than "
                f"max_length={self.max_length}{detail}. Steps are never dropped: shorten the "
                "solution or raise max_length (up to the model's context size).",
                prompt_tokens=len(ids),
                context_size=self.max_length,
            )
        return ids, positions

    def _jobs(self, question: str, solutions: Sequence[Sequence[str]]) -> list[_Job]:
        jobs: list[_Job] = []
        for index, steps in enumerate(solutions):
            where = f"solution {index}" if steps else f"the question alone, solution {index}"
            if self.shared_prefix_pass or len(steps) <= 1:
                ids, positions = self.encode(question, steps, where=where)
                jobs.append(_Job(index, ids, positions))
                continue
            for k in range(1, len(steps) + 1):
                ids, positions = self.encode(question, steps[:k], where=f"{where}, step {k}")
                jobs.append(_Job(index, ids, positions[-1:]))
        return jobs

    # -- the forward pass ------------------------------------------------------------

    def batch_inputs(self, sequences: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """Right-padded ``input_ids`` and ``attention_mask`` on the model's device."""
        tokenizer = self.tokenizer
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        device = next(self._model.parameters()).device
        width = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        return input_ids.to(device), mask.to(device)

    def head_features(
        self, input_ids: Any, attention_mask: Any, positions: Sequence[Sequence[int]]
    ) -> Any:
        """The features the PRM's last linear layer reads, at every listed position.

        Returns a ``(total positions, features)`` tensor, sequence by sequence. Runs
        with gradients when called outside ``torch.inference_mode`` (fine-tuning).
        """
        output = self._backbone(
            input_ids=input_ids, attention_mask=attention_mask, **self._backbone_kwargs
        )
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is None:
            hidden = output[0]
        rows = torch.tensor(
            [row for row, places in enumerate(positions) for _ in places], device=hidden.device
        )
        columns = torch.tensor(
            [place for places in positions for place in places], device=hidden.device
        )
        return self._head_body(hidden[rows, columns])

    def raw_probabilities(self, features: Any) -> Any:
        """The original head's probability of "correct" for each feature row, in float32."""
        last = self._head_last
        if self.negative_index is None:
            return torch.softmax(last(features).float(), dim=-1)[:, self.positive_index]
        index = torch.tensor([self.negative_index, self.positive_index], device=features.device)
        bias = last.bias[index] if last.bias is not None else None
        logits = nn.functional.linear(features, last.weight[index], bias).float()
        return torch.softmax(logits, dim=-1)[:, 1]

    def _run(self, jobs: Sequence[_Job]) -> list[tuple[list[float], list[list[float]] | None]]:
        """Raw probabilities (and quantiles) per job, batching jobs of similar length."""
        order = sorted(range(len(jobs)), key=lambda i: len(jobs[i].ids))
        results: list[Any] = [None] * len(jobs)
        model = self._require_model()
        with self._lock, torch.inference_mode():
            model.eval()
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                input_ids, mask = self.batch_inputs([jobs[i].ids for i in chunk])
                positions = [jobs[i].positions for i in chunk]
                features = self.head_features(input_ids, mask, positions)
                raw = self.raw_probabilities(features).cpu().tolist()
                quantiles = (
                    self._quantile_head.probabilities(features).cpu().tolist()
                    if self._quantile_head is not None
                    else None
                )
                offset = 0
                for i, places in zip(chunk, positions, strict=True):
                    end = offset + len(places)
                    results[i] = (raw[offset:end], quantiles[offset:end] if quantiles else None)
                    offset = end
        return results

    # -- scoring ---------------------------------------------------------------------

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        jobs = self._jobs(question, solutions)
        scores: PRMScores = [[] for _ in solutions]
        for job, (raw, quantiles) in zip(jobs, self._run(jobs), strict=True):
            source = f"HuggingFacePRM (solution {job.solution})"
            scores[job.solution].extend(self._estimates(raw, quantiles, source))
        return scores

    def _estimates(
        self, raw: list[float], quantiles: list[list[float]] | None, source: str
    ) -> list[SuccessEstimate]:
        if quantiles is None:
            return [estimate_from_probability(p, source=source) for p in raw]
        assert self._quantile_head is not None
        levels = self._quantile_head.levels
        estimates = []
        for p, values in zip(raw, quantiles, strict=True):
            point = estimate_from_probability(p, source=source)  # checks p
            if not all(math.isfinite(value) for value in values):
                raise PRMError(f"{source}: the quantile head returned {values}")
            estimates.append(
                SuccessEstimate(
                    quantiles=dict(zip(levels, sorted(values), strict=True)),
                    raw_score=point.raw_score,
                )
            )
        return estimates

    def _require_model(self) -> Any:
        if self._model is None:
            raise ConfigurationError(
                "this HuggingFacePRM holds no model: build it with HuggingFacePRM.from_pretrained "
                "or HuggingFacePRM.from_model"
            )
        return self._model


# -- helpers -------------------------------------------------------------------------


def _prompt_settings(
    family: str, tokenizer: Any, model: Any, overrides: dict[str, Any]
) -> dict[str, Any]:
    """The family's prompt settings with ``overrides`` applied and token texts resolved."""
    defaults = FAMILY_DEFAULTS[family]
    settings: dict[str, Any] = {
        "prompt_format": defaults.prompt_format,
        "system_prompt": defaults.system_prompt,
        "question_joiner": defaults.question_joiner,
        "step_suffix": defaults.step_suffix,
        "step_joiner": defaults.step_joiner,
        "separator_token": defaults.separator_token,
    }
    if family == "token-classification" and not getattr(tokenizer, "chat_template", None):
        settings["prompt_format"] = "plain"
        settings["step_joiner"] = ""
    if "step_suffix" in overrides and "separator_token" not in overrides:
        settings["separator_token"] = overrides["step_suffix"].strip()
    settings.update({k: v for k, v in overrides.items() if k in settings})
    if settings["prompt_format"] == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigurationError(
            "prompt_format='chat' but the tokenizer has no chat template; set "
            "tokenizer.chat_template or pass prompt_format='plain'"
        )
    if family == "math-shepherd":
        positive_token = overrides.get("positive_token", defaults.positive)
        negative_token = overrides.get("negative_token", defaults.negative)
        positive = (
            overrides["positive_index"]
            if "positive_index" in overrides
            else _token_id(tokenizer, str(positive_token))
        )
        negative = (
            overrides["negative_index"]
            if "negative_index" in overrides
            else _token_id(tokenizer, str(negative_token))
        )
    else:
        if "positive_token" in overrides or "negative_token" in overrides:
            raise ConfigurationError(
                "positive_token/negative_token are for family='math-shepherd'; a "
                "classification head takes positive_index/negative_index"
            )
        labels = int(getattr(model.config, "num_labels", 2))
        positive = overrides.get("positive_index", defaults.positive)
        if "negative_index" in overrides:
            negative = overrides["negative_index"]
        else:  # two labels: the other one; more: a softmax over all of them
            negative = 1 - int(positive) if labels == 2 else None
    settings["positive_index"] = positive
    settings["negative_index"] = negative
    return settings


def _token_id(tokenizer: Any, text: str) -> int:
    """The id of ``text`` as one token, or of its last token (Math-Shepherd's convention)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise ConfigurationError(f"{text!r} encodes to no tokens")
    return int(ids[-1])


def _separator_id(tokenizer: Any, separator: str) -> int:
    """The vocabulary id that marks scored positions.

    A special or added token (``<extra_0>``) is its own id; other text (``ки``)
    is marked by its last token, as Math-Shepherd's reference code does.
    """
    added = set(getattr(tokenizer, "all_special_tokens", [])) | set(tokenizer.get_added_vocab())
    if separator in added:
        return int(tokenizer.convert_tokens_to_ids(separator))
    return _token_id(tokenizer, separator)


def _split_head(model: Any, family: str) -> tuple[Any, Any]:
    """The PRM's head as (everything before its last linear layer, that layer).

    Causal LMs: the output embeddings (the good/bad tokens' rows are the labels).
    Classifiers: ``score`` or ``classifier``, a linear layer or a ``Sequential``
    ending in one (Qwen2.5-Math-PRM's ``Linear → ReLU → Linear``).
    """
    if family == "math-shepherd":
        last = model.get_output_embeddings()
        if not isinstance(last, nn.Linear):
            raise ConfigurationError(f"{type(model).__name__} has no linear language-model head")
        return nn.Identity(), last
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear):
            return nn.Identity(), head
        if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
            return head[:-1], head[-1]
    raise ConfigurationError(
        f"cannot find the classification head of {type(model).__name__}: expected a linear "
        "layer (or a Sequential ending in one) named 'score' or 'classifier'"
    )


__all__ = ["FAMILY_DEFAULTS", "QWEN_SYSTEM_PROMPT", "FamilyDefaults", "HuggingFacePRM"]
