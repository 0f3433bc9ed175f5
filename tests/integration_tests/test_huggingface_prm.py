"""HuggingFacePRM on tiny random-weight models built and saved here, loaded like a hub download.

Every model goes through ``save_pretrained`` to a folder and back through
``HuggingFacePRM.from_pretrained(folder, local_files_only=True)``: the code path a
hub id takes after its snapshot is downloaded. The tokenizer is byte-level (every
byte is a token) with the special tokens of the real PRMs, so any text encodes.
The tests take about ten seconds on two CPU cores, after about as long importing torch
and transformers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers", reason='needs the "hf" extra')
pytest.importorskip("peft", reason='needs the "hf" extra')

from tokenizers import Tokenizer, decoders, models  # noqa: E402
from tokenizers.pre_tokenizers import ByteLevel  # noqa: E402

from langchain_adaptive.calibration._records import CalibrationRecord  # noqa: E402
from langchain_adaptive.errors import (  # noqa: E402
    ConfigurationError,
    ContextLengthExceededError,
    ModelNotFoundError,
    PRMError,
)
from langchain_adaptive.integrations.huggingface import (  # noqa: E402
    HuggingFacePRM,
    QuantileHead,
    finetune_quantile_prm,
    quantile_pinball_loss,
)

pytestmark = pytest.mark.hf

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The ChatML layout of Qwen2.5's chat template."""

QUESTION = "What is 2 + 3?"
SOLUTIONS = [
    ["2 + 3 = 5.", "So the sum is 5.", "The answer is 5."],
    ["2 + 3 = 6."],
    [],
    ["Add them: 2 + 3.", "That is 5."],
]

REMOTE_CODE = '''
from torch import nn
from transformers import Qwen2Model, Qwen2PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    """The layout of Qwen2.5-Math-PRM's own modeling file: a two-layer head."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = Qwen2Model(config)
        self.score = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.ReLU(),
            nn.Linear(config.hidden_size, self.num_labels),
        )
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return TokenClassifierOutput(logits=self.score(hidden))
'''


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """The tiny models are fastest on one thread, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_tokenizer(*, chat: bool = True, extra_tokens: tuple[str, ...] = ()) -> Any:
    """A byte-level tokenizer (no merges) with ChatML specials and ``<extra_0>``."""
    vocab = {char: index for index, char in enumerate(sorted(ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
    backend.add_special_tokens(specials)
    if extra_tokens:
        backend.add_tokens(list(extra_tokens))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    if chat:
        tokenizer.chat_template = CHATML
    return tokenizer


def tiny_config(vocab_size: int, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "initializer_range": 0.2,  # spread the random scores away from 0.5
        "num_labels": 2,
    }
    settings.update(overrides)
    return transformers.Qwen2Config(**settings)


def save(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen2ForTokenClassification with two labels: the Qwen PRM's output contract."""
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = transformers.Qwen2ForTokenClassification(tiny_config(len(tokenizer)))
    return save(model, tokenizer, tmp_path_factory.mktemp("qwen-prm"))


@pytest.fixture(scope="module")
def shepherd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A causal LM whose tokenizer knows the ``ки`` step tag, like Math-Shepherd's."""
    tokenizer = build_tokenizer(chat=False, extra_tokens=("ки",))
    torch.manual_seed(1)
    model = transformers.Qwen2ForCausalLM(tiny_config(len(tokenizer)))
    return save(model, tokenizer, tmp_path_factory.mktemp("shepherd"))


@pytest.fixture(scope="module")
def prm(qwen_dir: Path) -> HuggingFacePRM:
    return HuggingFacePRM.from_pretrained(str(qwen_dir), family="qwen", local_files_only=True)


def medians(scores: list[list[Any]]) -> list[list[float]]:
    return [[estimate.median for estimate in row] for row in scores]


def assert_close(left: list[list[float]], right: list[list[float]], atol: float = 1e-5) -> None:
    assert [len(row) for row in left] == [len(row) for row in right]
    for row_left, row_right in zip(left, right, strict=True):
        assert row_left == pytest.approx(row_right, abs=atol)


