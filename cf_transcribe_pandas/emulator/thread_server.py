"""The emulator in a daemon thread of this process, on its own event loop.

:class:`ThreadServer` is what ``Emulator(port=0)`` runs. Control calls run
on the server's loop (``loop.call_soon_threadsafe``) and wait for their result,
so the caller needs no event loop of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.serving import Serving
from cf_transcribe_pandas.emulator.state import EmulatorState

__all__ = ["CALL_TIMEOUT", "ThreadServer"]

_T = TypeVar("_T")

CALL_TIMEOUT = 30.0
"""Seconds a control call (or a stop) may take before it gives up."""


class ThreadServer:
    """The emulator served in a daemon thread.

    Args:
        config: The settings.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (:attr:`port` after start).
        startup_timeout: Seconds to wait for the server to listen.
    """

    def __init__(
        self, config: EmulatorConfig, host: str, port: int, startup_timeout: float
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.returncode: int | None = None
        """Always None: a thread has no exit status."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._state: EmulatorState | None = None

    @property
    def pid(self) -> int:
        """This process's id."""
        return os.getpid()

    def start(self) -> None:
        """Start the thread and wait until the server listens.

        Raises:
            RuntimeError: The server did not listen within ``startup_timeout``.
            OSError: The port cannot be bound.
        """
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._main,
            args=(ready, errors),
            name="cf-transcribe-emulator",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(self.startup_timeout):
            self.stop()
            raise RuntimeError(f"the emulator did not start within {self.startup_timeout} s")
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]

    def _main(self, ready: threading.Event, errors: list[BaseException]) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:  # reported to start(); the thread just ends
            errors.append(exc)
        finally:
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        serving = Serving(self.config, self.host, self.port)
        await serving.start()
        try:
            self._state = serving.state
            self.port = serving.port
            self._stop_event = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            ready.set()
            await self._stop_event.wait()
        finally:
            self._loop = None
            await serving.stop()

    def stop(self) -> None:
        """Stop the server and join the thread; idempotent."""
        loop, event, thread = self._loop, self._stop_event, self._thread
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop already closed
                pass
        if thread is not None:
            thread.join(CALL_TIMEOUT)
        self._thread = None
        self._state = None
        self._stop_event = None

    def call(self, fn: Callable[[EmulatorState], _T]) -> _T:
        """Run ``fn(state)`` on the server's loop and return its result (or raise its error).

        Raises:
            RuntimeError: The server is not running.
        """
        loop, state = self._loop, self._state
        if loop is None or state is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(state))
            except Exception as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(CALL_TIMEOUT)

    # -- the control calls (see Emulator) ------------------------------------

    def set_faults(self, faults: Mapping[str, Any]) -> dict[str, Any]:
        """Change run-time fields; return them all."""
        return self.call(lambda state: state.set_faults(**faults))

    def register(self, transcripts: Mapping[str, str]) -> None:
        """Register transcripts."""
        self.call(lambda state: state.register(transcripts))

    def reset(self) -> None:
        """Reset the state."""
        self.call(lambda state: state.reset())

    def requests(self, since: int) -> list[dict[str, Any]]:
        """Return the request log from index ``since``."""
        return self.call(lambda state: state.requests(since))

    def counters(self) -> dict[str, Any]:
        """Return the counters."""
        return self.call(lambda state: state.counters())
