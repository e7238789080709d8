"""Shared fixtures for running the accessors against the emulator.

The ``emulator`` and ``emulator_factory`` fixtures come from the package's
pytest plugin (``cf_transcribe_pandas.emulator.pytest_plugin``); the audio
helpers are in ``clips.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clips import Sample, emulator_kwargs, load_samples, wav_bytes

import cf_transcribe_pandas  # noqa: F401  (registers the accessors)
from cf_transcribe_pandas.emulator import Emulator


@pytest.fixture(scope="session")
def samples() -> list[Sample]:
    """The bundled sample clips (8 formats, 4 languages) with their transcripts."""
    return load_samples()


@pytest.fixture
def make_wav() -> Callable[..., bytes]:
    """``make_wav(seed, seconds=0.5)``: distinct short WAV bytes per seed."""
    return wav_bytes


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh cache directory for the test (created on the first write)."""
    return tmp_path / "cache"


def _kwargs_for(emu: Emulator, cache: Any) -> dict[str, Any]:
    return emulator_kwargs(emu, cache)


@pytest.fixture
def kwargs_for() -> Callable[[Emulator, Any], dict[str, Any]]:
    """``kwargs_for(emu, cache)``: credentials of ``emu``, that cache, no progress bar."""
    return _kwargs_for


@pytest.fixture
def run_kwargs(emulator: Emulator, cache_dir: Path) -> dict[str, Any]:
    """Keyword arguments pointing ``transcribe`` at the ``emulator`` fixture.

    ``account_id``, ``api_token``, ``base_url``, ``cache`` (a fresh directory
    under ``tmp_path``) and ``progress=False``.
    """
    return _kwargs_for(emulator, cache_dir)
