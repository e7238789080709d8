"""The one retry layer: how one request is sent, paced and sent again.

* 429/3040 answers (:class:`~cf_transcribe_pandas.errors.RateLimitError`) tell
  the limiter (AIMD) and are resent after their Retry-After (else a
  full-jitter backoff). They do not use up the row's attempts; the row gives
  up on them after ``row_deadline`` seconds.
* Other retryable errors (5xx, 408, resets, timeouts) get ``max_retries``
  retries with full-jitter exponential backoff, honoring Retry-After.
* Answers every request would get (:class:`~cf_transcribe_pandas.errors.AccountError`:
  token, account, quota, model, client version) stop the run
  (:meth:`RunControl.stop`); nothing is sent after them.
* Anything else (400, 413, ...) is the row's error at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from cf_transcribe_pandas.engine.control import RunControl, Stopped
from cf_transcribe_pandas.engine.pacing import Limiter, backoff_delay
from cf_transcribe_pandas.errors import AccountError, RateLimitError, TranscribeError

__all__ = ["RetryPolicy", "send_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long a row keeps trying.

    Attributes:
        max_retries: Retries of errors other than 429/3040.
        row_deadline: Seconds a row keeps resending 429/3040 answers.
        backoff_base: First step of the exponential backoff, seconds.
        backoff_cap: Largest backoff, seconds.
    """

    max_retries: int = 6
    row_deadline: float = 600.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def delay(self, exc: TranscribeError, attempt: int) -> float:
        """The service's Retry-After when it gave one, else full-jitter backoff."""
        if exc.retry_after is not None:
            return exc.retry_after
        return backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)


class _Attempts:
    """One row's retries so far; says how long to wait, or re-raises when it is over."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retries = 0
        self.throttles = 0
        self.deadline: float | None = None

    @property
    def count(self) -> int:
        return self.retries + self.throttles

    def throttled(self, exc: RateLimitError) -> float:
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.policy.row_deadline
        if now >= self.deadline:
            raise exc
        self.throttles += 1
        return self.policy.delay(exc, self.throttles - 1)

    def failed(self, exc: TranscribeError) -> float:
        if not exc.retryable or self.retries >= self.policy.max_retries:
            raise exc
        self.retries += 1
        return self.policy.delay(exc, self.retries - 1)


async def _acquire(limiter: Limiter, control: RunControl) -> None:
    control.check()
    try:
        await limiter.acquire()
    except AccountError as exc:  # a shared limiter saw the run stop elsewhere
        control.stop(exc)
        raise Stopped from None
    except Exception as exc:  # a shared limiter ends the run
        control.abort(exc)
        raise Stopped from None
    # Nothing is sent after an account-level stop or, with errors="raise",
    # after the first row error.
    control.check()


async def send_with_retries(
    send: Callable[[], Awaitable[T]],
    *,
    limiter: Limiter,
    policy: RetryPolicy,
    control: RunControl,
    on_retry: Callable[[int, float, TranscribeError], None],
) -> T:
    """Send one request until it succeeds, as the module docstring says.

    Args:
        send: Sends the request once (a :meth:`Client.transcribe` call).
        limiter: Paces every attempt.
        policy: How long to keep trying.
        control: The run's control (stops, requests in flight).
        on_retry: Called with (attempt, delay, error) before each retry.

    Returns:
        What ``send`` returned (the transcript).

    Raises:
        TranscribeError: the row's error (not retryable, or out of attempts).
        Stopped: the run is stopping (an account-level answer included).
    """
    attempts = _Attempts(policy)
    while True:
        await _acquire(limiter, control)
        error: TranscribeError
        try:
            with control.sending():
                text = await send()
        except AccountError as exc:
            control.stop(exc)
            raise Stopped from None
        except RateLimitError as exc:
            limiter.on_throttle(exc.retry_after)
            delay, error = attempts.throttled(exc), exc
        except TranscribeError as exc:
            delay, error = attempts.failed(exc), exc
        else:
            limiter.on_success()
            return text
        control.check()
        on_retry(attempts.count, delay, error)
        if delay > 0:
            await asyncio.sleep(delay)
