"""its_hub 1.2.0's adaptive self-consistency side by side with ours, on the same draws.

Data path, top to bottom:

1. The GSM8K pool (Qwen2.5-0.5B-Instruct, 200 questions x 16 samples, a mean
   token logprob per sample; ``bench import --preset gsm8k-qwen``).
2. ``--orders`` random permutations of every question's 16 samples, written to
   ``OUT/orders.json`` in the format ``bench replay --orders`` reads.
3. Our side: ``langchain-adaptive bench replay`` with the flags of the gsm8k
   stage of ``real_pools.sh`` plus ``--orders``, once per held-out half (every
   calibrator and stop rule fitted on the other half); its reports land in
   ``OUT/ours-{test,train}.*``. The script runs the CLI in-process and keeps
   the per-question outcomes the CLI's replay computed (the report has only
   summaries), so the pairing below uses the very run it publishes.
4. its_hub's side: ``BetaSelfConsistency`` and ``AdaptiveSelfConsistency`` at
   each threshold, and ``SelfConsistency`` at budget 16, driven through
   :class:`ReplayLanguageModel` on the same questions and the same orders.
5. Accuracy and tokens of every row (means over all orders and questions),
   each library's cheapest setting within 1 point of best-of-16 majority's
   accuracy, and the token ratio of the two with a paired bootstrap interval
   (questions and orders resampled together for both sides), for each half
   and both together: ``OUT/its_hub_peer.json`` and ``OUT/its_hub_peer.png``.

How its_hub's concurrency is made deterministic. ``BetaSelfConsistency`` fires
all 16 requests at once and checks its rule each time ``asyncio.wait`` hands it
finished ones; if several finish in one loop turn it counts them all before
checking. The replay model therefore hands out the order's k-th sample as the
k-th *arrival*, one at a time: call k waits until arrival k - 1 has happened,
then lets the event loop turn ``GAP`` times (enough for the finished request to
travel back through its orchestrator's task group and ``asyncio.wait`` to the
algorithm, which then checks its rule or cancels the rest) before it returns.
So its_hub sees exactly the prefix our replay sees, and stops at the first
prefix where its rule fires. Its own ``LMOrchestrator`` is used with unlimited
concurrency: its default semaphore (32 slots, more than the 16 requests) goes
through a thread pool, which would make the call order depend on threads.
Tokens are those of the samples the algorithm received; requests it cancelled
are free here, though live they would have generated tokens until cancelled,
which favours its_hub. Ties in its vote are broken by ``random.choice``,
seeded per question and order.

Two projections. The *fair* one maps a sample to its answer's class under the
pool's own answer equivalence (the classes our replay votes on) and maps an
abstention (no answer: truncated or unboxed) to a fresh object, which agrees
with nothing. The *regex* one is its_hub's ``create_regex_projection_function``
on ``\\boxed{...}`` (the prompt asks for a boxed answer), as a new user would
write it: every abstention projects to ``(None,)``, so abstentions agree with
each other and vote.

Run (minutes on 2 cores; the pool from ``real_pools.sh import``):

    pip install -e ".[bench,peer]"
    python examples/benchmarks/its_hub_peer.py --out bench-results/its-hub-peer
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    from its_hub import (
        AbstractLanguageModel,
        AdaptiveSelfConsistency,
        BetaSelfConsistency,
        SelfConsistency,
    )
    from its_hub.core.algorithms.self_consistency import create_regex_projection_function
    from its_hub.core.orchestrator import LMOrchestrator
except ImportError:
    sys.exit(
        "its_hub_peer.py compares with its_hub 1.2.0, which is not installed: "
        "pip install 'langchain-adaptive[peer]' (or pip install its-hub==1.2.0)"
    )

from langchain_adaptive.answers import AnswerEquivalence, group_answers
from langchain_adaptive.evaluation.pools import (
    ORACLE,
    QuestionPool,
    answer_equivalence,
    read_pools,
)

POOL = Path("runs/real-pools/gsm8k-qwen05b.jsonl")
IMPORT = (
    "langchain-adaptive bench import --preset gsm8k-qwen --questions "
    "../shared/data/gsm8k-qwen05b/gsm8k_trajectories.jsonl --out {pool}"
)
OUR_FLAGS = [
    *("--fit", "logprob-iso=logprob:isotonic", "--scorer", "logprob-iso"),
    *("--selection", "weighted_vote", "--sample-rules", "logprob-iso"),
    *("--filtered-vote", "logprob-iso", "--fit-stop", "logprob=logprob-iso"),
]
"""The gsm8k stage of ``real_pools.sh`` (with --split, --split-seed 0 and --no-batch)."""
THRESHOLDS = (0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
BOXED = r"\\boxed\{([^}]+)\}"
BASELINE = "bon16-majority"
TOLERANCE = 0.01
"""Equal accuracy: at most 1 point below best-of-16 majority vote."""
GAP = 16
"""Event-loop turns between two arrivals; 5 suffice for its_hub 1.2.0 on Python 3.11."""


class ReplayLanguageModel(AbstractLanguageModel):
    """One question's recorded samples, handed out in a fixed order, one arrival at a time.

    The k-th request made gets the order's k-th sample, and returns only after
    the (k - 1)-th has returned and the event loop has turned ``gap`` times, so
    an algorithm that waits on concurrent requests sees them arrive singly.
    ``delivered`` lists the positions of the samples returned so far.
    """

    def __init__(self, texts: Sequence[str], order: Sequence[int], *, gap: int = GAP) -> None:
        self.texts = texts
        self.order = order
        self.gap = gap
        self.delivered: list[int] = []
        self._requests = 0
        self._arrivals: list[asyncio.Future[None]] = []

    def _arrival(self, k: int) -> asyncio.Future[None]:
        while len(self._arrivals) <= k:
            self._arrivals.append(asyncio.get_running_loop().create_future())
        return self._arrivals[k]

    async def agenerate(
        self, messages: list[Any], stop: str | None = None, **kwargs: Any
    ) -> dict | list[dict]:
        if messages and isinstance(messages[0], list):
            return [await self.agenerate_single(m, stop, **kwargs) for m in messages]
        return await self.agenerate_single(messages, stop, **kwargs)

    async def agenerate_single(
        self, messages: list[Any], stop: str | None = None, **kwargs: Any
    ) -> dict:
        k, self._requests = self._requests, self._requests + 1
        if k >= len(self.order):
            raise RuntimeError(f"request {k + 1} exceeds the {len(self.order)} recorded samples")
        if k:
            await self._arrival(k - 1)
        for _ in range(self.gap):
            await asyncio.sleep(0)
        position = self.order[k]
        self.delivered.append(position)
        self._arrival(k).set_result(None)
        return {"role": "assistant", "content": self.texts[position], "sample": position}


def fair_projection(pool: QuestionPool, equivalent: AnswerEquivalence) -> Callable[[str], object]:
    """Sample text -> its answer's class; an abstention -> a new object, equal to nothing."""
    answers = [s.answer or None for s in pool.samples]
    labels = {
        s.text: label
        for s, label in zip(pool.samples, group_answers(answers, equivalent), strict=True)
    }

    def project(text: str) -> object:
        label = labels[text]
        return object() if label is None else label

    return project


