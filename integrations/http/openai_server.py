"""Serve an ``AdaptiveReasoningRunnable`` behind OpenAI's chat-completions API.

Any OpenAI client, in any language, gets adaptive sampling by changing its base
URL. One request's path through :func:`create_app`:

``Authorization`` checked (401, before any of the body is read) → body read
under a size limit (413) and a read timeout (408) → parsed and validated
(400: bad JSON, an unknown field, ``n > 1``, a setting an adaptive run cannot
honour, a per-request limit above the server's) → model name checked (404) →
a slot taken (429 with ``Retry-After`` when ``max_concurrency`` requests are in
flight) → the served runnable, copied with the request's settings, answers the
messages under the per-request deadline (504) → one OpenAI ``chat.completion``
(or SSE chunks, ``stream: true``).

What the response adds to OpenAI's format:

- ``usage`` counts every sample's tokens and the PRM's (prompt and completion
  tokens of both), not only the returned answer's.
- ``adaptive`` (an extension field) holds the facts of the run: samples drawn
  and decided, why it stopped, the success estimate (lower and median), the
  confidence reached, ``low_confidence`` (the target was out of reach within
  the cap), and the token breakdown between policy and PRM.
- With ``stream: true``, progress (the estimate and budget, each sample, the
  stop) arrives as SSE comment lines, ``: {"event": "adaptive_budget_decided",
  ...}``, which standard clients skip; the answer then arrives as
  ``chat.completion.chunk`` events, and a last chunk with ``usage`` (and empty
  ``choices``) when ``stream_options.include_usage`` is set.
- With ``tools``, each sample may answer with tool calls; a call is voted on in
  its normal form (name plus arguments as canonical JSON), and the winning
  sample's calls are returned as the model made them, ids included.

Per-request settings go in the ``adaptive`` field (:class:`AdaptiveOverrides`:
``target_confidence``, ``max_samples``, ``max_tokens_per_sample``,
``max_total_tokens``, ``strategy``, ``selection``); OpenAI's ``temperature``,
``top_p``, ``stop`` and ``max_tokens`` (the per-sample cap) apply to every
sample, and ``seed`` seeds sample ``k`` with ``seed + k``, so the samples differ
but a repeated request draws the same ones where the policy honours seeds.

From a shell: ``langchain-adaptive serve`` (the ``server`` extra, plus
``llamacpp`` for the on-device policy and PRM, or ``remote`` for
``--upstream-base-url``). It binds 127.0.0.1 unless ``--host`` says otherwise;
the API key, if any, is read from ``$LANGCHAIN_ADAPTIVE_API_KEY``. Prompts and
answers are never logged unless ``--log-prompts`` is given.
"""

# No ``from __future__ import annotations``: FastAPI reads the route functions'
# annotations at run time, and ``fastapi.Request`` is only imported inside create_app.

import asyncio
import contextlib
import itertools
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableBinding, RunnableConfig
from pydantic import Field, PrivateAttr, SecretStr

from langchain_adaptive._sampling import supports_confidence_stop, supports_native_n
from langchain_adaptive.answers import AnswerEquivalence, AnswerExtractor
from langchain_adaptive.callbacks._events import AdaptiveEvent
from langchain_adaptive.callbacks._handler import AsyncAdaptiveCallbackHandler
from langchain_adaptive.errors import (
    AdaptiveError,
    AdaptiveInputError,
    AdaptiveTimeoutError,
    ConfigurationError,
    ModelError,
    PRMError,
)
from langchain_adaptive.inputs import parse_input
from langchain_adaptive.results import AdaptiveResult
from langchain_adaptive.runnable import AdaptiveReasoningRunnable
from langchain_adaptive.strategies import build_strategy

from ._openai_protocol import (
    TOOL_CALL_PREFIX,
    AdaptiveOverrides,
    ChatCompletionRequest,
    ProtocolError,
    openai_tool_calls,
    parse_request,
    to_langchain_messages,
    tool_call_answer,
    tool_calls_text,
)
from ._server import _is_loopback, bearer_authorized, read_limited, running_app

logger = logging.getLogger(__name__)

_INSTALL_HINT = 'pip install "langchain-adaptive[server]"'

