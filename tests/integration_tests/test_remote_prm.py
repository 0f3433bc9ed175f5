"""RemotePRM against the PRM server, run by uvicorn on 127.0.0.1 in a thread, and mock transports.

The served PRM is a deterministic stand-in (scores from text lengths, with
quantiles), so every number that crosses the wire can be checked exactly.
The whole file takes a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pytest

pytest.importorskip("fastapi", reason='needs the "server" extra')
pytest.importorskip("uvicorn", reason='needs the "server" extra')

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field, ValidationError

from langchain_adaptive.errors import ContextLengthExceededError, PRMError
from langchain_adaptive.integrations.http import RemotePRM, RemotePRMError
from langchain_adaptive.integrations.http._protocol import (
    chatml_text,
    parse_chatml,
    parse_messages,
    pooling_messages,
)
from langchain_adaptive.integrations.http._remote import API_KEY_ENV
from langchain_adaptive.integrations.http._server import (
    create_app,
    running_app,
    running_server,
)
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate

QUESTION = "What is 2 + 3?"
SOLUTIONS = [["2 + 3 = 5.", "The answer is 5."], [], ["2 + 3 = 6."], ["Add.", "5", "Done."]]
KEY = "s3cret-prm-key-8f2a"


def length_estimate(text: str) -> SuccessEstimate:
    p = (len(text) % 17 + 1) / 19
    return SuccessEstimate(quantiles={0.1: p / 2, 0.5: p, 0.9: (1 + p) / 2}, raw_score=p * 0.9)


class LengthPRM(ProcessRewardModel):
    """Quantile estimates from the length of the question plus each step."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    calls: list[tuple[str, list[list[str]]]] = Field(default_factory=list)
    fail_with: Exception | None = None

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        self.calls.append((question, [list(s) for s in solutions]))
        if self.fail_with is not None:
            raise self.fail_with
        return [
            [length_estimate(question + step) for step in steps] or [length_estimate(question)]
            for steps in solutions
        ]


def counting(app: FastAPI, fail_first: Sequence[tuple[int, dict[str, str]]] = ()) -> dict[str, int]:
    """Count POSTs to ``app``; answer the first ones with the given (status, headers)."""
    state = {"posts": 0}

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Any:
        if request.method == "POST":
            state["posts"] += 1
            if state["posts"] <= len(fail_first):
                status, headers = fail_first[state["posts"] - 1]
                body = {"error": {"message": "busy, try later", "type": "Busy", "code": status}}
                return JSONResponse(body, status_code=status, headers=headers)
        return await call_next(request)

    return state


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_package_is_pinned_and_imports_no_server_code() -> None:
    code = (
        "import sys, langchain_adaptive.integrations.http as http; "
        "from langchain_adaptive.integrations.http import RemotePRM; "
        "print(sorted(http.__all__)); print('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "['RemotePRM', 'RemotePRMError', 'create_app', 'running_server', 'serve_prm']",
        "False False",
    ]


# -- round trips -----------------------------------------------------------------------


def test_chat_requests_round_trip_every_estimate() -> None:
    local = LengthPRM()
    with running_server(local, model_name="length") as url:
        remote = RemotePRM(base_url=url, model="length")
        served = remote.score(QUESTION, SOLUTIONS)
        question = remote.estimate_question(QUESTION)
    assert served == LengthPRM().score(QUESTION, SOLUTIONS)
    assert question == length_estimate(QUESTION)
    # the server saw each conversation as the question and the steps, nothing else
    assert [steps for _, (steps,) in local.calls[:4]] == SOLUTIONS


def test_text_requests_batch_prompts_and_group_questions() -> None:
    local = LengthPRM()
    app = create_app(local, model_name="length")
    state = counting(app)
    with running_app(app) as url:
        remote = RemotePRM(base_url=url, input_format="text", batch_size=3)
        served = remote.score(QUESTION, SOLUTIONS)
    assert served == LengthPRM().score(QUESTION, SOLUTIONS)
    assert state["posts"] == 2  # 4 solutions in batches of 3
    assert [len(solutions) for _, solutions in local.calls] == [3, 1]  # one call per request