PeerSetting = tuple[str, str, type[SelfConsistency], tuple[float, ...]]
"""An its_hub setting: name, family, algorithm class and its positional arguments."""


def peer_settings(thresholds: Sequence[float]) -> list[PeerSetting]:
    """Beta-SC and Adaptive-SC at each threshold, and plain self-consistency at budget 16."""
    settings: list[PeerSetting] = [("its-hub-sc16", "its_hub SelfConsistency", SelfConsistency, ())]
    for t in thresholds:
        settings.append(
            (f"its-hub-beta@{t:g}", "its_hub BetaSelfConsistency", BetaSelfConsistency, (t,))
        )
        settings.append(
            (
                f"its-hub-adaptive@{t:g}",
                "its_hub AdaptiveSelfConsistency",
                AdaptiveSelfConsistency,
                (t,),
            )
        )
    return settings


async def replay_peer(
    algorithm: SelfConsistency, pool: QuestionPool, order: Sequence[int], *, seed: str
) -> tuple[int, int, bool]:
    """(samples, tokens, correct) of one its_hub run on one question in one order."""
    lm = ReplayLanguageModel([s.text for s in pool.samples], order)
    random.seed(seed)  # its vote breaks ties with random.choice
    result = await algorithm.ainfer(
        lm, pool.question, budget=len(pool.samples), return_response_only=False
    )
    if len(result.responses) != len(lm.delivered):
        raise RuntimeError(
            f"its_hub used {len(result.responses)} of {len(lm.delivered)} delivered samples on "
            f"{pool.id!r}: arrivals were not one at a time; raise GAP"
        )
    tokens = sum(pool.samples[i].output_tokens for i in lm.delivered)
    return len(lm.delivered), tokens, pool.samples[result.the_one["sample"]].correct


