"""A scripted OpenAI-compatible chat server with parallel slots, for launch-and-cancel.

It serves ``POST /v1/chat/completions`` (streamed or not) the way a local
inference server with ``slots`` parallel sequences does: at most ``slots``
requests generate at once, one word a ``token_delay`` seconds each, and the rest
wait in a queue. A client that disconnects stops its request at the next word
(or in the queue, before it starts); ``GET /stats`` says how many words were
generated and how many requests were cut short, and ``POST /reset`` clears them.

The answer a request gets comes from a seeded stream per question: the k-th
request for a question gets the k-th draw (correct with probability
``p_correct``, a random wrong answer otherwise, ``min_words..max_words`` words of
working), so policies that send the same questions see the same draws.

Run it: ``python examples/benchmarks/_openai_slots.py --port 8089 --slots 4``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


@dataclass
class Script:
    """What the server answers, and how fast."""

    slots: int = 4
    token_delay: float = 0.01
    p_correct: float = 0.7
    min_words: int = 20
    max_words: int = 90
    seed: int = 0


@dataclass
class Stats:
    generated: int = 0
    """Words sent over every request, finished or cut short."""
    requests: int = 0
    finished: int = 0
    disconnected: int = 0
    """Requests whose client went away part-way (or while queued)."""
    never_started: int = 0
    """Of those, requests that left the queue before they got a slot."""
    drawn: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _gold(question: str) -> int | None:
    match = re.search(r"(-?\d+)\s*([-+*x])\s*(-?\d+)", question)
    if match is None:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    return a + b if op == "+" else a - b if op == "-" else a * b


def make_app(script: Script) -> Any:
    """The FastAPI app; ``app.state.stats`` holds the counters."""
    app = FastAPI()
    stats = Stats()
    app.state.stats = stats
    slots = asyncio.Semaphore(script.slots)

    def words_for(question: str) -> list[str]:
        k = stats.drawn[question]
        stats.drawn[question] += 1
        rng = random.Random(f"{script.seed}|{question}|{k}")
        gold = _gold(question)
        right = gold if gold is not None else 0
        answer = right if rng.random() < script.p_correct else right + rng.choice([-2, -1, 1, 2])
        working = ["step"] * rng.randint(script.min_words, script.max_words)
        return [*working, "The", "answer", "is", f"{answer}."]

    async def generate(words: list[str], cap: int) -> AsyncIterator[tuple[str, str | None]]:
        """One word at a time within a slot; the last item carries the finish reason."""
        started = False
        try:
            async with slots:
                started = True
                kept = words[:cap]
                for i, word in enumerate(kept):
                    await asyncio.sleep(script.token_delay)
                    stats.generated += 1
                    last = i == len(kept) - 1
                    finish = ("stop" if len(kept) == len(words) else "length") if last else None
                    yield (word if i == 0 else " " + word), finish
            stats.finished += 1
        except (asyncio.CancelledError, GeneratorExit):
            stats.disconnected += 1
            stats.never_started += not started
            raise

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        stats.requests += 1
        question = str(body["messages"][-1]["content"])
        cap = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        words = words_for(question)
        created = int(time.time())
        if not body.get("stream"):
            text, finish, n = "", "stop", 0
            async for piece, reason in generate(words, cap):
                text, n = text + piece, n + 1
                finish = reason or finish
            return JSONResponse(
                {
                    "id": "scripted",
                    "object": "chat.completion",
                    "created": created,
                    "model": "scripted",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n},
                }
            )
        usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> AsyncIterator[str]:
            n = 0
            async for piece, reason in generate(words, cap):
                n += 1
                delta = {"index": 0, "delta": {"content": piece}, "finish_reason": reason}
                yield _sse(_chunk(created, [delta]))
            if usage:
                counts = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
                yield _sse({**_chunk(created, []), "usage": counts})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/stats")
    async def get_stats() -> Any:
        return {k: v for k, v in vars(stats).items() if k != "drawn"}

    @app.post("/reset")
    async def reset() -> Any:
        for name in ("generated", "requests", "finished", "disconnected", "never_started"):
            setattr(stats, name, 0)
        stats.drawn.clear()
        return {"ok": True}

    return app


def _chunk(created: int, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "scripted",
        "object": "chat.completion.chunk",
        "created": created,
        "model": "scripted",
        "choices": choices,
    }


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--token-delay", type=float, default=0.01)
    parser.add_argument("--p-correct", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import uvicorn

    script = Script(
        slots=args.slots, token_delay=args.token_delay, p_correct=args.p_correct, seed=args.seed
    )
    uvicorn.run(make_app(script), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
