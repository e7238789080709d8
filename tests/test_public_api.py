"""The front door: exported names, the accessors' registration and their signatures.

Like httpx's ``tests/test_exported_members.py``: a name added to or dropped
from the public API must be a deliberate change to this file too.
"""

from __future__ import annotations

import inspect
from typing import Any

import pandas as pd
import pytest

import cf_transcribe_pandas
from cf_transcribe_pandas.accessor import DataFrameAccessor, SeriesAccessor

EXPORTED = {
    "AccountError",
    "AudioError",
    "AuthenticationError",
    "Cache",
    "ConfigurationError",
    "DataFrameAccessor",
    "Event",
    "Gateway",
    "InvalidRequestError",
    "ModelAccessError",
    "ModelError",
    "ModelNotFoundError",
    "NetworkError",
    "OutdatedClientError",
    "QuotaExceededError",
    "RateChange",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryDetails",
    "RowDone",
    "SeriesAccessor",
    "ServiceError",
    "ServiceTimeoutError",
    "StorageAccessError",
    "TranscribeError",
    "TranscribeOptions",
    "__version__",
    "to_srt",  # issue 17: subtitles from {output}_segments
    "to_vtt",
}

# docs/design.md "Public API": the argument names, in order, and their defaults.
DESIGN_DEFAULTS: dict[str, Any] = {
    "output": None,
    "language": None,
    "prompt": None,
    "temperature": None,
    "model": "openai/gpt-4o-transcribe",
    "errors": "raise",
    "cache": True,
    "concurrency": None,
    "rate_limit": 720,
    "max_retries": 6,
    "timeout": 300.0,
    "progress": True,
    "account_id": None,
    "api_token": None,
    "base_url": None,
    "gateway": None,
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(cf_transcribe_pandas.__all__) == EXPORTED
    assert len(cf_transcribe_pandas.__all__) == len(EXPORTED)


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in cf_transcribe_pandas.__all__:
        value = getattr(cf_transcribe_pandas, name)
        if name not in ("__version__", "Event"):
            assert inspect.getdoc(value), f"{name} has no docstring"
    assert isinstance(cf_transcribe_pandas.__version__, str)


def test_no_other_public_module_attributes_leak() -> None:
    public = {
        name
        for name, value in vars(cf_transcribe_pandas).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public - {"annotations"} <= EXPORTED


def test_importing_registers_both_accessors() -> None:
    assert isinstance(pd.DataFrame({"a": [1]}).cfai, DataFrameAccessor)
    assert isinstance(pd.Series([1]).cfai, SeriesAccessor)


def _params(fn: Any) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)


def test_transcribe_has_the_designed_signature() -> None:
    params = _params(DataFrameAccessor.transcribe)
    names = list(params)
    assert names[:3] == ["self", "column", "output"]
    for name, default in DESIGN_DEFAULTS.items():
        assert params[name].default == default, name
    design_order = [n for n in names if n in DESIGN_DEFAULTS]
    assert design_order == list(DESIGN_DEFAULTS)
    # Everything after `output` is keyword-only.
    assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names[3:])


def test_the_four_methods_take_the_same_arguments() -> None:
    frame_sync = _params(DataFrameAccessor.transcribe)
    frame_async = _params(DataFrameAccessor.atranscribe)
    series_sync = _params(SeriesAccessor.transcribe)
    series_async = _params(SeriesAccessor.atranscribe)
    assert frame_sync == frame_async
    assert series_sync == series_async
    # The Series takes the frame's arguments except the column and the provenance columns.
    expected = {k: v for k, v in frame_sync.items() if k not in ("column", "provenance")}
    assert list(series_sync) == list(expected)
    for name in expected:
        assert series_sync[name].default == expected[name].default, name
        assert series_sync[name].annotation == expected[name].annotation, name
    assert inspect.iscoroutinefunction(DataFrameAccessor.atranscribe)
    assert inspect.iscoroutinefunction(SeriesAccessor.atranscribe)
    assert not inspect.iscoroutinefunction(DataFrameAccessor.transcribe)


@pytest.mark.parametrize(
    "method",
    [
        DataFrameAccessor.transcribe,
        DataFrameAccessor.atranscribe,
        SeriesAccessor.transcribe,
        SeriesAccessor.atranscribe,
    ],
)
def test_methods_are_typed_and_documented(method: Any) -> None:
    params = _params(method)
    untyped = [n for n, p in params.items() if p.annotation is inspect.Parameter.empty]
    assert untyped == ["self"]
    assert inspect.signature(method).return_annotation is not inspect.Signature.empty
    assert inspect.getdoc(method)


def test_transcribe_documents_every_argument() -> None:
    doc = inspect.getdoc(DataFrameAccessor.transcribe) or ""
    for name in _params(DataFrameAccessor.transcribe):
        if name != "self":
            assert f"\n    {name}:" in doc, f"{name} is not in the Args section"
    for section in ("Args:", "Returns:", "Raises:"):
        assert section in doc


def test_errors_tell_retryable_from_run_stopping() -> None:
    c = cf_transcribe_pandas
    stops = [e for e in (c.QuotaExceededError, c.AuthenticationError) if e.stops_run]
    assert len(stops) == 2
    retryable = [e for e in (c.RateLimitError, c.ServiceError, c.NetworkError) if e.retryable]
    assert len(retryable) == 3
    assert not c.AudioError.retryable
    assert not c.AudioError.stops_run
    assert issubclass(c.ConfigurationError, ValueError)
