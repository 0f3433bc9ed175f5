"""The OpenAI-compatible adaptive server, driven by the official ``openai`` client and ChatOpenAI.

Every test runs a real uvicorn server on a free 127.0.0.1 port (in a thread) and
talks HTTP to it. The policy is scripted (known answers, token counts, delays)
in all but the last two tests, which build the server from ``serve``'s flags on
the bundled SmolLM2, and serve it once more with that server as the upstream
policy.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason='needs the "server" extra')
pytest.importorskip("openai", reason='needs the "remote" extra')
pytest.importorskip("langchain_openai", reason='needs the "remote" extra')

import httpx
import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import Field

from langchain_adaptive.integrations.http.openai_server import running_server
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.runnable import AdaptiveReasoningRunnable
from tests.unit_tests.fakes import ScriptedChatModel

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]
FIVE = "2 + 3 = 5.\n\nThe answer is 5."
RESPONSES = [FIVE, "Two plus three is six.\n\nThe answer is 6.", FIVE, FIVE]


class SlowChatModel(ScriptedChatModel):
    """A scripted policy that takes ``delay_s`` per call and keeps every call's kwargs."""

    delay_s: float = 0.0
    stops: list[list[str] | None] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.delay_s)
        self.stops.append(stop)
        return super()._generate(messages, stop, run_manager, **kwargs)


class JudgePRM(ProcessRewardModel):
    """p = 0.5 for every question; each call asks a scripted judge, so the PRM spends tokens."""

    judge: ScriptedChatModel = Field(
        default_factory=lambda: ScriptedChatModel(responses=["yes it looks right"])
    )

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        self.judge.invoke(f"Rate: {question}", config=config)
        return [
            [SuccessEstimate.point(0.5)] if not steps else [SuccessEstimate.point(0.7)] * len(steps)
            for steps in solutions
        ]


def reasoner(delay_s: float = 0.0, **settings: Any) -> AdaptiveReasoningRunnable:
    """p = 0.5 at C = 0.9: IAS draws 4 samples; three say 5, one says 6; majority vote."""
    settings.setdefault("strategy", "adaptive_best_of_n")
    return AdaptiveReasoningRunnable(
        model=SlowChatModel(responses=RESPONSES, delay_s=delay_s),
        prm=JudgePRM(),
        target_confidence=0.9,
        max_samples=8,
        max_tokens_per_sample=64,
        **settings,
    ).model_copy(update={"strategy": _majority(settings["strategy"])})


def _majority(name: str) -> Any:
    from langchain_adaptive.strategies import build_strategy

    return build_strategy(name, selection="majority_vote")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_server(reasoner()) as base:
        yield base


def client(base: str, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("api_key", "unused")
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=f"{base}/v1", **kwargs)


# -- invoke, stream, usage -----------------------------------------------------------


def test_invoke_returns_the_vote_and_counts_every_sample_and_the_prm(url: str) -> None:
    completion = client(url).chat.completions.create(model="adaptive", messages=MESSAGES)
    direct = reasoner().invoke([HumanMessage("What is 2 + 3?")])

    choice = completion.choices[0]
    assert choice.message.content == direct.solution == FIVE
    assert direct.answer == "5" and choice.finish_reason == "stop"
    budget = direct.budget
    assert budget.samples_used == 4 and budget.prm_input_tokens > 0
    assert completion.usage.prompt_tokens == budget.prompt_tokens + budget.prm_input_tokens
    assert completion.usage.completion_tokens == budget.generated_tokens + budget.prm_output_tokens
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    facts = completion.model_extra["adaptive"]
    assert facts["samples_used"] == 4 and facts["decided_samples"] == 4
    assert facts["stop_reason"] == "adaptive_budget" and facts["low_confidence"] is False
    assert facts["success_estimate"] == {"lower": 0.5, "median": 0.5}
    assert facts["usage"]["prm"]["prompt_tokens"] == budget.prm_input_tokens
    assert facts["usage"]["policy"]["completion_tokens"] == budget.generated_tokens


