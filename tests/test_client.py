"""The Workers AI client, over real HTTP on 127.0.0.1.

Three kinds of servers answer here, all real sockets on loopback:

* the emulator (fixture ``emulator``) for the normal conversation and the
  faults it can produce;
* ``FakeCloudflare``, a tiny aiohttp.web app started per test that returns
  canned answers the emulator cannot produce (HTML 502 pages, malformed JSON,
  an HTTP-date Retry-After, 408s, redirects...) and echoes the Authorization
  header into its error texts to prove the token is redacted;
* raw asyncio socket servers that close or reset the connection.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import pickle
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.client import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    GATEWAY_BASE_URL,
    USER_AGENT,
    Client,
    Credentials,
    Gateway,
    build_body,
    normalize_language,
    parse_retry_after,
    validate_params,
)
from cf_transcribe_pandas.client.models import MODELS, Gpt4oTranscribe, adapter_for
from cf_transcribe_pandas.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    ModelNotFoundError,
    NetworkError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ServiceError,
    ServiceTimeoutError,
    TranscribeError,
)

TOKEN = "cfut_Secr3tT0ken-DoNotLeak-8d7f6e5a4b3c2d1e"
ACCOUNT = "0123456789abcdef0123456789abcdef"
AUDIO_BYTES = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(range(64))
AUDIO_B64 = base64.b64encode(AUDIO_BYTES).decode()
AUDIO_URI = "data:audio/wav;base64," + AUDIO_B64
DATA = Path(__file__).parent / "data" / "audio"
ENV_NAMES = ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def envelope(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": []}


def assert_token_hidden(exc: BaseException, records: Sequence[logging.LogRecord] = ()) -> None:
    texts = [str(exc), repr(exc), repr(exc.args), repr(vars(exc))]
    if isinstance(exc, TranscribeError):
        texts.append(exc.message)
    for text in texts:
        assert TOKEN not in text
    assert TOKEN.encode() not in pickle.dumps(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None
    for rec in records:
        assert TOKEN not in rec.getMessage()
        assert TOKEN not in repr(rec.args)


# --------------------------------------------------------------------------- servers


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Canned:
    status: int = 200
    body: Any = field(default_factory=lambda: {"result": {"text": "Hello"}})
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class FakeCloudflare:
    """A real aiohttp.web server answering every request with ``self.canned``.

    ``{auth}`` anywhere in a canned body or header value is replaced by the
    request's Authorization header, to prove the client redacts what it copies.
    """

    def __init__(self) -> None:
        self.canned = Canned()
        self.requests: list[Seen] = []
        self.hold = False
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.base_url = ""
        self.root = ""
        self.transports: list[asyncio.BaseTransport] = []

    def open_connections(self) -> int:
        return len({id(t) for t in self.transports if not t.is_closing()})

    async def wait_disconnected(self) -> None:
        """Return once every connection a client opened is closed (fail after ~10 s)."""
        for _ in range(1000):
            if not self.open_connections():
                return
            await asyncio.sleep(0.01)
        pytest.fail(f"{self.open_connections()} connection(s) still open")

    def answer(
        self,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.canned = Canned(status, body, dict(headers or {}), content_type)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(Seen(request.method, request.path, dict(request.headers), raw))
        if request.transport is not None:
            self.transports.append(request.transport)
        self.arrived.set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold:
                await self.release.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        auth = request.headers.get("Authorization", "")
        canned = self.canned
        body = canned.body
        if isinstance(body, (dict, list)):
            text = json.dumps(body)
            content_type = canned.content_type or "application/json"
        else:
            text = "" if body is None else str(body)
            content_type = canned.content_type or "text/plain"
        headers = {k: v.replace("{auth}", auth) for k, v in canned.headers.items()}
        headers["Content-Type"] = content_type
        return web.Response(
            status=canned.status, body=text.replace("{auth}", auth).encode(), headers=headers
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeCloudflare]:
    fc = FakeCloudflare()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fc.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fc.root = str(server.make_url("")).rstrip("/")
    fc.base_url = fc.root + "/client/v4"
    try:
        yield fc
    finally:
        fc.release.set()
        await server.close()


def creds(base_url: str, account_id: str = ACCOUNT, token: str = TOKEN) -> Credentials:
    return Credentials(account_id=account_id, api_token=token, base_url=base_url)


async def transcribe_with(fake: FakeCloudflare, **kwargs: Any) -> str:
    client_kwargs = {k: kwargs.pop(k) for k in ("timeout", "gateway") if k in kwargs}
    async with Client(creds(fake.base_url), **client_kwargs) as client:
        return await client.transcribe(kwargs.pop("file", AUDIO_URI), **kwargs)


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Start raw TCP servers that misbehave; yields a factory returning a base URL."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(behaviour: str) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            if behaviour == "close":
                writer.close()
            elif behaviour == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            elif behaviour == "garbage":
                writer.write(b"this is not HTTP\r\n\r\n")
                await writer.drain()
                writer.close()
            elif behaviour == "short-body":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 100\r\n\r\n{"result": {"te'
                )
                await writer.drain()
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/client/v4"

    try:
        yield start
    finally:
        for writer in writers:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


# --------------------------------------------------------------------------- credentials


def test_credentials_from_arguments() -> None:
    c = Credentials.resolve(account_id=ACCOUNT, api_token=TOKEN, base_url="http://x.test/v4/")
    assert (c.account_id, c.api_token, c.base_url) == (ACCOUNT, TOKEN, "http://x.test/v4")


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    c = Credentials.resolve()
    assert (c.account_id, c.api_token, c.base_url) == (ACCOUNT, TOKEN, DEFAULT_BASE_URL)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/client/v4///")
    assert Credentials.resolve().base_url == "http://127.0.0.1:9/client/v4"


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "env-account")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "env-token-value")
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://env.test")
    c = Credentials.resolve(account_id=ACCOUNT, api_token=TOKEN, base_url="https://arg.test")
    assert (c.account_id, c.api_token, c.base_url) == (ACCOUNT, TOKEN, "https://arg.test")


def test_values_are_stripped_and_empty_base_url_env_means_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", f"  {ACCOUNT}\n")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", f"{TOKEN}\n")
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "")
    c = Credentials.resolve()
    assert (c.account_id, c.api_token, c.base_url) == (ACCOUNT, TOKEN, DEFAULT_BASE_URL)


def test_missing_both_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as info:
        Credentials.resolve()
    msg = str(info.value)
    assert "CLOUDFLARE_ACCOUNT_ID" in msg
    assert "CLOUDFLARE_API_TOKEN" in msg
    assert "account_id=" in msg
    assert "api_token=" in msg
    assert info.value.code == "missing_credentials"


def test_missing_token_names_only_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_API_TOKEN") as info:
        Credentials.resolve()
    assert "CLOUDFLARE_ACCOUNT_ID" not in str(info.value)


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_empty_values_count_as_missing(monkeypatch: pytest.MonkeyPatch, empty: str) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", empty)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_ACCOUNT_ID") as info:
        Credentials.resolve()
    assert "CLOUDFLARE_API_TOKEN" not in str(info.value)
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_API_TOKEN"):
        Credentials.resolve(account_id=ACCOUNT, api_token=empty)


@pytest.mark.parametrize(
    "url",
    [
        "api.cloudflare.com/client/v4",
        "ftp://x.test",
        "http://",
        "",
        "https://x?y=1",
        "https://user:pw@x.test/client/v4",
    ],
)
def test_base_url_needs_http_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base") as info:
        Credentials.resolve(account_id=ACCOUNT, api_token=TOKEN, base_url=url)
    assert info.value.code == "invalid_base_url"


def test_token_that_cannot_be_a_header_is_refused_without_echoing_it() -> None:
    bad = TOKEN[:10] + " " + TOKEN[10:]
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_API_TOKEN") as info:
        Credentials(account_id=ACCOUNT, api_token=bad)
    assert TOKEN[:10] not in str(info.value)
    assert TOKEN[10:] not in repr(info.value)


@pytest.mark.parametrize("account", ["a/b", "acc ount", "../x", "acc?x"])
def test_malformed_account_id_is_refused(account: str) -> None:
    with pytest.raises(ConfigurationError, match="account id"):
        Credentials(account_id=account, api_token=TOKEN)


def test_credentials_repr_hides_token() -> None:
    c = Credentials(account_id=ACCOUNT, api_token=TOKEN)
    assert TOKEN not in repr(c)
    assert TOKEN not in str(c)
    assert ACCOUNT in repr(c)
    assert c == Credentials.resolve(account_id=ACCOUNT, api_token=TOKEN)


def test_credentials_are_frozen() -> None:
    c = Credentials(account_id=ACCOUNT, api_token=TOKEN)
    with pytest.raises(AttributeError):
        c.api_token = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- gateway


def test_gateway_coerce() -> None:
    assert Gateway.coerce(None) is None
    gw = Gateway(id="gw")
    assert Gateway.coerce(gw) is gw
    assert Gateway.coerce("my-gw") == Gateway(id="my-gw")
    assert Gateway.coerce({"id": "g", "cacheTtl": 60, "skipCache": True}) == Gateway(
        id="g", cache_ttl=60, skip_cache=True
    )
    assert Gateway.coerce({"id": "g", "cache_ttl": 5, "use_gateway_url": True}) == Gateway(
        id="g", cache_ttl=5, use_gateway_url=True
    )


@pytest.mark.parametrize(
    "value",
    [
        {"cache_ttl": 5},
        {"id": "g", "ttl": 5},
        {"id": "g", "cache_ttl": -1},
        {"id": "g", "cache_ttl": True},
        {"id": "g", "cache_ttl": 1.5},
        {"id": "g", "skip_cache": "yes"},
        {"id": "g", "use_gateway_url": 1},
        {"id": "g", "base_url": "gateway.test"},
        "",
        "a/b",
        42,
    ],
)
def test_gateway_coerce_rejects(value: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"(?i)gateway"):
        Gateway.coerce(value)


def test_gateway_options_and_headers_hold_only_set_keys() -> None:
    assert Gateway(id="g").options() == {"id": "g"}
    assert Gateway(id="g").headers() == {}
    full = Gateway(id="g", cache_ttl=0, skip_cache=False)
    assert full.options() == {"id": "g", "cacheTtl": 0, "skipCache": False}
    assert full.headers() == {"cf-aig-cache-ttl": "0", "cf-aig-skip-cache": "false"}


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("given", "expected"), [(None, None), ("en", "en"), ("EN", "en"), (" Fr ", "fr")]
)
def test_normalize_language(given: str | None, expected: str | None) -> None:
    assert normalize_language(given) == expected


@pytest.mark.parametrize(
    ("language", "hint"),
    [
        ("eng", "two letters"),
        ("en-US", "'en'"),
        ("pt_BR", "'pt'"),
        ("", "two letters"),
        ("e1", "two letters"),
        ("é", "two letters"),
        (1, "str"),
    ],
)
def test_bad_language(language: Any, hint: str) -> None:
    with pytest.raises(ConfigurationError, match="language") as info:
        validate_params(model=DEFAULT_MODEL, language=language, temperature=None)
    assert hint in str(info.value)
    assert info.value.code == "invalid_language"


@pytest.mark.parametrize("temperature", [0, 1, 0.0, 0.25, 1.0])
def test_good_temperature(temperature: float) -> None:
    validate_params(model=DEFAULT_MODEL, language="en", temperature=temperature)


def test_numpy_temperature_is_accepted_and_sent_as_float() -> None:
    np = pytest.importorskip("numpy")
    validate_params(model=DEFAULT_MODEL, language=None, temperature=np.float32(0.5))
    body = build_body(AUDIO_URI, temperature=np.float32(0.5))
    assert type(body["input"]["temperature"]) is float
    json.dumps(body)


@pytest.mark.parametrize("temperature", [1.5, -0.1, float("nan"), float("inf"), True, "0.5"])
def test_bad_temperature(temperature: Any) -> None:
    with pytest.raises(ConfigurationError, match="from 0 to 1"):
        validate_params(model=DEFAULT_MODEL, language=None, temperature=temperature)


@pytest.mark.parametrize("model", ["", "  ", None, 3, "openai/ gpt"])
def test_bad_model(model: Any) -> None:
    with pytest.raises(ConfigurationError, match="model"):
        validate_params(model=model, language=None, temperature=None)


def test_bad_prompt() -> None:
    with pytest.raises(ConfigurationError, match="prompt"):
        validate_params(model=DEFAULT_MODEL, language=None, temperature=None, prompt=b"x")


def test_each_model_has_its_adapter_and_other_names_get_the_unified_form() -> None:
    assert list(MODELS) == [DEFAULT_MODEL, "@cf/openai/whisper-large-v3-turbo"]
    assert adapter_for(DEFAULT_MODEL) is MODELS[DEFAULT_MODEL]
    other = adapter_for("@cf/openai/whisper")
    assert other.name == "@cf/openai/whisper"
    assert build_body(AUDIO_URI, model=other.name) == {
        "model": "@cf/openai/whisper",
        "input": {"file": AUDIO_URI},
    }


def test_an_adapter_refuses_an_option_its_model_does_not_take() -> None:
    class NoTemperature(Gpt4oTranscribe):
        options = ("language", "prompt")

    adapter = NoTemperature("@cf/example/model")
    assert adapter.check({"language": "EN", "temperature": None}) == {"language": "en"}
    with pytest.raises(ConfigurationError, match="does not take temperature") as info:
        adapter.check({"language": "en", "temperature": 0.5})
    assert info.value.code == "invalid_option"
    assert "language, prompt" in info.value.message


def test_build_body_leaves_out_unset_fields() -> None:
    assert build_body(AUDIO_URI) == {"model": DEFAULT_MODEL, "input": {"file": AUDIO_URI}}
    body = build_body(AUDIO_URI, language="DE", prompt="", temperature=0)
    assert body["input"] == {"file": AUDIO_URI, "language": "de", "prompt": "", "temperature": 0.0}


@pytest.mark.parametrize("file", ["/tmp/a.wav", "http://x.test/a.wav", b"data:", "", None])
def test_build_body_needs_a_data_uri_or_https_url(file: Any) -> None:
    with pytest.raises(ConfigurationError, match="data URI"):
        build_body(file)


def test_build_body_with_gateway() -> None:
    body = build_body(AUDIO_URI, gateway=Gateway(id="g", cache_ttl=10))
    assert body["options"] == {"gateway": {"id": "g", "cacheTtl": 10}}
    assert "options" not in build_body(AUDIO_URI, gateway=Gateway(id="g", use_gateway_url=True))


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("-3") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(90.0)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0


# --------------------------------------------------------------------------- client object


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"timeout": True},
        {"timeout": "5"},
        {"timeout": float("nan")},
        {"max_connections": 0},
        {"max_connections": 1.5},
        {"max_connections": True},
        {"gateway": {"cache_ttl": 1}},
    ],
)
def test_client_rejects_bad_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Client(creds("http://127.0.0.1:9"), **kwargs)


def test_client_needs_credentials_object() -> None:
    with pytest.raises(ConfigurationError, match="Credentials"):
        Client({"account_id": ACCOUNT, "api_token": TOKEN})  # type: ignore[arg-type]


def test_client_can_be_built_outside_a_loop_and_hides_the_token() -> None:
    client = Client(creds(DEFAULT_BASE_URL), gateway="gw", timeout=12.5)
    text = repr(client)
    assert TOKEN not in text
    assert ACCOUNT in text
    assert "gw" in text
    assert client.url == f"{DEFAULT_BASE_URL}/accounts/{ACCOUNT}/ai/run"
    assert client.timeout == 12.5
    assert client.gateway == Gateway(id="gw")
    assert not client.closed


def test_gateway_url_form() -> None:
    client = Client(creds(DEFAULT_BASE_URL), gateway={"id": "my-gw", "use_gateway_url": True})
    assert client.url == (f"{GATEWAY_BASE_URL}/{ACCOUNT}/my-gw/workers-ai/openai/gpt-4o-transcribe")
    assert GATEWAY_BASE_URL == "https://gateway.ai.cloudflare.com/v1"
    assert client.url_for("@cf/openai/whisper").endswith("/workers-ai/@cf/openai/whisper")


def test_user_agent_names_the_package_version() -> None:
    assert USER_AGENT.startswith(f"cf-transcribe-pandas/{__version__} ")
    assert f"aiohttp/{aiohttp.__version__}" in USER_AGENT


# --------------------------------------------------------------------------- the conversation


async def test_request_shape(fake: FakeCloudflare) -> None:
    assert await transcribe_with(fake) == "Hello"
    (seen,) = fake.requests
    assert seen.method == "POST"
    assert seen.path == f"/client/v4/accounts/{ACCOUNT}/ai/run"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["User-Agent"] == USER_AGENT
    assert seen.headers["Content-Type"].startswith("application/json")
    assert seen.json == {"model": DEFAULT_MODEL, "input": {"file": AUDIO_URI}}
    assert not any(k.lower().startswith("cf-aig-") for k in seen.headers)


async def test_optional_fields_are_sent_when_set(fake: FakeCloudflare) -> None:
    prompt = "Zürich, Kubernetes — 東京"
    await transcribe_with(fake, language="EN", prompt=prompt, temperature=0.3)
    assert fake.requests[0].json["input"] == {
        "file": AUDIO_URI,
        "language": "en",
        "prompt": prompt,
        "temperature": 0.3,
    }


async def test_a_prompt_with_a_lone_surrogate_is_sent_escaped(fake: FakeCloudflare) -> None:
    await transcribe_with(fake, prompt="a\ud800b")
    assert fake.requests[0].json["input"]["prompt"] == "a\ud800b"


async def test_https_url_is_passed_unchanged(fake: FakeCloudflare) -> None:
    url = "https://bucket.example.com/a%20b.wav?X-Amz-Signature=abc123"
    await transcribe_with(fake, file=url)
    assert fake.requests[0].json["input"]["file"] == url


async def test_gateway_options_in_body(fake: FakeCloudflare) -> None:
    await transcribe_with(fake, gateway={"id": "gw-1", "cacheTtl": 3600, "skipCache": False})
    seen = fake.requests[0]
    assert seen.json["options"] == {"gateway": {"id": "gw-1", "cacheTtl": 3600, "skipCache": False}}
    assert seen.path == f"/client/v4/accounts/{ACCOUNT}/ai/run"


async def test_gateway_url_sends_the_input_object_and_cache_headers(
    fake: FakeCloudflare,
) -> None:
    fake.answer(200, {"success": True, "result": {"text": "via gateway"}, "errors": []})
    gateway = Gateway(
        id="gw-1", cache_ttl=60, skip_cache=True, use_gateway_url=True, base_url=fake.root + "/v1"
    )
    assert await transcribe_with(fake, gateway=gateway, language="fr") == "via gateway"
    seen = fake.requests[0]
    assert seen.path == f"/v1/{ACCOUNT}/gw-1/workers-ai/openai/gpt-4o-transcribe"
    assert seen.json == {"file": AUDIO_URI, "language": "fr"}
    assert seen.headers["cf-aig-cache-ttl"] == "60"
    assert seen.headers["cf-aig-skip-cache"] == "true"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"gatewayMetadata": {"keySource": "Unified"}, "result": {"text": "Hi"}}, "Hi"),
        ({"success": True, "result": {"text": "Hi"}, "errors": [], "messages": []}, "Hi"),
        ({"result": {"text": "", "state": "Completed"}}, ""),
        ({"result": {"text": "Grüße, 東京"}, "state": "Completed"}, "Grüße, 東京"),
    ],
    ids=["unified", "v4-envelope", "empty-text", "unicode"],
)
async def test_success_shapes(fake: FakeCloudflare, body: Any, text: str) -> None:
    fake.answer(200, body)
    assert await transcribe_with(fake) == text


async def test_invalid_parameters_send_nothing(fake: FakeCloudflare) -> None:
    async with Client(creds(fake.base_url)) as client:
        for kwargs in ({"temperature": 1.5}, {"language": "eng"}, {"model": ""}):
            with pytest.raises(ConfigurationError):
                await client.transcribe(AUDIO_URI, **kwargs)
        with pytest.raises(ConfigurationError):
            await client.transcribe("/tmp/a.wav")
    assert fake.requests == []


@pytest.mark.parametrize(
    "gateway",
    [None, {"id": "gw-1", "cacheTtl": 60}, "use-url"],
    ids=["plain", "gateway-options", "gateway-url"],
)
async def test_the_body_sent_is_build_body(fake: FakeCloudflare, gateway: Any) -> None:
    """Every request's JSON body is build_body(...) (its input alone for the
    gateway URL form), whatever the parameters and however they repeat."""
    if gateway == "use-url":
        gateway = Gateway(id="gw-1", use_gateway_url=True, base_url=fake.root + "/v1")
    calls = [
        {},
        {"language": "EN", "prompt": 'a "quoted" \\ prompt, "file":"" \u2028 東京'},
        {"language": "EN", "temperature": 0},
        {"language": "en", "temperature": 0.25},
        {"temperature": 1},
        {"model": "@cf/openai/whisper"},
        {"file": "https://bucket.example.com/a.wav"},
        {"file": 'data:audio/wav;base64,QUJD"},"x":"y'},  # quotes in the file: still one string
        {},  # the first parameters again
    ]
    gw = Gateway.coerce(gateway)
    async with Client(creds(fake.base_url), gateway=gateway) as client:
        for call in calls:
            kwargs = dict(call)
            file = kwargs.pop("file", AUDIO_URI)
            await client.transcribe(file, **kwargs)
            body = build_body(file, gateway=gw, **kwargs)
            want = body["input"] if gw is not None and gw.use_gateway_url else body
            assert fake.requests[-1].json == want


async def test_a_bad_parameter_after_good_ones_is_refused(fake: FakeCloudflare) -> None:
    """True == 1 and hashes alike, but a bool is no temperature; a list prompt
    is a ConfigurationError, not a TypeError."""
    async with Client(creds(fake.base_url)) as client:
        await client.transcribe(AUDIO_URI, temperature=1)
        await client.transcribe(AUDIO_URI, temperature=0)
        for kwargs in ({"temperature": True}, {"temperature": False}, {"prompt": ["a"]}):
            with pytest.raises(ConfigurationError):
                await client.transcribe(AUDIO_URI, **kwargs)  # type: ignore[arg-type]
    assert len(fake.requests) == 2


# --------------------------------------------------------------------------- error mapping

HTML_502 = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway | {auth}</title></head>"
    "<body><h1>Bad gateway</h1><p>cloudflare</p></body></html>"
)

ERROR_CASES: list[tuple[str, int, Any, dict[str, str], type[TranscribeError], Any, Any]] = [
    # id, status, body, headers, class, code, retry_after
    ("401-10000", 401, envelope(10000, "Authentication error: {auth}"), {},
     AuthenticationError, 10000, None),
    ("401-bare", 401, "", {}, AuthenticationError, None, None),
    ("403-empty-json", 403, {}, {}, AuthenticationError, None, None),
    ("403-3023", 403, envelope(3023, "Account blocked {auth}"), {},
     AuthenticationError, 3023, None),
    ("400-7003", 400, envelope(7003, "Could not route, perhaps your object identifier is invalid?"),
     {}, AuthenticationError, 7003, None),
    ("429-3036", 429, envelope(3036, "Daily free allocation exceeded {auth}"),
     {"Retry-After": "3600"}, QuotaExceededError, 3036, 3600.0),
    ("429-3040", 429, envelope(3040, "Capacity temporarily exceeded {auth}"),
     {"Retry-After": "7"}, RateLimitError, 3040, 7.0),
    ("429-bare", 429, "Too Many Requests {auth}", {"Retry-After": "1.5"},
     RateLimitError, None, 1.5),
    ("429-code-string", 429, {"errors": [{"code": "3040", "message": "slow"}]}, {},
     RateLimitError, 3040, None),
    ("413-3006", 413, envelope(3006, "Request too large {auth}"), {},
     RequestTooLargeError, 3006, None),
    ("413-html", 413, "<html><title>413 Request Entity Too Large</title></html>", {},
     RequestTooLargeError, None, None),
    ("400-5004", 400, envelope(5004, "Invalid data {auth}"), {},
     InvalidRequestError, 5004, None),
    ("400-3003", 400, envelope(3003, "Incomplete request"), {},
     InvalidRequestError, 3003, None),
    ("400-5007", 400, envelope(5007, "No such model {auth}"), {},
     ModelNotFoundError, 5007, None),
    ("404-3042", 404, envelope(3042, "Invalid model ID"), {}, ModelNotFoundError, 3042, None),
    ("408-3007", 408, envelope(3007, "Request timeout"), {}, ServiceTimeoutError, 3007, None),
    ("408-3008", 408, envelope(3008, "Request aborted"), {}, ServiceTimeoutError, 3008, None),
    ("408-bare", 408, "", {}, ServiceTimeoutError, None, None),
    ("500-json", 500, envelope(1000, "Internal error {auth}"), {}, ServiceError, 1000, None),
    ("502-html", 502, HTML_502, {}, ServiceError, None, None),
    ("503-retry-after", 503, "", {"Retry-After": "30"}, ServiceError, None, 30.0),
    ("504-text", 504, "upstream timed out", {}, ServiceError, None, None),
    ("422-unknown", 422, {"error": "unprocessable {auth}"}, {}, InvalidRequestError, None, None),
    ("404-bare", 404, "Not Found", {}, InvalidRequestError, None, None),
    ("400-prism", 400, {"error": {"code": "invalid_json", "message": "bad {auth}"}}, {},
     InvalidRequestError, None, None),
    ("418-list", 418, [1, 2], {}, InvalidRequestError, None, None),
    ("200-success-false", 200, {"success": False, "errors": [{"code": 3040, "message": "x"}]},
     {}, RateLimitError, 3040, None),
    ("301-redirect", 301, "", {"Location": "https://elsewhere.test/?t={auth}"},
     ServiceError, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "code", "retry_after"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
async def test_error_mapping(
    fake: FakeCloudflare,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: Any,
    headers: dict[str, str],
    cls: type[TranscribeError],
    code: Any,
    retry_after: Any,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cf_transcribe_pandas")
    fake.answer(status, body, headers, "text/html" if "<html" in str(body) else None)
    with pytest.raises(TranscribeError) as info:
        await transcribe_with(fake)
    exc = info.value
    assert type(exc) is cls
    assert exc.code == code
    assert exc.status == status
    assert exc.retry_after == retry_after
    assert exc.retryable is cls.retryable
    assert exc.stops_run is cls.stops_run
    assert f"HTTP {status}" in exc.message
    if "{auth}" in json.dumps(body) or any("{auth}" in v for v in headers.values()):
        assert "***" in exc.message  # the echoed header was there, scrubbed
    assert_token_hidden(exc, caplog.records)
    assert len(fake.requests) == 1  # no retry inside the client


async def test_error_messages_say_what_to_do(fake: FakeCloudflare) -> None:
    fake.answer(401, envelope(10000, "Authentication error"))
    with pytest.raises(AuthenticationError) as auth:
        await transcribe_with(fake)
    assert "Cloudflare rejected the API token (HTTP 401, code 10000: Authentication error)" in (
        auth.value.message
    )
    assert "CLOUDFLARE_API_TOKEN" in auth.value.message
    assert "Workers AI" in auth.value.message
    assert ACCOUNT in auth.value.message

    fake.answer(429, envelope(3036, "Daily allocation exceeded"))
    with pytest.raises(QuotaExceededError, match="daily") as quota:
        await transcribe_with(fake)
    assert "Retrying will not help" in quota.value.message

    fake.answer(413, envelope(3006, "Request too large"))
    with pytest.raises(RequestTooLargeError, match="25 MB"):
        await transcribe_with(fake)

    fake.answer(400, envelope(5007, "No such model"))
    with pytest.raises(ModelNotFoundError, match="'openai/whisper-x'"):
        await transcribe_with(fake, model="openai/whisper-x")

    fake.answer(502, HTML_502, content_type="text/html")
    with pytest.raises(ServiceError, match="HTML page") as bad_gateway:
        await transcribe_with(fake)
    assert "502 Bad Gateway" in bad_gateway.value.message
    assert "<title>" not in bad_gateway.value.message

    fake.answer(301, "", {"Location": "https://api.cloudflare.com/client/v4/x"})
    with pytest.raises(ServiceError, match="base_url"):
        await transcribe_with(fake)


async def test_long_error_texts_are_clipped(fake: FakeCloudflare) -> None:
    fake.answer(500, "x" * 10_000)
    with pytest.raises(ServiceError) as info:
        await transcribe_with(fake)
    assert len(info.value.message) < 600


async def test_retry_after_http_date(fake: FakeCloudflare) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    fake.answer(429, envelope(3040, "slow down"), {"Retry-After": when})
    with pytest.raises(RateLimitError) as info:
        await transcribe_with(fake)
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 121


async def test_retry_after_unreadable_is_none(fake: FakeCloudflare) -> None:
    fake.answer(503, "", {"Retry-After": "whenever"})
    with pytest.raises(ServiceError) as info:
        await transcribe_with(fake)
    assert info.value.retry_after is None


BAD_SUCCESS = [
    ("not-json", "Hello there {auth}", None),
    ("html", "<html><title>Hi {auth}</title></html>", "text/html"),
    ("truncated-json", '{"result": {"text": "Hel', None),
    ("empty", "", None),
    ("result-null", {"result": None}, None),
    ("text-not-string", {"result": {"text": 5}}, None),
    ("no-text", {"success": True, "result": {"vtt": "WEBVTT"}}, None),
    ("list", [{"text": "Hi"}], None),
    ("result-string", {"result": "Hi"}, None),
]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [case[1:] for case in BAD_SUCCESS],
    ids=[case[0] for case in BAD_SUCCESS],
)
async def test_200_without_a_transcript_is_a_service_error(
    fake: FakeCloudflare, caplog: pytest.LogCaptureFixture, body: Any, content_type: str | None
) -> None:
    caplog.set_level(logging.DEBUG, logger="cf_transcribe_pandas")
    fake.answer(200, body, content_type=content_type)
    with pytest.raises(ServiceError) as info:
        await transcribe_with(fake)
    exc = info.value
    assert exc.status == 200
    assert exc.retryable
    assert "no transcript" in exc.message
    assert_token_hidden(exc, caplog.records)


# --------------------------------------------------------------------------- the network


async def test_connection_refused_is_a_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Client(creds(f"http://127.0.0.1:{port}/client/v4")) as client:
        with pytest.raises(NetworkError) as info:
            await client.transcribe(AUDIO_URI)
    exc = info.value
    assert exc.retryable
    assert not exc.stops_run
    assert exc.status is None
    assert exc.code is None
    assert exc.error_code == "connection_error"
    assert f"127.0.0.1:{port}" in exc.message
    assert_token_hidden(exc)


@pytest.mark.parametrize(
    ("behaviour", "cls"),
    [
        ("close", NetworkError),
        ("reset", NetworkError),
        ("short-body", NetworkError),
        ("garbage", ServiceError),
    ],
)
async def test_broken_connections(
    raw_server: Callable[[str], Awaitable[str]],
    caplog: pytest.LogCaptureFixture,
    behaviour: str,
    cls: type[TranscribeError],
) -> None:
    caplog.set_level(logging.DEBUG, logger="cf_transcribe_pandas")
    base_url = await raw_server(behaviour)
    async with Client(creds(base_url)) as client:
        with pytest.raises(TranscribeError) as info:
            await client.transcribe(AUDIO_URI)
    exc = info.value
    assert type(exc) is cls
    assert exc.retryable
    assert exc.status is None
    assert_token_hidden(exc, caplog.records)


async def test_client_side_timeout(fake: FakeCloudflare, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cf_transcribe_pandas")
    fake.hold = True
    with pytest.raises(ServiceTimeoutError) as info:
        await transcribe_with(fake, timeout=0.2)
    exc = info.value
    assert exc.retryable
    assert exc.status is None
    assert exc.error_code == "timeout"
    assert "0.2 s" in exc.message
    assert_token_hidden(exc, caplog.records)


async def test_cancellation_propagates(fake: FakeCloudflare) -> None:
    fake.hold = True
    async with Client(creds(fake.base_url)) as client:
        task = asyncio.ensure_future(client.transcribe(AUDIO_URI))
        await fake.arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --------------------------------------------------------------------------- session


async def test_max_connections_caps_requests_in_flight(fake: FakeCloudflare) -> None:
    fake.delay = 0.05
    async with Client(creds(fake.base_url), max_connections=2) as client:
        texts = await asyncio.gather(*(client.transcribe(AUDIO_URI) for _ in range(8)))
    assert texts == ["Hello"] * 8
    assert fake.max_in_flight == 2
    assert len(fake.requests) == 8


async def test_close_closes_the_connections_it_opened(fake: FakeCloudflare) -> None:
    client = Client(creds(fake.base_url))
    await client.transcribe(AUDIO_URI)
    assert fake.open_connections() == 1  # kept alive between requests
    await client.close()
    await fake.wait_disconnected()
    assert client.closed
    await client.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        await client.transcribe(AUDIO_URI)


async def test_a_session_passed_in_is_used_and_left_open(fake: FakeCloudflare) -> None:
    async with aiohttp.ClientSession() as session:
        async with Client(creds(fake.base_url), session=session) as client:
            assert await client.transcribe(AUDIO_URI) == "Hello"
        assert not session.closed
        async with session.get(fake.root + "/still-open") as resp:
            assert resp.status == 200


async def test_closing_after_an_error_leaves_no_open_connection(fake: FakeCloudflare) -> None:
    fake.answer(500, "boom")
    client = Client(creds(fake.base_url))
    with pytest.raises(ServiceError):
        await client.transcribe(AUDIO_URI)
    await client.close()
    await fake.wait_disconnected()


# --------------------------------------------------------------------------- logging


async def test_debug_log_has_no_token_and_no_audio(
    fake: FakeCloudflare, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cf_transcribe_pandas")
    await transcribe_with(fake, prompt="secret prompt words", language="en")
    fake.answer(401, envelope(10000, "bad token {auth}"))
    with pytest.raises(AuthenticationError):
        await transcribe_with(fake, file="https://b.test/path/file.wav?sig=SIGNATURE")
    records = [r for r in caplog.records if r.name == "cf_transcribe_pandas.client"]
    assert records
    text = "\n".join(r.getMessage() for r in records)
    assert "POST" in text
    assert f"/accounts/{ACCOUNT}/ai/run" in text
    assert "HTTP 200" in text
    assert "AuthenticationError" in text
    assert TOKEN not in text
    assert AUDIO_B64 not in text
    assert "secret prompt words" not in text
    assert "SIGNATURE" not in text
    assert all(r.levelno == logging.DEBUG for r in records)


# --------------------------------------------------------------------------- the emulator

SAMPLES = Path(__file__).parent.parent / "cf_transcribe_pandas" / "samples"
SAMPLE_TEXT = "The quarterly report shows revenue growth in every region."


def sample_uri(name: str = "s00_en_wav.wav", mime: str = "audio/wav") -> str:
    return f"data:{mime};base64," + base64.b64encode((SAMPLES / name).read_bytes()).decode()


def emu_creds(emu: Any, **overrides: str) -> Credentials:
    values = {"account_id": emu.account_id, "api_token": emu.token, "base_url": emu.base_url}
    values.update(overrides)
    return Credentials(**values)


async def emu_transcribe(emu: Any, file: str | None = None, **kwargs: Any) -> str:
    client_kwargs = {k: kwargs.pop(k) for k in ("timeout", "gateway") if k in kwargs}
    cred_kwargs = {k: kwargs.pop(k) for k in ("account_id", "api_token", "base_url") if k in kwargs}
    async with Client(emu_creds(emu, **cred_kwargs), **client_kwargs) as client:
        return await client.transcribe(file or sample_uri(), **kwargs)


async def test_emulator_round_trip(emulator: Any) -> None:
    assert await emu_transcribe(emulator) == SAMPLE_TEXT
    (entry,) = emulator.requests()
    assert entry["status"] == 200
    assert entry["form"] == "unified"
    assert entry["user_agent"] == USER_AGENT
    assert entry["model"] == DEFAULT_MODEL
    assert entry["file_kind"] == "data"
    assert entry["mime"] == "audio/wav"
    assert entry["sha256"] == "9b6e4afd422745c23fb0e8421ab035e93468e89b1e1f29cf3cac5a0906eb0fde"
    assert set(entry["body"]["input"]) == {"file"}  # optional fields left out, not null
    assert "options" not in entry["body"]


async def test_emulator_sees_optional_fields(emulator: Any) -> None:
    await emu_transcribe(emulator, language="EN", prompt="Quarterly report.", temperature=0.2)
    (entry,) = emulator.requests()
    assert (entry["language"], entry["prompt"], entry["temperature"]) == (
        "en",
        "Quarterly report.",
        0.2,
    )
    assert set(entry["body"]["input"]) == {"file", "language", "prompt", "temperature"}


async def test_emulator_https_url(emulator: Any) -> None:
    url = "https://audio.example.com/clip.wav"
    emulator.register({url: "from a URL"})
    assert await emu_transcribe(emulator, url) == "from a URL"
    (entry,) = emulator.requests()
    assert (entry["file_kind"], entry["url"]) == ("url", url)


async def test_emulator_gateway_in_body(emulator: Any) -> None:
    await emu_transcribe(emulator, gateway={"id": "gw-1", "cache_ttl": 300, "skip_cache": True})
    (entry,) = emulator.requests()
    assert entry["gateway"] == {"id": "gw-1", "via": "body", "cacheTtl": 300, "skipCache": True}


async def test_emulator_gateway_url(emulator: Any) -> None:
    root = emulator.base_url.removesuffix("/client/v4")
    gateway = Gateway(id="gw-2", use_gateway_url=True, base_url=root + "/v1")
    assert await emu_transcribe(emulator, gateway=gateway) == SAMPLE_TEXT
    (entry,) = emulator.requests()
    assert entry["form"] == "per_model"
    assert entry["model"] == DEFAULT_MODEL
    assert entry["gateway"]["id"] == "gw-2"
    assert entry["path"] == f"/v1/{emulator.account_id}/gw-2/workers-ai/{DEFAULT_MODEL}"


async def test_emulator_wrong_token(emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cf_transcribe_pandas")
    with pytest.raises(AuthenticationError) as info:
        await emu_transcribe(emulator, api_token=TOKEN)
    exc = info.value
    assert (exc.status, exc.code, exc.stops_run, exc.retryable) == (401, 10000, True, False)
    assert "CLOUDFLARE_API_TOKEN" in exc.message
    assert_token_hidden(exc, caplog.records)


async def test_emulator_wrong_account(emulator: Any) -> None:
    with pytest.raises(AuthenticationError) as info:
        await emu_transcribe(emulator, account_id="someone-else")
    assert (info.value.status, info.value.code) == (403, 10000)
    assert "someone-else" in info.value.message


async def test_emulator_blocked_account(emulator: Any) -> None:
    emulator.set_faults(blocked=True)
    with pytest.raises(AuthenticationError, match="blocked") as info:
        await emu_transcribe(emulator)
    assert (info.value.status, info.value.code) == (403, 3023)


async def test_emulator_wrong_base_url_stops_the_run(emulator: Any) -> None:
    with pytest.raises(AuthenticationError, match="base_url") as info:
        await emu_transcribe(emulator, base_url=emulator.base_url + "/oops")
    assert (info.value.status, info.value.code) == (404, 7000)


async def test_emulator_not_audio(emulator: Any) -> None:
    text_uri = "data:audio/wav;base64," + base64.b64encode(b"just some text, not audio").decode()
    with pytest.raises(InvalidRequestError) as info:
        await emu_transcribe(emulator, text_uri)
    exc = info.value
    assert (exc.status, exc.code, exc.retryable, exc.stops_run) == (400, 5004, False, False)


async def test_emulator_unknown_model(emulator: Any) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        await emu_transcribe(emulator, model="openai/gpt-9-transcribe")
    assert (info.value.status, info.value.code) == (400, 5007)
    assert "openai/gpt-9-transcribe" in info.value.message


async def test_emulator_too_large(emulator: Any) -> None:
    emulator.set_faults(max_body_bytes=10_000)
    with pytest.raises(RequestTooLargeError) as info:
        await emu_transcribe(emulator)
    assert (info.value.status, info.value.code, info.value.retryable) == (413, 3006, False)


async def test_emulator_rate_limit_is_not_retried(emulator: Any) -> None:
    emulator.set_faults(rpm_limit=1)
    async with Client(emu_creds(emulator)) as client:
        assert await client.transcribe(sample_uri()) == SAMPLE_TEXT
        with pytest.raises(RateLimitError) as info:
            await client.transcribe(sample_uri())
    exc = info.value
    assert (exc.status, exc.code, exc.retryable, exc.stops_run) == (429, 3040, True, False)
    assert exc.retry_after is not None
    assert exc.retry_after >= 1
    assert [e["status"] for e in emulator.requests()] == [200, 429]


async def test_emulator_p429_retry_after(emulator: Any) -> None:
    emulator.set_faults(p429=1.0, retry_after=3)
    with pytest.raises(RateLimitError) as info:
        await emu_transcribe(emulator)
    assert (info.value.code, info.value.retry_after) == (3040, 3.0)


async def test_emulator_quota(emulator: Any) -> None:
    emulator.set_faults(quota=0)
    with pytest.raises(QuotaExceededError) as info:
        await emu_transcribe(emulator)
    exc = info.value
    assert (exc.status, exc.code, exc.stops_run, exc.retryable) == (429, 3036, True, False)
    assert exc.retry_after is None
    assert len(emulator.requests()) == 1


async def test_emulator_408(emulator: Any) -> None:
    emulator.set_faults(p408=1.0)
    with pytest.raises(ServiceTimeoutError) as info:
        await emu_transcribe(emulator)
    assert (info.value.status, info.value.code, info.value.retryable) == (408, 3007, True)


@pytest.mark.parametrize("p_html", [0.0, 1.0])
async def test_emulator_5xx(emulator: Any, p_html: float) -> None:
    emulator.set_faults(p500=1.0, p_html=p_html, error_statuses=[502])
    with pytest.raises(ServiceError) as info:
        await emu_transcribe(emulator)
    exc = info.value
    assert exc.status == 502
    assert exc.retryable
    if p_html:
        assert exc.code is None
        assert "HTML page" in exc.message
        assert "502 Bad Gateway" in exc.message
    else:
        assert exc.code is not None


async def test_emulator_connection_reset(emulator: Any) -> None:
    emulator.set_faults(p_reset=1.0)
    with pytest.raises(NetworkError) as info:
        await emu_transcribe(emulator)
    assert info.value.retryable
    assert info.value.status is None
    assert len(emulator.requests()) == 1


async def test_emulator_latency_beyond_timeout(emulator: Any) -> None:
    emulator.set_faults(latency=5.0)
    with pytest.raises(ServiceTimeoutError) as info:
        await emu_transcribe(emulator, timeout=0.2)
    assert info.value.status is None
    assert info.value.retryable


async def test_emulator_many_concurrent_requests_share_one_session(emulator: Any) -> None:
    emulator.set_faults(latency=0.02)
    async with Client(emu_creds(emulator), max_connections=4) as client:
        texts = await asyncio.gather(*(client.transcribe(sample_uri()) for _ in range(20)))
    assert texts == [SAMPLE_TEXT] * 20
    counters = emulator.counters()
    assert counters["ok"] == 20
    assert counters["max_in_flight"] <= 4


def test_a_client_belongs_to_one_event_loop(emulator: Any) -> None:
    client = Client(emu_creds(emulator))
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(client.transcribe(sample_uri())) == SAMPLE_TEXT
        with pytest.raises(RuntimeError, match="event loop"):
            second.run_until_complete(client.transcribe(sample_uri()))
        first.run_until_complete(client.close())
    finally:
        first.close()
        second.close()
    assert len(emulator.requests()) == 1


def test_credentials_pickle_for_dask_workers() -> None:
    c = Credentials(account_id=ACCOUNT, api_token=TOKEN, base_url="http://127.0.0.1:9")
    assert pickle.loads(pickle.dumps(c)) == c