def reference_scores(folder: Path, prm: HuggingFacePRM, solutions: list[list[str]]) -> Any:
    """Scores the way the model cards compute them: the model's own forward, one text at a time."""
    model = prm.transformers_model
    tokenizer = prm.tokenizer
    result = []
    for steps in solutions:
        text = prm.render(QUESTION, steps)
        ids = tokenizer(text, add_special_tokens=prm.prompt_format == "plain", return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=ids["input_ids"]).logits[0]
        mask = ids["input_ids"][0] == prm.separator_id
        if prm.family == "math-shepherd":  # P(+) / (P(+) + P(-)), as Math-Shepherd's card
            probability = logits[:, [prm.positive_index, prm.negative_index]].softmax(-1)[:, 0]
        else:  # softmax over the labels, as Qwen's make_step_rewards
            probability = logits.softmax(-1)[:, prm.positive_index]
        result.append(probability[mask].tolist())
    return result


def test_package_is_pinned_and_imports_torch_lazily() -> None:
    code = (
        "import sys, langchain_adaptive.integrations.huggingface as hf; "
        "print(sorted(hf.__all__)); print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "['HuggingFacePRM', 'QuantileFinetuneResult', 'QuantileHead', 'finetune_quantile_prm', "
        "'quantile_pinball_loss']",
        "False False",
    ]


# -- scoring ---------------------------------------------------------------------------


def test_scores_have_one_estimate_per_step_and_repeat_exactly(prm: HuggingFacePRM) -> None:
    first = prm.score(QUESTION, SOLUTIONS)
    second = prm.score(QUESTION, SOLUTIONS)
    assert [len(row) for row in first] == [3, 1, 1, 2]
    assert medians(first) == medians(second)
    for row in first:
        for estimate in row:
            assert 0.0 < estimate.median < 1.0
            assert estimate.lower == estimate.median == estimate.raw_score
    assert len({round(e.median, 6) for row in first for e in row}) > 3  # not a constant


def test_loaded_settings_describe_the_model(prm: HuggingFacePRM, qwen_dir: Path) -> None:
    assert prm.name_or_path == str(qwen_dir)
    assert (prm.family, prm.prompt_format, prm.separator_token) == ("qwen", "chat", "<extra_0>")
    assert (prm.positive_index, prm.negative_index) == (1, 0)
    assert prm.max_length == 512  # the config's max_position_embeddings
    assert prm.shared_prefix_pass
    if not torch.cuda.is_available():
        assert (prm.device, prm.dtype) == ("cpu", "float32")


def test_scores_equal_the_model_cards_computation(prm: HuggingFacePRM, qwen_dir: Path) -> None:
    ours = medians(prm.score(QUESTION, SOLUTIONS))
    assert_close(ours, reference_scores(qwen_dir, prm, SOLUTIONS))


def test_batching_equals_scoring_one_by_one(qwen_dir: Path) -> None:
    batched = HuggingFacePRM.from_pretrained(
        str(qwen_dir), local_files_only=True, batch_size=4
    ).score(QUESTION, SOLUTIONS)
    single = HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True, batch_size=1)
    alone = [single.score(QUESTION, [steps])[0] for steps in SOLUTIONS]
    assert_close(medians(batched), medians(alone))


def test_each_step_scores_what_the_prefix_alone_scores(prm: HuggingFacePRM) -> None:
    steps = SOLUTIONS[0]
    full = medians(prm.score(QUESTION, [steps]))[0]
    prefixes = [medians(prm.score(QUESTION, [steps[:k]]))[0][-1] for k in range(1, 4)]
    assert full == pytest.approx(prefixes, abs=1e-5)


def test_the_question_alone_is_scored_at_a_separator_opening_the_answer(
    prm: HuggingFacePRM,
) -> None:
    text = prm.render(QUESTION, [])
    assert text.endswith("<|im_start|>assistant\n<extra_0><|im_end|>\n")
    assert f"<|im_start|>user\n{QUESTION}<|im_end|>" in text
    estimate = prm.estimate_question(QUESTION)
    assert estimate.median == pytest.approx(prm.score(QUESTION, [[]])[0][0].median)
    assert estimate.median != pytest.approx(prm.estimate_question("What is 9 * 9?").median)


async def test_async_scoring_matches_sync(prm: HuggingFacePRM) -> None:
    assert medians(await prm.ascore(QUESTION, SOLUTIONS)) == medians(prm.score(QUESTION, SOLUTIONS))


def test_too_long_prefix_raises_instead_of_dropping_steps(qwen_dir: Path) -> None:
    short = HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True, max_length=120)
    short.estimate_question(QUESTION)  # fits
    long_steps = ["2 + 3 is computed by counting up from two, one at a time."] * 3
    with pytest.raises(ContextLengthExceededError, match="max_length=120") as info:
        short.score(QUESTION, [long_steps])
    assert info.value.context_size == 120
    assert info.value.prompt_tokens is not None and info.value.prompt_tokens > 120


