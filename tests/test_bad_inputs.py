"""The bad-input matrix: every odd file, argument and environment gets a clear error.

Three tables:

- ``ROW_CASES``: one bad or odd audio value in a frame between two good rows.
  With ``errors="coerce"`` the good rows have their text and the bad row has
  NA text and the right ``audio_text_error_code`` (or, for odd but usable
  input, a text); with ``errors="raise"`` the right class is raised and every
  row the service answered is in ``.partial`` and in the cache.
- ``ARG_CASES``: invalid arguments; a :class:`ConfigurationError` with the
  right code before anything is sent.
- ``ENV_CASES``: broken credentials or account states. A missing or malformed
  setting is a :class:`ConfigurationError` before any work; an answer about the
  account (401, 403, 3023, 3036) stops the run with ``.partial`` holding every
  finished row, all of them in the cache, and at most ``concurrency`` doomed
  requests sent.

Every case also checks that the API token (a distinctive one) appears in no
message, repr, log record (DEBUG and up), progress bar or cache file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clips import wav_bytes
from nasty_audio import (
    empty_file,
    header_only_wav,
    mulaw_wav,
    symlink_to,
    text_file,
    truncated_mp3,
    truncated_wav,
    unfinished_wav,
    video_without_audio,
    wav_6ch_24bit,
)

import cf_transcribe_pandas  # noqa: F401  (registers the accessors)
from cf_transcribe_pandas.cache import Cache, cache_key
from cf_transcribe_pandas.client import DEFAULT_MODEL, Credentials
from cf_transcribe_pandas.emulator import Emulator
from cf_transcribe_pandas.errors import (
    AudioError,
    AuthenticationError,
    ConfigurationError,
    QuotaExceededError,
    TranscribeError,
)

TOKEN = "cfTOKEN-Zq9vX3kP7mW2rT5yL0sE"
WRONG_TOKEN = "cfWRONG-Hx8cV4bN6mQ1aJ3dK9"
SECRETS = (TOKEN, WRONG_TOKEN)
ACCOUNT = "acct-bad-inputs"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, token=TOKEN, account_id=ACCOUNT, blocked_accounts=("frozen",)) as e:
        yield e


@pytest.fixture(autouse=True)
def _fresh(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    emu.reset()
    caplog.set_level(logging.DEBUG)


def placeholder(data: bytes) -> str:
    """The emulator's text for audio without a registered transcript."""
    return f"transcript of {hashlib.sha256(data).hexdigest()[:12]}"