def test_adaptive_overrides_change_the_run(url: str) -> None:
    completion = client(url).chat.completions.create(
        model="adaptive",
        messages=MESSAGES,
        max_tokens=3,
        extra_body={"adaptive": {"target_confidence": 0.99, "max_samples": 2}},
    )
    facts = completion.model_extra["adaptive"]
    # p = 0.5 at C = 0.99 asks for 7 samples; the request's cap of 2 stops it
    assert facts["samples_used"] == 2 and facts["stop_reason"] == "max_samples"
    assert facts["low_confidence"] is True and facts["target_confidence"] == 0.99
    assert facts["usage"]["policy"]["completion_tokens"] == 2 * 3  # max_tokens caps each sample
    prm_tokens = facts["usage"]["prm"]["completion_tokens"]
    assert prm_tokens > 0 and completion.usage.completion_tokens == 2 * 3 + prm_tokens
    assert completion.choices[0].finish_reason == "length"


def test_stream_sends_progress_comments_chunks_and_usage(url: str) -> None:
    whole = client(url).chat.completions.create(model="adaptive", messages=MESSAGES)
    chunks = list(
        client(url).chat.completions.create(
            model="adaptive",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])

    body = {"model": "adaptive", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    progress = [json.loads(line[2:]) for line in lines if line.startswith(": {")]
    events = [p["event"] for p in progress]
    assert events[0] == "adaptive_budget_decided" and events[-1] == "adaptive_finished"
    assert events.count("adaptive_candidate_generated") == 4
    assert progress[0]["estimate"]["lower"] == 0.5 and progress[0]["n"] == 4
    assert lines[-1] == "data: [DONE]"
    assert not any("usage" in json.loads(line[6:]) for line in lines[:-1] if line[:6] == "data: ")


def test_chat_openai_invokes_and_streams_with_usage(url: str) -> None:
    chat = ChatOpenAI(
        base_url=f"{url}/v1", model="adaptive", api_key="unused", max_retries=0, stream_usage=True
    )
    message = chat.invoke("What is 2 + 3?")
    assert message.content == FIVE
    assert message.usage_metadata["input_tokens"] > 0
    assert message.response_metadata["finish_reason"] == "stop"

    streamed = None
    for chunk in chat.stream("What is 2 + 3?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.content == message.content
    assert streamed.usage_metadata == message.usage_metadata


def test_seed_gives_each_sample_its_own_seed() -> None:
    served = reasoner()
    with running_server(served) as base:
        client(base).chat.completions.create(model="adaptive", messages=MESSAGES, seed=100)
        client(base).chat.completions.create(model="adaptive", messages=MESSAGES, stop=["\n\n"])
    calls, stops = served.model.calls, served.model.stops
    assert sorted(call["seed"] for call in calls[:4]) == [100, 101, 102, 103]
    assert stops[:4] == [None] * 4 and stops[4:] == [["\n\n"]] * 4
    assert all("seed" not in call for call in calls[4:])


def test_models_and_health(url: str) -> None:
    assert [m.id for m in client(url).models.list()] == ["adaptive"]
    health = httpx.get(f"{url}/health").json()
    assert health == {"status": "ok", "in_flight": 0, "max_concurrency": 4}


# -- tool calls ----------------------------------------------------------------------


@tool
def get_weather(city: str, unit: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def paris(call_id: str, args: dict[str, str]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "get_weather", "args": args, "id": call_id}])


class ToolCallingModel(GenericFakeChatModel):
    """Plays ``messages`` in a cycle; ``bind_tools`` binds the OpenAI tool dicts it is given."""

    calls: list[dict[str, Any]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(kwargs)
        return super()._generate(messages, stop, run_manager, **kwargs)


def tool_reasoner() -> AdaptiveReasoningRunnable:
    """Four samples: Paris twice (keys in another order), London once, one text answer."""
    script = [
        paris("call_first", {"city": "Paris", "unit": "celsius"}),
        AIMessage(content="I cannot tell.\n\nThe answer is 7."),
        AIMessage(
            content="",
            tool_calls=[
                {"name": "get_weather", "args": {"city": "London", "unit": "c"}, "id": "x"}
            ],
        ),
        paris("call_second", {"unit": "celsius", "city": "Paris"}),
    ]
    return AdaptiveReasoningRunnable(
        model=ToolCallingModel(messages=itertools.cycle(script)),
        strategy=_majority("best_of_n"),
        max_samples=4,
    )


@pytest.fixture(scope="module")
def tool_url() -> Iterator[str]:
    with running_server(tool_reasoner(), max_concurrency=1) as base:
        yield base


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city", "unit"],
        },
    },
}
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_tool_calls_are_voted_on_in_normal_form_and_returned_intact(tool_url: str) -> None:
    completion = client(tool_url).chat.completions.create(
        model="adaptive", messages=WEATHER, tools=[TOOL], tool_choice="auto"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id in {"call_first", "call_second"} and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert completion.model_extra["adaptive"]["samples_used"] == 4


def test_tool_calls_stream_and_reach_chat_openai(tool_url: str) -> None:
    chunks = list(
        client(tool_url).chat.completions.create(
            model="adaptive", messages=WEATHER, tools=[TOOL], stream=True
        )
    )
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert [d.function.name for d in deltas] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # the votes: both Paris calls (keys in another order) have one normal form
    body = {"model": "adaptive", "messages": WEATHER, "tools": [TOOL], "stream": True}
    with httpx.stream("POST", f"{tool_url}/v1/chat/completions", json=body, timeout=30) as reply:
        progress = [json.loads(line[2:]) for line in reply.iter_lines() if line.startswith(": {")]
    answers = sorted(p["answer"] for p in progress if p["event"] == "adaptive_candidate_generated")
    paris_vote = 'tool_calls:[{"arguments":{"city":"Paris","unit":"celsius"},"name":"get_weather"}]'
    london_vote = 'tool_calls:[{"arguments":{"city":"London","unit":"c"},"name":"get_weather"}]'
    assert answers == sorted(["7", london_vote, paris_vote, paris_vote])

    chat = ChatOpenAI(base_url=f"{tool_url}/v1", model="adaptive", api_key="unused", max_retries=0)
    message = chat.bind_tools([get_weather]).invoke("What is the weather in Paris?")
    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"] == {"city": "Paris", "unit": "celsius"}
    assert message.tool_calls[0]["id"] in {"call_first", "call_second"}


def test_the_policy_receives_the_tools_and_the_choice() -> None:
    served = tool_reasoner()
    with running_server(served) as base:
        client(base).chat.completions.create(
            model="adaptive",
            messages=WEATHER,
            tools=[TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    assert len(served.model.calls) == 4
    assert all(
        c["tools"] == [TOOL] and c["tool_choice"] == "get_weather" for c in served.model.calls
    )


def test_tools_on_a_policy_without_bind_tools_are_a_400(url: str) -> None:
    with pytest.raises(openai.BadRequestError, match="does not support tools"):
        client(url).chat.completions.create(model="adaptive", messages=WEATHER, tools=[TOOL])


# -- errors and limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"foo": 1}, "unknown field 'foo'"),
        ({"adaptive": {"max_sampels": 2}}, "unknown field 'adaptive.max_sampels'"),
        ({"n": 2}, "n=2 is not supported"),
        ({"adaptive": {"max_samples": 9}}, "above this server's limit of 8"),
        ({"adaptive": {"strategy": "nope"}}, "unknown strategy 'nope'"),
        ({"logprobs": True}, "logprobs are not supported"),
        ({"temperature": 3}, "invalid field 'temperature'"),
    ],
)
def test_bad_requests_are_400_with_the_reason(
    url: str, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError, match=re.escape(message)):
        client(url).chat.completions.create(model="adaptive", messages=MESSAGES, extra_body=extra)


def test_malformed_bodies_are_400(url: str) -> None:
    post = f"{url}/v1/chat/completions"
    nested = '{"model": "adaptive", "messages": ' + "[" * 200 + "]" * 200 + "}"
    assert "nested deeper than 64" in httpx.post(post, content=nested).json()["error"]["message"]
    assert httpx.post(post, content=b"{not json").status_code == 400
    no_user = {"model": "adaptive", "messages": [{"role": "system", "content": "hi"}]}
    response = httpx.post(post, json=no_user)
    assert response.status_code == 400 and "no human message" in response.text
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert httpx.post(post, json={"model": "adaptive", "messages": image}).status_code == 400


def test_another_model_name_is_404(url: str) -> None:
    with pytest.raises(openai.NotFoundError, match="serves `adaptive`"):
        client(url).chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_api_key_is_checked_before_the_body_is_read() -> None:
    with running_server(reasoner(), api_key="s3cret", max_request_bytes=1000) as base:
        with pytest.raises(openai.AuthenticationError):
            client(base, api_key="wrong").chat.completions.create(
                model="adaptive", messages=MESSAGES
            )
        with pytest.raises(openai.AuthenticationError):
            client(base, api_key="wrong").models.list()
        huge = httpx.post(
            f"{base}/v1/chat/completions",
            content=b"x" * 5000,
            headers={"Authorization": "Bearer wrong"},
        )
        assert huge.status_code == 401  # not 413: the body was never read
        ok = client(base, api_key="s3cret").chat.completions.create(
            model="adaptive", messages=MESSAGES
        )
        assert ok.choices[0].message.content
        assert httpx.get(f"{base}/health").status_code == 200


def test_oversized_bodies_are_413_declared_or_chunked() -> None:
    with running_server(reasoner(), max_request_bytes=2000) as base:
        long = [{"role": "user", "content": "x" * 5000}]
        with pytest.raises(openai.APIStatusError) as caught:
            client(base).chat.completions.create(model="adaptive", messages=long)
        assert caught.value.status_code == 413

        def chunks() -> Iterator[bytes]:
            yield from [b" " * 1000] * 5

        chunked = httpx.post(f"{base}/v1/chat/completions", content=chunks())
        assert chunked.status_code == 413


def test_a_body_that_never_arrives_is_408() -> None:
    with running_server(reasoner(), body_timeout_s=0.3) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model"'
            )
            reply = _read_response(sock)
    assert reply.startswith("HTTP/1.1 408") and "--body-timeout" in reply


