"""Opt-in test against the real Cloudflare API.

Runs only when CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID are set (it sends
one short clip, a fraction of a cent). Select it alone with ``-m live``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from cf_transcribe_pandas.client import Client, Credentials

CLIP = Path(__file__).parent / "data" / "audio" / "s11_en_wav.wav"

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("CLOUDFLARE_API_TOKEN") and os.environ.get("CLOUDFLARE_ACCOUNT_ID")),
        reason="live test: set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID to run it",
    ),
]


async def test_real_api_transcribes_hello() -> None:
    credentials = Credentials.resolve()
    file = "data:audio/wav;base64," + base64.b64encode(CLIP.read_bytes()).decode()
    async with Client(credentials, timeout=120.0) as client:
        text = await client.transcribe(file, language="en")
    assert "hello" in text.lower()
