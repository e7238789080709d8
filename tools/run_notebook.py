"""Execute ``notebooks/quickstart.ipynb`` in place, so that it is committed with its outputs.

    python tools/run_notebook.py [NOTEBOOK]        # `make notebook`

The kernel is this interpreter (a ``python3`` kernelspec pointing at it, in a
temporary ``JUPYTER_PATH``); the notebook runs in a temporary directory with a
temporary default cache, against the bundled emulator and a local S3 server
(moto), as ``tests/test_notebook.py`` runs it. Cell timings are not recorded, so
a rerun changes only what the notebook shows.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def kernel_dir(tmp: Path) -> Path:
    """A Jupyter data directory whose ``python3`` kernel is this interpreter."""
    spec = tmp / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            }
        )
    )
    return tmp / "jupyter"


def execute(path: Path) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` top to bottom and return it with its outputs."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = str(kernel_dir(Path(tmp)))
        os.environ["CF_TRANSCRIBE_CACHE_DIR"] = str(Path(tmp) / "default-cache")
        client = NotebookClient(
            nb,
            timeout=180,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": tmp}},
        )
        client.execute()
    return nb


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else NOTEBOOK
    nb = execute(path)
    nbformat.write(nb, path)
    print(f"executed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
