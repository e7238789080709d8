"""Audio in a bucket: ``storage_options`` against moto's real S3 server (with s3fs), reruns
that read no object, clear failures, and the storage secret in no output or file."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from buckets import SECRET, CountingMotoServer, urls
from clips import wav_bytes

import cf_transcribe_pandas as cft
from cf_transcribe_pandas.cli import main as cli_main
from cf_transcribe_pandas.emulator import Emulator
from cf_transcribe_pandas.errors import AudioError, StorageAccessError

KEYS = [f"2026/12/call-{i:02d}.wav" for i in range(6)]


@pytest.fixture(scope="module")
def s3() -> Iterator[CountingMotoServer]:
    with CountingMotoServer() as server:
        yield server


@pytest.fixture
def bucket(s3: CountingMotoServer) -> str:
    return s3.bucket({key: wav_bytes(100 + i) for i, key in enumerate(KEYS)})


def _run(
    values: list[str], s3: CountingMotoServer, kw: dict[str, Any], **more: Any
) -> pd.DataFrame:
    df = pd.DataFrame({"audio": values})
    out: pd.DataFrame = df.cfai.transcribe(
        "audio", storage_options=s3.storage_options(), provenance=True, **kw, **more
    )
    return out


def test_rows_from_a_bucket_via_storage_options(
    s3: CountingMotoServer, bucket: str, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    out = _run(urls(bucket, KEYS), s3, run_kwargs)
    assert out["audio_text"].notna().all()
    assert not out["audio_text_cached"].any()
    assert emulator.counters()["requests"] == len(KEYS)
    # The series accessor takes the same option.
    again = pd.Series(urls(bucket, KEYS[:2])).cfai.transcribe(
        storage_options=s3.storage_options(), **run_kwargs
    )
    assert again.tolist() == out["audio_text"].tolist()[:2]


def test_a_missing_object_is_a_row_error_naming_its_url(
    s3: CountingMotoServer, bucket: str, run_kwargs: dict[str, Any]
) -> None:
    missing = f"s3://{bucket}/2026/12/no-such-call.wav"
    out = _run([*urls(bucket, KEYS[:2]), missing], s3, run_kwargs, errors="coerce")
    assert out["audio_text"].iloc[:2].notna().all()
    assert out["audio_text_error_code"].iloc[2] == "file_not_found"
    assert missing in out["audio_text_error"].iloc[2]
    # A lone missing object (an info call, not a listing) too.
    with pytest.raises(AudioError, match=r"no-such-call\.wav") as info:
        _run([missing], s3, run_kwargs)
    assert info.value.code == "file_not_found"


def test_a_cached_rerun_reads_no_object(
    s3: CountingMotoServer, bucket: str, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    first = _run(urls(bucket, KEYS), s3, run_kwargs)
    sent = emulator.counters()["requests"]
    s3.reset_count()
    again = _run(urls(bucket, KEYS), s3, run_kwargs)
    assert again["audio_text_cached"].all()
    assert again["audio_text"].tolist() == first["audio_text"].tolist()
    assert emulator.counters()["requests"] == sent
    assert s3.object_gets() == []  # no GetObject at all
    assert len(s3.metadata_calls()) == 1  # one listing of the shared prefix
    assert len(s3.requests) == 1


def test_a_changed_object_is_read_and_transcribed_again(
    s3: CountingMotoServer, bucket: str, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    _run(urls(bucket, KEYS), s3, run_kwargs)
    s3.put(bucket, KEYS[3], wav_bytes(999))  # a new recording: a new ETag
    s3.reset_count()
    before = emulator.counters()["requests"]
    again = _run(urls(bucket, KEYS), s3, run_kwargs)
    assert again["audio_text_cached"].tolist() == [True, True, True, False, True, True]
    assert emulator.counters()["requests"] == before + 1
    assert s3.object_gets() == [f"/{bucket}/{KEYS[3]}"]
    # Its new hash is remembered: the next rerun reads nothing again.
    s3.reset_count()
    assert _run(urls(bucket, KEYS), s3, run_kwargs)["audio_text_cached"].all()
    assert s3.object_gets() == []


def test_bad_credentials_stop_the_run_with_one_error(
    s3: CountingMotoServer, bucket: str, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": urls(bucket, KEYS)})
    s3.require_auth(True)
    try:
        s3.reset_count()
        with pytest.raises(StorageAccessError) as info:
            df.cfai.transcribe(
                "audio",
                storage_options=s3.storage_options(key="AKIAWRONGKEY0000"),
                errors="coerce",
                **run_kwargs,
            )
        listing_calls = len(s3.requests)
        with pytest.raises(StorageAccessError) as lone:  # one row: an info call
            df.iloc[:1].cfai.transcribe(
                "audio", storage_options=s3.storage_options(key="AKIAWRONGKEY0000"), **run_kwargs
            )
    finally:
        s3.require_auth(False)
    exc = info.value
    assert exc.stops_run
    assert exc.code == "storage_access_denied"
    assert "storage_options" in exc.message
    assert bucket in exc.message
    assert "0 of 6 rows are done" in exc.message
    assert isinstance(exc.partial, pd.DataFrame)
    assert exc.partial["audio_text"].isna().all()
    assert listing_calls == 1  # one refused listing, not one failure a row
    assert lone.value.code == "storage_access_denied"
    assert emulator.counters()["requests"] == 0


def test_an_unreachable_endpoint_stops_the_run(
    bucket: str, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "k", "secret": SECRET}
    df = pd.DataFrame({"audio": urls(bucket, KEYS[:1])})
    with pytest.raises(StorageAccessError, match="cannot be reached") as info:
        df.cfai.transcribe(
            "audio",
            storage_options={**options, "config_kwargs": {"retries": {"max_attempts": 1}}},
            **run_kwargs,
        )
    assert info.value.code == "storage_unreachable"
    assert emulator.counters()["requests"] == 0


def test_estimate_reads_a_bucket(
    s3: CountingMotoServer, bucket: str, run_kwargs: dict[str, Any]
) -> None:
    est = pd.DataFrame({"audio": urls(bucket, KEYS)}).cfai.estimate(
        "audio", storage_options=s3.storage_options(), cache=run_kwargs["cache"]
    )
    assert est.rows == len(KEYS)
    assert est.rows_to_send == len(KEYS)
    _run(urls(bucket, KEYS), s3, run_kwargs)
    est = pd.DataFrame({"audio": urls(bucket, KEYS)}).cfai.estimate(
        "audio", storage_options=s3.storage_options(), cache=run_kwargs["cache"]
    )
    assert est.rows_cached == len(KEYS)


def test_a_missing_backend_package_says_what_to_install() -> None:
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    from cf_transcribe_pandas.audio import to_source

    # Our extra when the installed package declares it (else the packages themselves).
    hint = r'pip install ("cf-transcribe-pandas\[gcs\]"|fsspec gcsfs)'
    with pytest.raises(AudioError, match=hint):
        to_source("gs://bucket/call.wav")


def test_the_secret_is_in_no_output_or_file(
    s3: CountingMotoServer,
    bucket: str,
    run_kwargs: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    options = cft.TranscribeOptions(storage_options=s3.storage_options())
    shown = [repr(options), str(options), repr(options.storage_options)]
    assert s3.endpoint in shown[0]
    assert "***" in shown[0]
    missing = f"s3://{bucket}/gone.wav"
    out = _run([*urls(bucket, KEYS[:2]), missing], s3, run_kwargs, errors="coerce")
    shown += [out.to_csv(), repr(out.attrs)]
    s3.require_auth(True)
    try:
        with pytest.raises(StorageAccessError) as info:
            _run(urls(bucket, KEYS[:2]), s3, {**run_kwargs, "cache": tmp_path / "c2"})
    finally:
        s3.require_auth(False)
    shown += [str(info.value), repr(info.value), info.value.partial.to_csv()]
    # The command line: flags, then the table it writes.
    table = tmp_path / "calls.csv"
    pd.DataFrame({"audio": [*urls(bucket, KEYS[:2]), missing]}).to_csv(table, index=False)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", emulator.token)
    so = s3.storage_options()
    code = cli_main(
        [
            "run",
            str(table),
            "-o",
            str(tmp_path / "out.csv"),
            "--account-id",
            emulator.account_id,
            "--base-url",
            emulator.base_url,
            "--cache-dir",
            str(run_kwargs["cache"]),
            "--log-json",
            "--storage-options",
            f'{{"endpoint_url": "{so["endpoint_url"]}", "key": "{so["key"]}"}}',
            "-S",
            f"secret={SECRET}",
            "-S",
            'client_kwargs={"region_name": "us-east-1"}',
        ]
    )
    assert code == 1  # the missing object failed; the others are done
    captured = capsys.readouterr()
    shown += [captured.out, captured.err, caplog.text]
    assert "gone.wav" in captured.err
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for text in shown:
        assert SECRET not in text
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def test_dask_workers_read_the_bucket_with_the_same_option(
    s3: CountingMotoServer, bucket: str, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    import cf_transcribe_pandas.dask  # noqa: F401  (registers ddf.cfai)

    ddf = dd.from_pandas(pd.DataFrame({"audio": urls(bucket, KEYS)}), npartitions=2)
    kw = {**run_kwargs, "storage_options": s3.storage_options(), "provenance": True}
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        got = ddf.cfai.transcribe("audio", **kw).compute()
        assert got["audio_text"].notna().all()
        s3.reset_count()
        again = ddf.cfai.transcribe("audio", **kw).compute()
    assert again["audio_text_cached"].all()
    assert s3.object_gets() == []  # each partition: one listing, no GetObject
    assert emulator.counters()["requests"] == len(KEYS)


def test_cli_storage_flags_merge_and_a_bad_one_hides_its_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cf_transcribe_pandas.cli import build_parser

    args = build_parser().parse_args(
        [
            "estimate",
            "calls.csv",
            "--storage-options",
            '{"endpoint_url": "https://acct.r2.cloudflarestorage.com", "anon": false}',
            "-S",
            "anon=true",
            "-S",
            'client_kwargs={"region_name": "auto"}',
        ]
    )
    assert args.storage_options == {
        "endpoint_url": "https://acct.r2.cloudflarestorage.com",
        "anon": True,
        "client_kwargs": {"region_name": "auto"},
    }
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "c.csv", "-o", "o.csv", "--storage-options", SECRET])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "not a JSON object" in err
    assert SECRET not in err


def test_downloaded_urls_get_the_headers_option(run_kwargs: dict[str, Any]) -> None:
    import http.server
    import threading

    audio = wav_bytes(5)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.headers.get("Authorization") == f"Bearer {SECRET}"
            self.send_response(200 if ok else 403)
            self.end_headers()
            self.wfile.write(audio if ok else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/call.wav"
        df = pd.DataFrame({"audio": [url]})
        kw = {**run_kwargs, "fetch_urls": True, "errors": "coerce"}
        refused = df.cfai.transcribe("audio", **kw)
        headers = {"headers": {"Authorization": f"Bearer {SECRET}"}}
        got = df.cfai.transcribe("audio", storage_options=headers, **kw)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert refused["audio_text_error_code"].iloc[0] == "fetch_failed"
    assert got["audio_text"].notna().all()
    assert "***" in repr(cft.TranscribeOptions(storage_options=headers))
    assert SECRET not in repr(cft.TranscribeOptions(storage_options=headers))


def test_rows_alone_in_their_prefix_cost_one_head_each_and_no_get_on_rerun(
    s3: CountingMotoServer, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    keys = [f"call-{i}/audio.wav" for i in range(5)]  # one object a prefix
    bucket = s3.bucket({key: wav_bytes(300 + i) for i, key in enumerate(keys)})
    assert _run(urls(bucket, keys), s3, run_kwargs)["audio_text"].notna().all()
    s3.reset_count()
    again = _run(urls(bucket, keys), s3, run_kwargs)
    assert again["audio_text_cached"].all()
    assert sorted(p for m, p, _ in s3.requests if m == "HEAD") == [f"/{bucket}/{k}" for k in keys]
    assert s3.object_gets() == []
    assert len(s3.requests) == len(keys)