def key_of(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return cache_key(sha, model=DEFAULT_MODEL, language=None, prompt=None, temperature=None)


def good_files(folder: Path, seed: int, n: int) -> list[Path]:
    out = []
    for i in range(n):
        path = folder / f"good_{seed}_{i}.wav"
        path.write_bytes(wav_bytes(1000 * seed + i, 0.3))
        out.append(path)
    return out


def credentials(emu: Emulator, cache: Any) -> dict[str, Any]:
    return {
        "account_id": emu.account_id,
        "api_token": TOKEN,
        "base_url": emu.base_url,
        "cache": cache,
        "progress": False,
    }


def assert_no_secret(
    *shown: object, caplog: pytest.LogCaptureFixture, cache: Path | None = None
) -> None:
    """No secret in these objects' str/repr, the log records or the cache files."""
    texts: list[str] = []
    for obj in shown:
        if obj is None:
            continue
        texts += [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            texts += [str(a) for a in obj.args]
            partial = getattr(obj, "partial", None)
            if isinstance(partial, (pd.DataFrame, pd.Series)):
                texts.append(partial.to_csv())
        if isinstance(obj, pd.DataFrame):
            texts.append(obj.to_csv())
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(repr(record.exc_info[1]))
    for secret in SECRETS:
        for text in texts:
            assert secret not in text, text[:500]
    if cache is not None and cache.exists():
        for path in cache.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in SECRETS:
                    assert secret.encode() not in data, path


def ok_shas(emu: Emulator) -> set[str]:
    return {e["sha256"] for e in emu.requests() if e["status"] == 200}


# --------------------------------------------------------------------------- row cases


@dataclass(frozen=True)
class RowCase:
    """One odd audio value; ``code`` None means the row must succeed (or be NA)."""

    name: str
    make: Callable[[Path], Any]
    error: type[TranscribeError] | None = None
    code: str | None = None
    na: bool = False  # no audio: NA text and no error
    words: tuple[str, ...] = field(default=())  # the message must say this


def _good(folder: Path) -> str:
    path = folder / "odd_but_good.wav"
    path.write_bytes(wav_bytes(77, 0.3))
    return str(path)


ROW_CASES = [
    RowCase(
        "missing file",
        lambda d: str(d / "no_such.wav"),
        AudioError,
        "file_not_found",
        words=("no_such.wav", "not found"),
    ),
    RowCase(
        "empty file",
        lambda d: str(empty_file(d / "empty.wav")),
        AudioError,
        "empty_file",
        words=("empty",),
    ),
    RowCase(
        "text named .wav",
        lambda d: str(text_file(d / "notes.wav")),
        AudioError,
        "unreadable_audio",
        words=("notes.wav", "text"),
    ),
    RowCase(
        "truncated wav",
        lambda d: str(truncated_wav(d / "cut.wav")),
        AudioError,
        "unreadable_audio",
        words=("truncated",),
    ),
    RowCase(
        "header-only wav",
        lambda d: str(header_only_wav(d / "header.wav")),
        AudioError,
        "empty_file",
        words=("no audio",),
    ),
    RowCase(
        "truncated mp3",
        lambda d: str(truncated_mp3(d / "cut.mp3")),
        AudioError,
        "unreadable_audio",
        words=("truncated",),
    ),
    RowCase(
        "video without audio",
        lambda d: str(video_without_audio(d / "silent_film.mp4")),
        AudioError,
        "no_audio_stream",
        words=("no audio",),
    ),
    RowCase("a directory", lambda d: str(d), AudioError, "unsupported_input", words=("directory",)),
    RowCase("an int", lambda d: 12345, AudioError, "unsupported_input", words=("int",)),
    RowCase("an object", lambda d: object(), AudioError, "unsupported_input", words=("object",)),
    RowCase("a list", lambda d: [1, 2, 3], AudioError, "unsupported_input", words=("list",)),
    RowCase("empty bytes", lambda d: b"", AudioError, "empty_file"),
    RowCase("garbage bytes", lambda d: b"\x00\x01garbage" * 10, AudioError, "unreadable_audio"),
    RowCase(
        "malformed data URI",
        lambda d: "data:audio/wav;base64,!!!not base64",
        AudioError,
        "unsupported_input",
        words=("base64",),
    ),
    RowCase("empty string", lambda d: "", AudioError, "unsupported_input"),
    # Plain http is not something the service takes: the row's error, found before sending.
    RowCase(
        "plain http URL",
        lambda d: "http://127.0.0.1:9/recording.wav",
        AudioError,
        "unsupported_input",
        words=("https",),
    ),
    RowCase("None", lambda d: None, na=True),
    RowCase("NaN", lambda d: math.nan, na=True),
    RowCase("pd.NA", lambda d: pd.NA, na=True),
    RowCase("unfinished wav (size field 0)", lambda d: str(unfinished_wav(d / "unfinished.wav"))),
    RowCase("mu-law wav (re-encoded)", lambda d: str(mulaw_wav(d / "phone.wav"))),
    RowCase("6-channel 24-bit wav (re-encoded)", lambda d: str(wav_6ch_24bit(d / "surround.wav"))),
    RowCase("symlink to a good file", lambda d: str(symlink_to(Path(_good(d)), d / "link.wav"))),
    RowCase("pathlib.Path", lambda d: Path(_good(d))),
]


def _row_frame(case: RowCase, folder: Path, seed: int) -> tuple[pd.DataFrame, list[Path]]:
    good = good_files(folder, seed, 2)
    bad = case.make(folder)
    index = pd.Index(["first", "odd", "last"], name="clip")
    audio = pd.Series([str(good[0]), bad, str(good[1])], index=index, dtype=object)
    frame = pd.DataFrame({"audio": audio})
    return frame, good


@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: c.name)
def test_row_case_with_errors_coerce(
    case: RowCase, emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame, good = _row_frame(case, tmp_path, ROW_CASES.index(case) + 1)
    cache = tmp_path / "cache"
    out = frame.cfai.transcribe("audio", errors="coerce", **credentials(emu, cache))
    assert out.index.equals(frame.index)
    assert out.loc["first", "audio_text"] == placeholder(good[0].read_bytes())
    assert out.loc["last", "audio_text"] == placeholder(good[1].read_bytes())
    text, message, code = out.loc[
        "odd", ["audio_text", "audio_text_error", "audio_text_error_code"]
    ]
    if case.error is None:
        assert pd.isna(message), message
        assert pd.isna(code)
        if case.na:
            assert pd.isna(text)
        else:
            assert isinstance(text, str)
            assert text.startswith("transcript of "), text
    else:
        assert pd.isna(text)
        assert isinstance(message, str)
        for word in case.words:
            assert word.lower() in message.lower(), message
        if case.code is not None:
            assert code == case.code, message
        else:
            assert code in {
                "file_not_found",
                "permission_denied",
                "empty_file",
                "unreadable_audio",
                "no_audio_stream",
                "unsupported_input",
                "fetch_failed",
            }, (code, message)
        # A local error is found before any request: only the good rows were sent.
        assert ok_shas(emu) == {hashlib.sha256(p.read_bytes()).hexdigest() for p in good}
        assert emu.counters()["requests"] == 2
    assert_no_secret(out, caplog=caplog, cache=cache)


@pytest.mark.parametrize(
    "case", [c for c in ROW_CASES if c.error is not None], ids=lambda c: c.name
)
def test_row_case_with_errors_raise(
    case: RowCase, emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame, _ = _row_frame(case, tmp_path, 100 + ROW_CASES.index(case))
    cache = tmp_path / "cache"
    assert case.error is not None
    with pytest.raises(TranscribeError) as info:
        frame.cfai.transcribe("audio", errors="raise", **credentials(emu, cache))
    exc = info.value
    assert isinstance(exc, case.error), repr(exc)
    if case.code is not None:
        assert exc.error_code == case.code
    _assert_nothing_lost(exc, emu, cache, frame)
    assert_no_secret(exc, caplog=caplog, cache=cache)


def _assert_nothing_lost(
    exc: TranscribeError, emu: Emulator, cache: Path, frame: pd.DataFrame
) -> None:
    """Every row the service answered is in ``.partial`` and in the cache."""
    partial = exc.partial
    assert isinstance(partial, pd.DataFrame)
    assert partial.index.equals(frame.index)
    answered = ok_shas(emu)
    stored = Cache(cache).lookup(
        [key_of(Path(v).read_bytes()) for v in frame["audio"] if _is_file(v)]
    )
    for value, text in zip(frame["audio"], partial["audio_text"], strict=True):
        if not _is_file(value):
            continue
        data = Path(value).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if pd.notna(text):
            assert text == placeholder(data)
            assert key_of(data) in stored, f"{value}: finished but not in the cache"
        if sha in answered:
            assert pd.notna(text), f"{value}: the service answered 200 but .partial has no text"
            assert key_of(data) in stored, f"{value}: answered 200 but not in the cache"


def _is_file(value: object) -> bool:
    return isinstance(value, (str, os.PathLike)) and os.path.isfile(value)


# --------------------------------------------------------------------------- argument cases


@dataclass(frozen=True)
class ArgCase:
    name: str
    kwargs: dict[str, Any]
    code: str
    column: str = "audio"


ARG_CASES = [
    ArgCase("unknown column", {}, "invalid_column", column="sound"),
    ArgCase('errors="bogus"', {"errors": "bogus"}, "invalid_errors"),
    ArgCase("rate_limit=0", {"rate_limit": 0}, "invalid_rate_limit"),
    ArgCase("rate_limit=-1", {"rate_limit": -1}, "invalid_rate_limit"),
    ArgCase("rate_limit=nan", {"rate_limit": math.nan}, "invalid_rate_limit"),
    ArgCase("concurrency=0", {"concurrency": 0}, "invalid_concurrency"),
    ArgCase("concurrency=2.5", {"concurrency": 2.5}, "invalid_concurrency"),
    ArgCase("temperature=1.5", {"temperature": 1.5}, "invalid_temperature"),
    ArgCase("temperature=-0.1", {"temperature": -0.1}, "invalid_temperature"),
    ArgCase('language="english"', {"language": "english"}, "invalid_language"),
    ArgCase('language="en-US"', {"language": "en-US"}, "invalid_language"),
    ArgCase("a per-row language that is bad", {"language": "lang"}, "invalid_language"),
    ArgCase('model=""', {"model": ""}, "invalid_model"),
    ArgCase("max_retries=-1", {"max_retries": -1}, "invalid_max_retries"),
    ArgCase("timeout=0", {"timeout": 0}, "invalid_timeout"),
    ArgCase("output equal to the column", {"output": "audio"}, "invalid_output"),
    ArgCase("cache is a file", {"cache": "FILE"}, "invalid_cache"),
    ArgCase('gateway="bad id!"', {"gateway": "bad id!"}, "invalid_gateway"),
]


@pytest.mark.parametrize("case", ARG_CASES, ids=lambda c: c.name)
def test_argument_case(
    case: ArgCase, emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = good_files(tmp_path, 500 + ARG_CASES.index(case), 2)
    frame = pd.DataFrame({"audio": [str(p) for p in good], "lang": ["en", "english"]})
    kwargs = dict(credentials(emu, tmp_path / "cache"), **case.kwargs)
    if kwargs["cache"] == "FILE":
        kwargs["cache"] = tmp_path / "a_file"
        kwargs["cache"].write_text("not a directory")
    with pytest.raises(ConfigurationError) as info:
        frame.cfai.transcribe(case.column, **kwargs)
    assert info.value.code == case.code, info.value.message
    assert emu.counters()["requests"] == 0  # found before any work
    assert not (tmp_path / "cache").exists()
    assert_no_secret(info.value, caplog=caplog)


ODD_BUT_FINE_ARGS = [
    ("rate_limit=np.int64(600)", {"rate_limit": np.int64(600)}),
    ("rate_limit=np.float64(600.0)", {"rate_limit": np.float64(600.0)}),
    ("concurrency=np.int64(4)", {"concurrency": np.int64(4)}),
    ("max_retries=np.int64(2)", {"max_retries": np.int64(2)}),
    ("timeout=np.int64(30)", {"timeout": np.int64(30)}),
    ("temperature=np.float64(0.5)", {"temperature": np.float64(0.5)}),
    ("language=np.str_('en')", {"language": np.str_("en")}),
    ('language=" EN "', {"language": " EN "}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"), ODD_BUT_FINE_ARGS, ids=[n for n, _ in ODD_BUT_FINE_ARGS]
)
def test_numpy_scalars_and_sloppy_values_are_accepted(
    name: str, kwargs: dict[str, Any], emu: Emulator, tmp_path: Path
) -> None:
    # Numbers often come from numpy or pandas (``series.max()``, a config read
    # with pandas): np.int64 is not an ``int`` subclass, but it is a number.
    files = good_files(tmp_path, 600 + ODD_BUT_FINE_ARGS.index((name, kwargs)), 2)
    frame = pd.DataFrame({"audio": [str(p) for p in files]})
    out = frame.cfai.transcribe("audio", **dict(credentials(emu, False), **kwargs))
    assert out["audio_text"].notna().all()


# --------------------------------------------------------------------------- environment cases


@dataclass(frozen=True)
class EnvCase:
    name: str
    error: type[TranscribeError]
    code: str | int | None
    kwargs: Callable[[Emulator], dict[str, Any]] = field(default=lambda emu: {})
    faults: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str | None] = field(default_factory=dict)
    stops_run: bool = False


ENV_CASES = [
    EnvCase("empty token", ConfigurationError, "missing_credentials", lambda e: {"api_token": ""}),
    EnvCase(
        "blank token", ConfigurationError, "missing_credentials", lambda e: {"api_token": "  "}
    ),
    EnvCase(
        "token with a space",
        ConfigurationError,
        "invalid_api_token",
        lambda e: {"api_token": TOKEN[:8] + " " + TOKEN[8:]},
    ),
    EnvCase(
        "missing account id",
        ConfigurationError,
        "missing_credentials",
        lambda e: {"account_id": None},
        env={"CLOUDFLARE_ACCOUNT_ID": None},
    ),
    EnvCase(
        "account id missing, token from the environment",
        ConfigurationError,
        "missing_credentials",
        lambda e: {"account_id": None, "api_token": None},
        env={"CLOUDFLARE_ACCOUNT_ID": None, "CLOUDFLARE_API_TOKEN": TOKEN},
    ),
    EnvCase(
        "base_url without scheme",
        ConfigurationError,
        "invalid_base_url",
        lambda e: {"base_url": e.base_url.removeprefix("http://")},
    ),
    EnvCase(
        "base_url with the token in it",
        ConfigurationError,
        "invalid_base_url",
        lambda e: {"base_url": e.base_url.replace("http://", f"http://user:{TOKEN}@")},
    ),
    EnvCase(
        "wrong account (403)",
        AuthenticationError,
        10000,
        lambda e: {"account_id": "someone-else"},
        stops_run=True,
    ),
    EnvCase(
        "wrong token (401)",
        AuthenticationError,
        10000,
        lambda e: {"api_token": WRONG_TOKEN},
        stops_run=True,
    ),
    EnvCase(
        "blocked account (3023)",
        AuthenticationError,
        3023,
        lambda e: {"account_id": "frozen"},
        stops_run=True,
    ),
    EnvCase(
        "daily quota used up (3036)", QuotaExceededError, 3036, faults={"quota": 5}, stops_run=True
    ),
]


@pytest.mark.parametrize("case", ENV_CASES, ids=lambda c: c.name)
def test_environment_case(
    case: EnvCase,
    emu: Emulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = good_files(tmp_path, 700 + ENV_CASES.index(case), 6)
    frame = pd.DataFrame({"audio": [str(p) for p in files]}, index=list("abcdef"))
    cache = tmp_path / "cache"
    # A first run finishes three rows into the cache.
    first = frame.iloc[:3].cfai.transcribe("audio", **credentials(emu, cache))
    assert first["audio_text"].notna().all()
    before = emu.counters()["requests"]
    for name, value in case.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    if case.faults:
        emu.set_faults(**case.faults)
    concurrency = 2
    kwargs = dict(credentials(emu, cache), concurrency=concurrency, **case.kwargs(emu))
    with pytest.raises(TranscribeError) as info:
        frame.cfai.transcribe("audio", errors="coerce", **kwargs)
    exc = info.value
    assert isinstance(exc, case.error), repr(exc)
    assert exc.code == case.code, repr(exc)
    log = emu.requests()[before:]
    if not case.stops_run:
        assert log == []  # found before any work
        assert exc.partial is None
    else:
        assert exc.stops_run
        _assert_nothing_lost(exc, emu, cache, frame)
        assert exc.partial["audio_text"].iloc[:3].notna().all()  # the cached rows
        doomed = [e for e in log if e["status"] != 200]
        assert 1 <= len(doomed) <= concurrency, doomed
        assert "rerun" in exc.message
    assert_no_secret(exc, caplog=caplog, cache=cache)


def test_the_token_is_not_in_the_progress_bar_or_the_credentials_repr(
    emu: Emulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = good_files(tmp_path, 900, 3)
    frame = pd.DataFrame({"audio": [str(p) for p in files] + [str(tmp_path / "missing.wav")]})
    kwargs = dict(credentials(emu, tmp_path / "cache"), progress=True)
    out = frame.cfai.transcribe("audio", errors="coerce", **kwargs)
    assert out["audio_text"].notna().sum() == 3
    captured = capfd.readouterr()
    assert "transcribe" in captured.err  # the bar was drawn
    client_records = [r for r in caplog.records if r.name == "cf_transcribe_pandas.client"]
    assert any(r.levelno == logging.DEBUG for r in client_records)  # DEBUG records were seen
    creds = Credentials.resolve(emu.account_id, TOKEN, emu.base_url)
    assert_no_secret(
        out, captured.out, captured.err, creds, caplog=caplog, cache=tmp_path / "cache"
    )
