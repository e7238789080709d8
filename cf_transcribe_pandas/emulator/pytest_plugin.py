"""pytest fixtures for the emulator, loaded through the ``pytest11`` entry point.

- ``emulator``: a started :class:`~cf_transcribe_pandas.emulator.Emulator`
  (thread mode, port 0), stopped after the test. Settings come from an
  optional marker: ``@pytest.mark.emulator(rpm_limit=60, latency=0.1)``.
- ``emulator_factory``: call it with settings to start more emulators (add
  ``process=True`` for a subprocess); all are stopped at teardown.

The emulator itself is imported inside the fixtures, so loading this plugin
costs nothing for test runs that do not use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cf_transcribe_pandas.emulator.runner import Emulator

__all__ = ["emulator", "emulator_factory"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``emulator`` marker."""
    config.addinivalue_line(
        "markers",
        "emulator(**settings): EmulatorConfig fields for the `emulator` fixture",
    )


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A running emulator on 127.0.0.1 (thread mode), stopped after the test."""
    from cf_transcribe_pandas.emulator.runner import Emulator

    marker = request.node.get_closest_marker("emulator")
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    with Emulator(port=0, **settings) as emu:
        yield emu


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """A function ``make(**settings) -> Emulator`` that starts emulators; all stop at teardown."""
    from cf_transcribe_pandas.emulator.runner import Emulator

    started: list[Emulator] = []

    def make(**settings: Any) -> Emulator:
        emu = Emulator(**settings)
        emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in reversed(started):
        emu.stop()
