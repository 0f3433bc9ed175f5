"""``AdaptiveProgressHandler``: a tqdm bar over the questions of a batch or benchmark run."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import IO, Any
from uuid import UUID

from langchain_adaptive.callbacks._events import AdaptiveFinished, CandidateGenerated
from langchain_adaptive.callbacks._handler import AdaptiveCallbackHandler


class AdaptiveProgressHandler(AdaptiveCallbackHandler):
    """Advances a progress bar as questions finish; the postfix counts samples and tokens.

    Samples and tokens count up live as candidates arrive, so a long question
    shows progress before it finishes. Needs ``tqdm`` (the ``bench`` extra).

    Args:
        total: Questions expected (``None``: an open-ended counter).
        desc: The bar's label.
        file: Where the bar is drawn (default: stderr).
        disable: Draw nothing (counts are still kept).

    Example:
        .. code-block:: python

            with AdaptiveProgressHandler(total=len(questions)) as progress:
                reasoner.batch(questions, config={"callbacks": [progress]})

    Raises:
        ImportError: tqdm is not installed.
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        desc: str = "questions",
        file: IO[str] | None = None,
        disable: bool = False,
    ) -> None:
        super().__init__()
        try:
            from tqdm.auto import tqdm
        except ImportError as error:  # pragma: no cover - tqdm ships with the dev extras
            raise ImportError(
                "AdaptiveProgressHandler needs tqdm: pip install 'langchain-adaptive[bench]'"
            ) from error
        self._lock = threading.Lock()
        self.questions = 0
        self.samples = 0
        self.tokens = 0
        self.bar = tqdm(total=total, desc=desc, unit="question", file=file, disable=disable)

    def on_candidate_generated(
        self, event: CandidateGenerated, *, run_id: UUID, **kwargs: Any
    ) -> None:
        with self._lock:
            self.samples += 1
            self.tokens += event.output_tokens
            self.bar.set_postfix(samples=self.samples, tokens=self.tokens, refresh=False)

    def on_adaptive_finished(self, event: AdaptiveFinished, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self.questions += 1
            self.bar.update(1)

    def close(self) -> None:
        """Finish drawing the bar."""
        self.bar.close()

    def __enter__(self) -> AdaptiveProgressHandler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["AdaptiveProgressHandler"]