def test_separator_inside_a_step_is_an_error(prm: HuggingFacePRM) -> None:
    with pytest.raises(PRMError, match="separator"):
        prm.score(QUESTION, [["2 + 3 <extra_0> = 5"]])


def test_math_shepherd_reads_good_and_bad_tokens_at_the_tag(shepherd_dir: Path) -> None:
    shepherd = HuggingFacePRM.from_pretrained(
        str(shepherd_dir), family="math-shepherd", local_files_only=True
    )
    assert shepherd.render(QUESTION, ["a", "b"]) == f"{QUESTION} a ки\nb ки"
    assert shepherd.render(QUESTION, []) == f"{QUESTION} ки"
    tokenizer = shepherd.tokenizer
    assert shepherd.positive_index == tokenizer.convert_tokens_to_ids("+")
    assert shepherd.negative_index == tokenizer.convert_tokens_to_ids("-")
    ours = medians(shepherd.score(QUESTION, SOLUTIONS))
    assert [len(row) for row in ours] == [3, 1, 1, 2]
    assert_close(ours, reference_scores(shepherd_dir, shepherd, SOLUTIONS))


def test_token_classifier_with_a_custom_separator_and_three_labels(tmp_path: Path) -> None:
    tokenizer = build_tokenizer(chat=False, extra_tokens=("<step>",))
    torch.manual_seed(2)
    model = transformers.Qwen2ForTokenClassification(tiny_config(len(tokenizer), num_labels=3))
    folder = save(model, tokenizer, tmp_path / "classifier")
    classifier = HuggingFacePRM.from_pretrained(
        str(folder),
        family="token-classification",
        local_files_only=True,
        step_suffix="<step>",
        positive_index=2,
    )
    assert classifier.prompt_format == "plain"  # the tokenizer has no chat template
    assert classifier.negative_index is None  # softmax over all three labels
    assert classifier.render(QUESTION, ["a", "b"]) == f"{QUESTION}\na<step>b<step>"
    ours = medians(classifier.score(QUESTION, SOLUTIONS))
    assert_close(ours, reference_scores(folder, classifier, SOLUTIONS))


def test_qwen_prm_with_its_own_modeling_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Qwen2.5-Math-PRM's layout: auto_map to a custom class with a Linear-ReLU-Linear head."""
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    code = tmp_path / "modeling_qwen2_rm.py"
    code.write_text(REMOTE_CODE)
    spec = importlib.util.spec_from_file_location("modeling_qwen2_rm", code)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokenizer = build_tokenizer()
    torch.manual_seed(3)
    model = module.Qwen2ForProcessRewardModel(tiny_config(len(tokenizer)))
    folder = save(model, tokenizer, tmp_path / "qwen-remote")
    (folder / code.name).write_text(REMOTE_CODE)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["Qwen2ForProcessRewardModel"]
    config["auto_map"] = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}
    (folder / "config.json").write_text(json.dumps(config))

    with pytest.raises(ConfigurationError, match="trust_remote_code"):
        HuggingFacePRM.from_pretrained(str(folder), local_files_only=True)
    remote = HuggingFacePRM.from_pretrained(
        str(folder), local_files_only=True, trust_remote_code=True
    )
    assert type(remote.transformers_model).__name__ == "Qwen2ForProcessRewardModel"
    ours = medians(remote.score(QUESTION, SOLUTIONS))
    assert_close(ours, reference_scores(folder, remote, SOLUTIONS))
    converted = remote.with_quantile_head()  # the head's last layer of the Sequential
    for row_point, row_quantile in zip(ours, converted.score(QUESTION, SOLUTIONS), strict=True):
        for point, estimate in zip(row_point, row_quantile, strict=True):
            assert list(estimate.quantiles.values()) == pytest.approx([point] * 3, abs=1e-5)


# -- loading errors ----------------------------------------------------------------------


def test_missing_folder_or_uncached_repo_is_model_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelNotFoundError, match="local cache"):
        HuggingFacePRM.from_pretrained(
            "no-such-org/no-such-prm", local_files_only=True, cache_dir=tmp_path
        )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: never reaches the network
    with pytest.raises(ModelNotFoundError, match="local cache"):
        HuggingFacePRM.from_pretrained("no-such-org/no-such-prm", cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="neither"):
        HuggingFacePRM.from_pretrained(str(tmp_path / "missing" / "dir"))