API_KEY_ENV = "LANGCHAIN_ADAPTIVE_API_KEY"
"""The environment variable holding the server's API key (never a command-line flag)."""
UPSTREAM_API_KEY_ENV = "LANGCHAIN_ADAPTIVE_UPSTREAM_API_KEY"
"""The API key ``serve --upstream-base-url`` sends to the upstream server, if it needs one."""
DEFAULT_MODEL_NAME = "adaptive"
"""The model name clients send by default."""
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
"""Largest request body read by default (1 MiB: a long conversation with tools)."""
DEFAULT_MAX_CONCURRENCY = 4
"""Requests answered at once by default; more get 429."""
DEFAULT_REQUEST_TIMEOUT_S = 600.0
"""Per-request deadline by default (a capped on-device run on a slow CPU fits)."""
DEFAULT_BODY_TIMEOUT_S = 30.0
"""Time a client has to send its whole body by default."""


# -- the policy for one request ------------------------------------------------------


class RequestPolicy(BaseChatModel):
    """The served chat model as one request asks: tools bound, seeds spread, options set.

    Calls go straight to the wrapped model's ``_generate``/``_agenerate``, so each
    sample is one traced model run, as without the wrapper. A sample that calls
    tools is handed to the runnable as the text of its normal form (see
    :func:`~._openai_protocol.tool_calls_text`) and kept, so the winning sample
    can be returned with its calls and ids intact (:meth:`tool_message`).
    """

    model: BaseChatModel
    """The served policy."""
    call_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Sent with every call: the tools ``bind_tools`` bound, ``stop``, ``top_p``."""
    seed: int | None = None
    """Sample ``k`` of the request gets ``seed + k``."""
    _drawn: Any = PrivateAttr(default_factory=itertools.count)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _tool_messages: dict[str, AIMessage] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return self.model._llm_type

    @property
    def supports_n_samples(self) -> bool:
        """Native ``n`` when the served model has it (one prompt evaluation for n samples)."""
        return supports_native_n(self.model)

    @property
    def supports_confidence_stop(self) -> bool:
        """Mid-generation confidence stops (deepconf) when the served model has them."""
        return supports_confidence_stop(self.model)

    def tool_message(self, text: str) -> AIMessage | None:
        """The tool-calling sample (calls and ids intact) behind a candidate's text, if any."""
        return self._tool_messages.get(text)

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        call = {**self.call_kwargs, **kwargs}
        if self.seed is not None:
            with self._lock:  # native n: the model adds the sample's index to the seed
                first = next(self._drawn)
                for _ in range(int(call.get("n") or 1) - 1):
                    next(self._drawn)
            call["seed"] = self.seed + first
        return call

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._kwargs(kwargs)
        stops = _stops(stop, call.pop("stop", None))
        result = self.model._generate(messages, stop=stops, run_manager=run_manager, **call)
        return self._as_candidates(result)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._kwargs(kwargs)
        stops = _stops(stop, call.pop("stop", None))
        result = await self.model._agenerate(messages, stop=stops, run_manager=run_manager, **call)
        return self._as_candidates(result)

    def _as_candidates(self, result: ChatResult) -> ChatResult:
        generations = []
        for generation in result.generations:
            message = generation.message
            if isinstance(message, AIMessage) and message.tool_calls:
                text = tool_calls_text(message)
                with self._lock:
                    self._tool_messages.setdefault(text, message)
                generation = ChatGeneration(
                    message=AIMessage(
                        content=text,
                        usage_metadata=message.usage_metadata,
                        response_metadata=message.response_metadata,
                    ),
                    generation_info=generation.generation_info,
                )
            generations.append(generation)
        return ChatResult(generations=generations, llm_output=result.llm_output)


def _stops(runnable: list[str] | None, request: list[str] | None) -> list[str] | None:
    """The runnable's stop strings (a step's end) and the request's, together."""
    if not request:
        return runnable
    return [*(runnable or []), *(s for s in request if s not in (runnable or []))]


def _has_tokenizer(model: BaseLanguageModel) -> bool:
    return model.custom_get_token_ids is not None or (
        type(model).get_token_ids is not BaseLanguageModel.get_token_ids
    )