@dataclass
class Rows:
    """Per order, row and question: samples drawn, tokens, and whether the answer is right."""

    names: list[str]
    families: list[str]
    questions: list[str]
    samples: np.ndarray
    tokens: np.ndarray
    correct: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)

    def join(self, other: Rows) -> Rows:
        """``other``'s questions after these (same rows)."""
        if other.names != self.names:
            raise RuntimeError("the two halves replayed different policies")
        return Rows(
            self.names,
            self.families,
            self.questions + other.questions,
            *(
                np.concatenate([getattr(self, k), getattr(other, k)], axis=2)
                for k in ("samples", "tokens", "correct")
            ),
        )


@contextlib.contextmanager
def captured_replays() -> Iterator[list[tuple[list[str], Any]]]:
    """Keep what ``bench replay`` computed: (question ids, Outcomes) per replay it runs."""
    import langchain_adaptive.evaluation.replay  # noqa: F401  (the package shadows it)

    module = sys.modules["langchain_adaptive.evaluation.replay"]
    original, runs = module.replay, []

    def recording(pools: Any, policies: Any, **kwargs: Any) -> Any:
        run = original(pools, policies, **kwargs)
        runs.append(([p.pool.id for p in pools], run))
        return run

    module.replay = recording
    try:
        yield runs
    finally:
        module.replay = original


def run_ours(pool: Path, orders: Path, count: int, half: str, out: Path, limit: int | None) -> Rows:
    """``bench replay`` on one held-out half with the fixed orders; its per-question outcomes."""
    from langchain_adaptive.cli import main as cli

    argv = ["bench", "replay", str(pool), "--split", half, "--split-seed", "0", "--no-batch"]
    argv += [*OUR_FLAGS, "--orders", str(orders), "--replicates", str(count - 1)]
    argv += ["--out", str(out / f"ours-{half}.json")] + (["--limit", str(limit)] if limit else [])
    print("+ langchain-adaptive " + " ".join(argv), file=sys.stderr)
    with captured_replays() as runs, contextlib.redirect_stdout(io.StringIO()):
        cli(argv)
    if len(runs) != 1:
        raise RuntimeError(f"expected one replay inside `bench replay`, caught {len(runs)}")
    ids, run = runs[0]
    if run.failures:  # a failed answer counts wrong with no compute: not a fair row
        raise RuntimeError(f"{len(run.failures)} replayed answer(s) failed: {run.failures[0]}")
    keep = [p for p, policy in enumerate(run.policies) if policy.estimator != ORACLE]
    return Rows(
        [run.policies[p].name for p in keep],
        [run.policies[p].family for p in keep],
        ids,
        run.samples[:, keep],
        run.tokens[:, keep],
        run.correct[:, keep],
    )


