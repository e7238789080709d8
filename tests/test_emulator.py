"""Contract tests of the emulator: real HTTP to 127.0.0.1, no mocks."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cf_transcribe_pandas.emulator import Emulator, EmulatorConfig, create_app
from cf_transcribe_pandas.emulator.__main__ import main
from cf_transcribe_pandas.emulator.sniff import sniff

AUDIO = Path(__file__).parent / "data" / "audio"
MANIFEST = AUDIO / "manifest.csv"
MODEL = "openai/gpt-4o-transcribe"
HELLO = AUDIO / "s11_en_wav.wav"  # not in the package's sample manifest
HELLO_SHA = "a41c0abe0ea6a9c69a940edfeda4487394b03e45abf54ed3b255a1a817f0f5e8"
NINE = {
    "flac": "s00_en_flac.flac",
    "m4a": "s00_en_m4a.m4a",
    "mp3": "s00_en_mp3.mp3",
    "mp4": "s00_en_mp4.mp4",
    "mpeg": "s00_en_mpeg.mpeg",
    "mpga": "s00_en_mpga.mpga",
    "ogg": "s00_en_ogg.ogg",
    "wav": "s00_en_wav.wav",
    "webm": "s00_en_webm.webm",
}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def manifest_rows() -> list[dict[str, str]]:
    with open(MANIFEST, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def data_uri(data: bytes | Path, mime: str = "audio/wav") -> str:
    raw = data.read_bytes() if isinstance(data, Path) else data
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def unified(file: str, **input_fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": {"file": file, **input_fields}}


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> int:
        data = self.json()
        assert data["success"] is False
        assert data["messages"] == []
        assert data["result"] is None
        errors = data["errors"]
        assert len(errors) == 1
        assert isinstance(errors[0]["message"], str)
        code: int = errors[0]["code"]
        return code


def post(
    url: str,
    body: Any = None,
    *,
    token: str | None = "test-token",
    raw: bytes | None = None,
    method: str = "POST",
    extra_headers: dict[str, str] | None = None,
) -> Answer:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json", **(extra_headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        try:
            return Answer(err.code, err.headers, err.read())
        finally:
            err.close()


def get_json(url: str) -> Any:
    with _OPENER.open(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def emu() -> Any:
    with Emulator(port=0, manifests=(str(MANIFEST),)) as emulator:
        yield emulator


# -- success ----------------------------------------------------------------


def test_each_accepted_container_gets_its_manifest_text(emu: Emulator) -> None:
    rows = {row["file"]: row for row in manifest_rows()}
    for container, name in NINE.items():
        answer = post(emu.run_url(), unified(data_uri(AUDIO / name)))
        assert answer.status == 200, (container, answer.body)
        assert answer.json() == {
            "gatewayMetadata": {"keySource": "Unified"},
            "result": {"text": rows[name]["text"]},
            "state": "Completed",
        }
    log = emu.requests()
    assert [e["sha256"] for e in log] == [rows[n]["sha256"] for n in NINE.values()]
    assert [e["bytes"] for e in log] == [int(rows[n]["bytes"]) for n in NINE.values()]
    assert all(e["status"] == 200 and e["form"] == "unified" for e in log)


def test_every_accepted_clip_in_the_manifest_is_answered(emu: Emulator) -> None:
    for row in manifest_rows():
        answer = post(emu.run_url(), unified(data_uri(AUDIO / row["file"])))
        if row["accepted_by_model"] == "True":
            assert answer.status == 200, row["file"]
            assert answer.json()["result"]["text"] == row["text"]
        else:
            assert answer.status == 400, row["file"]
            assert answer.code == 5004


def test_unknown_audio_gets_a_deterministic_placeholder() -> None:
    with Emulator(port=0) as emu:
        first = post(emu.run_url(), unified(data_uri(HELLO)))
        second = post(emu.run_url(), unified(data_uri(HELLO)))
    assert first.json()["result"]["text"] == f"transcript of {HELLO_SHA[:12]}"
    assert second.json() == first.json()


def test_package_samples_are_loaded_by_default(emulator: Emulator) -> None:
    answer = post(emulator.run_url(), unified(data_uri(AUDIO / "s01_en_flac.flac", "audio/flac")))
    assert answer.json()["result"]["text"].startswith("Please move the meeting")


@pytest.mark.parametrize("model_path", ["openai%2Fgpt-4o-transcribe", "openai/gpt-4o-transcribe"])
def test_per_model_form_answers_the_v4_envelope(emu: Emulator, model_path: str) -> None:
    url = f"{emu.base_url}/accounts/{emu.account_id}/ai/run/{model_path}"
    answer = post(url, {"file": data_uri(AUDIO / "s00_en_wav.wav"), "language": "en"})
    assert answer.status == 200
    assert answer.json() == {
        "result": {"text": "The quarterly report shows revenue growth in every region."},
        "success": True,
        "errors": [],
        "messages": [],
    }
    (entry,) = emu.requests()
    assert entry["form"] == "per_model"
    assert entry["model"] == MODEL
    assert entry["language"] == "en"
    assert entry["body"]["file"].endswith("...")
    assert len(entry["body"]["file"]) == 80


def test_official_cloudflare_sdk_talks_to_the_per_model_form(emu: Emulator) -> None:
    cloudflare = pytest.importorskip("cloudflare")
    client = cloudflare.Cloudflare(api_token=emu.token, base_url=emu.base_url, max_retries=0)
    try:
        out = client.ai.run(MODEL, account_id=emu.account_id, extra_body={"file": data_uri(HELLO)})
        assert out == {"text": "Hello world."}
        with pytest.raises(cloudflare.BadRequestError, match="5007"):
            client.ai.run("openai/gpt-9", account_id=emu.account_id, extra_body={"file": "x"})
    finally:
        client.close()
    entry = emu.requests()[0]
    assert entry["path"].endswith("/ai/run/openai%2Fgpt-4o-transcribe")
    assert entry["user_agent"].startswith("Cloudflare/Python")


def test_run_url_helper_encodes_the_model(emu: Emulator) -> None:
    assert emu.run_url(MODEL).endswith("/ai/run/openai%2Fgpt-4o-transcribe")
    assert post(emu.run_url(MODEL), {"file": data_uri(HELLO)}).status == 200


def test_gateway_url_forms_log_the_gateway_id(emu: Emulator) -> None:
    base = emu.gateway_url("my-gw")
    assert base == f"{emu.root_url}/v1/{emu.account_id}/my-gw/workers-ai"
    per_model = post(f"{base}/{MODEL}", {"file": data_uri(HELLO)})
    assert per_model.status == 200
    assert per_model.json()["success"] is True
    uni = post(base, unified(data_uri(HELLO)))
    assert uni.status == 200
    assert uni.json()["state"] == "Completed"
    in_body = post(
        emu.run_url(),
        {**unified(data_uri(HELLO)), "options": {"gateway": {"id": "gw2", "cacheTtl": 60}}},
    )
    assert in_body.status == 200
    gateways = [e["gateway"] for e in emu.requests()]
    assert gateways[0] == {"id": "my-gw", "via": "url"}
    assert gateways[1] == {"id": "my-gw", "via": "url"}
    assert gateways[2] == {"id": "gw2", "via": "body", "cacheTtl": 60}
    assert [e["form"] for e in emu.requests()] == ["per_model", "unified", "unified"]


def test_gateway_url_cache_headers_are_logged(emu: Emulator) -> None:
    headers = {"cf-aig-cache-ttl": "300", "cf-aig-skip-cache": "true"}
    url = f"{emu.gateway_url('gw')}/{MODEL}"
    assert post(url, {"file": data_uri(HELLO)}, extra_headers=headers).status == 200
    assert emu.requests()[0]["gateway"] == {
        "id": "gw",
        "via": "url",
        "cacheTtl": 300,
        "skipCache": True,
    }


def test_https_url_file_is_not_fetched_and_answers_deterministically(emu: Emulator) -> None:
    url = "https://example.invalid/clip.wav"
    answer = post(emu.run_url(), unified(url))
    expected = f"transcript of {hashlib.sha256(url.encode()).hexdigest()[:12]}"
    assert answer.json()["result"]["text"] == expected
    emu.register({url: "registered by url"})
    assert post(emu.run_url(), unified(url)).json()["result"]["text"] == "registered by url"
    entry = emu.requests()[0]
    assert entry["file_kind"] == "url"
    assert entry["url"] == url
    assert entry["sha256"] is None


def test_unknown_keys_are_accepted_and_logged(emu: Emulator) -> None:
    body = {**unified(data_uri(HELLO), extra=1), "trace": "x"}
    assert post(emu.run_url(), body).status == 200
    assert emu.requests()[0]["unknown_keys"] == ["trace", "input.extra"]


# -- auth and account -------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_missing_or_wrong_token_is_401(emu: Emulator, token: str | None) -> None:
    answer = post(emu.run_url(), unified(data_uri(HELLO)), token=token)
    assert answer.status == 401
    assert answer.code == 10000
    assert "Authentication error" in answer.json()["errors"][0]["message"]


def test_wrong_account_is_403(emu: Emulator) -> None:
    url = f"{emu.base_url}/accounts/someone-else/ai/run"
    answer = post(url, unified(data_uri(HELLO)))
    assert answer.status == 403
    assert answer.code == 10000


def test_blocked_account_is_403_3023(emulator_factory: Any) -> None:
    emu = emulator_factory(blocked=True)
    answer = post(emu.run_url(), unified(data_uri(HELLO)))
    assert (answer.status, answer.code) == (403, 3023)
    other = emulator_factory(blocked_accounts=["frozen"])
    answer = post(f"{other.base_url}/accounts/frozen/ai/run", unified(data_uri(HELLO)))
    assert (answer.status, answer.code) == (403, 3023)
    assert post(other.run_url(), unified(data_uri(HELLO))).status == 200


def test_custom_token_and_account(emulator_factory: Any) -> None:
    emu = emulator_factory(token="t-123", account_id="acc-9")
    assert emu.token == "t-123"
    assert emu.account_id == "acc-9"
    assert post(emu.run_url(), unified(data_uri(HELLO)), token="t-123").status == 200
    assert post(emu.run_url(), unified(data_uri(HELLO))).status == 401


# -- request validation -----------------------------------------------------


@pytest.mark.parametrize("raw", [b"not json", b"{", b"", b"[1, 2]", b'"file"'])
def test_body_that_is_not_a_json_object_is_400_3003(emu: Emulator, raw: bytes) -> None:
    answer = post(emu.run_url(), raw=raw)
    assert (answer.status, answer.code) == (400, 3003)


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL, "input": {}},
        {"model": MODEL, "input": {"language": "en"}},
        {"model": MODEL, "input": {"file": None}},
        {"model": MODEL},
        {"input": {"file": "https://example.invalid/a.wav"}},
    ],
)
def test_missing_parts_are_400_3003(emu: Emulator, body: dict[str, Any]) -> None:
    answer = post(emu.run_url(), body)
    assert (answer.status, answer.code) == (400, 3003)


def test_missing_file_message_names_the_field(emu: Emulator) -> None:
    answer = post(emu.run_url(), {"model": MODEL, "input": {}})
    assert "input.file" in answer.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "name", ["s00_en_aiff.aiff", "s00_en_wma.wma", "s00_en_caf.caf", "manifest.csv"]
)
def test_unaccepted_or_non_audio_files_are_400_5004(emu: Emulator, name: str) -> None:
    answer = post(emu.run_url(), unified(data_uri(AUDIO / name)))
    assert (answer.status, answer.code) == (400, 5004)
    entry = emu.requests()[0]
    assert entry["sha256"] == hashlib.sha256((AUDIO / name).read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "file",
    [
        "data:audio/wav;base64,",  # empty
        "data:audio/wav;base64,!!!notbase64",
        "data:audio/wav;base64,UklGR",  # bad padding
        "data:audio/wav",  # no comma
        "http://example.invalid/a.wav",  # not https
        "/tmp/a.wav",
    ],
)
def test_bad_file_values_are_400_5004(emu: Emulator, file: str) -> None:
    answer = post(emu.run_url(), unified(file))
    assert (answer.status, answer.code) == (400, 5004)


def test_file_of_wrong_type_is_400(emu: Emulator) -> None:
    answer = post(emu.run_url(), unified(123))  # type: ignore[arg-type]
    assert answer.status == 400


def test_unknown_model_is_400_5007(emu: Emulator) -> None:
    body = {"model": "openai/whisper-9", "input": {"file": data_uri(HELLO)}}
    answer = post(emu.run_url(), body)
    assert (answer.status, answer.code) == (400, 5007)
    answer = post(emu.run_url("@cf/openai/whisper-9"), {"file": data_uri(HELLO)})
    assert (answer.status, answer.code) == (400, 5007)
    assert emu.requests()[1]["model"] == "@cf/openai/whisper-9"


@pytest.mark.parametrize(
    "fields",
    [
        {"language": "EN"},
        {"language": "eng"},
        {"language": 5},
        {"language": None},
        {"temperature": 1.5},
        {"temperature": -0.1},
        {"temperature": "0.5"},
        {"temperature": True},
        {"temperature": None},
        {"prompt": 7},
    ],
)
def test_bad_optional_fields_are_400_3003(emu: Emulator, fields: dict[str, Any]) -> None:
    answer = post(emu.run_url(), unified(data_uri(HELLO), **fields))
    assert (answer.status, answer.code) == (400, 3003)
    assert next(iter(fields)) in answer.json()["errors"][0]["message"]


def test_good_optional_fields_are_logged(emu: Emulator) -> None:
    body = unified(data_uri(HELLO), language="fr", prompt="Bonjour", temperature=0.5)
    assert post(emu.run_url(), body).status == 200
    entry = emu.requests()[0]
    assert (entry["language"], entry["prompt"], entry["temperature"]) == ("fr", "Bonjour", 0.5)
    assert post(emu.run_url(), unified(data_uri(HELLO), temperature=0)).status == 200
    assert post(emu.run_url(), unified(data_uri(HELLO), temperature=1)).status == 200


@pytest.mark.parametrize(
    "gateway",
    ["gw", {"cacheTtl": 5}, {"id": ""}, {"id": "g", "cacheTtl": -1}, {"id": "g", "skipCache": 1}],
)
def test_bad_gateway_options_are_400_3003(emu: Emulator, gateway: Any) -> None:
    body = {**unified(data_uri(HELLO)), "options": {"gateway": gateway}}
    assert post(emu.run_url(), body).code == 3003


def test_oversized_body_is_413_3006(emu: Emulator) -> None:
    raw = b'{"model": "x", "input": {"file": "data:audio/wav;base64,' + b"A" * (25 * 1024 * 1024)
    answer = post(emu.run_url(), raw=raw + b'"}}')
    assert (answer.status, answer.code) == (413, 3006)


def test_oversized_decoded_file_is_413_3006(emulator_factory: Any) -> None:
    emu = emulator_factory(max_file_bytes=1000)
    answer = post(emu.run_url(), unified(data_uri(HELLO)))
    assert (answer.status, answer.code) == (413, 3006)
    assert emu.requests()[0]["bytes"] == HELLO.stat().st_size


def test_unknown_route_is_404_and_get_is_405(emu: Emulator) -> None:
    assert post(f"{emu.base_url}/accounts/{emu.account_id}/ai/runs", {}).code == 7000
    assert post(f"{emu.root_url}/nothing", {}).status == 404
    answer = post(emu.run_url(), method="GET")
    assert (answer.status, answer.code) == (405, 7001)


# -- limits and faults ------------------------------------------------------


def test_rpm_limit_uses_a_sliding_window_with_retry_after(emulator_factory: Any) -> None:
    emu = emulator_factory(rpm_limit=60)
    body = unified(data_uri(HELLO))
    answers = [post(emu.run_url(), body) for _ in range(70)]
    ok = [a for a in answers if a.status == 200]
    limited = [a for a in answers if a.status == 429]
    assert len(ok) == 60
    assert len(limited) == 10
    for answer in limited:
        assert answer.code == 3040
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert emu.counters()["codes"] == {"3040": 10}
    assert emu.counters()["faults"] == {"rate_limit": 10}


def test_rate_block_refuses_everything_for_its_duration_once_over_the_limit(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(rpm_limit=3, rate_block=30.0)
    body = unified(data_uri(HELLO))
    assert [post(emu.run_url(), body).status for _ in range(4)] == [200, 200, 200, 429]
    # The window now has room, but the block holds: whatever the rate, until it ends.
    emu.set_faults(rpm_limit=100, rate_block=30.0)
    blocked = [post(emu.run_url(), body) for _ in range(3)]
    assert [a.status for a in blocked] == [429, 429, 429]
    waits = [int(a.headers["Retry-After"]) for a in blocked]
    assert all(a.code == 3040 for a in blocked)
    assert all(1 <= w <= 30 for w in waits)
    assert waits == sorted(waits, reverse=True)
    assert "blocked" in blocked[0].json()["errors"][0]["message"]
    # Refused requests did not enter the window: lifting the block admits at once.
    emu.set_faults(rpm_limit=4, rate_block=None)
    assert post(emu.run_url(), body).status == 200
    assert emu.counters()["codes"] == {"3040": 4}


def test_capacity_bursts_refuse_whatever_the_rate_beside_the_rpm_limit(
    emulator_factory: Any,
) -> None:
    emu = emulator_factory(rpm_limit=1000, retry_after=2.0)
    body = unified(data_uri(HELLO))
    # The model out of capacity for the whole period: every request refused with
    # 3040, though the account's limit has plenty of room.
    emu.set_faults(burst_every=1000.0, burst_seconds=1000.0, burst_share=1.0)
    answers = [post(emu.run_url(), body) for _ in range(5)]
    assert [(a.status, a.code) for a in answers] == [(429, 3040)] * 5
    assert all(a.headers["Retry-After"] == "2" for a in answers)
    assert "no more data centers" in answers[0].json()["errors"][0]["message"]
    assert emu.counters()["faults"] == {"capacity_burst": 5}
    # A period is quiet first and ends with its burst (the clock restarts with set_faults).
    emu.set_faults(burst_every=1000.0, burst_seconds=1.0)
    assert [post(emu.run_url(), body).status for _ in range(5)] == [200] * 5
    # Both limits run at once: a request refused for capacity still counted against the
    # account's rate (it reached the service), one refused for the rate did not.
    emu.set_faults(burst_every=None, rpm_limit=12)  # 10 counted so far: room for 2
    assert [post(emu.run_url(), body).status for _ in range(3)] == [200, 200, 429]
    assert emu.counters()["faults"] == {"capacity_burst": 5, "rate_limit": 1}


def test_quota_gives_3036_after_n_successes_without_retry_after(emulator_factory: Any) -> None:
    emu = emulator_factory(quota=3)
    body = unified(data_uri(HELLO))
    answers = [post(emu.run_url(), body) for _ in range(5)]
    assert [a.status for a in answers] == [200, 200, 200, 429, 429]
    assert answers[3].code == 3036
    assert "Retry-After" not in answers[3].headers
    assert "daily allocation" in answers[3].json()["errors"][0]["message"]


def test_p429_gives_3040_with_retry_after(emulator_factory: Any) -> None:
    emu = emulator_factory(p429=1.0)
    answer = post(emu.run_url(), unified(data_uri(HELLO)))
    assert (answer.status, answer.code) == (429, 3040)
    assert answer.headers["Retry-After"] == "1"
    emu.set_faults(retry_after=7)
    assert post(emu.run_url(), unified(data_uri(HELLO))).headers["Retry-After"] == "7"


def test_p500_answers_5xx_envelope_or_html(emulator_factory: Any) -> None:
    emu = emulator_factory(p500=1.0, p_html=0.0)
    answer = post(emu.run_url(), unified(data_uri(HELLO)))
    assert answer.status in (500, 502, 503)
    assert answer.code >= 1000
    emu.set_faults(p_html=1.0, error_statuses=[502])
    answer = post(emu.run_url(), unified(data_uri(HELLO)))
    assert answer.status == 502
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in answer.body
    assert emu.counters()["faults"] == {"p500": 2}


def test_p408_answers_3007(emulator_factory: Any) -> None:
    emu = emulator_factory(p408=1.0)
    answer = post(emu.run_url(), unified(data_uri(HELLO)))
    assert (answer.status, answer.code) == (408, 3007)


def test_seed_makes_faults_reproducible(emulator_factory: Any) -> None:
    runs = []
    for _ in range(2):
        emu = emulator_factory(p500=0.5, p429=0.2, seed=42)
        runs.append([post(emu.run_url(), unified(data_uri(HELLO))).status for _ in range(20)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1


def test_faults_do_not_touch_control_routes(emulator_factory: Any) -> None:
    emu = emulator_factory(p500=1.0, p_reset=1.0, p429=1.0, latency=5.0, rpm_limit=0)
    assert get_json(f"{emu.root_url}/__emulator__/counters")["requests"] == 0
    assert emu.counters()["requests"] == 0


async def test_p_reset_drops_the_connection(emulator_factory: Any) -> None:
    emu = emulator_factory(p_reset=1.0)
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with aiohttp.ClientSession() as session:
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            async with session.post(
                emu.run_url(), json=unified(data_uri(HELLO)), headers=headers
            ) as response:
                await response.read()
    entry = emu.requests()[0]
    assert entry["status"] is None
    assert entry["fault"] == "reset"
    counters = emu.counters()
    assert counters["resets"] == 1
    assert counters["ok"] == 0
    assert counters["status"] == {"reset": 1}
    assert counters["faults"] == {"reset": 1}


async def test_latency_keeps_the_request_in_flight(emulator_factory: Any) -> None:
    emu = emulator_factory(latency=5.0)
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                emu.run_url(),
                json=unified(data_uri(HELLO)),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=0.2),
            ) as response:
                await response.read()
    # The client left; the emulator notices and logs the request as 499.
    for _ in range(200):
        if emu.counters()["requests"]:
            break
        await asyncio.sleep(0.01)
    entry = emu.requests()[0]
    assert entry["status"] == 499
    assert entry["fault"] == "client_gone"
    assert emu.counters()["in_flight"] == 0
    assert emu.counters()["quota_used"] == 0


async def test_in_flight_counter_and_stop_with_a_pending_request(emulator_factory: Any) -> None:
    emu = emulator_factory(latency=30.0)
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with aiohttp.ClientSession() as session:

        async def call() -> int:
            async with session.post(
                emu.run_url(), json=unified(data_uri(HELLO)), headers=headers
            ) as response:
                return response.status

        task = asyncio.create_task(call())
        for _ in range(500):
            if emu.counters()["in_flight"] == 1:
                break
            await asyncio.sleep(0.01)
        assert emu.counters()["in_flight"] == 1
        assert emu.counters()["max_in_flight"] == 1
        await asyncio.to_thread(emu.stop)  # must not wait 30 s
        with pytest.raises(aiohttp.ClientError):
            await task


async def test_slow_body_still_delivers_the_whole_answer(emulator_factory: Any) -> None:
    emu = emulator_factory(slow_body=0.2)
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(emu.run_url(), json=unified(data_uri(HELLO)), headers=headers) as response,
    ):
        assert response.status == 200
        data = await response.json()
    assert data["result"]["text"] == f"transcript of {HELLO_SHA[:12]}"


def test_words_per_second_emulates_the_output_cap(emulator_factory: Any) -> None:
    emu = emulator_factory(words_per_second=2.0, load_samples=False)
    text = post(emu.run_url(), unified(data_uri(HELLO))).json()["result"]["text"]
    assert text == "w1 w2 w3"  # 1.26 s * 2 words/s, rounded up
    emu.set_faults(words_per_second=1000.0, max_output_words=5)
    assert post(emu.run_url(), unified(data_uri(HELLO))).json()["result"]["text"] == (
        "w1 w2 w3 w4 w5"
    )
    emu.register({HELLO_SHA: "registered wins"})
    assert post(emu.run_url(), unified(data_uri(HELLO))).json()["result"]["text"] == (
        "registered wins"
    )


# -- control routes and the Python API -------------------------------------


def test_control_routes_over_http(emu: Emulator) -> None:
    root = f"{emu.root_url}/__emulator__"
    body = unified(data_uri(HELLO))
    assert post(emu.run_url(), body).status == 200

    answer = post(f"{root}/faults", {"p429": 1.0, "retry_after": 3}, token=None)
    assert answer.status == 200
    assert answer.json()["faults"]["p429"] == 1.0
    assert get_json(f"{root}/faults")["retry_after"] == 3
    assert post(emu.run_url(), body).headers["Retry-After"] == "3"
    assert post(f"{root}/faults", {"nope": 1}, token=None).status == 400
    assert post(f"{root}/faults", {"p429": 3}, token=None).status == 400
    assert post(f"{root}/faults", [1], token=None).status == 400

    answer = post(f"{root}/transcripts", {HELLO_SHA.upper(): "At run time."}, token=None)
    assert answer.status == 200
    assert answer.json()["ok"] is True
    emu.set_faults(p429=0.0)
    assert post(emu.run_url(), body).json()["result"]["text"] == "At run time."
    emu.set_faults(p429=1.0)
    assert post(f"{root}/transcripts", {"x": 1}, token=None).status == 400

    log = get_json(f"{root}/log")
    assert [e["i"] for e in log] == [0, 1, 2]
    assert [e["i"] for e in get_json(f"{root}/log?since=1")] == [1, 2]
    counters = get_json(f"{root}/counters")
    assert counters["requests"] == 3
    assert counters["ok"] == 2
    assert counters["status"] == {"200": 2, "429": 1}
    assert counters["by_sha256"] == {HELLO_SHA: 3}
    assert counters["ok_by_sha256"] == {HELLO_SHA: 2}
    assert get_json(f"{root}/config")["account_id"] == emu.account_id

    assert post(f"{root}/reset", {}, token=None).status == 200
    assert get_json(f"{root}/log") == []
    assert get_json(f"{root}/counters")["requests"] == 0
    assert get_json(f"{root}/faults")["p429"] == 0.0
    # reset also forgets the transcript registered at run time (back to the manifest's)
    assert post(emu.run_url(), body).json()["result"]["text"] == "Hello world."


def test_python_api_in_thread_mode(emu: Emulator) -> None:
    assert emu.base_url == f"http://127.0.0.1:{emu.port}/client/v4"
    assert emu.root_url == f"http://127.0.0.1:{emu.port}"
    assert (emu.token, emu.account_id) == ("test-token", "test-account")
    emu.register({HELLO_SHA: "Registered."})
    faults = emu.set_faults(latency=0.0, rpm_limit=600)
    assert faults["rpm_limit"] == 600
    with pytest.raises(ValueError, match="cannot change"):
        emu.set_faults(token="x")
    with pytest.raises(ValueError, match="probability"):
        emu.set_faults(p500=2)
    assert post(emu.run_url(), unified(data_uri(HELLO))).json()["result"]["text"] == "Registered."
    assert len(emu.requests()) == 1
    assert emu.requests(since=1) == []
    emu.reset()
    assert emu.requests() == []
    assert emu.counters()["requests"] == 0
    assert emu.set_faults()["rpm_limit"] is None


def test_request_log_entry_fields(emu: Emulator) -> None:
    body = {
        **unified(data_uri(HELLO), language="en", prompt="greeting", temperature=0.2),
        "options": {"gateway": {"id": "gw", "skipCache": True}},
    }
    post(emu.run_url(), body)
    (entry,) = emu.requests()
    expected = {
        "t",
        "path",
        "form",
        "status",
        "code",
        "model",
        "sha256",
        "mime",
        "bytes",
        "language",
        "prompt",
        "temperature",
        "file_kind",
        "body",
        "user_agent",
        "gateway",
    }
    assert expected <= set(entry)
    assert isinstance(entry["t"], float)
    assert entry["t_done"] >= entry["t"]
    assert entry["path"] == f"/client/v4/accounts/{emu.account_id}/ai/run"
    assert (entry["form"], entry["status"], entry["code"]) == ("unified", 200, None)
    assert (entry["model"], entry["sha256"], entry["mime"]) == (MODEL, HELLO_SHA, "audio/wav")
    assert (entry["bytes"], entry["file_kind"], entry["container"]) == (40394, "data", "wav")
    assert entry["user_agent"].startswith("Python-urllib")
    assert entry["gateway"] == {"id": "gw", "via": "body", "skipCache": True}
    assert len(entry["body"]["input"]["file"]) == 80
    assert entry["body"]["input"]["language"] == "en"
    assert entry["body"]["options"] == {"gateway": {"id": "gw", "skipCache": True}}
    json.dumps(entry)  # JSON-ready, like the process-mode log


def test_log_limit_keeps_indices(emulator_factory: Any) -> None:
    emu = emulator_factory(log_limit=3)
    for _ in range(5):
        post(emu.run_url(), unified(data_uri(HELLO)))
    assert [e["i"] for e in emu.requests()] == [2, 3, 4]
    assert [e["i"] for e in emu.requests(since=4)] == [4]
    assert emu.counters()["requests"] == 5


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="p429"):
        EmulatorConfig(p429=1.5)
    with pytest.raises(ValueError, match="rpm_limit"):
        EmulatorConfig(rpm_limit=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="burst_share"):
        EmulatorConfig(burst_share=1.5)
    with pytest.raises(ValueError, match="burst_every"):
        EmulatorConfig(burst_every=0.0)
    with pytest.raises(TypeError, match="unknown emulator setting"):
        Emulator(port=0, nonsense=1)
    config = EmulatorConfig(manifests=str(MANIFEST))  # type: ignore[arg-type]
    assert config.manifests == (str(MANIFEST),)
    assert EmulatorConfig.from_dict(config.to_dict()) == config


def test_presets_fill_the_fields_left_at_their_defaults() -> None:
    assert EmulatorConfig(preset="realistic").rpm_limit == 720
    flaky = EmulatorConfig(preset="flaky", p500=0.5)
    assert (flaky.p500, flaky.p429) == (0.5, 0.1)
    assert flaky.with_faults(p429=0.0).p429 == 0.0  # not re-applied at run time
    with pytest.raises(ValueError, match="unknown preset"):
        EmulatorConfig(preset="nope")
    with Emulator(port=0, preset="throttled") as emu:
        assert emu.set_faults()["rpm_limit"] == 60
        emu.set_faults(rpm_limit=None)
        emu.reset()
        assert emu.set_faults()["rpm_limit"] == 60


def test_create_app_exposes_the_application() -> None:
    app = create_app(rpm_limit=5)
    assert any(r.canonical.startswith("/__emulator__") for r in app.router.resources())


def test_stop_leaves_no_thread_behind() -> None:
    before = threading.active_count()
    emu = Emulator(port=0).start()
    assert emu.running
    assert emu.pid == os.getpid()
    post(emu.run_url(), unified(data_uri(HELLO)))
    emu.stop()
    emu.stop()  # idempotent
    assert not emu.running
    assert emu.pid is None
    assert emu.returncode is None  # a thread has no exit status
    assert threading.active_count() == before
    with pytest.raises(RuntimeError, match="not running"):
        emu.counters()


def test_port_in_use_raises() -> None:
    with Emulator(port=0) as first, pytest.raises(OSError, match=r"(?i)address already in use"):
        Emulator(port=first.port).start()


# -- fixtures ----------------------------------------------------------------


def test_emulator_fixture(emulator: Emulator) -> None:
    assert emulator.running
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator.base_url.endswith("/client/v4")
    assert post(emulator.run_url(), unified(data_uri(HELLO))).status == 200


@pytest.mark.emulator(quota=1)
def test_emulator_fixture_reads_the_marker(emulator: Emulator) -> None:
    assert post(emulator.run_url(), unified(data_uri(HELLO))).status == 200
    assert post(emulator.run_url(), unified(data_uri(HELLO))).code == 3036


def test_emulator_factory_starts_several(emulator_factory: Any) -> None:
    one, two = emulator_factory(), emulator_factory(account_id="b")
    assert one.port != two.port
    assert post(two.run_url(), unified(data_uri(HELLO))).status == 200


# -- subprocess and command line --------------------------------------------


def test_process_mode_offers_the_same_api() -> None:
    with Emulator(port=0, process=True, manifests=(str(MANIFEST),), quota=2) as emu:
        pid = emu.pid
        assert pid is not None
        assert pid != os.getpid()
        assert emu.returncode is None
        assert emu.base_url == f"http://127.0.0.1:{emu.port}/client/v4"
        answer = post(emu.run_url(), unified(data_uri(AUDIO / "s00_en_flac.flac")))
        assert answer.json()["result"]["text"].startswith("The quarterly report")
        emu.register({HELLO_SHA: "Hi."})
        assert post(emu.run_url(), unified(data_uri(HELLO))).json()["result"]["text"] == "Hi."
        assert post(emu.run_url(), unified(data_uri(HELLO))).code == 3036
        assert emu.counters()["status"] == {"200": 2, "429": 1}
        assert [e["i"] for e in emu.requests(since=1)] == [1, 2]
        assert emu.set_faults(quota=None)["quota"] is None
        with pytest.raises(ValueError, match="cannot change"):
            emu.set_faults(token="x")
        emu.reset()
        assert emu.requests() == []
        assert emu.set_faults()["quota"] == 2
    assert emu.returncode == 0  # the child exited cleanly when its stdin closed
    assert not emu.running
    assert emu.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped


def _start_cli(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cf_transcribe_pandas.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().decode()


def _finish(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(30)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.skipif(os.name == "nt", reason="SIGTERM")
def test_cli_prints_the_base_url_and_stops_on_sigterm() -> None:
    proc, first = _start_cli("--rpm-limit", "1", "--token", "tok", "--account-id", "acct")
    try:
        base_url, account, token = first.split()
        assert urllib.parse.urlsplit(base_url).path == "/client/v4"
        assert (account, token) == ("account_id=acct", "token=tok")
        url = f"{base_url}/accounts/acct/ai/run"
        assert post(url, unified(data_uri(HELLO)), token="tok").status == 200
        answer = post(url, unified(data_uri(HELLO)), token="tok")
        assert (answer.status, answer.code) == (429, 3040)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert _finish(proc) == 0


@pytest.mark.skipif(os.name == "nt", reason="SIGINT")
def test_cli_stops_on_sigint() -> None:
    proc, first = _start_cli("--no-samples")
    try:
        assert first.startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        assert _finish(proc) == 0


def test_cli_main_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--p429", "2"]) == 2
    assert "p429" in capsys.readouterr().err
    assert main(["--config-json", "[1]"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


def test_cli_main_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with Emulator(port=0) as emu:
        assert main(["--port", str(emu.port)]) == 1
    assert "error" in capsys.readouterr().err


# -- sniffer ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"\x1a\x45\xdf\xa3\x9f", "webm"),
        (b"\x00\x00\x00\x1cftypM4A \x00", "m4a"),
        (b"\x00\x00\x00\x1cftypisom\x00", "mp4"),
        (b"\x00\x00\x00\x1cftypheic\x00", None),
        (b"\xff\xfb\x90\x64", "mp3"),  # MPEG-1 layer III frame
        (b"\xff\xfd\x90\x64", "mpeg"),  # MPEG-1 layer II frame
        (b"\xff\xf1\x50\x80", "aac"),  # ADTS: not accepted
        (b"\xff\xfb\xf0\x64", None),  # bad bitrate index
        (b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfd\x90\x64", "mpeg"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3"),
        (b"FORM\x00\x00\x00\x00AIFF", "aiff"),
        (b"caff\x00\x01", "caf"),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), "wma"),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected
