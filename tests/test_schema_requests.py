"""Every request body the client builds validates against the request schema.

The schema (tests/data/gpt-4o-transcribe.input.schema.json, a copy of
../shared/spec) has the ``input`` object at its root and the unified request
body in ``$defs/request``, which refers back to ``#``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource

from cf_transcribe_pandas.client import DEFAULT_MODEL, Gateway, build_body

SCHEMA_PATH = Path(__file__).parent / "data" / "gpt-4o-transcribe.input.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
_REGISTRY: Registry[Any] = Registry().with_resource(SCHEMA["$id"], Resource.from_contents(SCHEMA))
REQUEST = Draft202012Validator({"$ref": f"{SCHEMA['$id']}#/$defs/request"}, registry=_REGISTRY)
INPUT = Draft202012Validator(SCHEMA, registry=_REGISTRY)

WAV_URI = "data:audio/wav;base64," + base64.b64encode(b"RIFF\x00\x00\x00\x00WAVE").decode()


def errors_of(validator: Draft202012Validator, body: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(body)]


def test_the_schema_itself_is_valid() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_the_schema_is_the_shared_spec_copy() -> None:
    shared = Path("/work/shared/spec/gpt-4o-transcribe.input.schema.json")
    if not shared.exists():
        pytest.skip("the shared spec folder is not on this machine")
    assert json.loads(shared.read_text(encoding="utf-8")) == SCHEMA


@pytest.mark.parametrize("language", [None, "en", "FR"])
@pytest.mark.parametrize("prompt", [None, "", "Names: Kubernetes, Thursday."])
@pytest.mark.parametrize("temperature", [None, 0, 0.0, 0.5, 1, 1.0])
@pytest.mark.parametrize("file", [WAV_URI, "https://example.com/a.wav"])
def test_every_combination_of_optional_fields_validates(
    language: str | None, prompt: str | None, temperature: float | None, file: str
) -> None:
    body = build_body(file, language=language, prompt=prompt, temperature=temperature)
    assert errors_of(REQUEST, body) == []
    assert errors_of(INPUT, body["input"]) == []
    assert None not in body["input"].values()


@pytest.mark.parametrize(
    "gateway",
    [
        Gateway(id="gw"),
        Gateway(id="gw", cache_ttl=3600),
        Gateway(id="gw", skip_cache=True),
        Gateway(id="gw", cache_ttl=0, skip_cache=False),
    ],
)
def test_bodies_with_gateway_options_validate(gateway: Gateway) -> None:
    body = build_body(WAV_URI, language="en", gateway=gateway)
    assert errors_of(REQUEST, body) == []
    assert body["options"]["gateway"]["id"] == "gw"


def test_the_gateway_url_body_is_the_input_object() -> None:
    gw = Gateway(id="gw", use_gateway_url=True, cache_ttl=60)
    body = build_body(WAV_URI, temperature=0.2, gateway=gw)
    assert "options" not in body
    assert errors_of(INPUT, body["input"]) == []


_LANGS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=2)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=64),
    mime=st.sampled_from(["audio/wav", "audio/mpeg", "audio/flac", "audio/ogg", "audio/webm"]),
    use_url=st.booleans(),
    language=st.none() | _LANGS | _LANGS.map(str.upper),
    prompt=st.none() | st.text(max_size=200),
    temperature=st.none()
    | st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    | st.integers(min_value=0, max_value=1),
    gateway=st.none()
    | st.builds(
        Gateway,
        id=st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,20}\Z"),
        cache_ttl=st.none() | st.integers(min_value=0, max_value=10**7),
        skip_cache=st.none() | st.booleans(),
    ),
)
def test_generated_bodies_validate(
    payload: bytes,
    mime: str,
    use_url: bool,
    language: str | None,
    prompt: str | None,
    temperature: float | None,
    gateway: Gateway | None,
) -> None:
    if use_url:
        file = "https://files.example.com/" + payload.hex() + ".wav"
    else:
        file = f"data:{mime};base64," + base64.b64encode(payload).decode()
    body = build_body(
        file, language=language, prompt=prompt, temperature=temperature, gateway=gateway
    )
    assert errors_of(REQUEST, body) == []
    assert body["model"] == DEFAULT_MODEL
    # Survives a JSON round trip unchanged (what goes on the wire).
    assert json.loads(json.dumps(body)) == body
    for key, value in (("language", language), ("prompt", prompt), ("temperature", temperature)):
        assert (key in body["input"]) is (value is not None)


GOOD: dict[str, Any] = {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "language": "en"}}


@pytest.mark.parametrize(
    "bad",
    [
        {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "temperature": 1.5}},
        {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "temperature": -0.1}},
        {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "temperature": "0.5"}},
        {"model": DEFAULT_MODEL, "input": {"language": "en"}},
        {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "language": "eng"}},
        {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "language": "EN"}},
        {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "language": None}},
        {"model": DEFAULT_MODEL, "input": {"file": WAV_URI, "prompt": None}},
        {"model": DEFAULT_MODEL, "input": {"file": "ftp://example.com/a.wav"}},
        {"model": DEFAULT_MODEL, "input": {"file": "/tmp/a.wav"}},
        {"model": DEFAULT_MODEL},
        {"input": {"file": WAV_URI}},
        {"model": "@cf/openai/whisper", "input": {"file": WAV_URI}},
    ],
    ids=[
        "temperature-1.5",
        "temperature-negative",
        "temperature-string",
        "missing-file",
        "language-eng",
        "language-upper",
        "language-null",
        "prompt-null",
        "file-ftp",
        "file-path",
        "missing-input",
        "missing-model",
        "other-model",
    ],
)
def test_bad_bodies_do_not_validate(bad: dict[str, Any]) -> None:
    assert errors_of(REQUEST, GOOD) == []
    assert errors_of(REQUEST, bad) != []
