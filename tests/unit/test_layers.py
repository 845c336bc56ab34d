"""The store contract (issue 12): only ``store/`` (and ``migrations/``) speaks SQL.

Every other module of ``src/calsync`` goes through the typed store functions and the unit of
work (``store.unit``), never through SQLAlchemy, the ORM models or the engine helpers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import calsync

PACKAGE = Path(calsync.__file__).resolve().parent
SRC = PACKAGE.parent
# The packages allowed to speak SQL.
SQL_PACKAGES = ("calsync/store/", "calsync/migrations/")
BANNED = (
    "sqlalchemy",
    "calsync.store.models",
    "calsync.store.rows",
    "calsync.store.raw_rows",
    "calsync.store.db",
)

# Modules still being converted to the store contract while this test was written (each by
# the engineer who owns it). The list only shrinks: remove a module from it as it is converted
# (``test_the_allow_list_names_only_modules_that_still_break_the_contract`` insists), and
# delete the list once it is empty.
EXPECTED_TO_BE_CONVERTED = frozenset(
    {
        "calsync/dashboard/connection_cards.py",
        "calsync/service/connections/accounts.py",
        "calsync/service/connections/connect.py",
        "calsync/service/connections/manage.py",
        "calsync/service/connections/oauth.py",
        "calsync/service/connections/operations.py",
        "calsync/service/connections/retire.py",
        "calsync/service/events/live.py",
        "calsync/service/export/edits.py",
        "calsync/service/export/reconcile.py",
        "calsync/service/export/writes.py",
        "calsync/service/platform/schedules.py",
        "calsync/service/platform/sessions.py",
        "calsync/service/runtime.py",  # builds the engine and sessionmaker (rt.engine, rt.db)
        "calsync/service/sync/instances.py",
        "calsync/service/sync/leases.py",
        "calsync/service/sync/push.py",
        "calsync/service/sync/report.py",
        "calsync/service/sync/run.py",
    }
)


def _is_banned(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in BANNED)


def banned_imports(source: str, module: str) -> list[str]:
    """The banned modules that ``source`` (the text of the dotted ``module``) imports,
    anywhere in it (inside functions and ``TYPE_CHECKING`` blocks too)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_banned(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            if _is_banned(base):
                found.append(base)
            else:  # "from calsync.store import models" imports calsync.store.models
                submodules = (f"{base}.{alias.name}" for alias in node.names)
                found += [name for name in submodules if _is_banned(name)]
    return found


def _violations() -> dict[str, list[str]]:
    """Each module outside the SQL packages that imports a banned module, with what it imports."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(SQL_PACKAGES):
            continue
        module = relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        imports = banned_imports(path.read_text(encoding="utf-8"), module)
        if imports:
            found[relative] = imports
    return found


def test_only_the_store_speaks_sql() -> None:
    offending = {m: i for m, i in _violations().items() if m not in EXPECTED_TO_BE_CONVERTED}
    assert offending == {}, (
        "only calsync/store/ (and migrations/) may import SQLAlchemy, the ORM models or the "
        "engine helpers; go through a store module and rt.store.transaction() instead"
    )


def test_the_allow_list_names_only_modules_that_still_break_the_contract() -> None:
    clean = EXPECTED_TO_BE_CONVERTED - set(_violations())
    assert clean == set(), "converted (or gone): remove them from EXPECTED_TO_BE_CONVERTED"


def test_the_check_sees_every_form_of_import() -> None:
    source = "\n".join(
        [
            "import os",
            "import sqlalchemy.orm as orm",
            "from sqlalchemy import select",
            "from calsync.store import models, unit",
            "from calsync.store.rows import lock_active_connection",
            "from calsync.store.unit import Tx",
            "from . import db",
            "def later():",
            "    from calsync.store.raw_rows import fetch_tuples",
        ]
    )
    assert banned_imports(source, "calsync.store.example") == [
        "sqlalchemy.orm",
        "sqlalchemy",
        "calsync.store.models",
        "calsync.store.rows",
        "calsync.store.db",
        "calsync.store.raw_rows",
    ]
    assert banned_imports("from calsync.store import connections, unit", "calsync.cli") == []
