"""The sync entry: run a coroutine on a private event loop in a background thread.

So ``df.cfai.transcribe`` works inside Jupyter (whose thread already runs a
loop), and Ctrl-C cancels the run, which keeps every finished row.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run_in_thread"]

T = TypeVar("T")


def run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a private event loop in a background thread and wait.

    Works whether or not the calling thread already runs an event loop
    (Jupyter, IPython, async frameworks). Ctrl-C cancels the coroutine (which
    flushes the cache and closes its session), waits for the thread to end,
    and re-raises ``KeyboardInterrupt``.

    Args:
        make: Called in the background thread to create the coroutine.

    Returns:
        What the coroutine returned.
    """
    state: dict[str, Any] = {}
    ready = threading.Event()
    done = threading.Event()

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            try:
                task = loop.create_task(make())
            except BaseException as exc:
                state["error"] = exc
                return
            state["loop"], state["task"] = loop, task
            ready.set()
            try:
                state["value"] = loop.run_until_complete(task)
            except BaseException as exc:
                state["error"] = exc
        finally:
            ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                try:
                    loop.close()
                finally:
                    done.set()

    thread = threading.Thread(target=target, name="cf-transcribe-run", daemon=True)
    thread.start()
    # Wait on an Event, not Thread.join: on Python < 3.12 a join interrupted by
    # Ctrl-C marks the thread stopped, and a second join returns at once (gh-90882),
    # before the run has flushed its cache.
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        ready.wait()
        loop = state.get("loop")
        task = state.get("task")
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop already closed: the run had ended
                pass
        done.wait()
        raise
    thread.join()
    error = state.get("error")
    if error is not None:
        if isinstance(error, asyncio.CancelledError):
            raise KeyboardInterrupt from error
        raise error
    return state["value"]  # type: ignore[no-any-return]
