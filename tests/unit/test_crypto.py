"""Secrets at rest: encryption with rotation, the key file, signed tokens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from calsync.crypto import KEY_FILE_NAME, SecretBox, load_keys, sign, unsign
from calsync.settings import Settings


def test_key_file_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = load_keys(settings)
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(settings) == first


def test_rotation_keeps_old_secrets_readable(tmp_path: Path) -> None:
    old_key, new_key = Fernet.generate_key(), Fernet.generate_key()
    old_box = SecretBox([old_key])
    token = old_box.encrypt("app-password")
    rotated_box = SecretBox([new_key, old_key])
    assert rotated_box.decrypt(token) == "app-password"
    rewritten = rotated_box.rotate(token)
    assert SecretBox([new_key]).decrypt(rewritten) == "app-password"
    with pytest.raises(ValueError):
        SecretBox([new_key]).decrypt(token)
    settings = Settings(data_dir=tmp_path, encryption_keys=f"{new_key.decode()},{old_key.decode()}")
    assert load_keys(settings) == [new_key, old_key]
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_signed_tokens_detect_tampering() -> None:
    key = b"k" * 32
    token = sign(key, b'{"a":1}')
    assert unsign(key, token) == b'{"a":1}'
    assert unsign(b"other" * 8, token) is None
    body, mac = token.split(".")
    assert unsign(key, body + "x." + mac) is None
    assert unsign(key, "no-dot") is None
    assert unsign(key, "!!!.???") is None
