"""Our requests against Stoplight Prism serving the composed OpenAPI file.

Prism (``@stoplight/prism-cli`` 5.14.2, run with ``npm exec``) mocks
``POST /accounts/{account_id}/ai/run`` from
``tests/data/cloudflare-workers-ai-run-unified.composed.openapi.json``: a valid
request gets 200 with the example body (text ``"Hello"``), an invalid one gets
400 with the violations in the ``sl-violations`` response header. So:

- every body :func:`build_body` makes draws no violation (read from the header
  of a raw aiohttp request), and :class:`Client` gets ``"Hello"`` back;
- a small ``df.cfai.transcribe`` run succeeds with ``"Hello"`` on every row;
- deliberately bad bodies (temperature 1.5, no file, ...) do draw violations,
  so the checks above could fail.

Prism starts once for the module (the first ``npm exec`` downloads it, which
can take a minute) and its whole process group is killed at teardown. Skipped
only when ``npm`` is not on PATH; CI has Node and the npm registry.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest
from clips import wav_bytes

import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)
from cf_transcribe_pandas.client import USER_AGENT, Client, Credentials, Gateway, build_body
from cf_transcribe_pandas.errors import ConfigurationError

SPEC = Path(__file__).parent / "data" / "cloudflare-workers-ai-run-unified.composed.openapi.json"
PRISM = "@stoplight/prism-cli@5.14.2"
ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
TOKEN = "prism-test-token"
STARTUP_SECONDS = 240.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prism's base URL, ``http://127.0.0.1:PORT`` (the spec's paths sit at its root)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: Stoplight Prism needs Node.js and npm")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    cmd = [npm, "exec", "--yes", f"--package={PRISM}", "--"]
    cmd += ["prism", "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: npm, sh and node go together
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"Prism did not start (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # npm may leave node behind after its own exit: make sure the group is gone.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _credentials(base: str) -> Credentials:
    return Credentials(ACCOUNT, TOKEN, base)


def _uri(seed: int) -> str:
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(seed, 0.2)).decode()


async def _raw_post(url: str, payload: Any) -> tuple[int, list[dict[str, Any]], Any]:
    """POST ``payload`` as our client does; return status, violations, parsed body."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=headers) as resp,
    ):
        raw = await resp.read()
        violations = json.loads(resp.headers.get("sl-violations", "[]"))
        return resp.status, violations, json.loads(raw) if raw else None


GOOD_CALLS: list[dict[str, Any]] = [
    {},
    {"language": "en"},
    {"language": "FR"},
    {"prompt": "Names: Kubernetes, Thursday, Zoë."},
    {"prompt": ""},
    {"temperature": 0},
    {"temperature": 0.35},
    {"temperature": 1.0},
    {"language": "de", "prompt": "Guten Tag", "temperature": 0.5},
    {"gateway": Gateway(id="my-gateway")},
    {"gateway": Gateway(id="gw_2", cache_ttl=3600, skip_cache=True)},
]


@pytest.mark.parametrize("call", GOOD_CALLS, ids=lambda c: ",".join(sorted(c)) or "plain")
async def test_our_bodies_draw_no_violation(prism: str, call: dict[str, Any]) -> None:
    client = Client(_credentials(prism), gateway=call.get("gateway"))
    params = {k: v for k, v in call.items() if k != "gateway"}
    body = build_body(_uri(1), gateway=call.get("gateway"), **params)
    status, violations, answer = await _raw_post(client.url, body)
    assert violations == []
    assert status == 200
    assert answer["result"]["text"] == "Hello"
    async with client:
        assert await client.transcribe(_uri(2), **params) == "Hello"


async def test_an_https_url_file_draws_no_violation(prism: str) -> None:
    async with Client(_credentials(prism)) as client:
        status, violations, _ = await _raw_post(
            client.url, build_body("https://example.com/audio/meeting.mp3", language="en")
        )
        assert (status, violations) == (200, [])
        assert await client.transcribe("https://example.com/audio/meeting.mp3") == "Hello"


def test_a_dataframe_run_gets_hello_on_every_row(
    prism: str, tmp_path: Path, samples: list[Any]
) -> None:
    paths = []
    for i in range(4):
        path = tmp_path / f"clip{i}.wav"
        path.write_bytes(wav_bytes(100 + i, 0.3))
        paths.append(str(path))
    paths.append(str(samples[1].path))  # flac, sent as is
    df = pd.DataFrame(
        {"audio": paths, "lang": ["en", "fr", None, "de", "en"]},
        index=pd.Index([10, 20, 30, 40, 50], name="id"),
    )
    out = df.cfai.transcribe(
        "audio",
        language="lang",
        prompt="Meeting notes.",
        temperature=0.2,
        cache=False,
        progress=False,
        errors="raise",
        account_id=ACCOUNT,
        api_token=TOKEN,
        base_url=prism,
    )
    assert out["audio_text"].tolist() == ["Hello"] * 5
    assert out.index.equals(df.index)


BAD_BODIES: dict[str, dict[str, Any]] = {
    "temperature-1.5": {
        "model": "openai/gpt-4o-transcribe",
        "input": {"file": "F", "temperature": 1.5},
    },
    "temperature-string": {
        "model": "openai/gpt-4o-transcribe",
        "input": {"file": "F", "temperature": "0.5"},
    },
    "missing-file": {"model": "openai/gpt-4o-transcribe", "input": {"language": "en"}},
    "language-eng": {
        "model": "openai/gpt-4o-transcribe",
        "input": {"file": "F", "language": "eng"},
    },
    "file-not-uri": {"model": "openai/gpt-4o-transcribe", "input": {"file": "/tmp/a.wav"}},
    "other-model": {"model": "@cf/openai/whisper", "input": {"file": "F"}},
    "missing-input": {"model": "openai/gpt-4o-transcribe"},
    "null-prompt": {"model": "openai/gpt-4o-transcribe", "input": {"file": "F", "prompt": None}},
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
async def test_bad_bodies_draw_violations(prism: str, name: str) -> None:
    body = json.loads(json.dumps(BAD_BODIES[name]).replace('"F"', json.dumps(_uri(3))))
    url = Client(_credentials(prism)).url
    status, violations, _ = await _raw_post(url, body)
    assert status == 400
    assert violations, "Prism found nothing wrong with a bad body"
    assert all(v["location"][:2] == ["request", "body"] for v in violations), violations


@pytest.mark.parametrize(
    "params",
    [{"temperature": 1.5}, {"temperature": -0.1}, {"language": "english"}, {"model": ""}],
    ids=["temperature-1.5", "temperature-negative", "language-english", "model-empty"],
)
async def test_the_client_never_sends_what_prism_would_refuse(
    prism: str, params: dict[str, Any]
) -> None:
    async with Client(_credentials(prism)) as client:
        with pytest.raises(ConfigurationError):
            await client.transcribe(_uri(4), **params)
