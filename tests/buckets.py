"""An S3-compatible server for the tests: moto's real S3 server on 127.0.0.1, port 0,
with a count of the requests it answered (method, path, query), and the
``storage_options`` that reach it.

Plain helpers (no fixtures), imported by the test modules that read buckets.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

KEY_ID = "AKIAEXAMPLEKEY0001"
SECRET = "s3cr3t-Wx8f2Lq9Zp4Tk7Vb1Nm6"  # must never show in any output or file


class CountingMotoServer:
    """moto's ``ThreadedMotoServer`` plus a log of every request it answered.

    Use as a context manager; :attr:`requests` holds ``(method, path, query)``.
    """

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line a request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> CountingMotoServer:
        self._server.start()
        wsgi = self._server._server  # the werkzeug server moto made: count what it serves
        assert wsgi is not None
        app = wsgi.app

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            with self._lock:
                self.requests.append(
                    (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"])
                )
            return app(environ, start_response)

        wsgi.app = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def endpoint(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def storage_options(self, key: str = KEY_ID, secret: str = SECRET) -> dict[str, Any]:
        """What a user passes, as for R2: endpoint, key and secret, region."""
        return {
            "endpoint_url": self.endpoint,
            "key": key,
            "secret": secret,
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def client(self) -> Any:
        """A boto3 client for setting buckets up (not the library's s3fs)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def bucket(self, objects: dict[str, bytes]) -> str:
        """A new bucket holding ``objects`` (key -> bytes); returns its name."""
        name = f"calls-{uuid.uuid4().hex[:12]}"
        client = self.client()
        client.create_bucket(Bucket=name)
        for key, data in objects.items():
            client.put_object(Bucket=name, Key=key, Body=data)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def reset_count(self) -> None:
        with self._lock:
            self.requests.clear()

    def object_gets(self) -> list[str]:
        """Paths of the GetObject requests (a GET of a key, not of a bucket listing)."""
        return [p for m, p, _ in self.requests if m == "GET" and p.strip("/").count("/") >= 1]

    def metadata_calls(self) -> list[tuple[str, str, str]]:
        """HeadObject and ListObjects requests."""
        return [r for r in self.requests if r[0] == "HEAD" or "list-type" in r[2]]

    def require_auth(self, on: bool) -> None:
        """Turn moto's IAM authentication on (unknown keys are refused) or off."""
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf")


def urls(bucket: str, keys: Iterable[str]) -> list[str]:
    """``s3://bucket/key`` for each key."""
    return [f"s3://{bucket}/{key}" for key in keys]
