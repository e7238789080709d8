"""Every request the accessor really sends validates against the request schema.

``test_schema_requests.py`` checks the bodies :func:`build_body` returns; this
module checks what went over the wire. It runs a representative set of
``df.cfai.transcribe`` calls against the emulator (languages, per-row
languages and prompts, temperatures, AI Gateway options in the body and the
gateway URL form, re-encoded audio, https URLs, long audio split into parts
with the previous part's tail as prompt) and validates every body of the
emulator's request log against ``gpt-4o-transcribe.input.schema.json``:
``$defs/request`` for the unified form, the root (the ``input`` object) for
the gateway URL form. The log keeps ``input.file`` cut to 80 characters; the
cut must still be the start of a valid base64 data URI of an accepted type.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clips import Sample, wav_bytes
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from nasty_audio import long_wav
from referencing import Registry, Resource

import cf_transcribe_pandas  # noqa: F401  (registers the accessors)
from cf_transcribe_pandas.client import Gateway
from cf_transcribe_pandas.emulator import Emulator

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "gpt-4o-transcribe.input.schema.json").read_text("utf-8")
)
_REGISTRY: Registry[Any] = Registry().with_resource(SCHEMA["$id"], Resource.from_contents(SCHEMA))
REQUEST = Draft202012Validator({"$ref": f"{SCHEMA['$id']}#/$defs/request"}, registry=_REGISTRY)
INPUT = Draft202012Validator(SCHEMA, registry=_REGISTRY)

ACCEPTED_MIMES = {
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/flac",
    "audio/x-flac",
    "audio/mpeg",
    "audio/mp3",
    "audio/mp4",
    "audio/m4a",
    "audio/x-m4a",
    "audio/ogg",
    "audio/webm",
    "video/mp4",
    "video/webm",
}
# What the log keeps of a data URI: the head, then base64 characters, "..." when cut.
DATA_URI_PREFIX = re.compile(
    r"^data:([a-z0-9.+-]+/[a-z0-9.+-]+);base64,([A-Za-z0-9+/]*=*)(\.\.\.)?$"
)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


@dataclass(frozen=True)
class Call:
    """One accessor call: the frame, the keyword arguments, and what its log must show."""

    frame: pd.DataFrame
    kwargs: dict[str, Any]
    series: bool = False


def _wav_files(folder: Path, seeds: list[int], seconds: float = 0.3) -> list[str]:
    out = []
    for seed in seeds:
        path = folder / f"clip{seed}.wav"
        path.write_bytes(wav_bytes(seed, seconds))
        out.append(str(path))
    return out


def _calls(folder: Path, samples: list[Sample], emu: Emulator) -> dict[str, Call]:
    by_format = {s.path.suffix.lstrip("."): s for s in samples}
    long_path = folder / "long.wav"
    long_wav(long_path, 35.0, seed=3)
    aiff = Path(__file__).parent / "data" / "audio" / "s00_en_aiff.aiff"
    gateway_url = Gateway(id="gw-url", use_gateway_url=True, base_url=f"{emu.root_url}/v1")
    return {
        "plain": Call(pd.DataFrame({"audio": _wav_files(folder, [1, 2, 3])}), {}),
        "language": Call(pd.DataFrame({"audio": _wav_files(folder, [4, 5])}), {"language": "en"}),
        "language-upper": Call(
            pd.DataFrame({"audio": _wav_files(folder, [6])}), {"language": "FR"}
        ),
        "per-row language and prompt": Call(
            pd.DataFrame(
                {
                    "audio": _wav_files(folder, [7, 8, 9, 10]),
                    "lang": ["en", None, "de", "es"],
                    "hint": ["Names: Zoë, Thursday.", "", None, "ñ ü ß 日本"],
                }
            ),
            {"language": "lang", "prompt": "hint"},
        ),
        "temperature 0": Call(
            pd.DataFrame({"audio": _wav_files(folder, [11])}), {"temperature": 0}
        ),
        "temperature 0.7": Call(
            pd.DataFrame({"audio": _wav_files(folder, [12])}), {"temperature": 0.7}
        ),
        "temperature 1": Call(
            pd.DataFrame({"audio": _wav_files(folder, [13])}), {"temperature": 1}
        ),
        "everything": Call(
            pd.DataFrame({"audio": _wav_files(folder, [14, 15])}),
            {"language": "it", "prompt": "Riunione.", "temperature": 0.25},
        ),
        "gateway id": Call(pd.DataFrame({"audio": _wav_files(folder, [16])}), {"gateway": "my-gw"}),
        "gateway options": Call(
            pd.DataFrame({"audio": _wav_files(folder, [17])}),
            {"gateway": {"id": "gw2", "cacheTtl": 3600, "skipCache": True}},
        ),
        "gateway url": Call(
            pd.DataFrame({"audio": _wav_files(folder, [18])}),
            {"gateway": gateway_url, "language": "en", "temperature": 0.5},
        ),
        "sample formats": Call(
            pd.DataFrame({"audio": [str(s.path) for s in samples]}),
            {"language": pd.Series([s.language for s in samples])},
        ),
        "re-encoded": Call(
            pd.DataFrame({"audio": [str(aiff), str(by_format["wav"].path)]}), {"encode": "flac"}
        ),
        "opus": Call(pd.DataFrame({"audio": _wav_files(folder, [19])}), {"encode": "opus"}),
        "https url": Call(
            pd.DataFrame({"audio": ["https://example.com/a.wav", "https://example.com/b.mp3?x=1"]}),
            {"language": "en"},
        ),
        "bytes and data uri": Call(
            pd.DataFrame(
                {"audio": [wav_bytes(20, 0.2), "data:audio/wav;base64," + _b64(wav_bytes(21))]}
            ),
            {},
        ),
        "long audio in parts": Call(
            pd.DataFrame({"audio": [str(long_path)]}),
            {"max_part_seconds": 10, "prompt": "Weekly sync.", "language": "en"},
        ),
        "series": Call(pd.DataFrame({"audio": _wav_files(folder, [22, 23])}), {}, series=True),
    }


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


CALL_NAMES = [
    "plain",
    "language",
    "language-upper",
    "per-row language and prompt",
    "temperature 0",
    "temperature 0.7",
    "temperature 1",
    "everything",
    "gateway id",
    "gateway options",
    "gateway url",
    "sample formats",
    "re-encoded",
    "opus",
    "https url",
    "bytes and data uri",
    "long audio in parts",
    "series",
]


@pytest.fixture
def run(
    emu: Emulator, tmp_path: Path, samples: list[Sample]
) -> Callable[[str], list[dict[str, Any]]]:
    """``run(name)``: make that call against a reset emulator; return the request log."""

    def go(name: str) -> list[dict[str, Any]]:
        call = _calls(tmp_path, samples, emu)[name]
        emu.reset()
        kwargs = dict(
            call.kwargs,
            account_id=emu.account_id,
            api_token=emu.token,
            base_url=emu.base_url,
            cache=False,
            progress=False,
        )
        if isinstance(kwargs.get("language"), pd.Series):
            kwargs["language"] = kwargs["language"].set_axis(call.frame.index)
        if call.series:
            text = call.frame["audio"].cfai.transcribe(**kwargs)
            assert text.notna().all()
        else:
            out = call.frame.cfai.transcribe("audio", **kwargs)
            assert out["audio_text"].notna().all(), out
        return emu.requests()

    return go


def _check_file(file: str, entry: dict[str, Any]) -> None:
    assert len(file) <= 80
    if entry["file_kind"] == "url":
        assert file.startswith("https://")
        return
    match = DATA_URI_PREFIX.match(file)
    assert match is not None, f"not a base64 data URI prefix: {file!r}"
    assert match.group(1) in ACCEPTED_MIMES, file
    payload = match.group(2)
    if match.group(3) is None:  # not cut: the whole payload, padded
        assert len(payload) % 4 == 0, file
    assert entry["container"] in {"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"}


def _check_entry(entry: dict[str, Any]) -> None:
    assert entry["status"] == 200, entry
    assert entry["unknown_keys"] is None, entry
    assert entry["user_agent"].startswith("cf-transcribe-pandas/")
    body = entry["body"]
    if entry["form"] == "unified":
        errors = [e.message for e in REQUEST.iter_errors(body)]
        inp = body["input"]
        assert set(body) <= {"model", "input", "options"}
    else:  # the AI Gateway URL form: the body is the input object
        assert entry["gateway"] is not None
        assert entry["gateway"]["via"] == "url"
        errors = [e.message for e in INPUT.iter_errors(body)]
        inp = body
    assert errors == [], (errors, body)
    assert None not in inp.values(), inp
    _check_file(inp["file"], entry)


@pytest.mark.parametrize("name", CALL_NAMES)
def test_every_logged_request_validates(
    run: Callable[[str], list[dict[str, Any]]], name: str
) -> None:
    log = run(name)
    assert log, "nothing was sent"
    for entry in log:
        _check_entry(entry)


def test_optional_fields_are_sent_as_given(run: Callable[[str], list[dict[str, Any]]]) -> None:
    (entry,) = run("everything")[:1]
    assert entry["body"]["input"]["language"] == "it"
    assert entry["body"]["input"]["prompt"] == "Riunione."
    assert entry["body"]["input"]["temperature"] == 0.25
    plain = run("plain")
    assert all(set(e["body"]["input"]) == {"file"} for e in plain)
    upper = run("language-upper")
    assert upper[0]["body"]["input"]["language"] == "fr"


def test_per_row_values_reach_their_rows(run: Callable[[str], list[dict[str, Any]]]) -> None:
    log = run("per-row language and prompt")
    sent = [(e["body"]["input"].get("language"), e["body"]["input"].get("prompt")) for e in log]
    expected = [("en", "Names: Zoë, Thursday."), (None, ""), ("de", None), ("es", "ñ ü ß 日本")]
    assert sorted(sent, key=repr) == sorted(expected, key=repr)


def test_gateway_options_are_in_the_body_or_the_url(
    run: Callable[[str], list[dict[str, Any]]],
) -> None:
    (entry,) = run("gateway options")
    assert entry["body"]["options"] == {
        "gateway": {"id": "gw2", "cacheTtl": 3600, "skipCache": True}
    }
    (entry,) = run("gateway id")
    assert entry["body"]["options"] == {"gateway": {"id": "my-gw"}}
    (entry,) = run("gateway url")
    assert entry["form"] == "per_model"
    assert entry["path"] == "/v1/test-account/gw-url/workers-ai/openai/gpt-4o-transcribe"
    assert "options" not in entry["body"]
    assert "model" not in entry["body"]


def test_long_audio_parts_carry_the_previous_tail_as_prompt(
    run: Callable[[str], list[dict[str, Any]]],
) -> None:
    log = sorted(run("long audio in parts"), key=lambda e: e["t"])
    assert len(log) >= 3  # 35 s in parts of at most 10 s
    prompts = [e["body"]["input"]["prompt"] for e in log]
    assert prompts[0] == "Weekly sync."
    for previous, entry in itertools.pairwise(log):
        prompt = entry["body"]["input"]["prompt"]
        assert prompt.startswith("Weekly sync.")
        # The emulator's text for a part is "transcript of <sha[:12]>".
        assert prompt.endswith(f"transcript of {previous['sha256'][:12]}"), prompt
    assert len({e["sha256"] for e in log}) == len(log)  # distinct parts
