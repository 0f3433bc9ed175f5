"""Serve any ``ProcessRewardModel`` behind vLLM's ``/pooling`` API, so ``RemotePRM`` can use it.

One request's path through :func:`create_app`:

``Authorization`` checked (when an API key is set) → body parsed as a
``/pooling`` request (``messages``, or ``input`` prompts in ChatML) → each input
split into its question and steps → inputs grouped by question, one
``prm.ascore`` call per question → one ``[1 - p, p]`` row per step (``p``: the
estimate's median) plus our ``estimates`` extension → JSON.

Errors come back in OpenAI's shape, ``{"error": {"message", "type", "code"}}``:
401 for a missing or wrong key, 404 for another model name, 413 for a body over
``max_request_bytes``, 408 for a body not received within ``body_timeout``
seconds (a stalled upload), 400 for a malformed request (nested JSON too deep
included), more than ``max_inputs`` prompts or an input the PRM cannot take
(too long), 500 when the PRM fails.
``usage`` is omitted: an arbitrary PRM does not report tokens.

The server takes a PRM object and imports no other integration; choosing a PRM
by name is the command line's job. Run it from a shell with ``langchain-adaptive
serve-prm --prm probe`` (the calibrated probe bundled for SmolLM2; ``llamacpp``
and ``server`` extras), ``--prm judge`` (an LLM judge on the bundled SmolLM2) or
``serve-prm Qwen/Qwen2.5-Math-PRM-7B --trust-remote-code`` (``hf`` and ``server``
extras); that command (``langchain_adaptive/_serve_prm.py``) builds the PRM and
calls :func:`serve_prm`. It binds 127.0.0.1 unless ``--host`` says otherwise; the
API key, if any, is read from ``$LANGCHAIN_ADAPTIVE_PRM_API_KEY``, never from the
command line. On SIGTERM or Ctrl-C uvicorn stops accepting connections and lets
the requests in flight finish (for at most ``--graceful-timeout`` seconds) before
it exits.
"""

# No ``from __future__ import annotations``: FastAPI reads the route functions'
# annotations at run time, and ``fastapi.Request`` is only imported inside create_app.

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from langchain_adaptive.errors import AdaptiveInputError, PRMError
from langchain_adaptive.prm._base import ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate

from ._protocol import STEP_SEPARATOR, PoolingRequest, ProtocolError
from ._remote import API_KEY_ENV

logger = logging.getLogger(__name__)

_INSTALL_HINT = 'pip install "langchain-adaptive[server]"'

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""Largest request body the server reads by default (8 MiB: thousands of long solutions)."""
DEFAULT_MAX_INPUTS = 256
"""Most prompts one request may carry by default."""
DEFAULT_BODY_TIMEOUT_S = 30.0
"""Seconds a client has to send a whole request body by default (a stalled upload: 408)."""


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError as error:
        raise ImportError(f"the PRM server needs fastapi and uvicorn: {_INSTALL_HINT}") from error
    return fastapi


def bearer_authorized(request: Any, secret: str | None) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <secret>`` (constant-time compare);
    always true when the server has no secret. Read before the body, so a wrong key costs
    nothing."""
    if not secret:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), secret.encode()
    )


