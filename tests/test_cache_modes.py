"""Transcripts are personal data: the cache directory and its files are private to the
user (0700 / 0600) unless the user points the cache at a directory shared on purpose."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cf_transcribe_pandas import Cache
from cf_transcribe_pandas.emulator import Emulator

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _everything(root: Path) -> tuple[list[Path], list[Path]]:
    dirs = [root, *(p for p in root.rglob("*") if p.is_dir())]
    files = [p for p in root.rglob("*") if p.is_file()]
    return dirs, files


def _transcribe(tmp_path: Path, emulator: Emulator, kw: dict[str, Any], cache: Any) -> None:
    clip = tmp_path / "call.wav"
    if not clip.exists():
        from clips import wav_bytes

        clip.write_bytes(wav_bytes(7))
    out = pd.DataFrame({"audio": [str(clip)]}).cfai.transcribe("audio", **{**kw, "cache": cache})
    assert out["audio_text"].notna().all()


def test_a_new_cache_directory_and_its_files_are_private(
    tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    old = os.umask(0o022)  # the usual umask: without the fix, files would be 0644
    try:
        root = tmp_path / "deep" / "cache"
        _transcribe(tmp_path, emulator, run_kwargs, root)
        Cache(root).compact()  # rewrites part files: still private
    finally:
        os.umask(old)
    dirs, files = _everything(root)
    assert {p.name for p in files} >= {"VERSION", "README.txt"}
    assert any(p.suffix == ".parquet" for p in files)
    assert {str(p): _mode(p) for p in dirs} == {str(p): 0o700 for p in dirs}
    assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}


def test_a_shared_directory_the_user_made_keeps_its_mode(
    tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    shared = tmp_path / "team-cache"
    shared.mkdir()
    os.chmod(shared, 0o2775)  # a team's directory: group may write
    old = os.umask(0o002)
    try:
        _transcribe(tmp_path, emulator, run_kwargs, shared)
    finally:
        os.umask(old)
    assert _mode(shared) == 0o2775  # not made private
    dirs, files = _everything(shared)
    assert all(_mode(p) & 0o060 == 0o060 for p in files)  # teammates read and replace
    assert all(_mode(p) & 0o070 == 0o070 for p in dirs)


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME names it on Linux")
def test_the_default_directory_is_made_private_again(
    tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CF_TRANSCRIBE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = tmp_path / "xdg" / "cf-transcribe-pandas"
    default.mkdir(parents=True)
    os.chmod(default, 0o755)  # as an older version left it
    _transcribe(tmp_path, emulator, run_kwargs, True)
    assert _mode(default) == 0o700
    assert all(_mode(p) == 0o600 for p in _everything(default)[1])
