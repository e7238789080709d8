"""The cap on audio bytes a run holds for requests at once (``max_bytes_in_flight``)."""

from __future__ import annotations

import asyncio
import collections

__all__ = ["WORKING_SET_FACTOR", "ByteBudget"]

WORKING_SET_FACTOR = 4
"""Memory a request holds per byte of audio: the bytes, the base64 data URI and
the JSON body each (the URI and body are 4/3 of the bytes)."""


class ByteBudget:
    """At most ``limit`` bytes held at once; one item larger than the limit still goes (alone).

    Args:
        limit: The cap, in bytes.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, n: int) -> int:
        """Wait until ``n`` more bytes fit; return what to :meth:`release` later."""
        n = max(0, n)
        while self._used and self._used + n > self._limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._used += n
        return n

    def release(self, n: int) -> None:
        """Give back ``n`` bytes (what :meth:`acquire` returned)."""
        self._used -= n
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