async def test_async_scoring_sends_concurrently_and_matches_sync() -> None:
    app = create_app(LengthPRM(), model_name="length")
    state = counting(app)
    with running_app(app) as url:
        remote = RemotePRM(base_url=url, max_concurrency=2)
        served = await remote.ascore(QUESTION, SOLUTIONS)
        question = await remote.aestimate_question(QUESTION)
    assert served == LengthPRM().score(QUESTION, SOLUTIONS)
    assert question == length_estimate(QUESTION)
    assert state["posts"] == len(SOLUTIONS) + 1


def test_vllm_style_rows_without_estimates_become_points() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["messages"][-1]["content"] == "2 + 3 = 5.<extra_0>The answer is 5.<extra_0>"
        assert body["messages"][0]["role"] == "system"
        assert body["encoding_format"] == "float"
        data = [{"index": 0, "object": "pooling", "data": [[0.25, 0.75], [0.9, 0.1]]}]
        return httpx.Response(200, json={"object": "list", "model": "m", "data": data})

    remote = RemotePRM(http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    (row,) = remote.score(QUESTION, SOLUTIONS[:1])
    assert [e.median for e in row] == [0.75, 0.1]
    assert row[0] == SuccessEstimate.point(0.75)


def test_prompt_formats_parse_back_to_the_question_and_steps() -> None:
    for steps in SOLUTIONS:
        text = chatml_text(QUESTION, steps)
        assert parse_chatml(text) == (QUESTION, steps)
        assert parse_messages(pooling_messages(QUESTION, steps)) == (QUESTION, steps)
    assert chatml_text(QUESTION, []).endswith("<|im_start|>assistant\n<extra_0><|im_end|>\n")


# -- retries and timeouts ----------------------------------------------------------------


def test_retries_503_twice_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(LengthPRM())
    state = counting(app, [(503, {}), (503, {})])
    with running_app(app) as url, caplog.at_level(logging.WARNING):
        remote = RemotePRM(base_url=url, max_retries=3, backoff_base=0.01)
        assert remote.estimate_question(QUESTION) == length_estimate(QUESTION)
    assert state["posts"] == 3
    assert "HTTP 503: busy, try later; retry 1/3" in caplog.text
    assert "retry 2/3" in caplog.text and "retry 3/3" not in caplog.text


async def test_async_retries_503_twice_then_succeeds() -> None:
    app = create_app(LengthPRM())
    state = counting(app, [(503, {}), (503, {})])
    with running_app(app) as url:
        remote = RemotePRM(base_url=url, max_retries=2, backoff_base=0.01)
        assert await remote.aestimate_question(QUESTION) == length_estimate(QUESTION)
    assert state["posts"] == 3


def test_429_waits_for_retry_after() -> None:
    app = create_app(LengthPRM())
    state = counting(app, [(429, {"Retry-After": "0.4"})])
    with running_app(app) as url:
        remote = RemotePRM(base_url=url, backoff_base=0.0)
        start = time.monotonic()
        remote.estimate_question(QUESTION)
        waited = time.monotonic() - start
    assert state["posts"] == 2
    assert waited >= 0.4


def test_gives_up_after_max_retries_with_the_status() -> None:
    app = create_app(LengthPRM())
    state = counting(app, [(503, {})] * 10)
    with running_app(app) as url:
        remote = RemotePRM(base_url=url, max_retries=2, backoff_base=0.0)
        with pytest.raises(RemotePRMError, match="after 3 attempt") as info:
            remote.estimate_question(QUESTION)
    assert info.value.status_code == 503
    assert state["posts"] == 3


def test_other_client_errors_are_not_retried() -> None:
    app = create_app(LengthPRM(), model_name="length")
    state = counting(app)
    with (
        running_app(app) as url,
        pytest.raises(RemotePRMError, match=r"HTTP 404.*does not exist") as info,
    ):
        RemotePRM(base_url=url, model="other").estimate_question(QUESTION)
    assert info.value.status_code == 404
    assert state["posts"] == 1


def test_refused_connection_is_retried_then_an_error() -> None:
    remote = RemotePRM(base_url=f"http://127.0.0.1:{free_port()}", max_retries=1, backoff_base=0)
    with pytest.raises(RemotePRMError, match=r"after 2 attempt.*connection failed") as info:
        remote.estimate_question(QUESTION)
    assert info.value.status_code is None


def test_a_slow_server_times_out() -> None:
    app = FastAPI()

    @app.post("/pooling")
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(1.5)
        return {"data": []}

    with running_app(app) as url:
        remote = RemotePRM(base_url=url, timeout=0.2, max_retries=1, backoff_base=0.0)
        start = time.monotonic()
        with pytest.raises(RemotePRMError, match=r"after 2 attempt.*timed out after 0.2s"):
            remote.estimate_question(QUESTION)
        assert time.monotonic() - start < 1.2


# -- a failed request keeps what the others scored --------------------------------------


class FailingOnPRM(LengthPRM):
    """``LengthPRM`` that raises ``failure`` (after ``delay`` s) for a call holding ``marker``."""

    failure: Exception
    marker: str = "2 + 3 = 6."  # the only step of SOLUTIONS[2]
    delay: float = 0.0

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        if any(self.marker in steps for steps in solutions):
            self.calls.append((question, [list(s) for s in solutions]))
            time.sleep(self.delay)
            raise self.failure
        return super()._score(question, solutions, config=config)


def no_tasks_left() -> bool:
    return all(task.done() for task in asyncio.all_tasks() if task is not asyncio.current_task())


@pytest.mark.parametrize(
    ("input_format", "failure", "status", "posts"),
    [
        # batches [0, 1] and [2, 3]: the second fails with a 500 on every attempt
        ("text", RuntimeError("cuda out of memory"), 500, 1 + 2),
        # one request a solution: the third is refused (not retried), the fourth never sent
        ("chat", ContextLengthExceededError("the input is 9000 tokens"), 400, 3),
    ],
)
def test_a_failed_request_keeps_the_solutions_already_scored(
    input_format: Literal["chat", "text"], failure: Exception, status: int, posts: int
) -> None:
    app = create_app(FailingOnPRM(failure=failure))
    state = counting(app)
    with running_app(app) as url:
        remote = RemotePRM(
            base_url=url,
            api_key=KEY,
            input_format=input_format,
            batch_size=2,
            max_retries=1,
            backoff_base=0.0,
        )
        with pytest.raises(RemotePRMError, match=f"HTTP {status}") as info:
            remote.score(QUESTION, SOLUTIONS)
    expected = LengthPRM().score(QUESTION, SOLUTIONS)
    assert info.value.status_code == status
    assert info.value.scored == {0: expected[0], 1: expected[1]}
    assert info.value.__notes__ == [
        "RemotePRM: 2 of 4 solution(s) were scored before the failure; they are kept in .scored"
    ]
    assert state["posts"] == posts
    assert KEY not in str(info.value) and KEY not in str(info.value.__notes__)


async def test_async_failure_cancels_the_waiting_requests_and_keeps_the_finished() -> None:
    failing = FailingOnPRM(failure=ContextLengthExceededError("the input is 9000 tokens"))
    app = create_app(failing)
    state = counting(app)
    with running_app(app) as url:
        remote = RemotePRM(base_url=url, max_concurrency=1)  # one request at a time, in order
        with pytest.raises(RemotePRMError, match="HTTP 400") as info:
            await remote.ascore(QUESTION, SOLUTIONS)
    expected = LengthPRM().score(QUESTION, SOLUTIONS)
    assert info.value.scored == {0: expected[0], 1: expected[1]}
    assert state["posts"] == 3  # the fourth was still waiting for its turn: cancelled, not sent
    assert no_tasks_left()


async def test_async_failure_keeps_the_requests_that_finished_first() -> None:
    failing = FailingOnPRM(failure=RuntimeError("cuda out of memory"), delay=1.0)
    with running_server(failing) as url:
        remote = RemotePRM(base_url=url, max_concurrency=4, max_retries=0)
        with pytest.raises(RemotePRMError, match=r"after 1 attempt.*HTTP 500") as info:
            await remote.ascore(QUESTION, SOLUTIONS)
    expected = LengthPRM().score(QUESTION, SOLUTIONS)
    assert info.value.scored == {0: expected[0], 1: expected[1], 3: expected[3]}
    assert info.value.status_code == 500
    assert no_tasks_left()


def test_a_bad_probability_after_a_good_batch_keeps_the_good_one() -> None:
    good = {"data": [row(0, [[0.2, 0.8], [0.4, 0.6]])]}
    bad = b'{"data": [{"index": 0, "data": [[0.1, NaN]]}]}'
    bodies = iter([json.dumps(good).encode(), bad])
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=next(bodies)))
    remote = RemotePRM(http_client=httpx.Client(transport=transport))
    with pytest.raises(RemotePRMError, match="non-finite") as info:
        remote.score(QUESTION, SOLUTIONS[:2])
    assert [e.median for e in info.value.scored[0]] == [0.8, 0.6]
    assert list(info.value.scored) == [0] and info.value.status_code is None
    assert isinstance(info.value.__cause__, PRMError)


