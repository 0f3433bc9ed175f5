"""A remote PRM: the policy runs here, the PRM behind ``langchain-adaptive serve-prm``.

Without ``--url`` the script starts ``langchain-adaptive serve-prm --prm probe``
(the bundled calibrated probe) on a free local port, uses it, and stops it. With
``--url`` it uses a server you run: ours (any PRM, e.g. a Hugging Face one on a
GPU box) or vLLM's ``/pooling`` API.

    pip install -e ".[llamacpp,server]"
    python examples/remote_prm.py "What is 7 + 8?"
    # or, with a server elsewhere:
    langchain-adaptive serve-prm --prm probe --port 8000 &
    python examples/remote_prm.py --url http://127.0.0.1:8000 --served-model probe
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

import httpx

from langchain_adaptive import AdaptiveBestOfN, AdaptiveReasoningRunnable
from langchain_adaptive.integrations.http import RemotePRM
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, default_threads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def local_prm_server(prm: str, timeout: float = 120.0) -> Iterator[str]:
    """``langchain-adaptive serve-prm --prm PRM`` on a free loopback port; yields its URL."""
    port = free_port()
    command = [
        sys.executable, "-c", "from langchain_adaptive.cli import main; raise SystemExit(main())",
        "serve-prm", "--prm", prm, "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve-prm exited with code {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve-prm did not become healthy within {timeout:g} s")
            time.sleep(0.2)
        print(f"serve-prm --prm {prm} is up at {url}", file=sys.stderr)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="*", default=["What is 7 + 8?"])
    parser.add_argument("--url", default=None, help="a running PRM server (default: start one)")
    parser.add_argument("--prm", default="probe", help="--prm of the server started here")
    parser.add_argument("--served-model", default=None, help="model name the server expects")
    parser.add_argument("--max-samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(local_prm_server(args.prm))
        served = args.served_model or (None if args.url else args.prm)
        # the key, if the server wants one, comes from $LANGCHAIN_ADAPTIVE_PRM_API_KEY
        prm = RemotePRM(base_url=url, model=served)
        reasoner = AdaptiveReasoningRunnable(
            model=ChatLlamaCpp(seed=args.seed, n_threads=default_threads()),
            prm=prm,
            # the probe's step scores are near noise: it sets the budget, the samples vote
            strategy=AdaptiveBestOfN(selection="majority_vote"),
            max_samples=args.max_samples,
            max_tokens_per_sample=args.max_tokens,
        )
        for question in args.questions:
            result = reasoner.invoke(question)
            estimate = result.question_estimate
            lower = "n/a" if estimate is None else f"{estimate.lower:.3f}"
            print(
                f"{question} -> {result.answer} (remote p lower {lower}, "
                f"{result.budget.samples_used} sample(s), {result.budget.prm_calls} PRM call(s))"
            )
    print(f"PRM server: {url}{' (stopped)' if not args.url else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