def test_unknown_settings_and_adapters_are_refused(qwen_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown HuggingFacePRM settings"):
        HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True, separator="x")
    with pytest.raises(ConfigurationError, match="math-shepherd"):
        HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True, positive_token="+")
    with pytest.raises(ModelNotFoundError, match="neither a PEFT adapter"):
        HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True, adapter=tmp_path)


# -- the quantile head -------------------------------------------------------------------


def test_sigmoid_of_the_logit_difference_is_the_softmax_probability() -> None:
    torch.manual_seed(4)
    binary = torch.nn.Linear(16, 2)
    features = torch.randn(32, 16) * 3
    head = QuantileHead.from_binary_head(binary, positive_index=1, negative_index=0)
    expected = binary(features).softmax(-1)[:, 1]
    got = head.probabilities(features)
    assert got.shape == (32, 3)
    for level in range(3):
        assert torch.allclose(got[:, level], expected, atol=1e-6)
    flipped = QuantileHead.from_binary_head(binary, positive_index=0, negative_index=1)
    assert torch.allclose(flipped.probabilities(features)[:, 0], 1 - expected, atol=1e-6)


def test_converted_prm_starts_at_the_original_score(prm: HuggingFacePRM) -> None:
    points = prm.score(QUESTION, SOLUTIONS)
    converted = prm.with_quantile_head()
    assert prm.quantile_head is None and converted.quantile_head is not None
    for row_point, row_quantile in zip(points, converted.score(QUESTION, SOLUTIONS), strict=True):
        for point, estimate in zip(row_point, row_quantile, strict=True):
            assert list(estimate.quantiles) == [0.1, 0.5, 0.9]
            assert list(estimate.quantiles.values()) == pytest.approx([point.median] * 3, abs=1e-5)
            assert estimate.raw_score == pytest.approx(point.median, abs=1e-6)


def test_converted_math_shepherd_starts_at_the_original_score(shepherd_dir: Path) -> None:
    shepherd = HuggingFacePRM.from_pretrained(
        str(shepherd_dir), family="math-shepherd", local_files_only=True
    )
    points = medians(shepherd.score(QUESTION, SOLUTIONS))
    converted = medians(shepherd.with_quantile_head().score(QUESTION, SOLUTIONS))
    assert_close(converted, points)


def test_quantile_head_needs_a_negative_label(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    model = transformers.Qwen2ForTokenClassification(tiny_config(len(tokenizer), num_labels=3))
    folder = save(model, tokenizer, tmp_path / "three")
    three = HuggingFacePRM.from_pretrained(
        str(folder), family="token-classification", local_files_only=True, positive_index=2
    )
    with pytest.raises(ConfigurationError, match="negative_index"):
        three.with_quantile_head()


# -- fine-tuning -------------------------------------------------------------------------

QUESTIONS = {
    "easy-0": "What is 1 + 1?",
    "easy-1": "What is 2 + 2?",
    "easy-2": "What is 3 + 1?",
    "hard-0": "What is 738 * 912?",
    "hard-1": "What is 4591 * 37?",
    "hard-2": "What is 86 ** 5?",
}


def synthetic_records() -> list[CalibrationRecord]:
    """Easy questions succeed nearly always from every prefix; hard ones nearly never."""
    records = []
    for question_id in QUESTIONS:
        easy = question_id.startswith("easy")
        for trajectory in range(2):
            steps = [f"Step {trajectory} one.", "Compute it.", "The answer follows."]
            for k in range(len(steps) + 1):
                successes = (7 + (k % 2)) if easy else (k % 2)
                records.append(
                    CalibrationRecord(
                        question_id=question_id,
                        trajectory=trajectory,
                        k=k,
                        num_steps=len(steps),
                        prefix="\n\n".join(steps[:k]),
                        complete=False,
                        raw_score=0.5,
                        successes=successes,
                        trials=8,
                        trajectory_correct=easy,
                    )
                )
    return records


def test_finetuning_lowers_the_pinball_loss_and_round_trips(qwen_dir: Path, tmp_path: Path) -> None:
    fresh = HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True)
    records = synthetic_records()
    out = tmp_path / "calibrated"
    result = finetune_quantile_prm(
        fresh,
        records,
        QUESTIONS,
        epochs=6,
        batch_size=4,
        learning_rate=5e-3,
        head_learning_rate=5e-2,
        lora_rank=4,
        lora_dropout=0.0,
        output_dir=out,
    )
    assert result.records == len(records)
    assert result.sequences == 6 + 12  # the question alone, and one pass per trajectory
    assert len(result.epoch_losses) == 6
    assert result.final_loss < 0.8 * result.initial_loss
    assert quantile_pinball_loss(result.prm, records, QUESTIONS) == pytest.approx(
        result.final_loss, rel=1e-4
    )

    tuned = result.prm
    easy = tuned.estimate_question(QUESTIONS["easy-0"])
    hard = tuned.estimate_question(QUESTIONS["hard-0"])
    assert easy.median > hard.median
    for estimate in (easy, hard):
        assert estimate.quantiles[0.1] <= estimate.quantiles[0.5] <= estimate.quantiles[0.9]

    names = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    assert {
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "quantile_head.json",
        "quantile_head.safetensors",
        "finetune.json",
    } <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pkl", ".pickle"))]
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["final_loss"] == pytest.approx(result.final_loss)

    reloaded = HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True, adapter=out)
    assert reloaded.adapter == str(out)
    before = tuned.score(QUESTIONS["easy-1"], SOLUTIONS)
    after = reloaded.score(QUESTIONS["easy-1"], SOLUTIONS)
    for row_before, row_after in zip(before, after, strict=True):
        for a, b in zip(row_before, row_after, strict=True):
            assert list(a.quantiles.values()) == pytest.approx(list(b.quantiles.values()), abs=1e-5)
            assert a.raw_score == pytest.approx(b.raw_score, abs=1e-5)


