"""The wheel a user installs: built without warnings, with py.typed and the sample clips."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the sources: the wheel of a clean checkout, not whatever an earlier
    # build left in the repository's build/ directory.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "cf_transcribe_pandas",
        source / "cf_transcribe_pandas",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(source),
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
    modules = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "cf_transcribe_pandas").rglob("*.py")
    }
    assert {n for n in names if n.endswith(".py")} == modules  # every module, nothing stale