async def run_peer(
    pools: Sequence[QuestionPool],
    orders: dict[str, list[list[int]]],
    settings: Sequence[PeerSetting],
    equivalent: AnswerEquivalence,
) -> Rows:
    """Every its_hub setting with both projections on every question in every order."""
    orchestrator = LMOrchestrator(max_concurrency=-1)
    regex = create_regex_projection_function(BOXED)
    count = len(orders[pools[0].id])
    rows = [(s, kind) for kind in ("fair", "regex") for s in settings]
    shape = (count, len(rows), len(pools))
    samples, tokens = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    correct = np.zeros(shape, bool)
    for q, pool in enumerate(pools):
        projections = {"fair": fair_projection(pool, equivalent), "regex": regex}
        for r, ((_, _, algorithm_class, arguments), kind) in enumerate(rows):
            algorithm = algorithm_class(
                *arguments,
                consistency_space_projection_func=projections[kind],
                orchestrator=orchestrator,
            )
            for k, order in enumerate(orders[pool.id]):
                outcome = await replay_peer(algorithm, pool, order, seed=f"{pool.id}:{k}")
                samples[k, r, q], tokens[k, r, q], correct[k, r, q] = outcome
    return Rows(
        [f"{setting[0]}[{kind}]" for setting, kind in rows],
        [f"{setting[1]} ({kind})" for setting, kind in rows],
        [pool.id for pool in pools],
        samples,
        tokens,
        correct,
    )


def cheapest_at_accuracy(rows: Rows, target: float, names: Sequence[str]) -> str | None:
    """The row among ``names`` with the fewest mean tokens whose accuracy reaches ``target``."""
    accuracy, tokens = rows.correct.mean(axis=(0, 2)), rows.tokens.mean(axis=(0, 2))
    able = [n for n in names if accuracy[rows.index(n)] >= target - 1e-12]
    return min(able, key=lambda n: tokens[rows.index(n)]) if able else None


def paired_ratio(
    ours: Rows, peer: Rows, mine: str, theirs: str, questions: np.ndarray, *, draws: int, seed: int
) -> dict[str, Any]:
    """Token ratio and accuracy difference (ours - theirs), bootstrapped over questions and
    orders resampled together for both sides."""
    a_tok = ours.tokens[:, ours.index(mine)][:, questions].astype(float)
    b_tok = peer.tokens[:, peer.index(theirs)][:, questions].astype(float)
    a_ok = ours.correct[:, ours.index(mine)][:, questions].astype(float)
    b_ok = peer.correct[:, peer.index(theirs)][:, questions].astype(float)
    rng = np.random.default_rng(seed)
    ratios, differences = np.empty(draws), np.empty(draws)
    for d in range(draws):
        k = rng.integers(0, a_tok.shape[0], a_tok.shape[0])[:, None]
        q = rng.integers(0, a_tok.shape[1], a_tok.shape[1])[None, :]
        ratios[d] = a_tok[k, q].mean() / b_tok[k, q].mean()
        differences[d] = a_ok[k, q].mean() - b_ok[k, q].mean()
    return {
        "ours": mine,
        "its_hub": theirs,
        "questions": len(questions),
        "token_ratio": float(a_tok.mean() / b_tok.mean()),
        "token_ratio_ci": [float(x) for x in np.percentile(ratios, [2.5, 97.5])],
        "accuracy_difference": float(a_ok.mean() - b_ok.mean()),
        "accuracy_difference_ci": [float(x) for x in np.percentile(differences, [2.5, 97.5])],
    }


