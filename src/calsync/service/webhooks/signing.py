"""Standard Webhooks signatures (standardwebhooks.com), so any of its libraries verifies them.

The secret is ``whsec_`` and the base64 of 24 random bytes; a signature is ``v1,`` and the
base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` keyed with those bytes. During a rotation a
message carries one signature per secret, space-separated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<sig>`` per secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets_
    )


def headers(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets_, message_id, timestamp, body),
        "user-agent": "calsync-webhooks",
    }
