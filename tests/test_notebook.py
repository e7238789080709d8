"""notebooks/quickstart.ipynb runs top to bottom against the emulator, in a real kernel,
and is committed with the outputs such a run shows (``make notebook`` makes them).

The kernel is this interpreter (``sys.executable``, so the virtualenv's),
whatever kernelspecs the machine has: the test writes a ``python3``
kernelspec pointing at it into a temporary ``JUPYTER_PATH``, which Jupyter
searches first.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
sys.path.insert(0, str(ROOT / "tools"))
from run_notebook import kernel_dir  # noqa: E402  (tools/ is not a package)

_VARYING = [
    (re.compile(r"(\d+/\d+) \[[^\]\n]*\]"), r"\1 [...]"),  # a progress bar's times and rates
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"[^\s'\"]*tmp[a-z0-9_]{8}"), "TMPDIR"),
]


def _seen(cell: Any) -> str:
    """What a reader sees of a code cell, less what changes from run to run: a progress
    bar's last state only, without its times; ports; temporary directories; where
    pandas puts the ``\\`` that marks a wrapped frame (pandas 2.0 and 3 differ)."""
    text = _text(cell)
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    text = "\n".join(line.rstrip().removesuffix("\\").rstrip() for line in lines)
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return text


def _text(cell: Any) -> str:
    """Everything a code cell showed: streams, results and errors, as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            parts.append(output["data"].get("text/plain", ""))
        elif output["output_type"] == "error":
            parts.append("\n".join(output["traceback"]))
    return "".join(parts)


@pytest.fixture
def this_python_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir(tmp_path)))  # what `make notebook` uses
    # Keep the notebook's default cache (if it used one) out of the user's home.
    monkeypatch.setenv("CF_TRANSCRIBE_CACHE_DIR", str(tmp_path / "default-cache"))
    return "python3"


def test_quickstart_notebook_runs_top_to_bottom(this_python_kernel: str, tmp_path: Path) -> None:
    committed = nbformat.read(NOTEBOOK, as_version=4)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel:', sys.executable)"))
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name=this_python_kernel,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    shown = [_text(cell) for cell in code]
    everything = "\n".join(shown)
    assert "Traceback" not in everything

    assert shown.pop() == f"kernel: {sys.executable}\n"
    # The first run: every sample transcribed, with a progress bar on stderr.
    run = next(i for i, text in enumerate(shown) if "audio_text" in text)
    assert "The quarterly report shows revenue growth in every region." in shown[run]
    assert "La biblioteca abre a las nueve de la ma" in shown[run]
    streams = [o for o in code[run].outputs if o["output_type"] == "stream"]
    assert any("transcribe" in o["text"] and "8/8" in o["text"] for o in streams)
    assert "rows: 8 | text dtype: string" in everything
    assert "requests sent: 8" in everything
    # The row error, coerced, with the summary line.
    assert (
        "1 of 2 rows failed: 1 unreadable audio; rerun to retry them, "
        "finished rows come from the cache" in everything
    )
    assert "unreadable_audio" in everything
    # The cached rerun sent nothing.
    assert "rerun sent 0 requests" in everything
    assert "same transcripts: True" in everything
    assert "emulator running: False" in shown[-1]
    # The estimate, before anything is sent.
    assert "Estimate for 8 rows of openai/gpt-4o-transcribe (nothing was sent)" in everything
    # The bucket: read through storage_options, the secret never shown, a free rerun.
    assert "'secret': '***'" in everything
    assert "demo-secret-access-key" not in everything
    assert "s3://calls/2026-12/s00_en_wav.wav" in everything
    assert "bucket rerun sent 0 requests" in everything
    assert "all from the cache: True" in everything

    # The committed outputs are what this run showed (else: `make notebook`).
    fresh = [_seen(cell) for cell in code[:-1]]
    old = [_seen(cell) for cell in committed.cells if cell.cell_type == "code"]
    for i, (was, now) in enumerate(zip(old, fresh, strict=True)):
        diff = "\n".join(difflib.unified_diff(was.splitlines(), now.splitlines(), lineterm=""))
        assert was == now, (
            f"code cell {i}: committed outputs are stale; run `make notebook`\n{diff}"
        )
