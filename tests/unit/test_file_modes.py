"""Data files are this user's alone: the database holds event titles and e-mail addresses."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from calsync.crypto import load_keys
from calsync.settings import Settings
from calsync.store.db import make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_its_journal_and_its_folder_are_private(tmp_path: Path) -> None:
    database = tmp_path / "data" / "calsync.db"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x TEXT)"))
        conn.execute(text("INSERT INTO t VALUES ('Massage: Maria')"))
        wal = database.with_name("calsync.db-wal")
        assert wal.exists()
        assert mode(wal) == 0o600
    engine.dispose()
    assert mode(database) == 0o600
    assert mode(database.parent) == 0o700


def test_an_older_readable_database_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "calsync.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o600


def test_the_key_file_and_the_data_folder_are_private(tmp_path: Path) -> None:
    load_keys(Settings(data_dir=tmp_path / "fresh"))
    assert mode(tmp_path / "fresh") == 0o700
    assert mode(tmp_path / "fresh" / "secret.key") == 0o600
