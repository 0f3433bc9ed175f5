"""``LLMJudgePRM``: any chat model as a process reward model, scored from Yes/No log-probabilities.

The data path of one scoring call reads top to bottom in this module:

question and step prefixes → one judge prompt per prefix → one ``batch`` call
of the chat model, bound to a single greedy token with its top log-probabilities
→ P(Yes) / (P(Yes) + P(No)) of the first token → one ``SuccessEstimate`` per prefix.

The scores are raw judge probabilities, not calibrated success rates: fit a
calibrator on them before budgeting on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from string import Formatter
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.errors import PRMError
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel, estimate_from_probability
from langchain_adaptive.results import SuccessEstimate

DEFAULT_QUESTION_PROMPT = (
    "You will judge a question.\n\n"
    "Question: {question}\n\n"
    "If you solved this question carefully and briefly, would you get the correct answer? "
    "That is, is it easy? Reply with one word, Yes or No."
)
"""Asks whether a careful short solution would get the question right: is it easy?"""

DEFAULT_SOLUTION_PROMPT = (
    "You will judge a partial solution to a question.\n\n"
    "Question: {question}\n\n"
    "Solution so far:\n{solution}\n\n"
    "Are the steps so far correct, and do they lead to the correct final answer? "
    "Reply with one word, Yes or No."
)
"""Asks whether the steps so far are correct and lead to the right answer."""

STEP_SEPARATOR = STEP_JOINER
"""What joins the steps of a prefix into the ``{solution}`` text."""

_TOKEN_MARKERS = "▁Ġ"
"""Word-start markers of SentencePiece (``▁``) and byte-level BPE (``Ġ``) vocabularies."""

_YES, _NO = "yes", "no"


class LLMJudgePRM(ProcessRewardModel):
    """A process reward model that asks a chat model "Yes or No?" about each step prefix.

    Every prefix of every solution (and the question alone, for a solution
    given with no steps) becomes one judge prompt. All prompts of a call go to
    the model in one ``batch`` (``abatch`` when async), each generating a single
    greedy token with its ``top_logprobs`` alternatives. The score of a prefix
    is ``P(yes) / (P(yes) + P(no))`` over those alternatives, where " Yes",
    "yes", "YES" (and tokenizer word markers like "▁Yes") all count as yes.

    The model must report log-probabilities in OpenAI's format at
    ``message.response_metadata["logprobs"]["content"]``: ``ChatOpenAI`` does
    when asked for ``logprobs``, and so does
    :class:`~langchain_adaptive.integrations.llamacpp.ChatLlamaCpp`.

    Scores are the judge's raw probabilities (``SuccessEstimate.point``, with
    ``raw_score`` equal to the probability); a small judge is far from
    calibrated, so fit a calibrator before budgeting on them.

    Example:
        ```python
        from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp
        from langchain_adaptive.prm._judge import LLMJudgePRM

        prm = LLMJudgePRM(model=ChatLlamaCpp())
        easy = prm.estimate_question("What is 2 + 3?")
        steps = prm.score("What is 2 + 3?", [["2 + 3 = 5.", "The answer is 5."]])
        print(round(easy.median, 3), [round(e.median, 3) for e in steps[0]])
        ```
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    model: BaseChatModel
    """The judge: a chat model that returns OpenAI-format log-probabilities."""

    top_logprobs: int = Field(default=20, ge=1)
    """Alternatives requested for the first token; Yes or No must be among them."""

    question_prompt: str = DEFAULT_QUESTION_PROMPT
    """Template for the question alone (``{question}``); a Yes/No answer means easy/hard."""

    solution_prompt: str = DEFAULT_SOLUTION_PROMPT
    """Template for a step prefix (``{question}``, ``{solution}``); Yes means on track."""

    system_prompt: str | None = None
    """Optional system message sent before every judge prompt."""

    @field_validator("question_prompt", "solution_prompt")
    @classmethod
    def _check_template(cls, template: str, info: ValidationInfo) -> str:
        required = (
            {"question", "solution"} if info.field_name == "solution_prompt" else {"question"}
        )
        try:
            names = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise ValueError(f"{info.field_name} is not a valid format template: {exc}") from exc
        if names - {"question", "solution"}:
            raise ValueError(
                f"{info.field_name} may only use the placeholders {{question}} and {{solution}}, "
                f"not {sorted(names - {'question', 'solution'})}; write a literal brace as "
                "{{ or }}"
            )
        if required - names:
            missing = " and ".join(f"{{{name}}}" for name in sorted(required - names))
            raise ValueError(f"{info.field_name} must contain {missing}")
        return template

    # -- prompts ---------------------------------------------------------------------

    def judge_messages(self, question: str, steps: Sequence[str]) -> list[BaseMessage]:
        """The messages that ask the judge about ``question`` followed by ``steps``.

        Args:
            question: The question being answered.
            steps: A solution prefix; empty for the question alone.

        Returns:
            The judge prompt: an optional system message and one human message.
        """
        if steps:
            text = self.solution_prompt.format(
                question=question, solution=STEP_SEPARATOR.join(steps)
            )
        else:
            text = self.question_prompt.format(question=question, solution="")
        messages: list[BaseMessage] = []
        if self.system_prompt is not None:
            messages.append(SystemMessage(self.system_prompt))
        messages.append(HumanMessage(text))
        return messages

    def _prompts(
        self, question: str, solutions: Sequence[Sequence[str]]
    ) -> tuple[list[list[BaseMessage]], list[tuple[int, int]]]:
        """One prompt per prefix, in order, and the (solution, step) each belongs to."""
        prompts: list[list[BaseMessage]] = []
        places: list[tuple[int, int]] = []
        for index, steps in enumerate(solutions):
            if not steps:
                prompts.append(self.judge_messages(question, []))
                places.append((index, 0))
            for k in range(1, len(steps) + 1):
                prompts.append(self.judge_messages(question, steps[:k]))
                places.append((index, k))
        return prompts, places

    def _judge(self) -> Runnable[Any, BaseMessage]:
        """The model bound to one greedy token and its top log-probabilities."""
        return self.model.bind(
            logprobs=True, top_logprobs=self.top_logprobs, max_tokens=1, temperature=0.0
        )

    # -- scoring ---------------------------------------------------------------------

    def _score(
        self,
        question: str,
        solutions: Sequence[Sequence[str]],
        *,
        config: RunnableConfig,
    ) -> PRMScores:
        prompts, places = self._prompts(question, solutions)
        replies = self._judge().batch(prompts, config=config) if prompts else []
        return self._collect(solutions, places, replies)

    async def _ascore(
        self,
        question: str,
        solutions: Sequence[Sequence[str]],
        *,
        config: RunnableConfig,
    ) -> PRMScores:
        prompts, places = self._prompts(question, solutions)
        replies = await self._judge().abatch(prompts, config=config) if prompts else []
        return self._collect(solutions, places, replies)

    def _collect(
        self,
        solutions: Sequence[Sequence[str]],
        places: Sequence[tuple[int, int]],
        replies: Sequence[BaseMessage],
    ) -> PRMScores:
        scores: PRMScores = [[] for _ in solutions]
        for (index, k), reply in zip(places, replies, strict=True):
            where = f"solution {index}, step {k}" if k else f"the question alone, solution {index}"
            scores[index].append(self._estimate(reply, where))
        return scores

    def _estimate(self, reply: BaseMessage, where: str) -> SuccessEstimate:
        source = f"LLMJudgePRM ({where})"
        top = _first_token_alternatives(reply, source)
        yes, no, others = [], [], []
        for entry in top:
            token, logprob = _token_and_logprob(entry, source)
            word = _normalize(token)
            if word == _YES:
                yes.append(logprob)
            elif word == _NO:
                no.append(logprob)
            else:
                others.append(token)
        if not yes and not no:
            raise PRMError(
                f"{source}: neither Yes nor No is among the judge's {len(top)} most likely "
                f"first tokens (got {others[:10]!r}). Request more alternatives with a larger "
                f"top_logprobs (now {self.top_logprobs}) or a prompt the model answers with "
                "Yes or No."
            )
        return estimate_from_probability(_yes_share(yes, no, source), source=source)


