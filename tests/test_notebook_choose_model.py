"""notebooks/choose_a_model.ipynb (the pilot of issue 17) runs top to bottom against the
emulator in a real kernel, and is committed with its outputs.

The kernel is this interpreter, as in ``test_notebook.py``: ``tools/run_notebook.py``'s
``python3`` kernelspec pointing at ``sys.executable``, in a temporary ``JUPYTER_PATH``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "choose_a_model.ipynb"
sys.path.insert(0, str(ROOT / "tools"))
from run_notebook import kernel_dir  # noqa: E402  (tools/ is not a package)

WHISPER = "@cf/openai/whisper-large-v3-turbo"


def _shown(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output["output_type"] == "stream":
                parts.append(output["text"])
            elif output["output_type"] in ("execute_result", "display_data"):
                parts.append(output["data"].get("text/plain", ""))
                parts.append(output["data"].get("text/html", ""))
            elif output["output_type"] == "error":
                parts.append("\n".join(output["traceback"]))
    return "\n".join(parts)


def _check(shown: str) -> None:
    assert "Traceback" not in shown
    table = shown[shown.index("$ per audio hour") :]
    assert "openai/gpt-4o-transcribe" in table
    assert WHISPER in table
    assert "0.3600" in table  # $0.006 a minute
    assert "0.0306" in table  # $0.00051 a minute
    assert f"chosen: {WHISPER} (gpt-4o-transcribe costs 11.8x as much per audio hour)" in shown
    assert "sent 150 requests; 50 rows came from the pilot's cache" in shown
    assert "over 200 rows" in shown
    assert "1\n00:00:00,000 --> " in shown
    assert "emulator running: False" in shown


def test_the_committed_notebook_has_its_outputs() -> None:
    _check(_shown(nbformat.read(NOTEBOOK, as_version=4)))


@pytest.mark.slow
def test_choose_a_model_notebook_runs_top_to_bottom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir(tmp_path)))
    monkeypatch.setenv("CF_TRANSCRIBE_CACHE_DIR", str(tmp_path / "default-cache"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    _check(_shown(nb))
