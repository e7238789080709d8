"""Fuzz the client's answer parsing with whatever a server might send back.

A tiny real ``aiohttp.web`` server on 127.0.0.1 (one per module, in its own
thread) answers each request with the status, headers and body that the test
registered for the request's account id. Hypothesis draws those: statuses
100-599, JSON of any shape, Cloudflare-like envelopes with odd fields, bytes
that are not JSON or not UTF-8, HTML pages, garbage ``Retry-After`` values and
content types, and bodies that echo the API token.

The invariants, for every answer:

- ``Client.transcribe`` raises nothing outside the error tree (every exception
  is a :class:`TranscribeError`);
- it returns a ``str`` exactly when the status is 2xx and the body is a JSON
  object with ``result.text`` a string (and ``success`` not false), and then
  that string;
- no error message or repr holds the token; ``retry_after`` is None or a
  finite number >= 0.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cf_transcribe_pandas.client import Client, Credentials
from cf_transcribe_pandas.errors import TranscribeError

TOKEN = "fuzzTOKEN-7c1f9a2e4b6d8f0a"
FILE = "data:audio/wav;base64,UklGRiQAAABXQVZFZm10IBAAAAABAAEAgD4AAAB9AAACABAAZGF0YQAAAAA="


@dataclass(frozen=True)
class Answer:
    """What the server sends back for one request."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return f"Answer({self.status}, {body!r} ({len(self.body)} bytes), {self.headers!r})"


