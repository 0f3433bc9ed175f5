"""``RemotePRM``: a process reward model served over HTTP (vLLM's ``/pooling``, or ours).

The data path of one scoring call reads top to bottom in this module:

question and solutions → requests (one conversation each, or batches of
rendered prompts) → POST ``/pooling``, retried with exponential backoff on 429,
5xx, timeouts and connection errors → the response checked (one item per input,
one row per step, finite probabilities) → one ``SuccessEstimate`` per step. When
one request fails, the error keeps what the others scored (``RemotePRMError.scored``).

Deadlines hold in total, not per read: ``timeout`` bounds one attempt from
connect to the last byte (a server that drips a byte at a time cannot stretch
it), ``call_timeout`` the whole call with its retries. Secrets (the API key,
a password in ``base_url``) never reach a log line, an error, ``repr`` or a dump:
a password in the URL is moved into a private ``Authorization: Basic`` header,
and any server text quoted in an error has known secrets masked.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Literal

import httpcore
import httpx
from langchain_core.runnables import RunnableConfig
from langchain_core.utils import secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

from langchain_adaptive.errors import PRMError
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel, estimate_from_probability
from langchain_adaptive.results import SuccessEstimate

from ._protocol import (
    QWEN_SYSTEM_PROMPT,
    STEP_SEPARATOR,
    PoolingResponse,
    chatml_text,
    pooling_messages,
)

logger = logging.getLogger(__name__)

API_KEY_ENV = "LANGCHAIN_ADAPTIVE_PRM_API_KEY"
"""Environment variable :class:`RemotePRM` reads its API key from when none is passed."""

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: rate limits and server-side failures."""

_HINT_STEP_POOLING = (
    "A vLLM server returns one row per token unless it pools at the step separator: start "
    'it with --pooler-config \'{"pooling_type": "STEP", "step_tag_id": <id of the '
    "separator>}' (151651 for Qwen2.5-Math-PRM's <extra_0>)."
)