def table(
    rows: Rows, questions: np.ndarray, baseline_tokens: float, unsolved: np.ndarray
) -> list[dict[str, Any]]:
    """Every row on ``questions``, means over all orders; ``unsolved`` marks the questions
    none of whose samples is right (where a rule that waits for agreement spends most)."""
    out = []
    hopeless = questions[unsolved[questions]]
    for r, name in enumerate(rows.names):
        tokens = float(rows.tokens[:, r][:, questions].mean())
        spent = rows.tokens[:, r][:, hopeless].sum(axis=1).mean()
        out.append(
            {
                "name": name,
                "family": rows.families[r],
                "accuracy": float(rows.correct[:, r][:, questions].mean()),
                "samples": float(rows.samples[:, r][:, questions].mean()),
                "tokens": tokens,
                "token_ratio_to_bon16_majority": tokens / baseline_tokens,
                "token_share_on_unsolved": float(spent / (tokens * len(questions))),
            }
        )
    return out


PLOTTED = (
    "best-of-n (majority)",
    "best-of-n (weighted, logprob-iso)",
    "adaptive-consistency",
    "sequential-ias-1[logprob-iso]",
    "answer-stop[logprob]",
    "answer-stop-futile[logprob]",
)


def plot(report: dict[str, Any], path: Path) -> None:
    """Accuracy against tokens per question: our families and its_hub's, both halves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    both = report["both_halves"]
    ours_colours = iter(plt.get_cmap("tab10").colors)
    peer_colours = {"Self": "0.55", "Beta": "black", "Adaptive": "tab:pink"}
    families: dict[str, list[dict[str, Any]]] = {}
    for row in [*both["ours"], *both["its_hub"]]:
        if row["family"] in PLOTTED or row["family"].startswith("its_hub"):
            families.setdefault(row["family"], []).append(row)
    for family, members in families.items():
        members.sort(key=lambda row: row["tokens"])
        if family.startswith("its_hub"):  # one colour per algorithm, dashed fair, dotted regex
            colour = next(c for k, c in peer_colours.items() if f" {k}" in family)
            style = dict(marker="s", color=colour, linestyle="--" if "fair" in family else ":")
        else:
            style = dict(marker="o", color=next(ours_colours), linestyle="-")
            family = f"ours: {family}"
        ax.plot(
            [m["tokens"] for m in members],
            [m["accuracy"] for m in members],
            markersize=4,
            label=family,
            **style,
        )
    level = both["bon16_majority"]["accuracy"] - TOLERANCE
    ax.axhline(level, color="grey", linewidth=0.8, linestyle=":")
    ax.text(0.01, level, " best-of-16 majority - 1 point", transform=ax.get_yaxis_transform(),
            fontsize=8, va="bottom")  # fmt: skip
    ax.set_xlabel("generated tokens per question (mean over orders and questions)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"GSM8K, Qwen2.5-0.5B: ours vs its_hub {report['its_hub_version']}")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(
    ours: Rows,
    peer: Rows,
    halves: dict[str, np.ndarray],
    unsolved: np.ndarray,
    *,
    draws: int,
    seed: int,
) -> dict[str, Any]:
    """Tables, each side's cheapest setting at equal accuracy and their paired ratio."""
    candidates = [n for n in ours.names if n != BASELINE]
    fair = [n for n in peer.names if n.endswith("[fair]")]
    out: dict[str, Any] = {}
    for label, questions in {"both_halves": np.arange(len(ours.questions)), **halves}.items():
        b = ours.index(BASELINE)
        accuracy = float(ours.correct[:, b][:, questions].mean())
        tokens = float(ours.tokens[:, b][:, questions].mean())
        sub_ours = _subset(ours, questions)
        sub_peer = _subset(peer, questions)
        mine = cheapest_at_accuracy(sub_ours, accuracy - TOLERANCE, candidates)
        theirs = cheapest_at_accuracy(sub_peer, accuracy - TOLERANCE, fair)
        entry: dict[str, Any] = {
            "questions": len(questions),
            "bon16_majority": {"accuracy": accuracy, "tokens": tokens},
            "unsolved_questions": int(unsolved[questions].sum()),
            "ours": table(ours, questions, tokens, unsolved),
            "its_hub": table(peer, questions, tokens, unsolved),
            "best_ours": mine,
            "best_its_hub": theirs,
        }
        if mine and theirs:
            entry["best_vs_best"] = paired_ratio(
                ours, peer, mine, theirs, questions, draws=draws, seed=seed
            )
        pairs = {}
        for t in THRESHOLDS:
            name = f"adaptive-consistency@{t:g}"
            if name in ours.names:
                pairs[name] = paired_ratio(
                    ours, peer, name, f"its-hub-beta@{t:g}[fair]", questions, draws=draws, seed=seed
                )
        entry["ac_vs_beta_sc"] = pairs
        out[label] = entry
    return out


