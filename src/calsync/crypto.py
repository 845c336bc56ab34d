"""Encryption of secrets at rest (Fernet, rotatable) and signing of opaque tokens (HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from calsync.settings import Settings

KEY_FILE_NAME = "secret.key"


class SecretBox:
    """Encrypts with the first key, decrypts with any of them, so keys can be rotated."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._primary = keys[0]

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the current first key; ValueError if no key reads it."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` is encrypted under the first key (so rotation can skip it)."""
        try:
            Fernet(self._primary).decrypt(token)
        except InvalidToken:
            return False
        return True

    def derive_key(self, purpose: str) -> bytes:
        """A key for another purpose (e.g. cursor signing), bound to the primary key."""
        return hmac.new(self._primary, purpose.encode(), hashlib.sha256).digest()


def load_keys(settings: Settings) -> list[bytes]:
    """Keys from settings, or the data directory's key file (created with mode 0600)."""
    if settings.encryption_keys:
        return [k.strip().encode() for k in settings.encryption_keys.split(",") if k.strip()]
    path = settings.data_dir / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return [line.strip().encode() for line in path.read_text().splitlines() if line.strip()]


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode() + "\n")


def key_file(settings: Settings) -> Path | None:
    """The key file in use, or None when keys come from ``CALSYNC_ENCRYPTION_KEYS``."""
    return None if settings.encryption_keys else settings.data_dir / KEY_FILE_NAME


def prepend_new_key(path: Path) -> None:
    """Put a fresh key first in the key file: it encrypts from now on, the others still
    decrypt. The file is replaced atomically and keeps mode 0600."""
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    _replace_key_file(path, [Fernet.generate_key().decode(), *keys])


def drop_old_keys(path: Path) -> int:
    """Keep only the first key of the key file; returns how many keys were removed."""
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    _replace_key_file(path, keys[:1])
    return len(keys) - 1


def _replace_key_file(path: Path, keys: list[str]) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(k + "\n" for k in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def sign(key: bytes, payload: bytes) -> str:
    """``base64url(payload).base64url(hmac)``: tamper-evident, not secret."""
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def unsign(key: bytes, token: str) -> bytes | None:
    """The payload of a token made by ``sign``, or None if it was altered or is malformed."""
    try:
        body, mac = token.split(".", 1)
        payload = _unb64(body)
        expected = hmac.new(key, payload, hashlib.sha256).digest()
        if hmac.compare_digest(expected, _unb64(mac)):
            return payload
    except (ValueError, TypeError):
        return None
    return None


def hash_api_key(key: str) -> str:
    """API keys are 256-bit random strings, so one SHA-256 suffices (no password stretching)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