def _tool_aware_extractor(extract: AnswerExtractor) -> AnswerExtractor:
    def extractor(text: str) -> str | None:
        return tool_call_answer(text) or extract(text)

    return extractor


def _tool_aware_match(match: AnswerEquivalence) -> AnswerEquivalence:
    def equivalent(a: str, b: str) -> bool:
        if a.startswith(TOOL_CALL_PREFIX) or b.startswith(TOOL_CALL_PREFIX):
            return a == b
        return match(a, b)

    return equivalent


# -- one request, prepared -----------------------------------------------------------


class _Prepared:
    """A validated request: the runnable to run, its input, and how to answer."""

    def __init__(
        self,
        request: ChatCompletionRequest,
        runnable: AdaptiveReasoningRunnable,
        messages: list[BaseMessage],
        policy: RequestPolicy | None,
    ) -> None:
        self.request = request
        self.runnable = runnable
        self.messages = messages
        self.policy = policy
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())


def prepare(base: AdaptiveReasoningRunnable, request: ChatCompletionRequest) -> _Prepared:
    """The served runnable with the request's settings, checked before any compute.

    Raises:
        ProtocolError: A setting the server cannot honour (the message says why).
        ConfigurationError: The settings do not fit together (e.g. a strategy that
            needs a PRM on a server without one).
    """
    reason = request.unsupported()
    if reason:
        raise ProtocolError(reason)
    overrides = request.adaptive or AdaptiveOverrides()
    update: dict[str, Any] = {}
    for name in ("target_confidence", "max_samples", "max_tokens_per_sample", "max_total_tokens"):
        value = getattr(overrides, name)
        if value is not None:
            update[name] = value
    if request.sample_max_tokens is not None:
        if overrides.max_tokens_per_sample not in (None, request.sample_max_tokens):
            raise ProtocolError("max_tokens and adaptive.max_tokens_per_sample disagree")
        update["max_tokens_per_sample"] = request.sample_max_tokens
    for name, flag in (("max_samples", "--max-samples"), ("max_tokens_per_sample", "--max-tokens")):
        if name in update and update[name] > getattr(base, name):
            raise ProtocolError(
                f"{name}={update[name]} is above this server's limit of {getattr(base, name)} "
                f"({flag}); ask for at most that"
            )
    if "max_total_tokens" in update and base.max_total_tokens is not None:
        update["max_total_tokens"] = min(update["max_total_tokens"], base.max_total_tokens)
    if overrides.strategy is not None or overrides.selection is not None:
        selection = {"selection": overrides.selection} if overrides.selection else {}
        update["strategy"] = build_strategy(overrides.strategy or base.strategy, **selection)
    if request.temperature is not None:
        update["temperature"] = request.temperature
    policy = _request_policy(base, request)
    if policy is not None:
        update["model"] = policy
        if request.tools:
            update["answer_extractor"] = _tool_aware_extractor(base.answer_extractor)
            update["answers_match"] = _tool_aware_match(base.answers_match)
    runnable = base.model_copy(update=update) if update else base
    runnable.resolved_strategy()  # a strategy that needs a PRM the server lacks: 400 now
    messages = to_langchain_messages(request.messages)
    parse_input(messages)  # no user turn, an empty question: 400 before a slot is taken
    return _Prepared(request, runnable, messages, policy)


