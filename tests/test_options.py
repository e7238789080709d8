"""TranscribeOptions: the one place every option is checked, with messages that name it."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cf_transcribe_pandas import Cache, ConfigurationError, Gateway, TranscribeOptions
from cf_transcribe_pandas.options import option_names
from cf_transcribe_pandas.signatures import takes_options

BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"errors": "ignore"}, "errors= must be 'raise' or 'coerce'", "invalid_errors"),
    (
        {"rate_limit": 0},
        "rate_limit= must be a number of requests per minute > 0",
        "invalid_rate_limit",
    ),
    ({"rate_limit": float("nan")}, "rate_limit=", "invalid_rate_limit"),
    ({"rate_limit": True}, "rate_limit=", "invalid_rate_limit"),
    ({"concurrency": 0}, "concurrency= must be an integer >= 1", "invalid_concurrency"),
    ({"concurrency": 2.5}, "concurrency=", "invalid_concurrency"),
    ({"max_retries": -1}, "max_retries= must be an integer >= 0", "invalid_max_retries"),
    ({"timeout": 0}, "timeout= must be a number of seconds > 0", "invalid_timeout"),
    ({"row_deadline": -1}, "row_deadline= must be a number of seconds > 0", "invalid_row_deadline"),
    ({"max_bytes_in_flight": 0}, "max_bytes_in_flight= must be an integer >= 1", None),
    ({"temperature": 2}, "temperature must be a number from 0 to 1", "invalid_temperature"),
    ({"model": "has space"}, "model must be a Workers AI model name", "invalid_model"),
    ({"encode": "mp3"}, "encode= must be one of", "invalid_encode"),
    ({"max_part_seconds": 5}, "max_part_seconds= must be between 10 and 1500", None),
    ({"output": ""}, "output= must be a non-empty column name", "invalid_output"),
    ({"on_event": "print"}, "on_event= must be a function", "invalid_on_event"),
    ({"cache": 3}, "cache= must be True, False, a directory path or a Cache", "invalid_cache"),
    ({"cache": "s3://bucket/cache"}, "mount the bucket", "invalid_cache"),
    ({"language": 3}, "language= must be a string, a column name or a Series", None),
    ({"prompt": 3.5}, "prompt= must be a string, a column name or a Series", None),
    ({"gateway": 3}, "gateway", None),
]


@pytest.mark.parametrize(("kwargs", "message", "code"), BAD)
def test_every_bound_is_checked_with_a_message_naming_the_option(
    kwargs: dict[str, Any], message: str, code: str | None
) -> None:
    with pytest.raises(ConfigurationError) as info:
        TranscribeOptions(**kwargs)
    assert message in str(info.value)
    if code is not None:
        assert info.value.code == code


def test_defaults_are_normalised() -> None:
    options = TranscribeOptions()
    assert options.concurrency == 64
    assert options.rate_limit == 720
    assert options.gateway is None
    assert TranscribeOptions(gateway="my-gw").gateway == Gateway.coerce("my-gw")


def test_numpy_numbers_are_numbers() -> None:
    options = TranscribeOptions(
        concurrency=np.int64(3), rate_limit=np.float64(60), timeout=np.int32(5), temperature=0.5
    )
    assert (options.concurrency, options.rate_limit, options.timeout) == (3, 60.0, 5.0)
    assert type(options.concurrency) is int


def test_a_cache_path_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ConfigurationError, match="is a file, not a directory"):
        TranscribeOptions(cache=not_a_dir)


def test_open_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_TRANSCRIBE_CACHE_DIR", str(tmp_path / "default"))
    assert TranscribeOptions(cache=False).open_cache() is None
    default = TranscribeOptions().open_cache()
    assert default is not None
    assert default.path == tmp_path / "default"
    given = Cache(tmp_path / "mine")
    assert TranscribeOptions(cache=given).open_cache() is given
    chosen = TranscribeOptions(cache=str(tmp_path / "other")).open_cache()
    assert chosen is not None
    assert chosen.path == tmp_path / "other"


def test_the_token_is_not_in_the_repr() -> None:
    options = TranscribeOptions(api_token="tok-very-secret-123", account_id="a" * 32)
    assert "tok-very-secret-123" not in repr(options)
    assert "tok-very-secret-123" not in str(options)
    assert options.credentials().api_token == "tok-very-secret-123"


def test_missing_credentials_say_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_ACCOUNT_ID"):
        TranscribeOptions(api_token="tok-123456").credentials()


def test_frozen_and_replace_checks_again() -> None:
    options = TranscribeOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.rate_limit = 5  # type: ignore[misc]
    assert options.replace(rate_limit=60).rate_limit == 60
    with pytest.raises(ConfigurationError, match="rate_limit="):
        options.replace(rate_limit=-1)


def test_an_unknown_keyword_suggests_the_nearest() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'rate_limit'") as info:
        TranscribeOptions.from_kwargs(rate_limt=60)
    assert info.value.code == "invalid_option"
    with pytest.raises(ConfigurationError, match="unknown option zzz="):
        TranscribeOptions.from_kwargs(zzz=1)


def test_takes_options_shows_every_option_once() -> None:
    class Thing:
        @takes_options(without=("provenance",))
        def run(self, column: str, **options: Any) -> None:
            """Run.

            Args:
                column: The column.
                {options}
            """

    params = inspect.signature(Thing.run).parameters
    names = [n for n in params if n not in ("self", "column")]
    assert names == [n for n in option_names() if n != "provenance"]
    assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names)
    assert all(params[n].annotation is not inspect.Parameter.empty for n in names)
    doc = inspect.getdoc(Thing.run) or ""
    for name in names:
        assert f"\n    {name}:" in doc, name
    assert "{options}" not in doc
    assert "provenance:" not in doc