async def read_limited(request: Any, max_bytes: int) -> bytes | str:
    """The body, or (as a string) how large it is known to be once that exceeds
    ``max_bytes``: a declared length is refused before any of it is read, a chunked upload
    as soon as it passes the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return declared
    body = bytearray()
    async for chunk in request.stream():  # chunked uploads: count as they arrive
        body += chunk
        if len(body) > max_bytes:
            return f"more than {max_bytes}"
    return bytes(body)


def create_app(
    prm: ProcessRewardModel,
    *,
    model_name: str = "prm",
    api_key: str | SecretStr | None = None,
    step_separator: str = STEP_SEPARATOR,
    max_inputs: int = DEFAULT_MAX_INPUTS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S,
) -> Any:
    """A FastAPI app serving ``prm`` at ``POST /pooling`` (plus ``/health``, ``/v1/models``).

    Args:
        prm: Any process reward model; its quantiles travel in the ``estimates`` field.
        model_name: The name clients send as ``model`` (others get 404).
        api_key: If set, every request but ``/health`` needs ``Authorization: Bearer <key>``.
        step_separator: What ends every step in the assistant turn.
        max_inputs: Most prompts one request may carry (more: 400), so one client
            cannot hold the PRM for an unbounded batch.
        max_request_bytes: Largest body read (more: 413, before the body is parsed),
            so a huge or endless upload cannot exhaust the server's memory.
        body_timeout: Seconds the whole body may take to arrive (more: 408), so a
            client that stalls mid-upload cannot hold a connection open for ever.

    Example:
        ```python
        import uvicorn

        from langchain_adaptive.integrations.http._server import create_app

        uvicorn.run(create_app(prm, model_name="my-prm"), host="127.0.0.1", port=8000)
        ```
    """
    if max_inputs < 1 or max_request_bytes < 1:
        raise ValueError("max_inputs and max_request_bytes must be at least 1")
    if not 0 < body_timeout < float("inf"):
        raise ValueError(f"body_timeout must be a positive number of seconds, not {body_timeout}")
    _import_fastapi()  # an ImportError that names the extras, rather than a bare one
    import fastapi
    from fastapi.responses import JSONResponse

    secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    app = fastapi.FastAPI(title="langchain-adaptive PRM server", docs_url=None, redoc_url=None)

    def error(status: int, message: str, kind: str) -> Any:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "code": status}}, status_code=status
        )

    def authorized(request: Any) -> bool:
        return bearer_authorized(request, secret)

    def too_large(size: str) -> Any:
        return error(
            413,
            f"request body is {size} bytes; this server takes at most {max_request_bytes} "
            "(max_request_bytes, --max-request-bytes): send fewer solutions per request",
            "RequestTooLargeError",
        )

    async def read_body(request: Any) -> bytes | Any:
        """The body, or a 413 response once it is known to exceed the limit (408: too slow)."""
        try:
            async with asyncio.timeout(body_timeout):
                body = await read_limited(request, max_request_bytes)
        except TimeoutError:
            return error(
                408,
                f"the request body did not arrive within {body_timeout:g}s (body_timeout, "
                "--body-timeout)",
                "RequestTimeoutError",
            )
        return too_large(body) if isinstance(body, str) else body

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: fastapi.Request) -> Any:
        if not authorized(request):
            return error(401, "missing or invalid API key", "AuthenticationError")
        return {"object": "list", "data": [{"id": model_name, "object": "model"}]}

    @app.post("/pooling")
    async def pooling(request: fastapi.Request) -> Any:
        if not authorized(request):
            return error(401, "missing or invalid API key", "AuthenticationError")
        raw = await read_body(request)
        if not isinstance(raw, bytes):
            return raw
        try:
            body = PoolingRequest.model_validate(json.loads(raw))
            inputs = body.conversations(step_separator)
        except ValueError as caught:  # bad JSON, ValidationError, ProtocolError
            return error(400, _short(caught), "BadRequestError")
        except RecursionError:  # JSON nested deeper than the parser recurses
            return error(400, "invalid request: the JSON is nested too deeply", "BadRequestError")
        if body.model is not None and body.model != model_name:
            return error(404, f"The model `{body.model}` does not exist.", "NotFoundError")
        if len(inputs) > max_inputs:
            return error(
                400,
                f"request has {len(inputs)} inputs; this server takes at most {max_inputs} "
                "per request (max_inputs, --max-batch): lower RemotePRM's batch_size",
                "BadRequestError",
            )
        try:
            estimates = await _score_inputs(prm, inputs)
        except AdaptiveInputError as caught:
            return error(400, str(caught), "BadRequestError")
        except PRMError as caught:
            logger.warning("PRM server: the PRM failed: %s", caught)
            return error(500, str(caught), "InternalServerError")
        except Exception as caught:  # a bug in the PRM: log it, do not leak a traceback
            logger.exception("PRM server: unexpected failure")
            return error(500, f"{type(caught).__name__} in the PRM", "InternalServerError")
        return {
            "id": f"pool-{uuid.uuid4().hex}",
            "object": "list",
            "created": int(time.time()),
            "model": model_name,
            "data": [
                {
                    "index": index,
                    "object": "pooling",
                    "data": [[1.0 - e.median, e.median] for e in row],
                    "estimates": [e.model_dump(mode="json") for e in row],
                }
                for index, row in enumerate(estimates)
            ],
        }

    return app


async def _score_inputs(
    prm: ProcessRewardModel, inputs: Sequence[tuple[str, list[str]]]
) -> list[list[SuccessEstimate]]:
    """Score every input with one PRM call per distinct question, all questions concurrently."""
    groups: dict[str, list[int]] = {}
    for index, (question, _) in enumerate(inputs):
        groups.setdefault(question, []).append(index)
    results = await asyncio.gather(
        *(
            prm.ascore(question, [inputs[i][1] for i in indices])
            for question, indices in groups.items()
        )
    )
    estimates: list[list[SuccessEstimate]] = [[] for _ in inputs]
    for indices, scores in zip(groups.values(), results, strict=True):
        for index, row in zip(indices, scores, strict=True):
            estimates[index] = row
    return estimates


def _short(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        place = ".".join(str(part) for part in first["loc"])
        return f"invalid request ({place}: {first['msg']})" if place else first["msg"]
    if isinstance(error, ProtocolError):
        return str(error)
    return f"invalid request: {error}"


# -- running it ----------------------------------------------------------------------


@contextlib.contextmanager
def running_app(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run an ASGI ``app`` with uvicorn in a background thread; yields its base URL.

    ``port=0`` takes a free port. The server stops when the block ends. Meant for
    tests and notebooks; use :func:`serve_prm` for a long-running server.
    """
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError(f"running the PRM server needs uvicorn: {_INSTALL_HINT}") from error
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="prm-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the PRM server did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)


