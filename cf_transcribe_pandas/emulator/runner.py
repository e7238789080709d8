"""Run the emulator beside your code: :class:`Emulator`, in a thread or a subprocess.

``Emulator(port=0)`` serves the app on its own event loop in a daemon thread
(``thread_server.py``); ``Emulator(port=0, process=True)`` runs ``python -m
cf_transcribe_pandas.emulator`` in a subprocess (``process_server.py``), so a
benchmark's client and server do not share a core. Both offer the same
methods.

Example::

    with Emulator(port=0, rpm_limit=600) as emu:
        creds = Credentials(emu.account_id, emu.token, emu.base_url)
        ...
        assert emu.counters()["ok"] == 10
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.process_server import ProcessServer
from cf_transcribe_pandas.emulator.serving import root_url
from cf_transcribe_pandas.emulator.thread_server import ThreadServer

__all__ = ["Emulator", "Server"]


class Server(Protocol):
    """What :class:`Emulator` drives: a :class:`ThreadServer` or a :class:`ProcessServer`."""

    port: int
    returncode: int | None

    @property
    def pid(self) -> int | None:
        """The serving process's id."""

    def start(self) -> None:
        """Start serving; set :attr:`port`."""

    def stop(self) -> None:
        """Stop serving; idempotent."""

    def set_faults(self, faults: Mapping[str, Any]) -> dict[str, Any]:
        """Change run-time fields; return them all."""

    def register(self, transcripts: Mapping[str, str]) -> None:
        """Register transcripts."""

    def reset(self) -> None:
        """Reset the state."""

    def requests(self, since: int) -> list[dict[str, Any]]:
        """Return the request log from index ``since``."""

    def counters(self) -> dict[str, Any]:
        """Return the counters."""


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
        self.returncode: int | None = None
        """The subprocess's exit status after :meth:`stop` (0 for a clean exit); else None."""
        self._server: Server | None = None

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
        return root_url(self.host, self.port)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/client/v4``: what ``Credentials.base_url`` takes."""
        return f"{self.root_url}/client/v4"

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._server is not None

    @property
    def pid(self) -> int | None:
        """The server's process id: the subprocess's, or this process's in thread mode."""
        return self._server.pid if self._server is not None else None

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
        state = "running" if self.running else "stopped"
        return f"<Emulator {self.base_url} {mode} {state}>"

    # -- lifecycle -------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving; returns ``self``. Does nothing if already running.

        Raises:
            RuntimeError: The server did not come up within ``startup_timeout``.
            OSError: The port cannot be bound (thread mode).
        """
        if self._server is not None:
            return self
        kind = ProcessServer if self.process else ThreadServer
        server = kind(self.config, self.host, self.port, self.startup_timeout)
        server.start()
        self.port = server.port
        self.returncode = None
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and release the thread or process; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            self.returncode = server.returncode

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

    def _running_server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        return self._server

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
        return self._running_server().set_faults(faults)

    def register(self, transcripts: Mapping[str, str]) -> None:
        """Register transcripts: audio sha256 (or https URL) -> text.

        Raises:
            ValueError: A key or value is not a string.
        """
        self._running_server().register(dict(transcripts))

    def reset(self) -> None:
        """Clear the log, counters and registered transcripts; restore the start faults."""
        self._running_server().reset()

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Return the request log (entries with index ``i >= since``), oldest first."""
        return self._running_server().requests(since)

    def counters(self) -> dict[str, Any]:
        """Return the counters: requests, ok, status, codes, by_sha256, in_flight, ..."""
        return self._running_server().counters()
