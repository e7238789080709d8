"""The wheel a user installs: built without warnings, with py.typed and the sample clips."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (wheel,) = out.glob("*.whl")
    return wheel, proc.stdout + proc.stderr


def test_wheel_builds_without_warnings(built: tuple[Path, str]) -> None:
    _wheel, log = built
    assert "Warning" not in log, log
    assert "deprecated" not in log.lower(), log


def test_wheel_holds_py_typed_samples_and_every_subpackage(built: tuple[Path, str]) -> None:
    wheel, _log = built
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cf_transcribe_pandas/py.typed" in names
    samples = ROOT / "cf_transcribe_pandas" / "samples"
    for clip in samples.iterdir():
        assert f"cf_transcribe_pandas/samples/{clip.name}" in names
    for init in (ROOT / "cf_transcribe_pandas").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names