def _subset(rows: Rows, questions: np.ndarray) -> Rows:
    return Rows(
        rows.names,
        rows.families,
        [rows.questions[i] for i in questions],
        rows.samples[:, :, questions],
        rows.tokens[:, :, questions],
        rows.correct[:, :, questions],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=Path, default=POOL, help="the imported GSM8K pool file")
    parser.add_argument("--orders", type=int, default=30, help="sample orders per question")
    parser.add_argument("--seed", type=int, default=0, help="seed of the orders and bootstrap")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap draws")
    parser.add_argument("--limit", type=int, default=None, help="first N questions of each half")
    parser.add_argument("--out", type=Path, default=Path("bench-results/its-hub-peer"))
    args = parser.parse_args(argv)
    if not args.pool.exists():
        sys.exit(f"no pool at {args.pool}; import it first:\n  {IMPORT.format(pool=args.pool)}")
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    pool_file = read_pools(args.pool)
    rng = np.random.default_rng(args.seed)
    orders = {
        p.id: [rng.permutation(len(p.samples)).tolist() for _ in range(args.orders)]
        for p in pool_file.pools
    }
    orders_path = args.out / "orders.json"
    orders_path.write_text(json.dumps(orders), encoding="utf-8")

    ours_halves = {
        half: run_ours(args.pool, orders_path, args.orders, half, args.out, args.limit)
        for half in ("test", "train")
    }
    ours = ours_halves["test"].join(ours_halves["train"])
    ours_s = time.perf_counter() - started
    by_id = {p.id: p for p in pool_file.pools}
    equivalent = answer_equivalence(pool_file.header.equivalence)
    peer = asyncio.run(
        run_peer([by_id[q] for q in ours.questions], orders, peer_settings(THRESHOLDS), equivalent)
    )
    unsolved = np.array([by_id[q].success_rate == 0 for q in ours.questions])
    n_test = len(ours_halves["test"].questions)
    halves = {
        "test": np.arange(n_test),
        "train": np.arange(n_test, len(ours.questions)),
    }
    import its_hub

    report = {
        "pool": str(args.pool),
        "model": pool_file.header.model,
        "its_hub_version": its_hub.__version__,
        "orders": args.orders,
        "seed": args.seed,
        "bootstrap": args.bootstrap,
        "our_flags": OUR_FLAGS,
        "regex": BOXED,
        "tolerance": TOLERANCE,
        "ours_s": ours_s,
        "its_hub_s": time.perf_counter() - started - ours_s,
        **summarize(ours, peer, halves, unsolved, draws=args.bootstrap, seed=args.seed),
    }
    (args.out / "its_hub_peer.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot(report, args.out / "its_hub_peer.png")
    both = report["both_halves"]
    print(f"best-of-16 majority: {both['bon16_majority']}")
    print(f"best ours: {both['best_ours']}, best its_hub: {both['best_its_hub']}")
    if "best_vs_best" in both:
        print(json.dumps(both["best_vs_best"], indent=2))
    print(f"wrote {args.out}/its_hub_peer.json and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
