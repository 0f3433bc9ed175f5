"""Serve any ``ProcessRewardModel`` behind vLLM's ``/pooling`` API, so ``RemotePRM`` can use it.

One request's path through :func:`create_app`:

``Authorization`` checked (when an API key is set) → body parsed as a
``/pooling`` request (``messages``, or ``input`` prompts in ChatML) → each input
split into its question and steps → inputs grouped by question, one
``prm.ascore`` call per question → one ``[1 - p, p]`` row per step (``p``: the
estimate's median) plus our ``estimates`` extension → JSON.

Errors come back in OpenAI's shape, ``{"error": {"message", "type", "code"}}``:
401 for a missing or wrong key, 404 for another model name, 400 for a malformed
request or an input the PRM cannot take (too long), 500 when the PRM fails.
``usage`` is omitted: an arbitrary PRM does not report tokens.

Run it from a shell with ``python -m langchain_adaptive.integrations.http.server
Qwen/Qwen2.5-Math-PRM-7B --trust-remote-code`` (needs the ``hf`` and ``server``
extras); the API key, if any, is read from ``$LANGCHAIN_ADAPTIVE_PRM_API_KEY``,
never from the command line.
"""

# No ``from __future__ import annotations``: FastAPI reads the route functions'
# annotations at run time, and ``fastapi.Request`` is only imported inside create_app.

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from langchain_adaptive.errors import AdaptiveInputError, PRMError
from langchain_adaptive.prm.base import ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate

from ._protocol import STEP_SEPARATOR, PoolingRequest, ProtocolError
from .remote import API_KEY_ENV

logger = logging.getLogger(__name__)

_INSTALL_HINT = 'pip install "langchain-adaptive[server]"'


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError as error:
        raise ImportError(f"the PRM server needs fastapi and uvicorn: {_INSTALL_HINT}") from error
    return fastapi


def create_app(
    prm: ProcessRewardModel,
    *,
    model_name: str = "prm",
    api_key: str | SecretStr | None = None,
    step_separator: str = STEP_SEPARATOR,
    max_inputs: int = 256,
) -> Any:
    """A FastAPI app serving ``prm`` at ``POST /pooling`` (plus ``/health``, ``/v1/models``).

    Args:
        prm: Any process reward model; its quantiles travel in the ``estimates`` field.
        model_name: The name clients send as ``model`` (others get 404).
        api_key: If set, every request but ``/health`` needs ``Authorization: Bearer <key>``.
        step_separator: What ends every step in the assistant turn.
        max_inputs: Most prompts one request may carry.

    Example:
        ```python
        import uvicorn

        from langchain_adaptive.integrations.http.server import create_app

        uvicorn.run(create_app(prm, model_name="my-prm"), host="127.0.0.1", port=8000)
        ```
    """
    fastapi = _import_fastapi()
    from fastapi.responses import JSONResponse

    secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    app = fastapi.FastAPI(title="langchain-adaptive PRM server", docs_url=None, redoc_url=None)

    def error(status: int, message: str, kind: str) -> Any:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "code": status}}, status_code=status
        )

    def authorized(request: Any) -> bool:
        if not secret:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            token.strip().encode(), secret.encode()
        )

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
        try:
            body = PoolingRequest.model_validate(await request.json())
            inputs = body.conversations(step_separator)
        except ValueError as caught:  # bad JSON, ValidationError, ProtocolError
            return error(400, _short(caught), "BadRequestError")
        if body.model is not None and body.model != model_name:
            return error(404, f"The model `{body.model}` does not exist.", "NotFoundError")
        if len(inputs) > max_inputs:
            return error(400, f"{len(inputs)} inputs; at most {max_inputs}", "BadRequestError")
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
    log_level: str = "info",
) -> None:
    """Serve ``prm`` until interrupted (binds to localhost unless told otherwise)."""
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError(f"serving a PRM needs uvicorn: {_INSTALL_HINT}") from error
    app = create_app(prm, model_name=model_name, api_key=api_key)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def main(argv: Sequence[str] | None = None) -> None:
    """Load a Hugging Face PRM and serve it: the command-line entry point."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model", help="hub repo id or local folder of the PRM")
    parser.add_argument(
        "--family", default="qwen", choices=["qwen", "math-shepherd", "token-classification"]
    )
    parser.add_argument("--adapter", help="LoRA adapter and/or quantile head folder")
    parser.add_argument("--served-model-name", help="name clients send (default: the model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device")
    parser.add_argument("--dtype")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--local-files-only", action="store_true")
    args = parser.parse_args(argv)

    from langchain_adaptive.integrations.huggingface import HuggingFacePRM

    prm = HuggingFacePRM.from_pretrained(
        args.model,
        family=args.family,
        adapter=args.adapter,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        trust_remote_code=args.trust_remote_code,
        local_files_only=args.local_files_only,
    )
    key = os.environ.get(API_KEY_ENV) or None
    serve_prm(
        prm,
        host=args.host,
        port=args.port,
        model_name=args.served_model_name or args.model,
        api_key=key,
    )


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["create_app", "main", "running_app", "running_server", "serve_prm"]
