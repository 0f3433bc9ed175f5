"""Pools from samples recorded elsewhere: the Tree-of-Thoughts GPT-4 Game-of-24 runs.

Real recorded samples of a strong model let replay measure sample allocation
without running that model. Each puzzle's 100 GPT-4 samples become one
:class:`~langchain_adaptive.evaluation.pools.QuestionPool`, graded by our own
exact verifier; generated tokens come from the run's cumulative
``usage_so_far`` (the puzzle's completion tokens, split over its samples in
proportion to their length).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from langchain_adaptive.errors import DatasetError
from langchain_adaptive.evaluation.game24 import Game24Puzzle, check_game24, game24_answer
from langchain_adaptive.evaluation.pools import PoolHeader, QuestionPool, RecordedSample


def game24_completion_tokens(samples_json: str | os.PathLike[str]) -> dict[int, int]:
    """Each puzzle's completion tokens: differences of the run's cumulative ``usage_so_far``.

    The counter restarts once (the original run was resumed at puzzle 932); a
    value below the previous one is a restart, and is that puzzle's own usage.
    """
    path = Path(samples_json)
    entries = json.loads(path.read_text(encoding="utf-8"))
    tokens: dict[int, int] = {}
    previous = 0
    for number, entry in enumerate(entries, start=1):
        try:
            total = int(entry["usage_so_far"]["completion_tokens"])
            idx = int(entry["idx"])
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(
                f"{path}: item {number} has no usage_so_far.completion_tokens",
                path=str(path),
                line=number,
            ) from error
        # The counter restarts where the original run was resumed: then it is this puzzle's own.
        tokens[idx] = total - previous if total >= previous else total
        previous = total
    return tokens


def game24_pools(
    puzzles: Sequence[Game24Puzzle],
    completion_tokens: dict[int, int] | None = None,
    *,
    model: str,
    temperature: float | None = None,
) -> tuple[PoolHeader, list[QuestionPool]]:
    """A pool header and one pool per puzzle, each sample graded by :func:`check_game24`.

    ``langchain-adaptive bench import --preset game24-tot`` does the same from
    the log file (:mod:`langchain_adaptive.evaluation.importing`).

    Args:
        puzzles: From :func:`~langchain_adaptive.evaluation.game24.load_game24_recorded`.
        completion_tokens: Puzzle idx -> its samples' completion tokens (from
            :func:`game24_completion_tokens`); without it, about four
            characters a token.
        model: The label of the model that wrote the samples (logs differ:
            chain-of-thought or standard prompt, GPT-4 or another model).
        temperature: Their sampling temperature, when known.
    """
    pools = []
    for puzzle in puzzles:
        lengths = [len(y) for y in puzzle.ys]
        total = (completion_tokens or {}).get(puzzle.idx)
        tokens = _split(total, lengths) if total is not None else [round(n / 4) for n in lengths]
        samples = []
        for text, count in zip(puzzle.ys, tokens, strict=True):
            answer = game24_answer(text)
            samples.append(
                RecordedSample(
                    text=text,
                    steps=[line for line in text.splitlines() if line.strip()],
                    answer=answer,
                    correct=answer is not None and check_game24(puzzle.numbers, answer),
                    output_tokens=count,
                )
            )
        problem = puzzle.to_problem()
        pools.append(
            QuestionPool(
                id=problem.id,
                question=problem.question,
                gold=problem.gold,
                level=problem.level,
                samples=samples,
            )
        )
    header = PoolHeader(
        model=model,
        samples_per_question=max((len(p.samples) for p in pools), default=1),
        max_tokens_per_sample=max((s.output_tokens for p in pools for s in p.samples), default=1)
        or 1,
        temperature=temperature,
        equivalence="exact",
        settings={
            "dataset": "game24 puzzles idx "
            + (
                f"{min(p.idx for p in puzzles)}-{max(p.idx for p in puzzles)}"
                if puzzles
                else "none"
            ),
            "tokens": "reported" if completion_tokens else "estimated (chars / 4)",
        },
    )
    return header, pools


def _split(total: int, weights: list[int]) -> list[int]:
    """Integers proportional to ``weights`` summing exactly to ``total`` (largest remainder)."""
    weight_sum = sum(weights) or 1
    shares = [total * w / weight_sum for w in weights]
    parts = [int(share) for share in shares]
    for i in sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])[: total - sum(parts)]:
        parts[i] += 1
    return parts


__all__ = ["game24_completion_tokens", "game24_pools"]
