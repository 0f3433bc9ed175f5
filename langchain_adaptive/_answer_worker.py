"""A child process that compares answers with math-verify, one JSON line at a time.

:func:`langchain_adaptive.answers.answers_match` sends symbolic comparisons made
outside the main thread here: math-verify's own timeout needs ``signal.alarm``
(main thread only), and a huge power computed by sympy holds the GIL, so a
thread cannot be stopped. A process can: the caller waits for one answer line
until its deadline and kills the worker when it passes.

Protocol: the worker prints ``ready``; then for every line ``["a", "b"]`` on
stdin it prints ``1`` (equivalent) or ``0`` (not, or math-verify failed).
"""

from __future__ import annotations

import json
import sys

_TIMEOUT_S = 5
"""math-verify's own per-step timeout inside the worker (this is its main thread)."""


def compare(a: str, b: str) -> bool:
    """math-verify's verdict on two LaTeX answers; any failure counts as not equal."""
    from math_verify import parse, verify

    try:
        gold = parse(a, parsing_timeout=_TIMEOUT_S)
        pred = parse(b, parsing_timeout=_TIMEOUT_S)
        return bool(gold and pred and verify(gold, pred, timeout_seconds=_TIMEOUT_S))
    except Exception:  # math-verify raises on exotic input; not equal is the safe answer
        return False


def main() -> None:
    channel = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the protocol
    import math_verify  # noqa: F401 - import before "ready", so the first deadline is fair

    channel.write("ready\n")
    channel.flush()
    for line in sys.stdin:
        try:
            a, b = json.loads(line)
            verdict = compare(str(a), str(b))
        except ValueError:
            verdict = False
        channel.write("1\n" if verdict else "0\n")
        channel.flush()


if __name__ == "__main__":
    main()
