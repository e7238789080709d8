"""Without the extras (``pip install cf-transcribe-pandas``): the package imports, and each
optional part names what to install.

``nox -s bare`` runs this module in a virtual environment with the package and pytest
only (it sets ``CF_TRANSCRIBE_NO_EXTRAS=1``). In the dev environment, where the extras
are installed, a test that needs a package to be absent is skipped.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

import cf_transcribe_pandas

BARE = os.environ.get("CF_TRANSCRIBE_NO_EXTRAS") == "1"
OPTIONAL = ("dask", "distributed", "fsspec", "s3fs", "gcsfs")


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def absent(*names: str) -> pytest.MarkDecorator:
    present = [name for name in names if installed(name)]
    return pytest.mark.skipif(bool(present), reason=f"{present} installed (nox -s bare runs it)")


@pytest.mark.skipif(not BARE, reason="only in the bare session (nox -s bare)")
def test_the_bare_session_has_no_extras() -> None:
    assert [name for name in OPTIONAL if installed(name)] == []


def test_import_works_and_registers_the_accessors() -> None:
    assert hasattr(pd.DataFrame({"a": []}), "cfai")
    assert hasattr(pd.Series([], dtype=object), "cfai")
    assert cf_transcribe_pandas.__version__


@absent("dask", "distributed")
def test_the_dask_module_names_its_extra() -> None:
    with pytest.raises(ImportError, match=re.escape('pip install "cf-transcribe-pandas[dask]"')):
        importlib.import_module("cf_transcribe_pandas.dask")


def extra_declared(extra: str) -> bool:
    extras = importlib.metadata.metadata("cf-transcribe-pandas").get_all("Provides-Extra")
    return extra in (extras or [])


@pytest.mark.parametrize(
    ("url", "package", "extra"),
    [
        pytest.param("s3://bucket/a.wav", "s3fs", "s3", marks=absent("s3fs"), id="s3"),
        pytest.param("gs://bucket/a.wav", "gcsfs", "gcs", marks=absent("gcsfs"), id="gs"),
    ],
)
def test_an_object_store_row_is_a_row_error_naming_the_package(
    url: str,
    package: str,
    extra: str,
    run_kwargs: dict[str, Any],
    make_wav: Callable[..., bytes],
) -> None:
    df = pd.DataFrame({"audio": [make_wav(1), url, make_wav(2)]})
    out = df.cfai.transcribe("audio", errors="coerce", **run_kwargs)
    assert out["audio_text"].notna().tolist() == [True, False, True]
    assert out["audio_text_error_code"][1] == "unsupported_input"
    message = out["audio_text_error"][1]
    assert f"pip install fsspec {package}" in message, message
    if extra_declared(extra):
        assert f'pip install "cf-transcribe-pandas[{extra}]"' in message, message