# -- the API key -------------------------------------------------------------------------


def test_api_key_is_required_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with running_server(LengthPRM(), api_key=KEY) as url:
        for key in (None, "wrong-key"):
            with pytest.raises(RemotePRMError, match=r"HTTP 401.*api_key") as info:
                RemotePRM(base_url=url, api_key=key, max_retries=0).estimate_question(QUESTION)
            assert info.value.status_code == 401
            assert KEY not in str(info.value)
        assert RemotePRM(base_url=url, api_key=KEY).estimate_question(QUESTION).median > 0
        monkeypatch.setenv(API_KEY_ENV, KEY)  # the default comes from the environment
        assert RemotePRM(base_url=url).estimate_question(QUESTION).median > 0
        assert httpx.get(f"{url}/health").status_code == 200  # no key needed
        assert httpx.get(f"{url}/v1/models").status_code == 401
        models = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert models.json()["data"][0]["id"] == "prm"


def test_api_key_never_appears_in_logs_repr_or_dumps(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(LengthPRM(), api_key=KEY)
    counting(app, [(503, {})])
    with running_app(app) as url, caplog.at_level(logging.DEBUG):
        remote = RemotePRM(base_url=url, api_key=KEY, backoff_base=0.0)
        remote.score(QUESTION, SOLUTIONS)
        with pytest.raises(RemotePRMError) as info:
            RemotePRM(base_url=url, api_key=KEY + "x", max_retries=0).score(QUESTION, SOLUTIONS)
    assert "retry 1/3" in caplog.text  # our warnings were captured ...
    assert "HTTP Request: POST" in caplog.text  # ... and httpx's own request log
    for text in (caplog.text, repr(remote), str(remote), remote.model_dump_json(), str(info.value)):
        assert KEY not in text


# -- malformed responses -----------------------------------------------------------------


def row(index: int, data: Any, **extra: Any) -> dict[str, Any]:
    return {"index": index, "object": "pooling", "data": data, **extra}


MALFORMED: list[tuple[str, Any, str]] = [
    ("not json", b"<html>Bad gateway</html>", "not JSON"),
    ("data not a list", {"data": "oops"}, "malformed /pooling response"),
    ("no items", {"data": []}, r"answered items \[\] for 1 input"),
    ("wrong index", {"data": [row(3, [[0.5, 0.5]] * 2)]}, "answered items"),
    ("too few rows", {"data": [row(0, [[0.5, 0.5]])]}, "1 rows for 2 step"),
    ("per-token rows", {"data": [row(0, [[0.5, 0.5]] * 9)]}, "pooling_type.*STEP"),
    ("row too short", {"data": [row(0, [[0.9], [0.9]])]}, "positive_index"),
    ("out of range", {"data": [row(0, [[0.1, 1.5], [0.5, 0.5]])]}, "outside"),
    ("not a number", {"data": [row(0, [[0.1, "high"], [0.5, 0.5]])]}, "malformed"),
    (
        "crossing quantiles",
        {
            "data": [
                row(
                    0,
                    [[0.5, 0.5]] * 2,
                    estimates=[{"quantiles": {"0.1": 0.9, "0.5": 0.1, "0.9": 0.5}}] * 2,
                )
            ]
        },
        "quantiles cross",
    ),
]


def mock_transport(body: Any) -> httpx.MockTransport:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.MockTransport(lambda request: httpx.Response(200, content=content))


@pytest.mark.parametrize(("name", "body", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_responses_are_prm_errors(name: str, body: Any, message: str) -> None:
    remote = RemotePRM(http_client=httpx.Client(transport=mock_transport(body)))
    with pytest.raises(PRMError, match=message):
        remote.score(QUESTION, SOLUTIONS[:1])


def test_nan_probability_is_a_prm_error() -> None:
    content = b'{"data": [{"index": 0, "data": [[0.1, NaN], [0.5, 0.5]]}]}'
    remote = RemotePRM(http_client=httpx.Client(transport=mock_transport(content)))
    with pytest.raises(PRMError, match="non-finite"):
        remote.score(QUESTION, SOLUTIONS[:1])
    assert math.isnan(json.loads(content)["data"][0]["data"][0][1])


async def test_malformed_async_response_is_a_prm_error() -> None:
    transport = mock_transport({"data": [row(0, [[0.5, 0.5]])]})
    remote = RemotePRM(http_async_client=httpx.AsyncClient(transport=transport))
    with pytest.raises(PRMError, match="1 rows for 2 step"):
        await remote.ascore(QUESTION, SOLUTIONS[:1])


# -- the server's own checks -------------------------------------------------------------


def test_server_rejects_malformed_requests() -> None:
    with running_server(LengthPRM()) as url:
        endpoint = f"{url}/pooling"
        cases = [
            (b"{not json", "invalid request"),
            (json.dumps({"input": "x", "messages": []}).encode(), "exactly one"),
            (json.dumps({"input": [1, 2, 3]}).encode(), "token-id inputs"),
            (json.dumps({"input": "plain text"}).encode(), "ChatML"),
            (
                json.dumps({"messages": [{"role": "user", "content": "q"}]}).encode(),
                "assistant turn",
            ),
            (
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": "q"},
                            {"role": "assistant", "content": "a step without separator"},
                        ]
                    }
                ).encode(),
                "must end with the step separator",
            ),
        ]
        for content, message in cases:
            response = httpx.post(endpoint, content=content)
            assert response.status_code == 400, content
            assert message in response.json()["error"]["message"]


