"""The emulator in a subprocess: ``python -m cf_transcribe_pandas.emulator``.

:class:`ProcessServer` is what ``Emulator(port=0, process=True)`` runs, so that
a benchmark's client and server do not share a core. The child prints its base
URL first (the port is read from it) and exits cleanly when its stdin closes,
which :meth:`ProcessServer.stop` does. Control calls go through the HTTP
control routes with ``urllib`` (no event loop needed on the caller's side).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.control import CONTROL_PREFIX
from cf_transcribe_pandas.emulator.serving import root_url
from cf_transcribe_pandas.emulator.thread_server import CALL_TIMEOUT

__all__ = ["ProcessServer"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ProcessServer:
    """The emulator served by a child process.

    Args:
        config: The settings (passed to the child as JSON).
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (:attr:`port` after start).
        startup_timeout: Seconds to wait for the child's first line.
    """

    def __init__(
        self, config: EmulatorConfig, host: str, port: int, startup_timeout: float
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self.returncode: int | None = None
        """The child's exit status once stopped."""

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child and wait for the base URL it prints first.

        Raises:
            RuntimeError: The child did not print it within ``startup_timeout``,
                or exited first.
        """
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
        self.port = self._read_port(proc, lines)

    def _read_port(self, proc: subprocess.Popen[bytes], lines: queue.Queue[bytes]) -> int:
        try:
            first = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            self.stop()
            raise RuntimeError(
                f"the emulator process did not start within {self.startup_timeout} s"
            ) from None
        if not first:
            code = proc.wait()
            self.stop()
            raise RuntimeError(f"the emulator process exited with code {code} before serving")
        port = urllib.parse.urlsplit(first.decode().split()[0]).port
        if port is None:  # pragma: no cover - the CLI always prints a port
            self.stop()
            raise RuntimeError(f"unexpected first line from the emulator: {first!r}")
        return port

    def stop(self) -> None:
        """Close the child's stdin and wait for it to exit (terminate, then kill); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()  # the child exits cleanly on stdin EOF
                except OSError:
                    pass
            self.returncode = _wait(proc)
        finally:
            if self._pump is not None:
                self._pump.join(5)
                self._pump = None
            if proc.stdout is not None:
                proc.stdout.close()

    def control(self, method: str, name: str, payload: Any = None) -> Any:
        """Call a control route and return its JSON answer.

        Raises:
            RuntimeError: The child is not running.
            ValueError: The route answered an error (its message).
        """
        if self._proc is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"{root_url(self.host, self.port)}{CONTROL_PREFIX}/{name}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=CALL_TIMEOUT) as response:
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

    # -- the control calls (see Emulator) ------------------------------------

    def set_faults(self, faults: Mapping[str, Any]) -> dict[str, Any]:
        """Change run-time fields; return them all."""
        answer: dict[str, Any] = self.control("POST", "faults", dict(faults))["faults"]
        return answer

    def register(self, transcripts: Mapping[str, str]) -> None:
        """Register transcripts."""
        self.control("POST", "transcripts", dict(transcripts))

    def reset(self) -> None:
        """Reset the state."""
        self.control("POST", "reset", {})

    def requests(self, since: int) -> list[dict[str, Any]]:
        """Return the request log from index ``since``."""
        entries: list[dict[str, Any]] = self.control("GET", f"log?since={int(since)}")
        return entries

    def counters(self) -> dict[str, Any]:
        """Return the counters."""
        counters: dict[str, Any] = self.control("GET", "counters")
        return counters


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for ``proc`` to exit: 10 s, then terminate and 5 s, then kill."""
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _pump_lines(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    """Hand the first stdout line to ``lines`` (b"" at EOF), then drain the rest."""
    first = stream.readline()
    lines.put(first)
    if first:
        for _ in stream:
            pass
