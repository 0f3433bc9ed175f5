"""The token loop of ``ChatLlamaCpp`` (``integrations/llamacpp/_decode.py``) on scripted tokens.

UTF-8 split across tokens, stop strings that span tokens, held-back text, a
prefill's lead-in and the confidence stop depend only on the token sequence, so
these tests script it: they need neither llama-cpp-python nor the model, and
the real-model tests (``tests/integration_tests/test_llamacpp_chat_model.py``,
``test_batched_decode.py``) check that both decode paths feed this loop.
"""

from __future__ import annotations

from typing import Any

from langchain_adaptive.confidence import ConfidenceStop
from langchain_adaptive.integrations.llamacpp import _decode


class _ScriptedLlama:
    """Stands in for ``llama_cpp.Llama`` in ``SampleRun``: yields scripted tokens."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def generate(self, tokens: list[int], **_: Any) -> Any:
        yield from range(len(self.pieces))

    def detokenize(self, tokens: list[int], special: bool = False) -> bytes:
        return self.pieces[tokens[0]]


def _run(pieces: list[bytes], stop: tuple[str, ...] = (), max_new: int = 100) -> Any:
    options = _decode.CallOptions(
        temperature=0.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        repeat_penalty=1.0,
        max_tokens=max_new,
        seed=None,
        stop=stop,
        logprobs=False,
        top_logprobs=0,
        n=1,
    )
    run = _decode.SampleRun(
        _ScriptedLlama(pieces),  # type: ignore[arg-type]
        [1, 2, 3],
        options,
        max_new_tokens=max_new,
        seed=0,
        is_eog=lambda token: pieces[token] == b"<eog>",
    )
    deltas = [delta.text for delta in run]
    return run, deltas


def test_token_loop_joins_split_utf8_and_cuts_a_spanning_stop() -> None:
    run, deltas = _run([b"caf", b"\xc3", b"\xa9", b" \xf0\x9f", b"\x98\x80 l", b"ait"], (" la",))

    assert run.text == "café 😀"
    assert "".join(deltas) == run.text
    assert all("\ufffd" not in d for d in deltas)
    assert run.finish_reason == "stop"
    assert run.output_tokens == 6


def test_token_loop_stops_at_eog_and_max_tokens() -> None:
    run, deltas = _run([b"Yes", b"<eog>", b"never"])
    assert (run.text, run.finish_reason, run.output_tokens) == ("Yes", "stop", 1)

    run, deltas = _run([b"a", b"b", b"c", b"d"], max_new=2)
    assert (run.text, run.finish_reason, run.output_tokens) == ("ab", "length", 2)

    run, deltas = _run([b"x<", b"/a", b"ns"], ("</ans>",))
    assert run.text == "x</ans" and "".join(deltas) == run.text  # held back, then released


def test_the_lead_in_is_left_out_and_stops_match_only_after_it() -> None:
    pieces = {1: b"\n\n", 2: b"The", 3: b" answer", 4: b"\n\n", 5: b"!"}

    def run(tokens: list[int], *, lead_in: bool, limit: int = 16) -> _decode.TextTracker:
        tracker = _decode.TextTracker(
            pieces.__getitem__, lambda token: token == 0, ("\n\n",), limit, lead_in=lead_in
        )
        for token in tokens:
            tracker.push(token, {"token": pieces.get(token, b"").decode()})
            if tracker.done:
                break
        tracker.finish()
        return tracker

    led = run([1, 2, 3, 4, 5], lead_in=True)
    assert (led.text, led.finish_reason, led.output_tokens) == ("The answer", "stop", 4)
    assert [e["token"] for e in led.logprobs] == ["\n\n", "The", " answer"]
    plain = run([1, 2, 3, 4, 5], lead_in=False)
    assert (plain.text, plain.finish_reason, plain.output_tokens) == ("", "stop", 1)
    cut = run([1, 1, 2], lead_in=True, limit=2)  # the cap can fall inside the lead-in
    assert (cut.text, cut.finish_reason, cut.output_tokens) == ("", "length", 2)


def test_the_confidence_gate_ends_the_sample_and_keeps_its_text() -> None:
    pieces = {1: b"a", 2: b"b", 3: b"c", 4: b"d", 5: b"e"}
    tracker = _decode.TextTracker(
        pieces.__getitem__,
        lambda token: token == 0,
        (),
        16,
        confidence=ConfidenceStop(threshold=5.0, window=2),
    )
    confidences = {1: 9.0, 2: 9.0, 3: 3.0, 4: 3.0, 5: 9.0}
    for token in pieces:
        tracker.push(token, None, confidences[token])
        if tracker.done:
            break
    tracker.finish()

    # The window (9, 3) still averages 6; (3, 3) falls below 5 at the 4th token.
    assert (tracker.text, tracker.finish_reason, tracker.output_tokens) == (
        "abcd",
        "confidence_stop",
        4,
    )
    assert tracker.token_confidences == [9.0, 9.0, 3.0, 3.0]