class FuzzServer:
    """An aiohttp.web server in a thread; answers per account id from ``answers``."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fuzz-server", daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        answer = self.answers.pop(request.match_info["account"])
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/client/v4/accounts/{account}/ai/run", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(30), "the fuzz server did not start"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def server() -> Iterator[FuzzServer]:
    srv = FuzzServer()
    srv.start()
    yield srv
    srv.stop()


_accounts = itertools.count()


def ask(server: FuzzServer, answer: Answer) -> tuple[str | None, BaseException | None]:
    """Send one request answered with ``answer``; return (text, exception)."""
    account = f"acct{next(_accounts)}"
    server.answers[account] = answer
    creds = Credentials(account, TOKEN, f"http://127.0.0.1:{server.port}/client/v4")
    # An informational status is never followed by a final answer: the client
    # can only time out, so do not make it wait long for that.
    timeout = 0.5 if answer.status < 200 and answer.status != 101 else 30.0

    async def go() -> str:
        async with Client(creds, timeout=timeout) as client:
            return await client.transcribe(FILE)

    try:
        return asyncio.run(go()), None
    except BaseException as exc:  # the test inspects whatever came out
        return None, exc
    finally:
        server.answers.pop(account, None)


def expected_text(answer: Answer) -> str | None:
    """The text the client must return for ``answer``, or None when it must raise."""
    if not 200 <= answer.status < 300 or answer.status in (204, 304):
        return None  # aiohttp sends no body with 204/304
    try:
        parsed = json.loads(answer.body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict) or parsed.get("success") is False:
        return None
    result = parsed.get("result")
    if isinstance(result, dict) and isinstance(result.get("text"), str):
        return str(result["text"])
    return None


# --------------------------------------------------------------------------- strategies

_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.just(TOKEN)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_codes = st.sampled_from([3036, 3040, 3006, 3007, 3008, 5004, 3003, 5007, 3042, 3023, 10000, 7003])
_code = _codes | st.integers(-5, 99999) | st.text(max_size=6) | st.none() | st.booleans()
_error_item = (
    st.fixed_dictionaries(
        {},
        optional={
            "code": _code,
            "message": st.text(max_size=60) | st.just(f"token {TOKEN} refused") | _json,
        },
    )
    | _json
)
_envelope = st.fixed_dictionaries(
    {},
    optional={
        "success": st.booleans() | _json_leaf,
        "errors": st.lists(_error_item, max_size=3) | _error_item,
        "error": _error_item,
        "messages": st.lists(_json, max_size=2),
        "message": st.text(max_size=40) | st.just(TOKEN),
        "result": st.none()
        | st.fixed_dictionaries({}, optional={"text": st.text(max_size=40) | _json_leaf})
        | _json,
        "state": st.text(max_size=10),
        "gatewayMetadata": _json,
    },
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


_bodies = st.one_of(
    _envelope.map(_dumps),
    _json.map(_dumps),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8")),
    st.builds(
        lambda title, extra: (
            f"<html><head><title>{title}</title></head><body>{extra}</body></html>"
        ).encode(),
        st.text(max_size=30),
        st.text(max_size=30) | st.just(TOKEN),
    ),
    # Nesting the json module can still decode; deeper is the separate test below.
    st.integers(1, 300).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 300).map(lambda depth: b'{"result":' * depth + b"1" + b"}" * depth),
)
_retry_after = (
    _printable
    | st.floats(allow_nan=True, allow_infinity=True).map(str)
    | st.integers(-(10**30), 10**30).map(str)
    | st.from_regex(
        r"\A(Mon|Tue|Xyz), \d{1,2} (Jan|Feb|Foo) \d{1,9} \d{1,2}:\d{1,2}:\d{1,2} (GMT|[+-]\d{4})\Z"
    )
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": _retry_after,
        "Content-Type": st.sampled_from(
            ["application/json", "text/html", "text/plain", "application/octet-stream", ""]
        )
        | _printable,
        "Location": _printable | st.just(f"https://example.com/?token={TOKEN}"),
        "X-Odd": _printable,
        "CF-Ray": _printable,
    },
)
# Informational answers (other than 101) leave the client waiting until its
# timeout: they have their own test below, so hypothesis does not spend its time there.
_statuses = st.just(101) | st.integers(200, 599)
_answers = st.builds(Answer, status=_statuses, body=_bodies, headers=_headers)


def check(answer: Answer, text: str | None, exc: BaseException | None) -> None:
    expected = expected_text(answer)
    if exc is not None:
        assert isinstance(exc, TranscribeError), f"{type(exc).__name__}: {exc!r} for {answer!r}"
        assert expected is None, f"raised {exc!r} for a good answer {answer!r}"
        for shown in (str(exc), repr(exc), exc.message, *map(str, exc.args)):
            assert TOKEN not in shown
        assert exc.retry_after is None or (
            math.isfinite(exc.retry_after) and exc.retry_after >= 0
        ), exc.retry_after
        assert exc.__cause__ is None or isinstance(exc.__cause__, TranscribeError)
    else:
        assert isinstance(text, str)
        assert text == expected, f"returned {text!r} for {answer!r}"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answer=_answers)
@example(answer=Answer(200, b'{"result": {"text": "Hello"}, "state": "Completed"}'))
@example(answer=Answer(200, b'{"success": false, "result": {"text": "Hello"}}'))
@example(answer=Answer(429, b"[1]", {"Retry-After": "1e999"}))
@example(answer=Answer(429, b"", {"Retry-After": "Mon, 01 Jan 999999999 00:00:00 GMT"}))
@example(answer=Answer(204, b'{"result": {"text": "Hello"}}'))
@example(answer=Answer(101, b""))
@example(answer=Answer(500, f"<html>{TOKEN}</html>".encode(), {"Content-Type": "text/html"}))
def test_any_answer_gives_text_or_an_error_of_the_tree(server: FuzzServer, answer: Answer) -> None:
    text, exc = ask(server, answer)
    check(answer, text, exc)


@pytest.mark.parametrize("status", [100, 102, 103, 150, 199])
def test_an_informational_answer_alone_is_a_timeout(server: FuzzServer, status: int) -> None:
    text, exc = ask(server, Answer(status, b'{"result": {"text": "Hello"}}'))
    check(Answer(status, b""), text, exc)
    assert isinstance(exc, TranscribeError)
    assert exc.retryable


@pytest.mark.parametrize("status", [200, 503])
def test_deeply_nested_json_is_an_error_of_the_tree(server: FuzzServer, status: int) -> None:
    # json.loads raises RecursionError, not ValueError, on JSON nested this deep;
    # the client must still answer with an error of the tree (a proxy or a broken
    # service can send anything).
    text, exc = ask(server, Answer(status, b"[" * 100_000 + b"]" * 100_000))
    assert text is None
    assert isinstance(exc, TranscribeError), repr(exc)
