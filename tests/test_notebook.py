"""notebooks/quickstart.ipynb runs top to bottom against the emulator, in a real kernel.

The kernel is this interpreter (``sys.executable``, so the virtualenv's),
whatever kernelspecs the machine has: the test writes a ``python3``
kernelspec pointing at it into a temporary ``JUPYTER_PATH``, which Jupyter
searches first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


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
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (this interpreter)",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # Keep the notebook's default cache (if it used one) out of the user's home.
    monkeypatch.setenv("CF_TRANSCRIBE_CACHE_DIR", str(tmp_path / "default-cache"))
    return "python3"


def test_quickstart_notebook_runs_top_to_bottom(this_python_kernel: str, tmp_path: Path) -> None:
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
