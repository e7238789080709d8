"""The exception tree: relations, flags, codes, pickling and redaction."""

from __future__ import annotations

import pickle

import pytest

import cf_transcribe_pandas
from cf_transcribe_pandas import errors
from cf_transcribe_pandas.errors import (
    AccountError,
    AudioError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    ModelAccessError,
    ModelError,
    ModelNotFoundError,
    NetworkError,
    OutdatedClientError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ServiceError,
    ServiceTimeoutError,
    TranscribeError,
    redact,
)

ALL = [
    TranscribeError,
    ConfigurationError,
    AccountError,
    AuthenticationError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    InvalidRequestError,
    AudioError,
    ModelError,
    ModelNotFoundError,
    ModelAccessError,
    OutdatedClientError,
    ServiceTimeoutError,
    ServiceError,
    NetworkError,
]

PARENT = {
    ConfigurationError: TranscribeError,
    AccountError: TranscribeError,
    AuthenticationError: AccountError,
    QuotaExceededError: AccountError,
    RateLimitError: TranscribeError,
    RequestTooLargeError: TranscribeError,
    InvalidRequestError: TranscribeError,
    AudioError: InvalidRequestError,
    ModelError: AccountError,
    ModelNotFoundError: ModelError,
    ModelAccessError: ModelError,
    OutdatedClientError: AccountError,
    ServiceTimeoutError: TranscribeError,
    ServiceError: TranscribeError,
    NetworkError: TranscribeError,
}

RETRYABLE = {RateLimitError, ServiceTimeoutError, ServiceError, NetworkError}
STOPS_RUN = {
    AccountError,
    AuthenticationError,
    QuotaExceededError,
    ModelError,
    ModelNotFoundError,
    ModelAccessError,
    OutdatedClientError,
}


@pytest.mark.parametrize(("cls", "parent"), PARENT.items(), ids=lambda c: c.__name__)
def test_each_class_has_its_documented_parent(
    cls: type[TranscribeError], parent: type[TranscribeError]
) -> None:
    assert cls.__bases__[0] is parent
    assert issubclass(cls, TranscribeError)
    assert issubclass(cls, Exception)


def test_configuration_error_is_also_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)
    with pytest.raises(ValueError, match="bad"):
        raise ConfigurationError("bad")


def test_siblings_are_not_related() -> None:
    assert not issubclass(RateLimitError, AccountError)
    assert not issubclass(QuotaExceededError, RateLimitError)
    assert not issubclass(ModelNotFoundError, InvalidRequestError)
    assert not issubclass(RequestTooLargeError, InvalidRequestError)
    assert not issubclass(ServiceTimeoutError, ServiceError)
    assert not issubclass(NetworkError, ServiceError)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_flags(cls: type[TranscribeError]) -> None:
    assert cls.retryable is (cls in RETRYABLE)
    assert cls.stops_run is (cls in STOPS_RUN)
    assert not (cls.retryable and cls.stops_run)
    assert isinstance(cls.kind, str)
    assert cls.kind
    exc = cls("x")
    assert exc.retryable is cls.retryable
    assert exc.stops_run is cls.stops_run


def test_kinds_are_distinct() -> None:
    kinds = [cls.kind for cls in ALL]
    assert len(set(kinds)) == len(kinds)


def test_every_class_is_drawn_in_the_module_docstring_and_exported() -> None:
    doc = errors.__doc__ or ""
    for cls in ALL:
        assert cls.__name__ in doc
        assert cls.__name__ in errors.__all__
        assert getattr(cf_transcribe_pandas, cls.__name__) is cls


def test_attributes_str_and_repr() -> None:
    exc = RateLimitError("slow down", code=3040, status=429, retry_after=2.5)
    assert exc.message == "slow down"
    assert str(exc) == "slow down"
    assert exc.args == ("slow down",)
    assert (exc.code, exc.status, exc.retry_after) == (3040, 429, 2.5)
    assert repr(exc) == "RateLimitError('slow down', code=3040, status=429, retry_after=2.5)"
    assert repr(NetworkError("down")) == "NetworkError('down')"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (QuotaExceededError("q", code=3036, status=429), "3036"),
        (AudioError("a", code="unreadable_audio"), "unreadable_audio"),
        (ServiceError("s", status=502), "http_502"),
        (NetworkError("n"), "connection_error"),
        (ServiceTimeoutError("t"), "timeout"),
        (RequestTooLargeError("r"), "request_too_large"),
    ],
)
def test_error_code(exc: TranscribeError, expected: str) -> None:
    assert exc.error_code == expected


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_pickle_round_trip_keeps_everything(cls: type[TranscribeError]) -> None:
    exc = cls("what happened", code=3040, status=429, retry_after=1.5)
    exc.partial = {"rows": 3}
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert back.message == "what happened"
    assert str(back) == "what happened"
    assert (back.code, back.status, back.retry_after) == (3040, 429, 1.5)
    assert back.partial == {"rows": 3}
    assert back.error_code == "3040"


def test_pickle_keeps_string_codes_and_none() -> None:
    back = pickle.loads(pickle.dumps(AudioError("gone", code="file_not_found")))
    assert (back.code, back.status, back.retry_after) == ("file_not_found", None, None)


@pytest.mark.parametrize(
    ("exc", "label"),
    [
        (AudioError("a", code="file_not_found"), "file not found"),
        (AudioError("a", code="unreadable_audio"), "unreadable audio"),
        (InvalidRequestError("r", code=5004, status=400), "invalid request (5004)"),
        (ServiceTimeoutError("t"), "timeout"),
    ],
)
def test_label_names_the_real_code(exc: TranscribeError, label: str) -> None:
    assert exc.label == label


def test_redact_replaces_every_secret() -> None:
    text = "token abcd1234 and again abcd1234, other s3cr3t-value"
    out = redact(text, "abcd1234", "s3cr3t-value")
    assert "abcd1234" not in out
    assert "s3cr3t-value" not in out
    assert out == "token *** and again ***, other ***"


@pytest.mark.parametrize("secret", [None, "", "abc"])
def test_redact_ignores_empty_and_tiny_secrets(secret: str | None) -> None:
    assert redact("abc def", secret) == "abc def"


def test_redact_without_secrets_is_identity() -> None:
    assert redact("nothing to hide") == "nothing to hide"
