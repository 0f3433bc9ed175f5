"""Every script in ``examples/`` runs as written (its ``main``), on the real bundled SmolLM2.

The scripts run in this process (``runpy``), so the model file is loaded once
for all of them; each gets tiny settings (one or two questions, few tokens).
"""

from __future__ import annotations

import json
import re
import runpy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp")

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    """The namespace of ``examples/NAME.py``, loaded as a module (not run as ``__main__``)."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


def run_main(name: str, *argv: str) -> int:
    main: Callable[[list[str]], int] = example(name)["main"]
    return main(list(argv))


def test_every_example_has_a_test() -> None:
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    tested = {
        "quickstart",
        "lcel_chain",
        "escalation_chain",
        "gpu_offload",
        "remote_prm",
        "agent_with_tool",
        "agent_middleware",
        "calibrate_then_benchmark",
    }
    assert scripts == tested


def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("quickstart", "What is 2 + 3?", "--max-samples", "2", "--max-tokens", "24") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Question: What is 2 + 3?"
    assert lines[1].startswith("Answer: ")
    assert lines[2].startswith("Success estimate of one sample: lower 0.")
    samples = next(line for line in lines if line.startswith("Samples: "))
    assert int(samples.split()[1]) in (1, 2) and "of at most 2" in samples


def test_lcel_chain(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_main(
        "lcel_chain", "--pairs", "2+3", "4+4", "--max-samples", "1", "--max-tokens", "24"
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" = ")[0] for line in lines] == ["2 + 3", "4 + 4"]
    assert all(line.split(" = ")[1] for line in lines)


def test_escalation_chain(capsys: pytest.CaptureFixture[str]) -> None:
    from langchain_adaptive.integrations.llamacpp import ProbePRM

    p = ProbePRM().estimate_question("What is 2 + 3?").lower
    argv = ["What is 2 + 3?", "--cheap-samples", "1", "--strong-samples", "2", "--max-tokens", "24"]
    assert run_main("escalation_chain", *argv) == 0
    lines = capsys.readouterr().out.splitlines()
    # one sample reaches C = 0.99 only when p >= 0.99: otherwise the chain must escalate
    if p < 0.99:
        assert "(escalated; " in lines[0] and "sample(s)" in lines[0]
        assert lines[1].strip().startswith("escalated: the first reasoner answered")
        assert "after 1 sample(s)" in lines[1]
    else:  # pragma: no cover - the bundled probe is far less sure of SmolLM2
        assert "(answered directly; 1 sample(s)" in lines[0]


def test_gpu_offload_falls_back_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    import llama_cpp

    code = run_main("gpu_offload", "What is 2 + 3?", "--max-samples", "1", "--max-tokens", "16")
    assert code == 0
    captured = capsys.readouterr()
    if llama_cpp.llama_supports_gpu_offload():  # pragma: no cover - a GPU build
        assert "Device: GPU (all layers)" in captured.out
    else:
        assert "built without GPU offload" in captured.err and "running on the CPU" in captured.err
        assert "Device: CPU" in captured.out
    assert "Answer: " in captured.out and "tokens/s" in captured.out


def test_remote_prm_starts_serve_prm_and_uses_it(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi", reason='needs the "server" extra')
    argv = ["What is 2 + 3?", "--max-samples", "2", "--max-tokens", "24"]
    assert run_main("remote_prm", *argv) == 0
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    assert line.startswith("What is 2 + 3? -> ") and "remote p lower 0." in line
    assert "1 PRM call(s)" in line  # the question estimate; majority vote scores no steps
    assert "serve-prm --prm probe is up at http://127.0.0.1:" in captured.err
    assert "(stopped)" in captured.err


# -- the agent example, with its model behind a scripted OpenAI-compatible server -------------


@pytest.fixture
def scripted_openai() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OpenAI-compatible ``/v1/chat/completions`` that calls ``think_hard``, then quotes it.

    It stands in for the tool-calling model a user would point the example at; the
    tool behind it is the real SmolLM2.
    """
    pytest.importorskip("fastapi", reason='needs the "server" extra')
    pytest.importorskip("langchain_openai", reason='needs the "remote" extra')
    pytest.importorskip("langchain.agents", reason='needs the "langgraph" extra')
    from fastapi import Body, FastAPI

    from langchain_adaptive.integrations.http._server import running_app

    app = FastAPI()
    requests: list[dict[str, Any]] = []

    @app.post("/v1/chat/completions")
    async def complete(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        requests.append(body)
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if tool_results:
            first = str(tool_results[-1]["content"]).splitlines()[0]
            message: dict[str, Any] = {"role": "assistant", "content": f"The thinker: {first}"}
            finish = "stop"
        else:
            arguments = json.dumps({"question": "What is 7 + 8?"})
            call = {"id": "call_1", "type": "function",
                    "function": {"name": "think_hard", "arguments": arguments}}  # fmt: skip
            message, finish = (
                {"role": "assistant", "content": None, "tool_calls": [call]},
                "tool_calls",
            )
        return {
            "id": f"chatcmpl-{len(requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    with running_app(app) as url:
        yield f"{url}/v1", requests


def test_agent_with_tool(
    scripted_openai: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, requests = scripted_openai
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    argv = [
        "--base-url",
        base_url,
        "--model",
        "scripted",
        "--max-samples",
        "2",
        "--max-tokens",
        "24",
    ]
    assert run_main("agent_with_tool", *argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "agent -> think_hard({'question': 'What is 7 + 8?'})"
    assert lines[1].startswith("tool  -> Answer: ") or lines[1].startswith("tool  -> No answer")
    assert "; Confidence: 0." in lines[1] and lines[1].endswith(" sample(s)]")
    first_line_of_tool = lines[1].removeprefix("tool  -> ").split("; ")[0]
    assert lines[2] == f"agent: The thinker: {first_line_of_tool}"
    assert len(requests) == 2
    assert [t["function"]["name"] for t in requests[0]["tools"]] == ["think_hard"]
    assert requests[0]["messages"][0]["role"] == "system"


def test_agent_without_a_model_says_what_it_needs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("langgraph", reason='needs the "langgraph" extra')
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert run_main("agent_with_tool") == 2
    assert "needs a tool-calling chat model" in capsys.readouterr().err


def test_agent_middleware_runs_the_tool_loop_within_its_budget(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("langchain.agents", reason='needs the "langgraph" extra')
    argv = ["--samples-per-call", "2", "--tokens-per-run", "160", "--max-tokens", "40"]
    assert run_main("agent_middleware", *argv) == 0
    lines = capsys.readouterr().out.splitlines()
    called = re.fullmatch(
        r"agent -> add\(\{'a': (-?\d+), 'b': (-?\d+)\}\)  \[([12]) sample\(s\), ([12]) vote\(s\) "
        r"for it, stop: (consensus|max_samples|token_budget)\]",
        lines[0],
    )
    assert called, lines[0]
    assert lines[1] == f"tool  -> {int(called[1]) + int(called[2])}"
    assert lines[2].startswith("agent: ") and " sample(s), " in lines[2]
    run = re.fullmatch(
        r"Run: 2 model call\(s\), (\d) sample\(s\), (\d+) generated tokens \(budget 160\), "
        r"(\d) fallback\(s\)",
        lines[-1],
    )
    assert run, lines[-1]
    samples, tokens, fallbacks = (int(g) for g in run.groups())
    assert 2 <= samples <= 4
    if fallbacks == 0:  # a fallback is the one sample a spent budget still allows
        assert tokens <= 160


def test_calibrate_then_benchmark_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("calibrate_then_benchmark", "--quick", "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "1. collecting" in out and "4. replaying" in out
    assert (tmp_path / "judge-platt").is_dir()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["questions"] == 2 and report["samples_per_question"] == 4
    names = {p["name"] for p in report["policies"]}
    assert {"bon4-majority", "ias[judge]@0.99", "ias[judge-platt]@0.99"} <= names
    assert (tmp_path / "report.md").read_text() in out
