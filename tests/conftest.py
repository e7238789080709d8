"""Shared fixtures for running the accessors against the emulator.

The ``emulator`` and ``emulator_factory`` fixtures come from the package's
pytest plugin (``cf_transcribe_pandas.emulator.pytest_plugin``); the audio
helpers are in ``clips.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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


_DATA = Path(__file__).parent / "data"


try:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from referencing import Registry, Resource
except ImportError:  # the session without extras (noxfile.py ``bare``) has no jsonschema
    Draft202012Validator = None


def _build_validators() -> dict[tuple[str, str], Any]:
    """The published request schemas, by (model, form); none without jsonschema."""
    if Draft202012Validator is None:
        return {}
    gpt: dict[str, Any] = json.loads((_DATA / "gpt-4o-transcribe.input.schema.json").read_text())
    registry: Registry[Any] = Registry().with_resource(gpt["$id"], Resource.from_contents(gpt))
    whisper = json.loads((_DATA / "whisper-large-v3-turbo.json").read_text())["schema"]["input"]
    return {
        ("openai/gpt-4o-transcribe", "unified"): Draft202012Validator(
            {"$ref": f"{gpt['$id']}#/$defs/request"}, registry=registry
        ),
        ("openai/gpt-4o-transcribe", "per_model"): Draft202012Validator(gpt, registry=registry),
        # The published schema allows other keys: here none is (additionalProperties).
        ("@cf/openai/whisper-large-v3-turbo", "per_model"): Draft202012Validator(
            {**whisper, "additionalProperties": False}
        ),
    }


_VALIDATORS = _build_validators()


@pytest.fixture(autouse=True)
def _library_bodies_follow_the_model_schema(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that uses the ``emulator`` fixture: every body the library sent
    (its User-Agent) validates against its model's published schema."""
    if "emulator" not in request.fixturenames:
        yield
        return
    emu = request.getfixturevalue("emulator")  # set up first, so torn down after this
    yield
    for entry in emu.requests():
        agent, body = entry["user_agent"] or "", entry["body"]
        validator = _VALIDATORS.get((entry["model"], entry["form"]))
        if not agent.startswith("cf-transcribe-pandas/") or body is None or validator is None:
            continue
        errors = [e.message for e in validator.iter_errors(body)]
        assert errors == [], (entry["model"], entry["form"], errors)
