"""Stopping a run: account-level answers, the first row error with ``errors="raise"``,
and a shared limiter that ends the run; which tasks are cancelled, and what is raised."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Literal

from cf_transcribe_pandas.engine.results import RunResult
from cf_transcribe_pandas.errors import AccountError, TranscribeError

__all__ = ["RunControl", "Stopped"]

logger = logging.getLogger("cf_transcribe_pandas")


class Stopped(Exception):
    """The run is stopping: the row is left unfinished."""


class RunControl:
    """Whether a run goes on, and why it stopped.

    * An account-level answer (any AccountError) cancels every task at
      once, requests in flight included: nothing is sent after it.
    * With ``errors="raise"``, the first row error stops the run from sending
      anything new; requests already on the wire finish (and are cached).
    * A shared limiter that raises ends the run with its exception.

    Args:
        errors: The run's ``errors`` option.
    """

    def __init__(self, errors: Literal["raise", "coerce"]) -> None:
        self.errors = errors
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopping = False
        self.fatal: AccountError | None = None
        self.first_row_error: TranscribeError | None = None
        self.aborted: Exception | None = None
        self._sending: set[asyncio.Task[Any]] = set()

    def check(self) -> None:
        """Raise :class:`Stopped` when the run is stopping."""
        if self.stopping:
            raise Stopped

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Mark the current task as waiting for an answer (see :meth:`row_failed`)."""
        task = asyncio.current_task()
        assert task is not None
        self._sending.add(task)
        try:
            yield
        finally:
            self._sending.discard(task)

    def row_failed(self, error: TranscribeError) -> None:
        """A row failed: with ``errors="raise"``, stop sending (answers on the way still come)."""
        if self.errors != "raise" or self.first_row_error is not None:
            return
        self.first_row_error = error
        if self.fatal is None and self.aborted is None:
            logger.error(
                "stopping the run at the first failed row (errors='raise'): %s", error.message
            )
        self._halt(keep_sending=True)

    def stop(self, exc: AccountError) -> None:
        """An account-level answer: cancel everything at once, requests in flight included."""
        if self.fatal is not None:
            return
        self.fatal = exc
        logger.error("stopping the run: %s", exc.message)
        self._halt(keep_sending=False)

    def abort(self, exc: Exception) -> None:
        """The shared limiter ended the run: cancel everything, then raise ``exc``."""
        if self.aborted is None:
            self.aborted = exc
        self._halt(keep_sending=False)

    def _halt(self, *, keep_sending: bool) -> None:
        self.stopping = True
        current = asyncio.current_task()
        for task in self.tasks:
            if task is current or task.done():
                continue
            if keep_sending and task in self._sending:
                continue  # its answer is on the way: let it finish and be cached
            task.cancel()

    def raise_for_stop(self, result: RunResult) -> None:
        """After the run: raise why it stopped, if it did.

        Raises:
            AccountError: the account-level answer, saying how far the run got.
            Exception: what the shared limiter raised.
            TranscribeError: the first row error (``errors="raise"``).
        """
        if self.fatal is not None:
            raise stopped_error(self.fatal, result)
        if self.aborted is not None:
            raise self.aborted
        if self.first_row_error is not None:
            raise self.first_row_error


def stopped_error(exc: AccountError, result: RunResult) -> AccountError:
    """The stop error, saying how far the run got and how to go on."""
    kept = (
        "in the cache and in this error's .partial"
        if result.cache_enabled
        else ("in this error's .partial")
    )
    message = (
        f"{exc.message} The run stopped: {result.done:,} of {result.n:,} rows are done "
        f"(kept {kept}); fix the cause and rerun the same call to continue."
    )
    return type(exc)(message, code=exc.code, status=exc.status, retry_after=exc.retry_after)