def _request_policy(
    base: AdaptiveReasoningRunnable, request: ChatCompletionRequest
) -> RequestPolicy | None:
    """The wrapped policy when the request needs one (tools, seed, stop, top_p), else None."""
    call: dict[str, Any] = {}
    if request.stop:
        call["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.top_p is not None:
        call["top_p"] = request.top_p
    if not (call or request.tools or request.seed is not None):
        return None
    model = base.model
    if not isinstance(model, BaseChatModel):
        raise ProtocolError(
            "tools, seed, stop and top_p need a chat-model policy; this server's is a "
            f"{type(model).__name__}"
        )
    if request.tools:
        tools = [tool.model_dump(exclude_none=True) for tool in request.tools]
        choice = request.bind_tool_choice()
        try:
            bound = model.bind_tools(tools, **({"tool_choice": choice} if choice else {}))
        except NotImplementedError:
            raise ProtocolError(
                f"the served policy ({type(model).__name__}) does not support tools"
            ) from None
        if not (isinstance(bound, RunnableBinding) and bound.bound is model):
            raise ProtocolError(
                f"{type(model).__name__}.bind_tools did not bind keyword arguments to the model; "
                "tool calls need a chat model whose bind_tools does"
            )
        call = {**bound.kwargs, **call}
    settings: dict[str, Any] = {"model": model, "call_kwargs": call, "seed": request.seed}
    if _has_tokenizer(model):
        settings["custom_get_token_ids"] = model.get_token_ids
    return RequestPolicy(**settings)


# -- the response --------------------------------------------------------------------


def usage_of(result: AdaptiveResult) -> dict[str, int]:
    """OpenAI ``usage``: every sample's tokens plus the PRM's."""
    budget = result.budget
    prompt = budget.prompt_tokens + budget.prm_input_tokens
    completion = budget.generated_tokens + budget.prm_output_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def adaptive_facts(result: AdaptiveResult, target_confidence: float) -> dict[str, Any]:
    """The ``adaptive`` extension field: what the run decided, spent, and estimated."""
    budget, estimate = result.budget, result.question_estimate
    return {
        "samples_used": budget.samples_used,
        "decided_samples": budget.decided_samples,
        "max_samples": budget.max_samples,
        "strategy": result.strategy,
        "selection": result.selection,
        "stop_reason": result.stop_reason,
        "target_confidence": target_confidence,
        "confidence": result.confidence,
        "low_confidence": result.low_confidence,
        "success_estimate": (
            None if estimate is None else {"lower": estimate.lower, "median": estimate.median}
        ),
        "usage": {
            "policy": {
                "prompt_tokens": budget.prompt_tokens,
                "completion_tokens": budget.generated_tokens,
                "model_calls": budget.model_calls,
            },
            "prm": {
                "calls": budget.prm_calls,
                "prompt_tokens": budget.prm_input_tokens,
                "completion_tokens": budget.prm_output_tokens,
                "model_calls": budget.prm_model_calls,
            },
            "estimated": budget.tokens_estimated,
        },
        "warnings": result.warnings,
        "elapsed_s": round(result.elapsed_s, 4),
    }


def _answer(prepared: _Prepared, result: AdaptiveResult) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason of the selected sample."""
    selected = (
        result.candidates[result.selected_index] if result.selected_index is not None else None
    )
    called = prepared.policy.tool_message(selected.text) if prepared.policy and selected else None
    if called is not None:
        message = {
            "role": "assistant",
            "content": str(called.text).strip() or None,
            "tool_calls": openai_tool_calls(called, lambda: f"call_{uuid.uuid4().hex[:24]}"),
        }
        return message, "tool_calls"
    finish = "length" if selected is not None and selected.finish_reason == "length" else "stop"
    return {"role": "assistant", "content": result.solution or ""}, finish


def completion_body(prepared: _Prepared, result: AdaptiveResult, model_name: str) -> dict[str, Any]:
    """One ``chat.completion`` object, with our ``adaptive`` extension."""
    message, finish = _answer(prepared, result)
    return {
        "id": prepared.id,
        "object": "chat.completion",
        "created": prepared.created,
        "model": model_name,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_of(result),
        "adaptive": adaptive_facts(result, prepared.runnable.target_confidence),
    }


_PIECE = re.compile(r"\S*\s*")
_WORDS_PER_CHUNK = 8


def completion_chunks(
    prepared: _Prepared, result: AdaptiveResult, model_name: str
) -> Iterator[dict[str, Any]]:
    """The answer as ``chat.completion.chunk`` objects, in OpenAI's streaming order."""
    include_usage = bool(
        prepared.request.stream_options and prepared.request.stream_options.include_usage
    )
    head = {
        "id": prepared.id,
        "object": "chat.completion.chunk",
        "created": prepared.created,
        "model": model_name,
        "system_fingerprint": None,
        **({"usage": None} if include_usage else {}),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice], **extra}

    message, finish = _answer(prepared, result)
    yield chunk({"role": "assistant", "content": ""})
    words = [piece for piece in _PIECE.findall(message["content"] or "") if piece]
    for start in range(0, len(words), _WORDS_PER_CHUNK):
        yield chunk({"content": "".join(words[start : start + _WORDS_PER_CHUNK])})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    facts = adaptive_facts(result, prepared.runnable.target_confidence)
    yield chunk({}, finish, adaptive=facts)
    if include_usage:
        yield {**head, "choices": [], "usage": usage_of(result)}


