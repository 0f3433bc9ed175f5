"""The PRM server as a process: ``serve-prm`` options, limits, a crash mid-batch, SIGTERM.

Servers run on free loopback ports: in a thread (``running_server``) where the
test needs the app, in a subprocess where it needs to kill or signal one. The
subprocess serves ``ScriptedPRM`` below (scores from step lengths, an optional
delay, an optional self-kill on the N-th call), so every outcome is known in
advance. Only the last test loads a model (the bundled ProbePRM); the rest take
a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason='needs the "server" extra')
pytest.importorskip("uvicorn", reason='needs the "server" extra')

import httpx
from fastapi import Request
from langchain_core.runnables import RunnableConfig

from langchain_adaptive._serve_prm import _parser, build_prm, main
from langchain_adaptive.errors import PRMError
from langchain_adaptive.integrations.http import RemotePRM, RemotePRMError
from langchain_adaptive.integrations.http._remote import API_KEY_ENV
from langchain_adaptive.integrations.http._server import create_app, running_app, running_server
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from langchain_adaptive.results import SuccessEstimate

QUESTION = "What is 12 + 30?"
SOLUTIONS = [["12 + 30 = 42.", "The answer is 42."], ["12 + 30 = 43."], [], ["Add them.", "42"]]

SCRIPTED_PRM = textwrap.dedent(
    '''
    """Serve a scripted PRM: python -c SCRIPT PORT DELAY DIE_ON_CALL."""
    import os, signal, sys, time

    from langchain_adaptive.integrations.http._server import serve_prm
    from langchain_adaptive.prm._base import ProcessRewardModel
    from langchain_adaptive.results import SuccessEstimate

    port, delay, die_on = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])


    class ScriptedPRM(ProcessRewardModel):
        calls: int = 0

        def _score(self, question, solutions, *, config):
            self.calls += 1
            print(f"call {self.calls}: {len(solutions)} solution(s)", flush=True)
            if self.calls == die_on:  # a crash mid-batch: no response, no cleanup
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(delay)
            return [
                [SuccessEstimate.point(len(s) % 10 / 10 + 0.05) for s in steps]
                or [SuccessEstimate.point(0.5)]
                for steps in solutions
            ]


    serve_prm(ScriptedPRM(), port=port, model_name="scripted", log_level="warning",
              graceful_timeout=10.0)
    '''
)


class LocalScriptedPRM(ProcessRewardModel):
    """The same scores as the subprocess's ScriptedPRM, in this process."""

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        return [
            [SuccessEstimate.point(len(s) % 10 / 10 + 0.05) for s in steps]
            or [SuccessEstimate.point(0.5)]
            for steps in solutions
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no healthy server at {url} after {timeout:g}s")


@pytest.fixture
def scripted_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A subprocess serving ScriptedPRM; ``request.param``: (delay seconds, die on call N)."""
    delay, die_on = getattr(request, "param", (0.0, 0))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPTED_PRM, str(port), str(delay), str(die_on)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# -- the scripted PRM, in a thread and as a process ---------------------------------------


def test_remote_prm_round_trips_a_scripted_prm_on_a_free_port() -> None:
    port = free_port()
    with running_server(LocalScriptedPRM(), port=port, model_name="scripted") as url:
        assert url == f"http://127.0.0.1:{port}"
        remote = RemotePRM(base_url=url, model="scripted", input_format="text", batch_size=3)
        assert remote.score(QUESTION, SOLUTIONS) == LocalScriptedPRM().score(QUESTION, SOLUTIONS)


@pytest.mark.parametrize("scripted_server", [(0.0, 0)], indirect=True)
async def test_a_server_process_answers_sync_and_async(
    scripted_server: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = scripted_server
    remote = RemotePRM(base_url=url, model="scripted")
    expected = LocalScriptedPRM().score(QUESTION, SOLUTIONS)
    assert remote.score(QUESTION, SOLUTIONS) == expected
    assert await remote.ascore(QUESTION, SOLUTIONS) == expected


# -- limits ---------------------------------------------------------------------------------


def test_a_request_over_max_request_bytes_is_a_413_naming_the_limit() -> None:
    long_solutions = [[f"step {i}: " + "x" * 300] for i in range(8)]  # about 3 KB of text
    with running_server(LocalScriptedPRM(), max_request_bytes=2000) as url:
        small = RemotePRM(base_url=url, input_format="text", batch_size=1)
        assert len(small.score(QUESTION, long_solutions[:2])) == 2  # each body is under 2000
        big = RemotePRM(base_url=url, input_format="text", batch_size=8, max_retries=3)
        with pytest.raises(RemotePRMError, match=r"HTTP 413.*at most 2000.*max-request-bytes"):
            big.score(QUESTION, long_solutions)
        # a chunked upload (no Content-Length) is cut off at the limit, too
        chunks = (b'{"input": ["' + b"y" * 1000 + b'"]}' for _ in range(5))
        response = httpx.post(f"{url}/pooling", content=chunks)
        assert response.status_code == 413
        assert "more than 2000" in response.json()["error"]["message"]
        # a body of megabytes is refused from its Content-Length, before it is read
        huge = httpx.post(f"{url}/pooling", content=b"z" * 4_000_000)
        assert huge.status_code == 413
        assert "4000000 bytes" in huge.json()["error"]["message"]


def test_413_is_a_typed_client_error_and_not_retried() -> None:
    app = create_app(LocalScriptedPRM(), max_request_bytes=500)
    posts = {"n": 0}

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Any:
        posts["n"] += 1
        return await call_next(request)

    with running_app(app) as url:
        remote = RemotePRM(base_url=url, max_retries=3, backoff_base=0.0)
        with pytest.raises(PRMError) as info:
            remote.score(QUESTION, [["w" * 600]])
    assert isinstance(info.value, RemotePRMError)
    assert info.value.status_code == 413
    assert posts["n"] == 1


def test_a_batch_over_max_batch_is_a_400_naming_the_limit() -> None:
    with running_server(LocalScriptedPRM(), max_inputs=2) as url:
        ok = RemotePRM(base_url=url, input_format="text", batch_size=2)
        assert ok.score(QUESTION, SOLUTIONS) == LocalScriptedPRM().score(QUESTION, SOLUTIONS)
        too_many = RemotePRM(base_url=url, input_format="text", batch_size=3)
        with pytest.raises(RemotePRMError, match=r"HTTP 400.*3 inputs.*at most 2.*--max-batch"):
            too_many.score(QUESTION, SOLUTIONS)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        create_app(LocalScriptedPRM(), max_request_bytes=0)


# -- failures and shutdown -------------------------------------------------------------------


@pytest.mark.parametrize("scripted_server", [(0.0, 3)], indirect=True)
def test_a_server_killed_mid_batch_is_a_prm_error_and_earlier_scores_stay(
    scripted_server: tuple[str, subprocess.Popen[str]],
) -> None:
    """Batches already answered stay with the caller; the call in flight fails, typed.

    ``RemotePRM.score`` is all-or-nothing: a call whose later request fails raises
    and returns none of its earlier requests' scores, so callers that want to keep
    partial progress score in several calls (as calibration does, per question).
    """
    url, process = scripted_server
    remote = RemotePRM(
        base_url=url, input_format="text", batch_size=2, max_retries=1, backoff_base=0.0
    )
    kept = [remote.score(QUESTION, SOLUTIONS[:2]), remote.score(QUESTION, SOLUTIONS[2:])]
    with pytest.raises(PRMError) as info:
        remote.score(QUESTION, SOLUTIONS)  # the server's third PRM call kills it
    assert isinstance(info.value, RemotePRMError)
    assert "after 2 attempt" in str(info.value)
    assert info.value.status_code is None  # no HTTP answer: the connection dropped
    assert process.wait(timeout=10) == -signal.SIGKILL
    expected = LocalScriptedPRM().score(QUESTION, SOLUTIONS)
    assert kept == [expected[:2], expected[2:]]


@pytest.mark.parametrize("scripted_server", [(1.5, 0)], indirect=True)
def test_sigterm_lets_the_request_in_flight_finish(
    scripted_server: tuple[str, subprocess.Popen[str]],
) -> None:
    url, process = scripted_server
    answers: list[object] = []

    def call() -> None:
        try:
            answers.append(RemotePRM(base_url=url, max_retries=0).score(QUESTION, SOLUTIONS[:1]))
        except Exception as error:  # recorded, so the assertion below names it
            answers.append(error)

    client = threading.Thread(target=call)
    client.start()
    time.sleep(0.7)  # the request is inside the PRM's 1.5 s sleep
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):  # no new connections while draining
        httpx.get(f"{url}/health", timeout=1.0)
    client.join(timeout=10)
    assert answers == [LocalScriptedPRM().score(QUESTION, SOLUTIONS[:1])]
    # uvicorn re-raises the signal once drained, so the exit status says "terminated"
    assert process.wait(timeout=10) in (0, -signal.SIGTERM)


# -- the command line --------------------------------------------------------------------


def test_the_command_line_binds_loopback_and_checks_its_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _parser().parse_args(["--prm", "probe"])
    assert args.host == "127.0.0.1"
    assert (args.max_batch, args.max_request_bytes) == (256, 8 * 1024 * 1024)
    for argv, message in [
        (["--prm", "hf"], "MODEL is required with --prm hf"),
        (["--prm", "probe", "some/model-GGUF"], "--head"),
        (["--prm", "probe", "--max-batch", "0"], "at least 1"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_build_prm_makes_the_local_prms_without_loading_them() -> None:
    pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
    from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
    from langchain_adaptive.prm._judge import LLMJudgePRM

    probe = build_prm(_parser().parse_args(["--prm", "probe", "--n-threads", "1"]))
    assert isinstance(probe, ProbePRM) and probe.model is None and probe.n_threads == 1
    judge = build_prm(_parser().parse_args(["--prm", "judge", "--n-ctx", "1024"]))
    assert isinstance(judge, LLMJudgePRM) and isinstance(judge.model, ChatLlamaCpp)
    assert judge.model.n_ctx == 1024


@pytest.mark.llamacpp
@pytest.mark.slow
def test_serve_prm_probe_serves_the_bundled_probe(tmp_path: Path) -> None:
    """``langchain-adaptive serve-prm --prm probe`` with a key: remote scores equal local ones."""
    pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
    from langchain_adaptive.integrations.llamacpp import ProbePRM

    port, key = free_port(), "probe-key-51c9"
    command = (
        "from langchain_adaptive.cli import main; raise SystemExit(main())",
        "serve-prm",
        "--prm",
        "probe",
        "--port",
        str(port),
        "--n-threads",
        "1",
        "--log-level",
        "warning",
    )
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", *command],
        env={**os.environ, API_KEY_ENV: key},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, timeout=120.0)
        models = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert models.json()["data"][0]["id"] == "probe"
        with pytest.raises(RemotePRMError, match="HTTP 401"):
            RemotePRM(base_url=url, api_key="wrong", max_retries=0).estimate_question(QUESTION)
        remote = RemotePRM(base_url=url, model="probe", api_key=key, input_format="text")
        served = remote.score(QUESTION, SOLUTIONS)
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        log.close()
    assert code in (0, -signal.SIGTERM), (tmp_path / "server.log").read_text()
    local = ProbePRM(n_threads=1).score(QUESTION, SOLUTIONS)
    assert [len(row) for row in served] == [2, 1, 1, 2]
    for served_row, local_row in zip(served, local, strict=True):
        for a, b in zip(served_row, local_row, strict=True):
            assert json.loads(a.model_dump_json()).keys() == json.loads(b.model_dump_json()).keys()
            assert a.median == pytest.approx(b.median, abs=1e-6)
            assert a.lower == pytest.approx(b.lower, abs=1e-6)
