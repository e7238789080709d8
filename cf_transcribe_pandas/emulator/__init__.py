"""A local stand-in for Cloudflare Workers AI, for tests, demos and benchmarks.

It answers ``POST /client/v4/accounts/{account}/ai/run`` like the service
(token, account, body, data URI, audio container, size, model), returns the
registered transcript of the audio's sha256, and injects faults on request:
latency, a requests-per-minute limit (429 3040 + Retry-After), a daily quota
(429 3036), random 429/408/5xx answers, dropped connections, slow bodies, and
any documented error code on demand (the ``answer_code`` fault, ``codes.py``).

Three ways in::

    # 1. pytest: the `emulator` fixture (function scope) and `emulator_factory`
    def test_x(emulator): ...

    # 2. Python: a background thread (or a subprocess with process=True)
    from cf_transcribe_pandas.emulator import Emulator
    with Emulator(port=0, rpm_limit=600) as emu:
        emu.base_url, emu.account_id, emu.token

    # 3. Shell
    python -m cf_transcribe_pandas.emulator --port 8787 --latency 0.2

Names are imported lazily so that the pytest plugin stays cheap to load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cf_transcribe_pandas.emulator.__main__ import main
    from cf_transcribe_pandas.emulator.app import create_app
    from cf_transcribe_pandas.emulator.config import FAULT_FIELDS, PRESETS, EmulatorConfig
    from cf_transcribe_pandas.emulator.runner import Emulator

__all__ = ["FAULT_FIELDS", "PRESETS", "Emulator", "EmulatorConfig", "create_app", "main"]

_WHERE = {
    "Emulator": "runner",
    "EmulatorConfig": "config",
    "FAULT_FIELDS": "config",
    "PRESETS": "config",
    "create_app": "app",
    "main": "__main__",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
