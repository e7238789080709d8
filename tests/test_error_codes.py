"""Every Workers AI error code through ``df.cfai.transcribe`` against the emulator.

The emulator answers each code on demand (its ``answer_code`` fault); each case
asserts what the library does: stops the run (which error, after how many
requests, finished rows kept in ``.partial`` and the cache), fails the row
(with which code, the run going on) or retries it. The message names the cause,
blames the token only when the token is the cause, and never holds it: every
answer echoes the token, which the library must scrub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clips import wav_bytes

from cf_transcribe_pandas import errors as errors_module
from cf_transcribe_pandas.emulator import Emulator
from cf_transcribe_pandas.emulator.codes import CODES
from cf_transcribe_pandas.errors import (
    AccountError,
    AuthenticationError,
    InvalidRequestError,
    ModelAccessError,
    ModelError,
    ModelNotFoundError,
    OutdatedClientError,
    QuotaExceededError,
    RequestTooLargeError,
    ServiceError,
    TranscribeError,
)

TOKEN = "cfTOKEN-errcodes-Qm4Vt8Xw2Lp6"
ROOT = Path(__file__).resolve().parents[1]
ROWS = 5
BAD_ROW = 2


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, token=TOKEN) as e:
        yield e


@pytest.fixture(autouse=True)
def _fresh(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    emu.reset()
    caplog.set_level(logging.DEBUG)


def _frame(folder: Path, seed: int) -> tuple[pd.DataFrame, list[str]]:
    paths, shas = [], []
    for i in range(ROWS):
        data = wav_bytes(seed * 100 + i, 0.2)
        path = folder / f"row{i}.wav"
        path.write_bytes(data)
        paths.append(str(path))
        shas.append(hashlib.sha256(data).hexdigest())
    return pd.DataFrame({"audio": paths}, index=list("abcde")), shas


def _kwargs(emu: Emulator, cache: Path, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": emu.account_id,
        "api_token": TOKEN,
        "base_url": emu.base_url,
        "cache": cache,
        "progress": False,
        "concurrency": 1,
        **extra,
    }


def _answer(code: int, **spec: Any) -> dict[str, Any]:
    """An ``answer_code`` setting whose message echoes the token, as a careless server might."""
    message = CODES[code][1] if code in CODES else f"Something went wrong {code}"
    return {"code": code, "message": f"{message} [Bearer {TOKEN}]", **spec}


def _assert_token_hidden(*texts: object, caplog: pytest.LogCaptureFixture) -> None:
    shown = [str(t) for t in texts] + [repr(t) for t in texts]
    shown += [r.getMessage() for r in caplog.records]
    for text in shown:
        assert TOKEN not in text, text[:300]


# --------------------------------------------------------------------------- stops


@dataclass(frozen=True)
class Stop:
    """A code that stops the run: its error class and words the message must hold."""

    code: int
    error: type[AccountError]
    cause: str
    spec: dict[str, Any] = field(default_factory=dict)
    token_is_the_cause: bool = False


STOPS = [
    Stop(5007, ModelNotFoundError, "does not know the model"),
    Stop(3042, ModelNotFoundError, "does not know the model"),
    Stop(3039, ModelError, "missing required files"),
    Stop(5005, ModelError, "LoRA"),
    Stop(5006, ModelError, "shape does not fit the model"),
    Stop(5016, ModelAccessError, "has not accepted the terms"),
    Stop(5018, ModelAccessError, "may not use the model"),
    Stop(3041, ModelAccessError, "may not use the model"),
    Stop(5035, ModelAccessError, "Workers Paid"),
    Stop(3023, AuthenticationError, "blocked"),
    Stop(5019, OutdatedClientError, "pip install -U cf-transcribe-pandas"),
    Stop(3036, QuotaExceededError, "resets at 00:00 UTC"),
    Stop(4006, QuotaExceededError, "resets at 00:00 UTC"),
    Stop(4006, QuotaExceededError, "Workers Paid", {"shape": "openai"}),
    Stop(4006, QuotaExceededError, "Workers Paid", {"shape": "message"}),
    Stop(3036, QuotaExceededError, "00:00 UTC", {"shape": "aierror"}),
    Stop(5016, ModelAccessError, "terms", {"shape": "aierror"}),
    Stop(10000, AuthenticationError, "CLOUDFLARE_API_TOKEN", token_is_the_cause=True),
    Stop(10000, AuthenticationError, "CLOUDFLARE_API_TOKEN", {"status": 403}, True),
    Stop(9999, AccountError, "refused account", {"status": 403}, True),
]


@pytest.mark.parametrize(
    "case", STOPS, ids=lambda c: f"{c.code}-{c.spec.get('shape', c.spec.get('status', ''))}"
)
def test_a_code_that_stops_the_run(
    case: Stop, emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    df, _ = _frame(tmp_path, STOPS.index(case))
    cache = tmp_path / "cache"
    emu.set_faults(answer_code=_answer(case.code, after=BAD_ROW, **case.spec))
    with pytest.raises(TranscribeError) as info:
        df.cfai.transcribe("audio", errors="coerce", **_kwargs(emu, cache))
    exc = info.value
    assert type(exc) is case.error, repr(exc)
    assert exc.stops_run
    assert not exc.retryable
    assert exc.code == case.code
    assert emu.counters()["requests"] == BAD_ROW + 1  # nothing sent after the answer
    assert case.cause in exc.message
    assert f"{BAD_ROW} of {ROWS} rows are done" in exc.message
    if not case.token_is_the_cause:
        assert "token" not in exc.message.lower().replace("***", "")
    # The finished rows are kept: in .partial and in the cache (a rerun sends only the rest).
    partial = exc.partial
    assert partial["audio_text"].notna().tolist() == [True] * BAD_ROW + [False] * (ROWS - BAD_ROW)
    assert partial.index.equals(df.index)
    _assert_token_hidden(exc, *exc.args, partial.to_csv(), caplog=caplog)
    emu.set_faults(answer_code=None)
    out = df.cfai.transcribe("audio", **_kwargs(emu, cache))
    assert out["audio_text"].notna().all()
    assert emu.counters()["requests"] == BAD_ROW + 1 + (ROWS - BAD_ROW)


# --------------------------------------------------------------------------- row errors


@dataclass(frozen=True)
class RowFailure:
    """A code that fails its row: the class, and the requests the row costs."""

    code: int
    error: type[TranscribeError]
    spec: dict[str, Any] = field(default_factory=dict)
    requests: int = 1


ROW_FAILURES = [
    RowFailure(5004, InvalidRequestError),
    RowFailure(3003, InvalidRequestError),
    RowFailure(3006, RequestTooLargeError),
    RowFailure(9999, InvalidRequestError, {"status": 422}),  # an unknown 4xx
    RowFailure(5004, InvalidRequestError, {"shape": "message"}),
    # An unknown 429 is retried max_retries (2) times, then it is the row's error.
    RowFailure(9999, ServiceError, {"status": 429}, requests=3),
    RowFailure(9999, ServiceError, {"status": 429, "shape": "openai"}, requests=3),
]


@pytest.mark.parametrize(
    "case",
    ROW_FAILURES,
    ids=lambda c: f"{c.code}-{c.spec.get('status', '')}{c.spec.get('shape', '')}",
)
def test_a_code_that_fails_one_row(
    case: RowFailure, emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    df, shas = _frame(tmp_path, 50 + ROW_FAILURES.index(case))
    emu.set_faults(answer_code=_answer(case.code, sha256=shas[BAD_ROW], **case.spec))
    kwargs = _kwargs(emu, tmp_path / "cache", max_retries=2, concurrency=2)
    out = df.cfai.transcribe("audio", errors="coerce", **kwargs)
    failed = out["audio_text"].isna()
    assert failed.tolist() == [i == BAD_ROW for i in range(ROWS)]  # the run went on
    assert out["audio_text_error_code"].iloc[BAD_ROW] == str(case.code)
    assert emu.counters()["by_sha256"][shas[BAD_ROW]] == case.requests
    assert emu.counters()["requests"] == ROWS - 1 + case.requests
    message = out["audio_text_error"].iloc[BAD_ROW]
    assert "row2.wav" in message
    assert "token" not in message.lower().replace("***", "")
    summary = out.attrs["cfai_summary"]
    assert summary.startswith(f"1 of {ROWS} rows failed: 1 {case.error.kind} ({case.code});")
    _assert_token_hidden(out.to_csv(), summary, caplog=caplog)
    with pytest.raises(case.error) as info:  # errors="raise": the same error, raised
        df.cfai.transcribe("audio", **kwargs)
    assert info.value.code == case.code
    assert not info.value.stops_run


# --------------------------------------------------------------------------- retries

RETRIED = [
    (3040, {}),
    (3040, {"shape": "aierror", "retry_after": 0}),
    (3007, {}),
    (3008, {}),
    (7009, {}),
    (3000, {"status": 500}),
    (3000, {"status": 503}),
    (3040, {"shape": "message", "status": 429}),
]


@pytest.mark.parametrize(
    ("code", "spec"), RETRIED, ids=lambda v: str(v) if isinstance(v, int) else json.dumps(v)
)
def test_a_code_that_is_retried(
    code: int, spec: dict[str, Any], emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    df, shas = _frame(tmp_path, 80 + RETRIED.index((code, spec)))
    emu.set_faults(answer_code=_answer(code, sha256=shas[BAD_ROW], times=2, **spec))
    out = df.cfai.transcribe("audio", errors="coerce", **_kwargs(emu, tmp_path / "cache"))
    assert out["audio_text"].notna().all()
    assert emu.counters()["by_sha256"][shas[BAD_ROW]] == 3  # two answers with the code, then 200
    assert emu.counters()["codes"] == {str(code): 2}
    _assert_token_hidden(out.to_csv(), caplog=caplog)


# --------------------------------------------------------------------------- the summary


def test_the_summary_counts_rows_by_their_real_code(emu: Emulator, tmp_path: Path) -> None:
    df, shas = _frame(tmp_path, 99)
    df.loc["e", "audio"] = str(tmp_path / "missing.wav")
    (tmp_path / "notes.wav").write_text("not audio at all")
    df.loc["d", "audio"] = str(tmp_path / "notes.wav")
    emu.set_faults(answer_code=_answer(5004, sha256=shas[0]))
    out = df.cfai.transcribe("audio", errors="coerce", **_kwargs(emu, tmp_path / "cache"))
    codes = out["audio_text_error_code"].tolist()
    assert [codes[0], codes[3], codes[4]] == ["5004", "unreadable_audio", "file_not_found"]
    summary = out.attrs["cfai_summary"]
    assert summary.startswith("3 of 5 rows failed: ")
    assert "1 invalid request (5004)" in summary
    assert "1 file not found" in summary
    assert "1 unreadable audio" in summary
    assert "invalid audio" not in summary


# --------------------------------------------------------------------------- the tables


def _codes_in(text: str) -> set[int]:
    return {int(c) for c in re.findall(r"^\|? *`?(\d{4,5})`?\b", text, re.MULTILINE)}


def test_every_emulated_code_is_in_the_errors_table_and_the_readme() -> None:
    doc = errors_module.__doc__ or ""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert set(CODES) <= _codes_in(doc)
    assert set(CODES) <= _codes_in(readme)
    assert _codes_in(doc) == _codes_in(readme)


# --------------------------------------------------------------------------- the emulator


@pytest.mark.parametrize(
    "bad",
    [
        {"code": "5016"},
        {"code": 1234},  # not in CODES and no status
        {"code": 5016, "shape": "xml"},
        {"code": 5016, "after": -1},
        {"code": 5016, "colour": "red"},
        {"code": 5016, "status": 200},
        "5016",
    ],
)
def test_answer_code_settings_are_checked(bad: Any, emu: Emulator) -> None:
    with pytest.raises(ValueError, match="answer_code"):
        emu.set_faults(answer_code=bad)
    assert emu.set_faults()["answer_code"] is None


def test_answer_code_after_and_times_start_over_when_set_again(
    emu: Emulator, tmp_path: Path
) -> None:
    df, _ = _frame(tmp_path, 120)
    emu.set_faults(answer_code={"code": 3007, "after": 1, "times": 1})
    out = df.cfai.transcribe("audio", **_kwargs(emu, False))
    assert out["audio_text"].notna().all()
    assert [e["status"] for e in emu.requests()] == [200, 408] + [200] * (ROWS - 1)
    assert emu.requests()[1]["fault"] == "answer_code"
    emu.set_faults(answer_code={"code": 3007, "after": 1, "times": 1})  # starts over
    df.cfai.transcribe("audio", **_kwargs(emu, False))
    assert [e["status"] for e in emu.requests()][ROWS + 1 :] == [200, 408] + [200] * (ROWS - 1)


def test_3006_splits_and_re_encodes_the_part_before_it_fails_the_row(
    emu: Emulator, tmp_path: Path
) -> None:
    long = tmp_path / "long.wav"
    long.write_bytes(wav_bytes(7, 60.0))  # 1.9 MB of WAV; its FLAC halves are far smaller
    short = tmp_path / "short.wav"
    short.write_bytes(wav_bytes(8, 15.0))  # 480 kB, too short to split
    emu.set_faults(max_file_bytes=400_000)
    df = pd.DataFrame({"audio": [str(long), str(short)]})
    out = df.cfai.transcribe("audio", errors="coerce", **_kwargs(emu, False))
    log = emu.requests()
    assert (log[0]["status"], log[0]["mime"]) == (413, "audio/wav")
    done = [e for e in log if e["status"] == 200]
    assert len(done) >= 2
    assert all(e["mime"] == "audio/flac" and e["bytes"] < 400_000 for e in done)
    assert out["audio_text"].notna().tolist() == [True, False]
    # The short row is sent once, as it is: too short to split, it is the row's error.
    assert [(e["status"], e["mime"]) for e in log[-1:]] == [(413, "audio/wav")]
    assert [e["mime"] for e in log].count("audio/wav") == 2
    assert out["audio_text_error_code"].tolist()[1] == "3006"
    assert "short.wav" in out["audio_text_error"].iloc[1]


def test_answer_code_through_the_control_route_of_a_process_emulator(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(port=0, process=True, token=TOKEN)
    emu.set_faults(answer_code={"code": 5016, "shape": "openai", "status": 403})
    df, _ = _frame(tmp_path, 130)
    with pytest.raises(ModelAccessError) as info:
        df.cfai.transcribe("audio", **_kwargs(emu, False))
    assert info.value.code == 5016
    assert emu.counters()["requests"] == 1


@pytest.mark.parametrize("code", [5016, 5007, 4006])
def test_a_stop_with_requests_in_flight_sends_nothing_after_it(
    code: int, emulator_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(port=0, token=TOKEN, latency=0.2)
    emu.set_faults(answer_code=_answer(code, after=12))
    paths = []
    for i in range(40):
        path = tmp_path / f"r{i}.wav"
        path.write_bytes(wav_bytes(5000 + i, 0.1))
        paths.append(str(path))
    df = pd.DataFrame({"audio": paths})
    with pytest.raises(AccountError) as info:
        df.cfai.transcribe(
            "audio", errors="coerce", **_kwargs(emu, tmp_path / "cache", concurrency=4)
        )
    assert info.value.code == code
    # Every run after the 12th gets the code at once: a request sent after the stop would
    # be one more; at most `concurrency` were on the wire when the first answer came.
    log = emu.requests()
    assert 1 <= len([e for e in log if e["code"] == code]) <= 4
    assert len(log) <= 12 + 4
    done = info.value.partial["audio_text"].notna()
    assert done.sum() == emu.counters()["ok"] >= 12 - 4
    assert info.value.partial["audio_text_error"].isna().all()  # unfinished is not failed