@contextlib.contextmanager
def running_server(
    prm: ProcessRewardModel, *, host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any
) -> Iterator[str]:
    """:func:`create_app` for ``prm`` run by :func:`running_app`; yields the base URL.

    Example:
        ```python
        with running_server(prm, model_name="my-prm") as url:
            remote = RemotePRM(base_url=url, model="my-prm")
            remote.estimate_question("What is 2 + 3?")
        ```
    """
    with running_app(create_app(prm, **app_kwargs), host=host, port=port) as url:
        yield url


def serve_prm(
    prm: ProcessRewardModel,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str = "prm",
    api_key: str | SecretStr | None = None,
    max_inputs: int = DEFAULT_MAX_INPUTS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S,
    graceful_timeout: float | None = 30.0,
    log_level: str = "info",
) -> None:
    """Serve ``prm`` until interrupted (binds to localhost unless told otherwise).

    On SIGTERM or SIGINT uvicorn stops accepting connections, lets the requests
    in flight finish for up to ``graceful_timeout`` seconds (``None``: no limit),
    cancels the rest and exits, so a client never gets half a response.
    """
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError(f"serving a PRM needs uvicorn: {_INSTALL_HINT}") from error
    if not api_key and not _is_loopback(host):
        logger.warning(
            "PRM server: listening on %s with no API key: anyone who can reach it may use the "
            "PRM; set $%s",
            host,
            API_KEY_ENV,
        )
    app = create_app(
        prm,
        model_name=model_name,
        api_key=api_key,
        max_inputs=max_inputs,
        max_request_bytes=max_request_bytes,
        body_timeout=body_timeout,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # uvicorn annotates int, but waits with asyncio.timeout, which takes float seconds
        timeout_graceful_shutdown=graceful_timeout,  # type: ignore[arg-type]
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it is reachable from elsewhere
        return False


__all__ = [
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_MAX_INPUTS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "bearer_authorized",
    "create_app",
    "read_limited",
    "running_app",
    "running_server",
    "serve_prm",
]