def test_prm_input_errors_are_400_and_failures_500() -> None:
    too_long = LengthPRM(fail_with=ContextLengthExceededError("the input is 9000 tokens"))
    with (
        running_server(too_long) as url,
        pytest.raises(RemotePRMError, match=r"HTTP 400.*9000 tokens") as info,
    ):
        RemotePRM(base_url=url).estimate_question(QUESTION)
    assert info.value.status_code == 400
    assert len(too_long.calls) == 1  # not retried
    broken = LengthPRM(fail_with=RuntimeError("cuda out of memory"))
    with (
        running_server(broken) as url,
        pytest.raises(RemotePRMError, match=r"after 2 attempt.*HTTP 500") as info,
    ):
        RemotePRM(base_url=url, max_retries=1, backoff_base=0).estimate_question(QUESTION)
    assert info.value.status_code == 500
    assert len(broken.calls) == 2


# -- settings --------------------------------------------------------------------------


def test_tls_verification_is_on_by_default() -> None:
    remote = RemotePRM(base_url="https://prm.example.com")
    assert remote.verify is True
    pool = remote._sync_client()._transport._pool  # type: ignore[attr-defined]
    assert pool._ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert pool._ssl_context.check_hostname
    remote.close()
    unverified = RemotePRM(base_url="https://prm.example.com", verify=False)
    assert unverified._sync_client()._transport._pool._ssl_context.verify_mode == ssl.CERT_NONE  # type: ignore[attr-defined]
    unverified.close()


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="http"):
        RemotePRM(base_url="localhost:8000")
    assert RemotePRM(base_url="http://h:1/").endpoint == "http://h:1/pooling"


def test_backoff_grows_and_is_capped() -> None:
    remote = RemotePRM(backoff_base=1.0, backoff_max=5.0)
    assert 0.5 <= remote._delay(0, None) <= 1.0
    assert 2.0 <= remote._delay(2, None) <= 4.0
    assert remote._delay(6, None) == 5.0
    busy = httpx.Response(429, headers={"Retry-After": "3"})
    assert remote._delay(0, busy) == 3.0
    assert remote._delay(0, httpx.Response(429, headers={"Retry-After": "600"})) == 5.0