def test_head_only_finetuning_keeps_the_base_model(qwen_dir: Path) -> None:
    fresh = HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True)
    before = medians(fresh.score(QUESTION, SOLUTIONS))
    result = finetune_quantile_prm(
        fresh, synthetic_records(), QUESTIONS, epochs=4, lora=False, head_learning_rate=5e-2
    )
    assert result.final_loss < result.initial_loss
    assert not hasattr(result.prm.transformers_model, "peft_config")
    raw = [[e.raw_score for e in row] for row in result.prm.score(QUESTION, SOLUTIONS)]
    assert_close(raw, before)  # the binary head and backbone did not move


def test_a_head_saved_with_other_prompt_settings_is_refused(qwen_dir: Path, tmp_path: Path) -> None:
    converted = HuggingFacePRM.from_pretrained(
        str(qwen_dir), local_files_only=True, system_prompt="Be brief."
    ).with_quantile_head()
    converted.save_adapter(tmp_path / "head")
    with pytest.raises(ConfigurationError, match="system_prompt"):
        HuggingFacePRM.from_pretrained(
            str(qwen_dir), local_files_only=True, adapter=tmp_path / "head"
        )
    same = HuggingFacePRM.from_pretrained(
        str(qwen_dir), local_files_only=True, adapter=tmp_path / "head", system_prompt="Be brief."
    )
    assert same.quantile_head is not None


# -- serving it ------------------------------------------------------------------------


def test_served_over_http_it_gives_the_same_scores(prm: HuggingFacePRM) -> None:
    pytest.importorskip("fastapi", reason='needs the "server" extra')
    pytest.importorskip("uvicorn", reason='needs the "server" extra')
    from langchain_adaptive.integrations.http import RemotePRM
    from langchain_adaptive.integrations.http._server import running_server

    converted = prm.with_quantile_head()
    with running_server(converted, model_name="tiny-prm") as url:
        remote = RemotePRM(base_url=url, model="tiny-prm")
        local = converted.score(QUESTION, SOLUTIONS)
        served = remote.score(QUESTION, SOLUTIONS)
    # one request per solution: scored alone, so equal up to float error of another batch shape
    assert [len(row) for row in served] == [len(row) for row in local]
    for row_local, row_served in zip(local, served, strict=True):
        for a, b in zip(row_local, row_served, strict=True):
            assert list(b.quantiles.values()) == pytest.approx(list(a.quantiles.values()), abs=1e-5)
            assert math.isclose(b.raw_score or 0.0, a.raw_score or 0.0, abs_tol=1e-5)


# -- GPU -------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_scores_match_the_cpu(qwen_dir: Path) -> None:
    cpu = HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True, device="cpu")
    gpu = HuggingFacePRM.from_pretrained(str(qwen_dir), local_files_only=True)
    assert gpu.device.startswith("cuda")
    expected_dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    assert gpu.dtype == expected_dtype
    tolerance = 2e-2 if expected_dtype == "bfloat16" else 1e-4
    assert_close(
        medians(gpu.score(QUESTION, SOLUTIONS)), medians(cpu.score(QUESTION, SOLUTIONS)), tolerance
    )
