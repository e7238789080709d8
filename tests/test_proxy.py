"""Requests through a real HTTP proxy (proxy.py on 127.0.0.1) to the emulator.

``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` are honored, as the official
SDKs do, and so is ``proxy=``. The client reads the environment as urllib's
``getproxies_environment`` / ``proxy_bypass`` do, which on Linux make no
exception for localhost (only ``NO_PROXY`` does), so a proxy on 127.0.0.1
really carries the requests to the emulator on 127.0.0.1. Each test clears
every proxy variable first and sets only its own; the proxy's access log
shows what went through it, and a proxy that is down shows that nothing went
around it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clips import wav_bytes

from cf_transcribe_pandas import NetworkError, TranscribeOptions
from cf_transcribe_pandas.client.proxy import proxy_for
from cf_transcribe_pandas.emulator import Emulator
from cf_transcribe_pandas.errors import ConfigurationError

pytest.importorskip("proxy", reason="proxy.py is in the dev extras")

TOKEN = "cfTOKEN-proxied-Rt7Yu2Io9Pa4"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class Proxy:
    """A running proxy.py: its URL and its log file."""

    url: str
    log: Path

    def lines(self) -> list[str]:
        """The proxy's access-log lines for requests to the emulator's API.

        proxy.py writes one line a connection (a kept-alive one carries several
        requests) when it closes, so a line may come just after the run ends.
        """
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if "/client/v4/" in line]

    def new_lines(self, before: int, *, expect: bool) -> list[str]:
        """The lines after the first ``before``; waits for one when ``expect``."""
        deadline = time.monotonic() + (10.0 if expect else 1.0)
        while time.monotonic() < deadline and not (expect and len(self.lines()) > before):
            time.sleep(0.05)
        return self.lines()[before:]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("proxy")
    port_file, log = folder / "port", folder / "proxy.log"
    command = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"]
    command += ["--port-file", str(port_file), "--log-file", str(log), "--log-level", "INFO"]
    command += ["--num-workers", "1", "--num-acceptors", "1"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers are in its own process group, stopped with it
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, "proxy.py exited at start"
            assert time.monotonic() < deadline, "proxy.py did not start in 30 s"
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        yield Proxy(f"http://127.0.0.1:{port}", log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, token=TOKEN) as e:
        yield e


@pytest.fixture(autouse=True)
def _no_proxy_variables(
    monkeypatch: pytest.MonkeyPatch, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    emu.reset()
    caplog.set_level(logging.DEBUG)


def _frame(folder: Path, seed: int, n: int = 3) -> pd.DataFrame:
    paths = []
    for i in range(n):
        path = folder / f"clip{i}.wav"
        path.write_bytes(wav_bytes(seed * 10 + i, 0.2))
        paths.append(str(path))
    return pd.DataFrame({"audio": paths})


def _kwargs(emu: Emulator, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": emu.account_id,
        "api_token": TOKEN,
        "base_url": emu.base_url,
        "cache": False,
        "progress": False,
        **extra,
    }


def _assert_token_hidden(proxy: Proxy, caplog: pytest.LogCaptureFixture, *shown: object) -> None:
    assert TOKEN not in proxy.log.read_text(encoding="utf-8", errors="replace")
    for text in [r.getMessage() for r in caplog.records] + [str(s) for s in shown]:
        assert TOKEN not in text


def test_http_proxy_from_the_environment_carries_every_request(
    proxy: Proxy,
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = len(proxy.lines())
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    out = _frame(tmp_path, 1).cfai.transcribe("audio", **_kwargs(emu))
    assert out["audio_text"].notna().all()
    assert emu.counters()["ok"] == 3
    through = proxy.new_lines(before, expect=True)
    assert through
    assert all("POST" in line and f"/accounts/{emu.account_id}/ai/run" in line for line in through)
    _assert_token_hidden(proxy, caplog, out.to_csv())


def test_no_proxy_bypasses_the_proxy(
    proxy: Proxy, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(proxy.lines())
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    out = _frame(tmp_path, 2).cfai.transcribe("audio", **_kwargs(emu))
    assert out["audio_text"].notna().all()
    assert emu.counters()["ok"] == 3
    assert proxy.new_lines(before, expect=False) == []


def test_the_proxy_option_carries_every_request(
    proxy: Proxy, emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(proxy.lines())
    out = _frame(tmp_path, 3).cfai.transcribe("audio", **_kwargs(emu, proxy=proxy.url))
    assert out["audio_text"].notna().all()
    assert proxy.new_lines(before, expect=True)
    _assert_token_hidden(proxy, caplog, out.to_csv())


def test_without_a_proxy_nothing_goes_through_one(
    proxy: Proxy, emu: Emulator, tmp_path: Path
) -> None:
    before = len(proxy.lines())
    out = _frame(tmp_path, 4).cfai.transcribe("audio", **_kwargs(emu))
    assert out["audio_text"].notna().all()
    assert proxy.new_lines(before, expect=False) == []


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_proxy_that_is_down_is_a_clear_retried_error_without_its_password(
    how: str,
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:pr0xy-s3cret@127.0.0.1:{port}"
    kwargs = _kwargs(emu, max_retries=1)
    if how == "option":
        kwargs["proxy"] = url
    else:
        monkeypatch.setenv("HTTP_PROXY", url)
    with pytest.raises(NetworkError) as info:
        _frame(tmp_path, 5, 1).cfai.transcribe("audio", **kwargs)
    assert "proxy" in info.value.message
    assert emu.counters()["requests"] == 0  # nothing went around the proxy
    for text in [info.value.message, repr(info.value)] + [r.getMessage() for r in caplog.records]:
        assert "pr0xy-s3cret" not in text
        assert TOKEN not in text


@pytest.mark.parametrize("bad", ["proxy.example.com:3128", "ftp://proxy", "http://", "", 3128])
def test_a_bad_proxy_option_is_refused_before_any_work(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="proxy=") as info:
        TranscribeOptions(proxy=bad)  # type: ignore[arg-type]
    assert info.value.code == "invalid_proxy"


def test_the_proxy_password_is_not_in_the_options_repr() -> None:
    options = TranscribeOptions(proxy="http://user:pr0xy-s3cret@proxy.example.com:3128")
    assert "pr0xy-s3cret" not in repr(options)
    with pytest.raises(ConfigurationError) as info:
        TranscribeOptions(proxy="socks5://user:pr0xy-s3cret@proxy.example.com:1080")
    assert "pr0xy-s3cret" not in info.value.message
    assert "socks5://proxy.example.com:1080" in info.value.message


def test_the_cli_takes_proxy(
    proxy: Proxy, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cf_transcribe_pandas import cli

    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", emu.account_id)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", emu.base_url)
    paths = _frame(tmp_path, 6)["audio"].tolist()
    before = len(proxy.lines())
    out = tmp_path / "out.csv"
    args = ["run", *paths, "-o", str(out), "--no-cache", "-q", "--proxy", proxy.url]
    assert cli.main(args) == 0
    assert pd.read_csv(out)["path_text"].notna().all()
    assert proxy.new_lines(before, expect=True)


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:1"}, "https://api.cloudflare.com", "http://p:1"),
        ({"https_proxy": "http://p:2"}, "https://api.cloudflare.com", "http://p:2"),
        ({"HTTP_PROXY": "http://p:3"}, "https://api.cloudflare.com", None),  # other scheme
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "cloudflare.com"},
            "https://api.cloudflare.com",
            None,
        ),
        ({"HTTP_PROXY": "http://p:3", "NO_PROXY": "127.0.0.1:9"}, "http://127.0.0.1:9", None),
        (
            {"HTTP_PROXY": "http://p:3", "NO_PROXY": "127.0.0.1:8"},
            "http://127.0.0.1:9",
            "http://p:3",
        ),
        ({"HTTP_PROXY": "http://p:3", "NO_PROXY": "*"}, "http://127.0.0.1:9", None),
        ({}, "https://api.cloudflare.com", None),
    ],
)
def test_the_environment_proxy_for_a_url(
    env: dict[str, str], url: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert proxy_for(url, None) == expected
    assert proxy_for(url, "http://explicit:1") == "http://explicit:1"  # the option wins


def test_a_bad_proxy_without_credentials_is_shown_as_given() -> None:
    with pytest.raises(ConfigurationError, match=r"not 'proxy\.example\.com:3128'"):
        TranscribeOptions(proxy="proxy.example.com:3128")