# -- serving -------------------------------------------------------------------------


class _Admission:
    """At most ``limit`` requests in flight; the mean latency sets ``Retry-After``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._mean_s: float | None = None

    def enter(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def leave(self, elapsed_s: float) -> None:
        self.in_flight -= 1
        self._mean_s = elapsed_s if self._mean_s is None else 0.8 * self._mean_s + 0.2 * elapsed_s

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about one request's latency, 1 to 60."""
        return max(1, min(60, math.ceil(self._mean_s or 1.0)))


class _ProgressRelay(AsyncAdaptiveCallbackHandler):
    """Puts every adaptive event of a run on a queue, for the SSE comment lines."""

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        super().__init__()
        self.queue = queue

    async def on_adaptive_event(self, event: AdaptiveEvent, **kwargs: Any) -> None:
        self.queue.put_nowait({"event": event.event_name, **event.model_dump(mode="json")})


_DONE = object()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class _DeadlineExceeded(Exception):
    """The run passed the per-request deadline; ``partial`` holds what it drew by then."""

    def __init__(self, message: str, *, partial: AdaptiveResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


_DEADLINE_BACKSTOP_S = 5.0
"""How long after the runnable's own deadline the server cancels a run that did not stop."""


def create_app(
    runnable: AdaptiveReasoningRunnable,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    api_key: str | SecretStr | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    log_prompts: bool = False,
    heartbeat_s: float = 10.0,
) -> Any:
    """A FastAPI app serving ``runnable`` at ``POST /v1/chat/completions``.

    Also ``GET /v1/models`` (the one model, ``model_name``) and ``GET /health``
    (no key needed; says how many requests are in flight).

    Args:
        runnable: The served reasoner; each request runs a copy with its settings.
        model_name: The name clients send as ``model`` (others get 404).
        api_key: If set, every request but ``/health`` needs ``Authorization:
            Bearer <key>``, compared in constant time.
        max_request_bytes: Largest body read (more: 413, before it is parsed).
        body_timeout_s: Time to receive the whole body (longer: 408), so a slow
            upload cannot hold a connection open forever.
        request_timeout_s: Deadline of one run (longer: 504, the run cancelled).
        max_concurrency: Runs at once (more: 429 with ``Retry-After``).
        log_prompts: Log each request's question and answer (off: only ids,
            sample counts and timings are logged).
        heartbeat_s: A streamed response sends ``: ping`` after this long
            without progress, so proxies keep the connection open.

    Example:
        ```python
        import uvicorn

        from langchain_adaptive.integrations.http.openai_server import create_app

        uvicorn.run(create_app(reasoner), host="127.0.0.1", port=8000)
        ```
    """
    if max_request_bytes < 1 or max_concurrency < 1:
        raise ValueError("max_request_bytes and max_concurrency must be at least 1")
    if min(body_timeout_s, request_timeout_s, heartbeat_s) <= 0:
        raise ValueError("body_timeout_s, request_timeout_s and heartbeat_s must be positive")
    _import_fastapi()  # an ImportError that names the extras, rather than a bare one
    import fastapi
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.requests import ClientDisconnect

    secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    admission = _Admission(max_concurrency)
    app = fastapi.FastAPI(title="langchain-adaptive", docs_url=None, redoc_url=None)

    def error(
        status: int, message: str, kind: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> Any:
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
        return JSONResponse({**body, **extra}, status_code=status, headers=headers)

    def authorized(request: Any) -> bool:
        return bearer_authorized(request, secret)

    def too_large(size: str) -> Any:
        return error(
            413,
            f"request body is {size} bytes; this server takes at most {max_request_bytes} "
            "(--max-request-bytes)",
            "RequestTooLargeError",
        )

    async def read_body(request: Any) -> bytes | Any:
        body = await read_limited(request, max_request_bytes)
        return too_large(body) if isinstance(body, str) else body

    async def run(prepared: _Prepared, queue: asyncio.Queue[Any] | None) -> AdaptiveResult:
        """The adaptive run under the deadline; frees its slot however it ends."""
        started = time.perf_counter()
        config: RunnableConfig = {"run_name": "adaptive_chat_completion"}
        if queue is not None:
            config["callbacks"] = [_ProgressRelay(queue)]
        # The runnable's own deadline ends the run with what it drew (.partial, in the 504's
        # adaptive facts); the asyncio one, a little later, is the backstop for a run that
        # cannot be stopped between actions.
        own = prepared.runnable.timeout_s
        runnable = prepared.runnable.model_copy(
            update={"timeout_s": request_timeout_s if own is None else min(own, request_timeout_s)}
        )
        deadline = asyncio.timeout(request_timeout_s + _DEADLINE_BACKSTOP_S)
        try:
            async with deadline:
                return await runnable.ainvoke(prepared.messages, config)
        except AdaptiveTimeoutError as timed_out:
            raise _DeadlineExceeded(
                f"the request took longer than {request_timeout_s:g} s (--request-timeout); "
                "lower adaptive.max_samples or max_tokens",
                partial=timed_out.partial,
            ) from None
        except TimeoutError:
            if not deadline.expired():
                raise  # a timeout inside the run (e.g. the upstream's), not the deadline
            raise _DeadlineExceeded(
                f"the request took longer than {request_timeout_s:g} s (--request-timeout); "
                "lower adaptive.max_samples or max_tokens"
            ) from None
        finally:
            admission.leave(time.perf_counter() - started)
            if queue is not None:
                queue.put_nowait(_DONE)

    def failure(caught: BaseException, prepared: _Prepared) -> tuple[int, str, str, dict[str, Any]]:
        """Status, type, message and extra fields of a run that failed (with what it spent)."""
        partial = getattr(caught, "partial", None)
        target = prepared.runnable.target_confidence
        extra = {"adaptive": adaptive_facts(partial, target)} if partial is not None else {}
        if isinstance(caught, _DeadlineExceeded):
            return 504, "DeadlineExceededError", str(caught), extra
        if isinstance(caught, AdaptiveInputError | ConfigurationError):
            return 400, "BadRequestError", str(caught), extra
        if isinstance(caught, ModelError):
            logger.warning("chat completion: the policy failed: %s", type(caught).__name__)
            return 502, "PolicyError", str(caught), extra
        if isinstance(caught, PRMError | AdaptiveError):
            logger.warning("chat completion: the run failed: %s", type(caught).__name__)
            return 500, type(caught).__name__, str(caught), extra
        logger.error("chat completion: unexpected %s", type(caught).__name__, exc_info=caught)
        return 500, "InternalServerError", f"{type(caught).__name__} in the server", extra

    def log_done(prepared: _Prepared, result: AdaptiveResult) -> None:
        logger.info(
            "chat completion %s: %d sample(s), stop %s, %.2f s",
            prepared.id,
            result.budget.samples_used,
            result.stop_reason,
            result.elapsed_s,
        )
        if log_prompts:
            logger.info(
                "chat completion %s: question %r -> answer %r",
                prepared.id,
                result.question,
                result.solution,
            )

    async def stream(
        prepared: _Prepared, task: asyncio.Task[AdaptiveResult], queue: asyncio.Queue[Any]
    ) -> AsyncIterator[str]:
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), heartbeat_s)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if item is _DONE:
                    break
                yield f": {json.dumps(item)}\n\n"
            try:
                result = await task
            except Exception as caught:
                status, kind, message, extra = failure(caught, prepared)
                body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
                yield f"data: {json.dumps({**body, **extra})}\n\n"
                return
            log_done(prepared, result)
            for chunk in completion_chunks(prepared, result, model_name):
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            if not task.done():  # the client went away: stop the run
                task.cancel()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "in_flight": admission.in_flight,
            "max_concurrency": max_concurrency,
        }

    @app.get("/v1/models")
    async def models(request: fastapi.Request) -> Any:
        if not authorized(request):
            return error(401, "missing or invalid API key", "AuthenticationError")
        model = {
            "id": model_name,
            "object": "model",
            "created": 0,
            "owned_by": "langchain-adaptive",
        }
        return {"object": "list", "data": [model]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: fastapi.Request) -> Any:
        if not authorized(request):
            return error(401, "missing or invalid API key", "AuthenticationError")
        try:
            raw = await asyncio.wait_for(read_body(request), body_timeout_s)
        except TimeoutError:
            return error(
                408,
                f"the request body did not arrive within {body_timeout_s:g} s (--body-timeout)",
                "RequestTimeoutError",
            )
        except ClientDisconnect:
            return error(400, "the client disconnected while sending the body", "BadRequestError")
        if not isinstance(raw, bytes):
            return raw
        try:
            body = parse_request(raw)
            if body.model != model_name:
                return error(
                    404,
                    f"The model `{body.model}` does not exist; this server serves `{model_name}`.",
                    "NotFoundError",
                )
            prepared = prepare(runnable, body)
        except (ProtocolError, AdaptiveInputError, ConfigurationError) as caught:
            return error(400, str(caught), "BadRequestError")
        if not admission.enter():
            wait = admission.retry_after()
            return error(
                429,
                f"{max_concurrency} request(s) are in flight, this server's limit "
                f"(--max-concurrency); retry in about {wait} s",
                "RateLimitError",
                headers={"Retry-After": str(wait)},
            )
        queue: asyncio.Queue[Any] | None = asyncio.Queue() if body.stream else None
        task = asyncio.ensure_future(run(prepared, queue))
        task.add_done_callback(_retrieve)  # a stream never read still consumes its error
        if queue is not None:
            return StreamingResponse(
                stream(prepared, task, queue),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            result = await task
        except Exception as caught:
            status, kind, message, extra = failure(caught, prepared)
            return error(status, message, kind, **extra)
        log_done(prepared, result)
        return JSONResponse(completion_body(prepared, result, model_name))

    return app


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError as error:
        raise ImportError(
            f"the adaptive server needs fastapi and uvicorn: {_INSTALL_HINT}"
        ) from error
    return fastapi


@contextlib.contextmanager
def running_server(
    runnable: AdaptiveReasoningRunnable,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **app_kwargs: Any,
) -> Iterator[str]:
    """:func:`create_app` for ``runnable`` in a background thread; yields the base URL.

    ``port=0`` takes a free port; the server stops when the block ends. Meant for
    tests and notebooks; use :func:`serve` for a long-running server. Clients
    use ``f"{url}/v1"`` as their base URL.

    Example:
        ```python
        from openai import OpenAI

        with running_server(reasoner) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="unused")
            client.chat.completions.create(model="adaptive", messages=[...])
        ```
    """
    with running_app(create_app(runnable, **app_kwargs), host=host, port=port) as url:
        yield url


def serve(
    runnable: AdaptiveReasoningRunnable,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    graceful_timeout: float | None = 30.0,
    log_level: str = "info",
    **app_kwargs: Any,
) -> None:
    """Serve ``runnable`` until interrupted (binds to localhost unless told otherwise).

    On SIGTERM or SIGINT uvicorn stops accepting connections and lets the runs in
    flight finish for up to ``graceful_timeout`` seconds before it exits.
    """
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError(f"serving needs uvicorn: {_INSTALL_HINT}") from error
    if not app_kwargs.get("api_key") and not _is_loopback(host):
        logger.warning(
            "adaptive server: listening on %s with no API key: anyone who can reach it may use "
            "it; set $%s",
            host,
            API_KEY_ENV,
        )
    uvicorn.run(
        create_app(runnable, **app_kwargs),
        host=host,
        port=port,
        log_level=log_level,
        # uvicorn annotates int, but waits with asyncio.timeout, which takes float seconds
        timeout_graceful_shutdown=graceful_timeout,  # type: ignore[arg-type]
    )


__all__ = [
    "API_KEY_ENV",
    "DEFAULT_MODEL_NAME",
    "UPSTREAM_API_KEY_ENV",
    "RequestPolicy",
    "adaptive_facts",
    "completion_body",
    "completion_chunks",
    "create_app",
    "prepare",
    "running_server",
    "serve",
    "usage_of",
]
