"""Launch-and-cancel: start a plan's samples at once, hand them out as they finish, cancel the rest.

A strategy that draws in rounds (Adaptive-Consistency, ESC, sequential IAS,
answer_stop, DeepConf's online phase) says on each :class:`~langchain_adaptive.
strategies.base.Draw` how many samples it may still take in all (``horizon``).
Under ``launch="eager"`` the driver starts that many (what the limits allow of
it) concurrently, here, and answers each round with the first samples to
finish, in completion order; when the plan stops, what is still running is
cancelled. The data path:

    launch (reserve every launched sample) -> take n (completion order) -> ... ->
    cancel (stop the rest; count what they generated as ``cancelled_tokens``)

Two ways to run the samples:

* **one call per sample** (any chat model): a task per sample over the model's
  ``astream`` (sync: a thread over ``stream``), so a cancelled HTTP request
  closes its connection (the server sees the disconnect) and the tokens
  streamed so far are counted. A model with no streaming path answers in one
  piece; such a call cannot be stopped, so it is counted with unknown tokens.
* **one batched call** (models with ``supports_launch_hooks``, i.e.
  ``ChatLlamaCpp``, whose ``Llama`` is not thread-safe): ``n`` samples decoded
  together by the batched decoder, which reports each sample as it finishes
  and stops decoding the rest when asked; the model reports exactly what the
  stopped samples generated (``finish_reason="cancelled"``).

:class:`Launched` lives on the caller's event loop (tasks); :class:`ThreadedLaunch`
is its sync twin (a thread per sample over the model's sync ``stream``, so a sync
run shares no event loop, nor an async HTTP client's connections, with anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_adaptive._sampling import (
    Sample,
    SamplingFailure,
    _asample,
    _chat_sample,
    _run_args,
    _sample,
)

T = TypeVar("T")

CANCELLED = "cancelled"
"""``finish_reason`` of a sample a batched decoder stopped because its launch was cancelled."""


class LaunchCancelled(Exception):
    """Raised in a take still waiting when its launch is cancelled (a sync deadline)."""


class LaunchHooks(Protocol):
    """What a batched decoder is handed (the ``launch`` call kwarg) to serve a launch.

    ``finished`` is called from the decoding thread as each sample ends (``index``
    is the sample's place in the call); ``cancelled`` is polled between decode
    steps, and once it is true the decoder ends every sample still running with
    ``finish_reason="cancelled"`` and their tokens so far.
    """

    def finished(self, index: int, message: AIMessage) -> None: ...

    def cancelled(self) -> bool: ...


def supports_launch_hooks(model: BaseLanguageModel) -> bool:
    """Whether the model decodes a launch's samples together and takes a ``launch`` kwarg."""
    return bool(getattr(model, "supports_launch_hooks", False))


@dataclass
class Cancelled:
    """What a launch's cancelled (and finished-but-unused) samples cost."""

    samples: int = 0
    """Samples launched that the plan never took: stopped mid-way, or finished too late."""
    tokens: int = 0
    """Tokens those samples generated, as the backend reported them (or as streamed)."""
    estimated: bool = False
    """Some count came from the streamed text, not the backend's report."""
    unknown: int = 0
    """Calls that could not be stopped (no async path) and whose tokens are not known."""

    def add(self, sample: Sample) -> None:
        """Count a sample that was generated and never used."""
        self.tokens += sample.usage.output_tokens
        self.estimated |= sample.usage.estimated

    def add_streamed(self, model: BaseLanguageModel, seen: tuple[AIMessageChunk, int]) -> None:
        """Count what a stopped sample streamed: its message so far and its text chunks."""
        self.add(_streamed_sample(model, *seen))

    def drain(self, finished: queue.Queue[Any] | asyncio.Queue[Any]) -> None:
        """Count the samples that finished after the plan stopped: generated, never used."""
        while not finished.empty():
            item = finished.get_nowait()
            if isinstance(item, Sample):
                self.add(item)


@dataclass
class _Hooks:
    """The :class:`LaunchHooks` a batched call gets: finished samples go to the queue."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Sample | BaseException]
    model: BaseLanguageModel
    stop: threading.Event = field(default_factory=threading.Event)

    def finished(self, index: int, message: AIMessage) -> None:
        sample = _chat_sample(self.model, message)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run has ended
            self.loop.call_soon_threadsafe(self.queue.put_nowait, sample)

    def cancelled(self) -> bool:
        return self.stop.is_set()


class Launched:
    """``count`` samples of one prompt, started at once on the running event loop.

    Create it inside the loop that will ``take`` from it.
    """

    def __init__(
        self,
        model: BaseLanguageModel,
        messages: Sequence[BaseMessage],
        prompt: str,
        count: int,
        kwargs: dict[str, Any],
        config: RunnableConfig,
    ) -> None:
        self.model = model
        self.count = count
        self.kwargs = kwargs
        self.taken = 0
        self.queue: asyncio.Queue[Sample | BaseException] = asyncio.Queue()
        self._seen: dict[int, tuple[AIMessageChunk, int]] = {}
        """Per running sample: the message streamed so far and how many chunks carried text."""
        self._hooks: _Hooks | None = None
        self._closed = False
        self._taker: asyncio.Task[Any] | None = None
        self.tasks: list[asyncio.Future[Any]]
        if supports_launch_hooks(model) and isinstance(model, BaseChatModel):
            self._hooks = _Hooks(asyncio.get_running_loop(), self.queue, model)
            call = model.agenerate(
                [list(messages)], **_run_args(config), n=count, launch=self._hooks, **kwargs
            )
            self.tasks = [asyncio.ensure_future(call)]
            self.tasks[0].add_done_callback(self._batched_done)
        else:
            self.tasks = [
                asyncio.ensure_future(self._one(i, messages, prompt, config)) for i in range(count)
            ]

    @property
    def remaining(self) -> int:
        """Samples launched and not yet taken."""
        return self.count - self.taken

    async def _one(
        self, index: int, messages: Sequence[BaseMessage], prompt: str, config: RunnableConfig
    ) -> None:
        try:
            if isinstance(self.model, BaseChatModel):
                sample = await self._streamed(index, messages, config)
            else:
                (sample,) = await _asample(
                    self.model, messages, prompt, 1, stop=(), kwargs=self.kwargs, config=config
                )
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the plan's next take
            self.queue.put_nowait(error)
        else:
            self.queue.put_nowait(sample)

    async def _streamed(
        self, index: int, messages: Sequence[BaseMessage], config: RunnableConfig
    ) -> Sample:
        """One sample over ``astream``: the chunks seen so far are what a cancel counts."""
        assert isinstance(self.model, BaseChatModel)
        message: AIMessageChunk | None = None
        pieces = 0
        async for chunk in self.model.astream(list(messages), config, **self.kwargs):
            message = chunk if message is None else message + chunk
            pieces += bool(chunk.text)
            self._seen[index] = (message, pieces)
        if message is None:
            message = AIMessageChunk(content="")
        return _streamed_sample(self.model, message, pieces)

    def _batched_done(self, task: asyncio.Future[Any]) -> None:
        """A batched call that failed before its samples arrived: the next take raises."""
        if not task.cancelled() and task.exception() is not None and not self._closed:
            self.queue.put_nowait(task.exception())  # type: ignore[arg-type]

    async def take(self, n: int) -> list[Sample]:
        """The next ``n`` samples to finish, in the order they finished.

        Raises:
            SamplingFailure: A sample failed; the ones taken before it are attached.
        """
        got: list[Sample] = []
        self._taker = asyncio.current_task()
        try:
            for _ in range(min(n, self.remaining)):
                item = await self.queue.get()
                self.taken += 1
                if isinstance(item, BaseException):
                    raise SamplingFailure(got, item)
                got.append(item)
        except asyncio.CancelledError:  # the deadline: the samples go back, cancel counts them
            for sample in got:
                self.queue.put_nowait(sample)
            self.taken -= len(got)
            raise
        finally:
            self._taker = None
        return got

    async def cancel(self) -> Cancelled:
        """Stop every sample still running; count what the untaken samples generated."""
        if self._closed:
            return Cancelled()
        self._closed = True
        if self._taker is not None:  # a take abandoned at the deadline (sync) stops waiting
            self._taker.cancel()
            await asyncio.sleep(0)
        report = Cancelled(samples=self.remaining)
        if self._hooks is not None:
            self._hooks.stop.set()
            (task,) = self.tasks
            with contextlib.suppress(Exception):
                # the decoder stops at its next step; the samples it stopped say what they cost
                report.tokens += _cancelled_tokens(self.model, await task)
            report.drain(self.queue)
            return report
        running = [task for task in self.tasks if not task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        report.drain(self.queue)
        for index, task in enumerate(self.tasks):
            if task not in running:
                continue
            seen = self._seen.get(index)
            if seen is not None:
                report.add_streamed(self.model, seen)
            elif not _streams(self.model):
                report.unknown += 1
        return report


def _streamed_sample(model: BaseLanguageModel, message: AIMessageChunk, pieces: int) -> Sample:
    """A streamed message as a sample; with no usage reported, one token per text chunk.

    Counting chunks (what an OpenAI-compatible server sends a token at a time)
    avoids a tokenizer that may need a download; it is marked ``estimated``.
    """
    if message.usage_metadata is not None:
        return _chat_sample(model, message)
    sample = _chat_sample(
        model,
        message.model_copy(
            update={
                "usage_metadata": {
                    "input_tokens": 0,
                    "output_tokens": pieces,
                    "total_tokens": pieces,
                }
            }
        ),
    )
    sample.usage.estimated = True
    return sample


def _streams(model: BaseLanguageModel) -> bool:
    """Whether a cancelled call of ``model`` really stops (it has a streaming or async path)."""
    kind = type(model)
    return any(
        getattr(kind, name, None) is not getattr(BaseChatModel, name, None)
        for name in ("_stream", "_astream", "_agenerate")
    )


class ThreadedLaunch:
    """``count`` samples of one prompt in worker threads, for sync callers.

    Each sample is a thread over the model's sync ``stream`` that stops at its
    next chunk once the launch is cancelled (closing the stream, so an HTTP
    request is cut off); a model with launch hooks gets one thread over its
    batched call. ``take`` blocks until the samples it hands out have finished;
    ``cancel`` waits up to ``grace`` seconds for the threads to stop.
    """

    grace: float = 5.0

    def __init__(
        self,
        model: BaseLanguageModel,
        messages: Sequence[BaseMessage],
        prompt: str,
        count: int,
        kwargs: dict[str, Any],
        config: RunnableConfig,
    ) -> None:
        self.model = model
        self.count = count
        self.kwargs = kwargs
        self.taken = 0
        self.queue: queue.Queue[Sample | BaseException] = queue.Queue()
        self.stop = threading.Event()
        self._seen: dict[int, tuple[AIMessageChunk, int]] = {}
        self._done: set[int] = set()
        self._result: list[Any] = []
        self._batched = supports_launch_hooks(model) and isinstance(model, BaseChatModel)
        context = contextvars.copy_context()  # tracing and child-run config travel along
        if self._batched:
            targets = [functools.partial(self._batch, messages, config)]
        else:
            targets = [
                functools.partial(self._one, i, messages, prompt, config) for i in range(count)
            ]
        self.threads = [
            threading.Thread(
                target=context.copy().run, args=(target,), name="adaptive-launch", daemon=True
            )
            for target in targets
        ]
        for thread in self.threads:
            thread.start()

    @property
    def remaining(self) -> int:
        return self.count - self.taken

    def _batch(self, messages: Sequence[BaseMessage], config: RunnableConfig) -> None:
        assert isinstance(self.model, BaseChatModel)
        hooks = _SyncHooks(self.queue, self.stop, self.model)
        try:
            result = self.model.generate(
                [list(messages)], **_run_args(config), n=self.count, launch=hooks, **self.kwargs
            )
        except BaseException as error:
            self.queue.put(error)
        else:
            self._result.append(result)

    def _one(
        self, index: int, messages: Sequence[BaseMessage], prompt: str, config: RunnableConfig
    ) -> None:
        try:
            if isinstance(self.model, BaseChatModel):
                message: AIMessageChunk | None = None
                pieces = 0
                stream = self.model.stream(list(messages), config, **self.kwargs)
                try:
                    for chunk in stream:
                        message = chunk if message is None else message + chunk
                        pieces += bool(chunk.text)
                        self._seen[index] = (message, pieces)
                        if self.stop.is_set():
                            return  # cancelled: closing the stream cuts the request off
                finally:
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
                if message is None:
                    message = AIMessageChunk(content="")
                sample = _streamed_sample(self.model, message, pieces)
            else:
                (sample,) = _sample(
                    self.model, messages, prompt, 1, stop=(), kwargs=self.kwargs, config=config
                )
        except BaseException as error:  # handed to the plan's next take
            self._done.add(index)
            self.queue.put(error)
        else:
            self._done.add(index)
            self.queue.put(sample)

    def take(self, n: int) -> list[Sample]:
        """The next ``n`` samples to finish, in the order they finished.

        Raises:
            SamplingFailure: A sample failed; the ones taken before it are attached.
        """
        got: list[Sample] = []
        for _ in range(min(n, self.remaining)):
            item = self.queue.get()
            self.taken += 1
            if isinstance(item, BaseException):
                raise SamplingFailure(got, item)
            got.append(item)
        return got

    def cancel(self) -> Cancelled:
        """Stop every sample still running; count what the untaken samples generated."""
        if self.stop.is_set():
            return Cancelled()
        self.stop.set()
        try:
            return self._count()
        finally:  # a take abandoned at the deadline stops waiting
            self.queue.put(LaunchCancelled("the launch was cancelled"))

    def _count(self) -> Cancelled:
        report = Cancelled(samples=self.remaining)
        deadline = time.monotonic() + self.grace
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        report.drain(self.queue)
        if self._batched:
            for result in self._result:
                report.tokens += _cancelled_tokens(self.model, result)
            report.unknown += sum(thread.is_alive() for thread in self.threads)
            return report
        for index, thread in enumerate(self.threads):
            if index in self._done:
                continue
            seen = self._seen.get(index)
            if seen is not None:
                report.add_streamed(self.model, seen)
            if thread.is_alive():
                report.unknown += 1
        return report


@dataclass
class _SyncHooks:
    """The :class:`LaunchHooks` of a batched call in a worker thread."""

    queue: queue.Queue[Sample | BaseException]
    stop: threading.Event
    model: BaseLanguageModel

    def finished(self, index: int, message: AIMessage) -> None:
        self.queue.put(_chat_sample(self.model, message))

    def cancelled(self) -> bool:
        return self.stop.is_set()


def _cancelled_tokens(model: BaseLanguageModel, result: Any) -> int:
    """Tokens of the samples a batched call reports as stopped by the cancel."""
    tokens = 0
    for generation in result.generations[0]:
        message = getattr(generation, "message", None)
        if (
            isinstance(message, AIMessage)
            and message.response_metadata.get("finish_reason") == CANCELLED
        ):
            tokens += _chat_sample(model, message).usage.output_tokens
    return tokens


__all__ = [
    "CANCELLED",
    "Cancelled",
    "LaunchHooks",
    "Launched",
    "ThreadedLaunch",
    "supports_launch_hooks",
]
