"""Run the emulator beside your code: a background thread or a subprocess.

``Emulator(port=0)`` serves the app on its own event loop in a daemon thread;
``Emulator(port=0, process=True)`` runs ``python -m cf_transcribe_pandas.emulator``
in a subprocess (so a benchmark's client and server do not share a core).
Both offer the same methods; the subprocess is driven through the HTTP
control routes with ``urllib`` (no event loop needed on the caller's side).

Example::

    with Emulator(port=0, rpm_limit=600) as emu:
        creds = Credentials(emu.account_id, emu.token, emu.base_url)
        ...
        assert emu.counters()["ok"] == 10
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from aiohttp import web

from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.control import CONTROL_PREFIX
from cf_transcribe_pandas.emulator.server import create_app
from cf_transcribe_pandas.emulator.state import STATE_KEY, EmulatorState

__all__ = ["Emulator", "Serving"]

_T = TypeVar("_T")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_CALL_TIMEOUT = 30.0


class Serving:
    """The emulator app served on ``host:port`` by the running event loop.

    Used by :class:`Emulator` and by the command line. Start and stop it from
    the same loop.

    Args:
        config: The settings.
        host: Interface to bind; 127.0.0.1 unless you mean to expose it.
        port: Port to bind; 0 picks a free one (see :attr:`port` after start).
        shutdown_timeout: Seconds in-flight requests get to finish at stop.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = 0.25,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self.state: EmulatorState | None = None

    @property
    def root_url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind the socket and start answering.

        Raises:
            OSError: The port cannot be bound.
            ValueError: A manifest is malformed.
        """
        app = create_app(self.config)
        self.state = app[STATE_KEY]
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the listening socket and every connection; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class Emulator:
    """A running emulator: context manager, thread or subprocess.

    Args:
        port: Port to bind; 0 (default) picks a free one.
        host: Interface to bind (127.0.0.1).
        process: Run the server in a subprocess instead of a thread.
        config: Start settings; ``**config_kwargs`` override its fields.
        startup_timeout: Seconds to wait for the server to answer.
        **config_kwargs: Any :class:`EmulatorConfig` field, e.g.
            ``rpm_limit=600``, ``latency=0.05``, ``p429=0.1``, ``seed=1``.

    Raises:
        TypeError: An unknown setting name.
        ValueError: An invalid setting value.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        process: bool = False,
        config: EmulatorConfig | None = None,
        startup_timeout: float = 30.0,
        **config_kwargs: Any,
    ) -> None:
        base = config or EmulatorConfig()
        names = {f.name for f in dataclasses.fields(EmulatorConfig)}
        unknown = sorted(set(config_kwargs) - names)
        if unknown:
            raise TypeError(f"unknown emulator setting(s): {', '.join(unknown)}")
        self.config: EmulatorConfig = (
            dataclasses.replace(base, **config_kwargs) if config_kwargs else base
        )
        """The settings the emulator starts with (and goes back to on reset)."""
        self.host = host
        self.port = port
        self.process = process
        self.startup_timeout = startup_timeout
        self._serving: Serving | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._running = False

    # -- identity --------------------------------------------------------

    @property
    def token(self) -> str:
        """The API token the emulator accepts."""
        return self.config.token

    @property
    def account_id(self) -> str:
        """The account id the emulator accepts."""
        return self.config.account_id

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``: where the control routes and gateway URLs live."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/client/v4``: what ``Credentials.base_url`` takes."""
        return f"{self.root_url}/client/v4"

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._running

    @property
    def pid(self) -> int | None:
        """The server's process id: the subprocess's, or this process's in thread mode."""
        if not self._running:
            return None
        return self._proc.pid if self._proc is not None else os.getpid()

    def run_url(self, model: str | None = None) -> str:
        """The unified run URL, or the per-model URL when ``model`` is given."""
        url = f"{self.base_url}/accounts/{self.account_id}/ai/run"
        if model is not None:
            url += "/" + urllib.parse.quote(model, safe="@")
        return url

    def gateway_url(self, gateway_id: str) -> str:
        """The AI Gateway base: ``{root}/v1/{account}/{gateway_id}/workers-ai``."""
        return f"{self.root_url}/v1/{self.account_id}/{gateway_id}/workers-ai"

    def __repr__(self) -> str:
        mode = "process" if self.process else "thread"
        state = "running" if self._running else "stopped"
        return f"<Emulator {self.base_url} {mode} {state}>"

    # -- lifecycle -------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving; returns ``self``. Does nothing if already running.

        Raises:
            RuntimeError: The server did not come up within ``startup_timeout``.
            OSError: The port cannot be bound (thread mode).
        """
        if self._running:
            return self
        if self.process:
            self._start_process()
        else:
            self._start_thread()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop serving and release the thread or process; idempotent."""
        if self.process:
            self._stop_process()
        else:
            self._stop_thread()
        self._running = False

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control ---------------------------------------------------------

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change limits and faults at run time.

        Args:
            **faults: Fields from ``FAULT_FIELDS``, e.g. ``latency=0.05``,
                ``rpm_limit=600``, ``p429=0.2``, ``quota=10``, ``p_reset=0``.

        Returns:
            Every run-time field with its value now.

        Raises:
            ValueError: An unknown field or an invalid value.
        """
        if self.process:
            answer = self._control("POST", "faults", faults)
            result: dict[str, Any] = answer["faults"]
            return result
        return self._call(lambda state: state.set_faults(**faults))

    def register(self, transcripts: Mapping[str, str]) -> None:
        """Register transcripts: audio sha256 (or https URL) -> text.

        Raises:
            ValueError: A key or value is not a string.
        """
        mapping = dict(transcripts)
        if self.process:
            self._control("POST", "transcripts", mapping)
        else:
            self._call(lambda state: state.register(mapping))

    def reset(self) -> None:
        """Clear the log, counters and registered transcripts; restore the start faults."""
        if self.process:
            self._control("POST", "reset", {})
        else:
            self._call(lambda state: state.reset())

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Return the request log (entries with index ``i >= since``), oldest first."""
        if self.process:
            entries: list[dict[str, Any]] = self._control("GET", f"log?since={int(since)}")
            return entries
        return self._call(lambda state: state.requests(since))

    def counters(self) -> dict[str, Any]:
        """Return the counters: requests, ok, status, codes, by_sha256, in_flight, ..."""
        if self.process:
            counters: dict[str, Any] = self._control("GET", "counters")
            return counters
        return self._call(lambda state: state.counters())

    # -- thread mode -----------------------------------------------------

    def _start_thread(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._thread_main,
            args=(ready, errors),
            name="cf-transcribe-emulator",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(self.startup_timeout):
            self._stop_thread()
            raise RuntimeError(f"the emulator did not start within {self.startup_timeout} s")
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]

    def _thread_main(self, ready: threading.Event, errors: list[BaseException]) -> None:
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
            self._serving = serving
            self.port = serving.port
            self._stop_event = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            ready.set()
            await self._stop_event.wait()
        finally:
            self._loop = None
            await serving.stop()

    def _stop_thread(self) -> None:
        loop, event, thread = self._loop, self._stop_event, self._thread
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop already closed
                pass
        if thread is not None:
            thread.join(_CALL_TIMEOUT)
        self._thread = None
        self._serving = None
        self._stop_event = None

    def _call(self, fn: Callable[[EmulatorState], _T]) -> _T:
        """Run ``fn(state)`` on the server's loop and return its result."""
        loop, serving = self._loop, self._serving
        if loop is None or serving is None or serving.state is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        state = serving.state
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(state))
            except Exception as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(_CALL_TIMEOUT)

    # -- process mode ----------------------------------------------------

    def _start_process(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "cf_transcribe_pandas.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--config-json",
            json.dumps(self.config.to_dict()),
            "--exit-on-stdin-eof",
        ]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._proc = proc
        lines: queue.Queue[bytes] = queue.Queue()
        assert proc.stdout is not None
        self._pump = threading.Thread(
            target=_pump_lines, args=(proc.stdout, lines), name="cf-emulator-stdout", daemon=True
        )
        self._pump.start()
        try:
            first = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            self._stop_process()
            raise RuntimeError(
                f"the emulator process did not start within {self.startup_timeout} s"
            ) from None
        if not first:
            code = proc.wait()
            self._stop_process()
            raise RuntimeError(f"the emulator process exited with code {code} before serving")
        base_url = first.decode().split()[0]
        port = urllib.parse.urlsplit(base_url).port
        if port is None:  # pragma: no cover - the CLI always prints a port
            self._stop_process()
            raise RuntimeError(f"unexpected first line from the emulator: {first!r}")
        self.port = port

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()  # the child exits cleanly on stdin EOF
                except OSError:
                    pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if self._pump is not None:
                self._pump.join(5)
                self._pump = None
            if proc.stdout is not None:
                proc.stdout.close()

    def _control(self, method: str, name: str, payload: Any = None) -> Any:
        if self._proc is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"{self.root_url}{CONTROL_PREFIX}/{name}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=_CALL_TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                body = err.read()
            finally:
                err.close()
            try:
                message = json.loads(body).get("error") or body.decode()
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")
            raise ValueError(message) from None


def _pump_lines(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    """Hand the first stdout line to ``lines`` (b"" at EOF), then drain the rest."""
    first = stream.readline()
    lines.put(first)
    if first:
        for _ in stream:
            pass
