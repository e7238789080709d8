"""The emulator's application served on ``host:port`` by the running event loop.

:class:`Serving` is the one place that binds a socket: the thread runner
(``thread_server.py``) and the command line (``__main__.py``, which the
subprocess runner starts) both use it.
"""

from __future__ import annotations

from aiohttp import web

from cf_transcribe_pandas.emulator.app import create_app
from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.state import STATE_KEY, EmulatorState

__all__ = ["Serving", "root_url"]


def root_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets."""
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


class Serving:
    """The emulator app served on ``host:port`` by the running event loop.

    Start and stop it from the same loop.

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
        """The application's state once started."""

    @property
    def root_url(self) -> str:
        """``http://host:port``."""
        return root_url(self.host, self.port)

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
