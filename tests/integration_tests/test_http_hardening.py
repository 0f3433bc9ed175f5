"""Issue 31, HTTP items: secrets never leak, deadlines hold in total, the server refuses abuse.

Every server here is real and binds 127.0.0.1: the PRM server run by uvicorn in
a thread, or a raw socket server that misbehaves on purpose (drips a byte at a
time, echoes secrets). Every fault server stops after a bounded number of
bytes or seconds, so no test can hang.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason='needs the "server" extra')
pytest.importorskip("uvicorn", reason='needs the "server" extra')

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from langchain_core.load import dumps
from pydantic import ValidationError

from langchain_adaptive.integrations.http import RemotePRM, RemotePRMError
from langchain_adaptive.integrations.http._server import create_app, running_app, running_server
from tests.integration_tests.test_remote_prm import QUESTION, SOLUTIONS, LengthPRM, counting

KEY = "sk-live-7Hq2ZpX9wLm4"
PASSWORD = "pw-Xy7-secret-91"
DRIP_S = 0.3
"""The slow-drip server sends one byte this often."""


def texts_of(remote: RemotePRM) -> list[str]:
    return [
        repr(remote),
        str(remote),
        str(remote.model_dump()),
        remote.model_dump_json(),
        dumps(remote),
    ]


# -- 1. an API key with a trailing newline -------------------------------------------------


def test_a_key_read_with_its_newline_is_stripped_and_works(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(LengthPRM(), api_key=KEY)
    counting(app, [(503, {})])  # one retry, so the retry warning is logged
    with running_app(app) as url, caplog.at_level(logging.DEBUG):
        remote = RemotePRM(base_url=url, api_key=KEY + "\n", backoff_base=0.0)
        assert len(remote.score(QUESTION, SOLUTIONS)) == len(SOLUTIONS)
        monkeypatch.setenv("LANGCHAIN_ADAPTIVE_PRM_API_KEY", f"  {KEY}\r\n")  # as .env has it
        assert RemotePRM(base_url=url).estimate_question(QUESTION).median > 0
    assert "retry 1/3" in caplog.text
    for text in [caplog.text, *texts_of(remote)]:
        assert KEY not in text


def test_a_key_that_no_header_can_carry_is_refused_without_showing_it() -> None:
    with pytest.raises(ValidationError) as raised:
        RemotePRM(api_key=f"{KEY}\nX-Injected: 1")
    assert "api_key" in str(raised.value) and "whitespace" in str(raised.value)
    assert KEY not in str(raised.value)


def test_a_wrong_key_is_neither_logged_nor_in_the_error(caplog: pytest.LogCaptureFixture) -> None:
    wrong = KEY + "-wrong"
    with (
        running_server(LengthPRM(), api_key=KEY) as url,
        caplog.at_level(logging.DEBUG),
        pytest.raises(RemotePRMError, match="HTTP 401") as raised,
    ):
        RemotePRM(base_url=url, api_key=wrong, max_retries=0).estimate_question(QUESTION)
    assert wrong not in str(raised.value) and wrong not in caplog.text


# -- 2. a password in base_url -----------------------------------------------------------


def basic_auth_app(user: str, password: str) -> FastAPI:
    """The PRM server behind HTTP Basic auth (as a reverse proxy would put it)."""
    app = create_app(LengthPRM())
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    @app.middleware("http")
    async def check(request: Request, call_next: Any) -> Any:
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": {"message": "bad credentials"}}, status_code=401)
        return await call_next(request)

    return app


def test_a_password_in_base_url_is_used_but_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    with running_app(basic_auth_app("alice", PASSWORD)) as url, caplog.at_level(logging.DEBUG):
        with_password = url.replace("http://", f"http://alice:{PASSWORD}@")
        remote = RemotePRM(base_url=with_password, max_retries=0)
        assert remote.estimate_question(QUESTION).median > 0  # sent as Basic auth
        assert remote.base_url == url
        wrong = RemotePRM(base_url=url.replace("http://", "http://alice:nope-pw-123@"))
        with pytest.raises(RemotePRMError, match="HTTP 401") as raised:
            wrong.model_copy(update={"max_retries": 0}).estimate_question(QUESTION)
    assert "HTTP Request: POST" in caplog.text  # httpx's INFO log was captured
    for text in [caplog.text, str(raised.value), *texts_of(remote), *texts_of(wrong)]:
        assert PASSWORD not in text and "nope-pw-123" not in text


# -- 3. a server that echoes the secret back ---------------------------------------------


def test_secrets_echoed_by_a_server_are_masked() -> None:
    app = FastAPI()

    @app.post("/pooling")
    async def echo(request: Request) -> Any:
        said = request.headers.get("authorization", "")
        return JSONResponse({"error": {"message": f"rejected token {said}"}}, status_code=401)

    @app.post("/v2/pooling")
    async def echo_text(request: Request) -> Any:
        return JSONResponse(f"500 <html>{request.headers.get('authorization')}</html>", 500)

    with running_app(app) as url:
        with pytest.raises(RemotePRMError, match=r"rejected token Bearer \*\*\*") as raised:
            RemotePRM(base_url=url, api_key=KEY, max_retries=0).estimate_question(QUESTION)
        assert KEY not in str(raised.value)
        echoing = RemotePRM(base_url=f"http://u:{PASSWORD}@{url[7:]}/v2", max_retries=0)
        with pytest.raises(RemotePRMError) as raised:
            echoing.estimate_question(QUESTION)
    basic = base64.b64encode(f"u:{PASSWORD}".encode()).decode()
    assert basic not in str(raised.value) and PASSWORD not in str(raised.value)


# -- 5. a server that drips one byte at a time ---------------------------------------------


@contextlib.contextmanager
def dripping_server(*, headers_too: bool, max_bytes: int = 60) -> Iterator[str]:
    """A raw HTTP server on 127.0.0.1 that sends one byte every ``DRIP_S`` seconds.

    It drips the whole response (``headers_too``) or only the body after
    prompt headers; it stops after ``max_bytes`` bytes or when the client
    leaves, and serves connections one at a time until the block ends.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2.0)
                with contextlib.suppress(OSError):
                    connection.recv(65536)
                    if not headers_too:
                        connection.sendall(head)
                    payload = (head if headers_too else b"") + b"{" + b" " * 5000
                    for byte in payload[:max_bytes]:
                        if stop.wait(DRIP_S):
                            break
                        connection.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_slow_drip_ends_at_the_attempt_deadline(headers_too: bool, use_async: bool) -> None:
    with dripping_server(headers_too=headers_too) as url:
        remote = RemotePRM(base_url=url, timeout=1, max_retries=0)
        start = time.monotonic()
        with pytest.raises(RemotePRMError, match="timed out after 1s"):
            if use_async:
                await remote.aestimate_question(QUESTION)
            else:
                remote.estimate_question(QUESTION)
        elapsed = time.monotonic() - start
        remote.close()
    assert elapsed < 1 + 4 * DRIP_S, f"a 1 s attempt took {elapsed:.1f} s"


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_call_timeout_bounds_every_retry_together(use_async: bool) -> None:
    with dripping_server(headers_too=False) as url:
        remote = RemotePRM(
            base_url=url, timeout=1, max_retries=5, backoff_base=0.0, call_timeout=1.6
        )
        start = time.monotonic()
        with pytest.raises(RemotePRMError, match=r"call_timeout=1.6s"):
            if use_async:
                await remote.aestimate_question(QUESTION)
            else:
                remote.estimate_question(QUESTION)
        elapsed = time.monotonic() - start
        remote.close()
    assert elapsed < 1.6 + 4 * DRIP_S, f"a 1.6 s call took {elapsed:.1f} s"


# -- 7. the PRM server: nested JSON and stalled uploads ------------------------------------


def test_deeply_nested_json_is_a_400_with_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    nested = b'{"messages": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with running_server(LengthPRM()) as url, caplog.at_level(logging.DEBUG):
        response = httpx.post(
            f"{url}/pooling", content=nested, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_a_stalled_upload_gets_408_at_the_body_timeout() -> None:
    with running_server(LengthPRM(), body_timeout=0.5) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(
                b"POST /pooling HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b'{"messages": ['
            )  # ... and then nothing more
            start = time.monotonic()
            answer = client.recv(65536)
            elapsed = time.monotonic() - start
            # the headers and the body may come in separate segments: read the whole answer
            while b"\r\n\r\n" in answer and not _complete(answer):
                more = client.recv(65536)
                if not more:
                    break
                answer += more
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"body_timeout" in answer
    assert elapsed < 5.0, f"the stalled upload was held for {elapsed:.1f} s"


def test_body_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="body_timeout"):
        create_app(LengthPRM(), body_timeout=0)


def _complete(answer: bytes) -> bool:
    """Whether a raw HTTP answer holds all of the body its Content-Length announces."""
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True