def _first_token_alternatives(reply: BaseMessage, source: str) -> list[Any]:
    """The ``top_logprobs`` list of the first generated token of ``reply``."""
    metadata = getattr(reply, "response_metadata", None) or {}
    logprobs = metadata.get("logprobs") if isinstance(metadata, Mapping) else None
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not content:
        raise PRMError(
            f"{source}: the judge's reply has no log-probabilities at "
            'response_metadata["logprobs"]["content"]. LLMJudgePRM needs a chat model that '
            "returns OpenAI-format logprobs, e.g. ChatOpenAI (which supports logprobs=True) "
            "or langchain_adaptive.integrations.llamacpp.ChatLlamaCpp."
        )
    first = content[0]
    top = first.get("top_logprobs") if isinstance(first, Mapping) else None
    if not top:
        raise PRMError(
            f"{source}: the judge's first token has no top_logprobs alternatives; the "
            "model must honour top_logprobs (OpenAI format) for LLMJudgePRM to read "
            "P(Yes) and P(No)."
        )
    return list(top)


def _token_and_logprob(entry: Any, source: str) -> tuple[str, float]:
    """The token text and log-probability of one alternative, checked."""
    if not isinstance(entry, Mapping) or "token" not in entry or "logprob" not in entry:
        raise PRMError(f"{source}: malformed top_logprobs entry {entry!r}")
    token, logprob = str(entry["token"]), entry["logprob"]
    if isinstance(logprob, bool) or not isinstance(logprob, int | float) or math.isnan(logprob):
        raise PRMError(f"{source}: the judge gave token {token!r} the log-probability {logprob!r}")
    return token, float(logprob)


def _normalize(token: str) -> str:
    """``" Yes"``, ``"▁yes"``, ``"ĠYES"`` → ``"yes"``: whitespace and word markers dropped."""
    return token.strip().lstrip(_TOKEN_MARKERS).strip().lower()


def _log_sum_exp(values: Sequence[float]) -> float:
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def _yes_share(yes: Sequence[float], no: Sequence[float], source: str) -> float:
    """``P(yes) / (P(yes) + P(no))`` from log-probabilities, stable when both are tiny."""
    log_yes, log_no = _log_sum_exp(yes), _log_sum_exp(no)
    if log_yes == log_no == -math.inf:
        raise PRMError(f"{source}: the judge gave both Yes and No probability zero")
    margin = log_yes - log_no
    if margin >= 0:
        return 1.0 / (1.0 + math.exp(-margin))
    odds = math.exp(margin)
    return odds / (1.0 + odds)


__all__ = [
    "DEFAULT_QUESTION_PROMPT",
    "DEFAULT_SOLUTION_PROMPT",
    "LLMJudgePRM",
]