def _read_response(sock: socket.socket) -> str:
    """One whole HTTP response: the headers and the body may come in separate segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"\r\n\r\n"  # the peer closed: take what came
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length:
        piece = sock.recv(4096)
        if not piece:
            break
        body += piece
    return (head + b"\r\n\r\n" + body).decode()


def test_concurrency_limit_is_429_with_retry_after() -> None:
    with running_server(reasoner(delay_s=0.5), max_concurrency=1) as base:
        first: dict[str, Any] = {}

        def ask() -> None:
            first["reply"] = client(base).chat.completions.create(
                model="adaptive", messages=MESSAGES
            )

        thread = threading.Thread(target=ask)
        thread.start()
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/health").json()["in_flight"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError, match="--max-concurrency") as caught:
            client(base).chat.completions.create(model="adaptive", messages=MESSAGES)
        assert int(caught.value.response.headers["retry-after"]) >= 1
        thread.join(timeout=30)
        assert first["reply"].choices[0].message.content  # the first one was not disturbed
        again = client(base).chat.completions.create(model="adaptive", messages=MESSAGES)
        assert again.choices[0].message.content


def test_the_deadline_is_504_and_frees_the_slot() -> None:
    with running_server(reasoner(delay_s=0.4), request_timeout_s=0.2, max_concurrency=1) as base:
        with pytest.raises(openai.InternalServerError) as caught:
            client(base).chat.completions.create(model="adaptive", messages=MESSAGES)
        assert caught.value.status_code == 504
        assert caught.value.body["type"] == "DeadlineExceededError"
        # the runnable's own deadline ended the run: what it did by then comes back
        facts = caught.value.response.json()["adaptive"]
        assert facts["samples_used"] == 0 and facts["success_estimate"] is not None
        stream = client(base).chat.completions.create(
            model="adaptive", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError, match="--request-timeout"):
            list(stream)
        assert httpx.get(f"{base}/health").json()["in_flight"] == 0


def test_prompts_are_logged_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    question = [{"role": "user", "content": "What is 2 + 3? (secret-prompt-marker)"}]
    caplog.set_level(logging.INFO, logger="langchain_adaptive")
    for log_prompts in (False, True):
        caplog.clear()
        with running_server(reasoner(), log_prompts=log_prompts) as base:
            client(base, api_key="key-marker").chat.completions.create(
                model="adaptive", messages=question
            )
        assert "sample(s)" in caplog.text and "key-marker" not in caplog.text
        assert ("secret-prompt-marker" in caplog.text) is log_prompts


def test_docs_snippet_runs_against_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "docs" / "serving.md").read_text()
    (snippet,) = re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S)
    assert 'base_url="http://127.0.0.1:8000/v1"' in snippet
    with running_server(reasoner()) as base:
        code = snippet.replace("http://127.0.0.1:8000", base)
        exec(compile(code, "docs/serving.md", "exec"), {"__name__": "docs"})
    printed = capsys.readouterr().out
    assert printed == f"{FIVE}\n4 adaptive_budget 0.5\n"


def test_load_benchmark_writes_its_report(tmp_path: Path) -> None:
    """The benchmark runs end to end in a tiny setting (its figures are in docs/results)."""
    import importlib.util

    path = ROOT / "examples" / "benchmarks" / "serve_load.py"
    spec = importlib.util.spec_from_file_location("serve_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flags = ["--delay-s", "0.01", "--prm-delay-s", "0", "--clients", "1", "3"]
    module.main([*flags, "--requests", "2", "--overhead-requests", "2", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "serve_load.json").read_text())
    assert [row["requests"] for row in report["load"]] == [2, 6]
    assert all(row["errors"] == 0 for row in report["load"])
    assert report["overhead_1_client"]["served"]["n"] == 2
    assert (tmp_path / "serve_load.png").stat().st_size > 0


# -- the command line and the bundled model -------------------------------------------


def test_serve_refuses_half_an_upstream() -> None:
    from langchain_adaptive.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["serve", "--upstream-base-url", "http://127.0.0.1:1/v1"])
    assert caught.value.code == 2


@pytest.mark.slow
@pytest.mark.llamacpp
def test_serve_flags_build_the_bundled_model_and_an_upstream_policy() -> None:
    pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
    from langchain_adaptive._serve_openai import _parser, build_served_runnable

    flags = ["--max-samples", "2", "--max-tokens", "16", "--threads", "2", "--seed", "3"]
    args = _parser().parse_args(flags)
    assert (args.host, args.port, args.served_model_name) == ("127.0.0.1", 8000, "adaptive")
    local = build_served_runnable(args)
    question = [{"role": "user", "content": "What is 2 + 3? End with 'The answer is X.'"}]
    with running_server(local) as base:
        completion = client(base).chat.completions.create(
            model="adaptive", messages=question, temperature=0.7
        )
        facts = completion.model_extra["adaptive"]
        assert 1 <= facts["samples_used"] <= 2 and facts["success_estimate"]["lower"] > 0
        assert completion.usage.completion_tokens > 0 and completion.choices[0].message.content
        streamed = list(
            client(base).chat.completions.create(
                model="adaptive", messages=question, stream=True,
                stream_options={"include_usage": True},
            )
        )  # fmt: skip
        assert streamed[-1].usage.completion_tokens > 0

        upstream_flags = ["--upstream-base-url", f"{base}/v1", "--upstream-model", "adaptive"]
        upstream = build_served_runnable(
            _parser().parse_args([*flags, *upstream_flags, "--strategy", "majority_vote"])
        )
        assert isinstance(upstream.model, ChatOpenAI)
        assert upstream.model.openai_api_base == f"{base}/v1"
        with running_server(upstream) as outer:
            reply = client(outer).chat.completions.create(model="adaptive", messages=question)
    # two upstream samples, each itself an adaptive run on the bundled model
    assert reply.model_extra["adaptive"]["samples_used"] == 2
    assert reply.choices[0].message.content