class RemotePRMError(PRMError):
    """The PRM server failed, refused the request, or answered something unusable.

    A call sent as several requests fails as a whole when one of them does, but
    keeps what the others already scored, so a caller can retry only the rest.

    Attributes:
        status_code: The HTTP status when the server answered, else ``None``.
        scored: The solutions scored before the failure, by their index in the
            call's ``solutions``; each list is what a successful call returns for
            that solution. Empty when nothing was scored.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        scored: dict[int, list[SuccessEstimate]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.scored = scored if scored is not None else {}


class RemotePRM(ProcessRewardModel):
    """A PRM behind an HTTP ``/pooling`` endpoint: vLLM serving Qwen2.5-Math-PRM, or our server.

    Setup:
        Serve a PRM with vLLM (``vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling
        --pooler-config '{"pooling_type": "STEP", "step_tag_id": 151651}'``) or with
        :func:`~langchain_adaptive.integrations.http._server.serve_prm`.

    Requests follow the Qwen PRM chat format: the system prompt, the question as
    the user turn, the steps as the assistant turn with ``<extra_0>`` after each.
    ``input_format="chat"`` sends one conversation per solution (the server applies
    the model's chat template; ``ascore`` sends them concurrently);
    ``input_format="text"`` renders ChatML here and sends ``batch_size`` prompts
    per request.

    Each step's score is ``row[positive_index]`` of the server's
    ``[p_incorrect, p_correct]`` row; when the server sends full estimates (our
    server does), their quantiles are kept.

    Key init args:
        base_url: Server root, e.g. ``"http://localhost:8000"`` (``/pooling`` is added).
        model: Served model name; ``None`` lets the server use its only model.
        api_key: Sent as ``Authorization: Bearer``; defaults to
            ``$LANGCHAIN_ADAPTIVE_PRM_API_KEY``. Never logged, never in ``repr``.
        timeout: Seconds per attempt.
        max_retries: Retries after the first attempt, with exponential backoff.
        verify: TLS verification: ``True`` (default), ``False``, or a CA bundle path.

    Example:
        ```python
        from langchain_adaptive.integrations.http import RemotePRM

        prm = RemotePRM(base_url="http://localhost:8000", model="Qwen/Qwen2.5-Math-PRM-7B")
        steps = prm.score("What is 2 + 3?", [["2 + 3 = 5.", "The answer is 5."]])
        print([round(e.median, 3) for e in steps[0]])
        ```
    """

    model_config = ConfigDict(
        use_attribute_docstrings=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    base_url: str = "http://localhost:8000"
    """Server root; requests go to ``{base_url}/pooling``. A ``user:password@`` in it is
    taken out (``repr``, dumps and logs show the URL without it) and sent as HTTP Basic
    auth when no ``api_key`` is set."""
    model: str | None = None
    """The served model name sent with every request; ``None``: omitted."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(API_KEY_ENV, default=None),
        repr=False,
        validate_default=True,
    )
    """Bearer token for the server; ``None``: no Authorization header. Surrounding
    whitespace (a newline from a file or ``.env``) is stripped; a key with whitespace or
    control characters inside is refused."""
    input_format: Literal["chat", "text"] = "chat"
    """``"chat"``: one ``messages`` request per solution; ``"text"``: batched ChatML ``input``."""
    system_prompt: str | None = QWEN_SYSTEM_PROMPT
    """System turn of every conversation (``None``: none)."""
    step_separator: str = STEP_SEPARATOR
    """Written after every step; the server scores each occurrence."""
    positive_index: int = Field(default=1, ge=0)
    """Which entry of a row is the probability that the step is correct."""
    batch_size: int = Field(default=16, ge=1)
    """Prompts per request with ``input_format="text"``."""
    max_concurrency: int = Field(default=8, ge=1)
    """Requests in flight at once in ``ascore``."""
    timeout: float = Field(default=60.0, gt=0.0, allow_inf_nan=False)
    """Seconds one attempt may take in all, connect to last byte (not per read)."""
    call_timeout: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    """Seconds one ``score`` call may take with every request, retry and backoff;
    ``None``: bounded by ``timeout``, ``max_retries`` and ``backoff_max`` only."""
    max_retries: int = Field(default=3, ge=0)
    """Retries after a timeout, a connection error, 429 or 5xx."""
    backoff_base: float = Field(default=0.5, ge=0.0)
    """First retry waits about this long (jittered); each later one twice as long."""
    backoff_max: float = Field(default=8.0, ge=0.0)
    """No wait is longer, a server's ``Retry-After`` included."""
    verify: bool | str = True
    """TLS certificate verification: on, off, or the path of a CA bundle."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """More request fields, e.g. ``{"task": "token_classify"}`` for a multi-task vLLM server."""
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    """A client of your own for sync calls (proxies, mTLS, tests); ``None``: one is made."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)
    """A client of your own for async calls; ``None``: one is made per call."""

    _client: httpx.Client | None = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _basic: SecretStr | None = PrivateAttr(default=None)
    """``user:password`` taken out of ``base_url``."""

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in {"http", "https"} or not url.host:
            shown = str(url.copy_with(username=None, password=None)) if url else "it"
            raise ValueError(f"base_url must be an http(s) URL with a host, not {shown}")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        key = value.get_secret_value().strip()
        if not key:
            return None
        if not key.isascii() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise ValueError(
                "api_key holds whitespace, control or non-ASCII characters inside it, which an "
                "HTTP header cannot carry; check where the key was read from (a file, .env or $"
                f"{API_KEY_ENV})"
            )
        return SecretStr(key)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        url = httpx.URL(self.base_url)
        if url.userinfo:  # keep the password out of repr, dumps and httpx's request log
            user = urllib.parse.unquote(url.username)
            password = urllib.parse.unquote(url.password or "")
            self._basic = SecretStr(f"{user}:{password}")
            self.base_url = str(url.copy_with(username=None, password=None)).rstrip("/")

    # -- requests --------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/pooling"

    @property
    def _where(self) -> str:
        """The endpoint for messages and logs, without any credentials in the URL."""
        url = httpx.URL(self.endpoint)
        return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)

    def _headers(self) -> dict[str, str]:
        if self.api_key is not None:
            return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}
        if self._basic is not None:
            token = base64.b64encode(self._basic.get_secret_value().encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def _secrets(self) -> list[str]:
        """Every form a secret of ours could take in text: the key, the password, the header."""
        found: list[str] = []
        if self.api_key is not None:
            found.append(self.api_key.get_secret_value())
        if self._basic is not None:
            userinfo = self._basic.get_secret_value()
            password = userinfo.partition(":")[2]
            found += [userinfo, password, urllib.parse.quote(password, safe="")]
        found += [header.partition(" ")[2] for header in self._headers().values()]
        return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)

    def _redact(self, text: str) -> str:
        """``text`` with every known secret masked (a server may echo the request back)."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _error(self, message: str, **kwargs: Any) -> RemotePRMError:
        """A :class:`RemotePRMError` whose message carries no secret."""
        return RemotePRMError(self._redact(message), **kwargs)

    def _payloads(
        self, question: str, solutions: Sequence[Sequence[str]]
    ) -> list[tuple[dict[str, Any], list[int]]]:
        """Request bodies and, for each, the solutions its inputs are, in order."""
        base: dict[str, Any] = {"encoding_format": "float", **self.extra_body}
        if self.model is not None:
            base["model"] = self.model
        system, separator = self.system_prompt, self.step_separator
        if self.input_format == "chat":
            return [
                (
                    {
                        **base,
                        "messages": pooling_messages(
                            question, steps, system_prompt=system, separator=separator
                        ),
                    },
                    [index],
                )
                for index, steps in enumerate(solutions)
            ]
        payloads = []
        for start in range(0, len(solutions), self.batch_size):
            indices = list(range(start, min(start + self.batch_size, len(solutions))))
            texts = [
                chatml_text(question, solutions[i], system_prompt=system, separator=separator)
                for i in indices
            ]
            payloads.append(({**base, "input": texts}, indices))
        return payloads

    def _verify(self) -> bool | ssl.SSLContext:
        if isinstance(self.verify, str):
            return ssl.create_default_context(cafile=self.verify)
        return self.verify

    def _sync_client(self) -> httpx.Client:
        if self.http_client is not None:
            return self.http_client
        with self._client_lock:
            if self._client is None:
                self._client = _with_deadlines(
                    httpx.Client(verify=self._verify(), timeout=self.timeout)
                )
            return self._client

    def _call_deadline(self) -> float | None:
        return None if self.call_timeout is None else time.monotonic() + self.call_timeout

    def _attempt(self, call_deadline: float | None) -> tuple[float, bool]:
        """The deadline of the next attempt, and whether the call's deadline is what sets it."""
        attempt_end = time.monotonic() + self.timeout
        if call_deadline is not None and call_deadline < attempt_end:
            return call_deadline, True
        return attempt_end, False

    def _call_timed_out(self, attempts: int) -> RemotePRMError:
        return self._error(
            f"RemotePRM: {self._where} failed after {attempts} attempt(s): the call's deadline "
            f"(call_timeout={self.call_timeout:g}s) passed"
        )

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Exponential backoff with jitter, at least the server's ``Retry-After``, capped."""
        backoff = self.backoff_base * (2**attempt) * (0.5 + random.random() / 2)
        retry_after = 0.0
        if response is not None:
            try:
                retry_after = float(response.headers.get("retry-after", 0.0))
            except ValueError:  # an HTTP date: fall back to our own backoff
                retry_after = 0.0
        return min(self.backoff_max, max(backoff, retry_after))

    def _failure(self, error: Exception | None, response: httpx.Response | None) -> str:
        if isinstance(error, httpx.TimeoutException):
            return f"timed out after {self.timeout:g}s ({type(error).__name__})"
        if error is not None:
            return self._redact(f"connection failed ({type(error).__name__}: {error})")
        assert response is not None
        return self._redact(f"HTTP {response.status_code}{_server_message(response)}")

    def _unsendable(self, error: Exception) -> RemotePRMError:
        """Our side could not build the request (a bad header, say): retrying cannot help."""
        failure = self._error(
            f"RemotePRM: the request to {self._where} could not be sent "
            f"({type(error).__name__}: {error}); not retried"
        )
        failure.__cause__ = None
        return failure

    def _give_up(self, attempts: int, failure: str, response: httpx.Response | None) -> PRMError:
        return self._error(
            f"RemotePRM: {self._where} failed after {attempts} attempt(s): {failure}",
            status_code=response.status_code if response is not None else None,
        )

    def _refused(self, response: httpx.Response) -> PRMError:
        status = response.status_code
        hint = {
            401: " Check api_key (or $" + API_KEY_ENV + ").",
            403: " Check api_key (or $" + API_KEY_ENV + ").",
            404: " Check base_url and model.",
        }.get(status, "")
        return self._error(
            f"RemotePRM: {self._where} refused the request with HTTP {status}"
            f"{_server_message(response)}.{hint}",
            status_code=status,
        )

    def _log_retry(self, failure: str, attempt: int, delay: float) -> None:
        logger.warning(
            "RemotePRM: %s %s; retry %d/%d in %.2fs",
            self._where,
            self._redact(failure),
            attempt + 1,
            self.max_retries,
            delay,
        )

    def _post(self, payload: dict[str, Any], call_deadline: float | None = None) -> Any:
        """POST one body and return its JSON, retrying what is worth retrying.

        Each attempt ends by its deadline however the server drips its bytes:
        the client's sockets read and write no later than it (see
        :func:`_with_deadlines`); a client passed as ``http_client`` gets the
        deadline per phase only.
        """
        client = self._sync_client()
        for attempt in range(self.max_retries + 1):
            error: Exception | None = None
            response: httpx.Response | None = None
            deadline, by_call = self._attempt(call_deadline)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._call_timed_out(attempt)
            token = _DEADLINE.set(deadline)
            try:
                response = client.post(
                    self.endpoint, json=payload, headers=self._headers(), timeout=left
                )
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as caught:
                raise self._unsendable(caught) from None
            except httpx.TransportError as caught:  # timeouts, refused connections, resets
                error = caught
            finally:
                _DEADLINE.reset(token)
            if response is not None and response.status_code < 400:
                return self._json(response)
            if response is not None and response.status_code not in RETRY_STATUS:
                raise self._refused(response)
            if by_call and isinstance(error, httpx.TimeoutException):
                raise self._call_timed_out(attempt + 1)
            failure = self._failure(error, response)
            if attempt == self.max_retries:
                raise self._give_up(attempt + 1, failure, response)
            delay = self._delay(attempt, response)
            if call_deadline is not None and time.monotonic() + delay >= call_deadline:
                raise self._give_up(attempt + 1, failure, response)  # no time for another
            self._log_retry(failure, attempt, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apost(
        self,
        client: httpx.AsyncClient,
        payload: dict[str, Any],
        call_deadline: float | None = None,
    ) -> Any:
        """Async twin of :meth:`_post`; an attempt past its deadline is cancelled."""
        for attempt in range(self.max_retries + 1):
            error: Exception | None = None
            response: httpx.Response | None = None
            deadline, by_call = self._attempt(call_deadline)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._call_timed_out(attempt)
            try:
                async with asyncio.timeout(left) as scope:
                    response = await client.post(
                        self.endpoint, json=payload, headers=self._headers(), timeout=left
                    )
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as caught:
                raise self._unsendable(caught) from None
            except httpx.TransportError as caught:
                error = caught
            except TimeoutError:
                if not scope.expired():
                    raise
                error = httpx.ReadTimeout("the attempt's total deadline passed")
            if response is not None and response.status_code < 400:
                return self._json(response)
            if response is not None and response.status_code not in RETRY_STATUS:
                raise self._refused(response)
            if by_call and isinstance(error, httpx.TimeoutException):
                raise self._call_timed_out(attempt + 1)
            failure = self._failure(error, response)
            if attempt == self.max_retries:
                raise self._give_up(attempt + 1, failure, response)
            delay = self._delay(attempt, response)
            if call_deadline is not None and time.monotonic() + delay >= call_deadline:
                raise self._give_up(attempt + 1, failure, response)
            self._log_retry(failure, attempt, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as error:
            raise self._error(
                f"RemotePRM: {self._where} answered HTTP {response.status_code} with a body "
                f"that is not JSON: {response.text[:200]!r}",
                status_code=response.status_code,
            ) from error

    # -- responses -------------------------------------------------------------------

    def _estimates(
        self, body: Any, solutions: Sequence[Sequence[str]], indices: Sequence[int]
    ) -> list[list[SuccessEstimate]]:
        """One estimate per step of each solution in ``indices``, checked against ``body``."""
        try:
            response = PoolingResponse.model_validate(body)
        except ValidationError as error:
            first = error.errors()[0]
            place = ".".join(str(part) for part in first["loc"]) or "the body"
            raise RemotePRMError(
                f"RemotePRM: {self._where} sent a malformed /pooling response ({place}: "
                f"{first['msg']})"
            ) from error
        items = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(indices))):
            raise RemotePRMError(
                f"RemotePRM: {self._where} answered items "
                f"{[item.index for item in response.data]} for {len(indices)} input(s)"
            )
        result = []
        for item, index in zip(items, indices, strict=True):
            expected = max(1, len(solutions[index]))
            source = f"RemotePRM ({self._where}, solution {index})"
            if len(item.data) != expected:
                hint = f" {_HINT_STEP_POOLING}" if len(item.data) > expected else ""
                raise RemotePRMError(
                    f"{source}: {len(item.data)} rows for {expected} step(s).{hint}"
                )
            if item.estimates is not None:
                if len(item.estimates) != expected:
                    raise RemotePRMError(
                        f"{source}: {len(item.estimates)} estimates for {expected} step(s)"
                    )
                result.append(list(item.estimates))
                continue
            row_estimates = []
            for row in item.data:
                if len(row) <= self.positive_index:
                    raise RemotePRMError(
                        f"{source}: a row of {len(row)} value(s) has no entry "
                        f"{self.positive_index} (positive_index)"
                    )
                row_estimates.append(
                    estimate_from_probability(row[self.positive_index], source=source)
                )
            result.append(row_estimates)
        return result

    # -- scoring ---------------------------------------------------------------------

    def _batch_scores(
        self, body: Any, solutions: Sequence[Sequence[str]], indices: Sequence[int]
    ) -> dict[int, list[SuccessEstimate]]:
        return dict(zip(indices, self._estimates(body, solutions, indices), strict=True))

    def _keeping(
        self, error: Exception, scored: dict[int, list[SuccessEstimate]], total: int
    ) -> RemotePRMError:
        """``error`` as a :class:`RemotePRMError` that carries the solutions already scored."""
        if isinstance(error, RemotePRMError):
            failure = error
        else:  # a bad probability (PRMError), or an httpx error that is not a transport one
            failure = self._error(
                str(error)
                if isinstance(error, PRMError)
                else f"RemotePRM: {self._where} failed: {type(error).__name__}: {error}"
            )
            failure.__cause__ = error
        failure.scored = dict(sorted(scored.items()))
        if scored:
            failure.add_note(
                f"RemotePRM: {len(scored)} of {total} solution(s) were scored before the "
                "failure; they are kept in .scored"
            )
        return failure

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        scored: dict[int, list[SuccessEstimate]] = {}
        call_deadline = self._call_deadline()
        for payload, indices in self._payloads(question, solutions):
            try:
                body = self._post(payload, call_deadline)
                scored.update(self._batch_scores(body, solutions, indices))
            except Exception as error:
                raise self._keeping(error, scored, len(solutions))  # noqa: B904 - sets the cause
        return [scored[index] for index in range(len(solutions))]

    async def _ascore(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        if self.http_async_client is not None:
            scored = await self._ascore_all(self.http_async_client, question, solutions)
        else:
            async with httpx.AsyncClient(verify=self._verify(), timeout=self.timeout) as client:
                scored = await self._ascore_all(client, question, solutions)
        return [scored[index] for index in range(len(solutions))]

    async def _ascore_all(
        self, client: httpx.AsyncClient, question: str, solutions: Sequence[Sequence[str]]
    ) -> dict[int, list[SuccessEstimate]]:
        """Send the requests concurrently; on a failure, cancel the rest and keep what finished."""
        limit = asyncio.Semaphore(self.max_concurrency)
        call_deadline = self._call_deadline()

        async def send(
            payload: dict[str, Any], indices: list[int]
        ) -> dict[int, list[SuccessEstimate]]:
            async with limit:
                body = await self._apost(client, payload, call_deadline)
            return self._batch_scores(body, solutions, indices)

        tasks = [
            asyncio.create_task(send(payload, indices))
            for payload, indices in self._payloads(question, solutions)
        ]
        try:
            if tasks:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # on a failure, or when this call is cancelled: leave no request running
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        scored: dict[int, list[SuccessEstimate]] = {}
        failure: BaseException | None = None
        for task in tasks:
            if task.cancelled():
                continue
            error = task.exception()
            if error is None:
                scored.update(task.result())
            elif failure is None:
                failure = error
        if isinstance(failure, Exception):
            raise self._keeping(failure, scored, len(solutions))
        if failure is not None:  # KeyboardInterrupt and the like: not ours to wrap
            raise failure
        return scored

    def close(self) -> None:
        """Close the sync HTTP client this PRM made (not one passed as ``http_client``)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "remote_prm_deadline", default=None
)
"""The monotonic time the current sync request must end by (set around one attempt)."""


def _clip(timeout: float | None, timed_out: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the current deadline; raise once none is left."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the request's deadline.

    httpx's timeouts bound each read, so a server sending a byte just inside the
    read timeout could hold a request for ever; clipping every socket operation
    to the time left bounds the whole attempt, headers and body alike.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clip(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        clipped = _clip(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, clipped))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens :class:`_DeadlineStream` sockets."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        clipped = _clip(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._backend.connect_tcp(host, port, clipped, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        clipped = _clip(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, clipped, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _with_deadlines(client: httpx.Client) -> httpx.Client:
    """``client`` with every transport's sockets bounded by :data:`_DEADLINE`.

    httpx has no total timeout and no public hook for its socket backend, so
    the backend of each connection pool (the direct one and any proxy's) is
    wrapped in place; a transport without one keeps httpx's per-read timeouts.
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return client


def _server_message(response: httpx.Response) -> str:
    """The server's error message, short: OpenAI/vLLM ``error.message``, FastAPI ``detail``."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:200]}" if text else ""
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else body.get("message")
        message = message or body.get("detail")
    return f": {str(message)[:300]}" if message else ""


__all__ = ["API_KEY_ENV", "RETRY_STATUS", "RemotePRM", "RemotePRMError"]
