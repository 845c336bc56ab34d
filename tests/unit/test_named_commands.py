"""Every ``calsync ...`` command that a page, a message or the README names exists (the sign-in
page once told users to run ``calsync keys create``, which does not)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from calsync.cli import app

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *sorted((ROOT / "src" / "calsync").rglob("*.py")),
    *sorted((ROOT / "src" / "calsync" / "dashboard").rglob("*.html")),
    ROOT / "README.md",
    ROOT / "ARCHITECTURE.md",
]
# `calsync word word ...` inside backticks or <code>, or after .venv/bin/.
MENTION = re.compile(r"(?:`|<code>|\.venv/bin/)calsync((?: [a-z][a-z-]*)+)")


def _resolves(words: list[str]) -> bool:
    """Whether ``words`` lead from the root command to a command (words after a command that
    has no subcommands are its arguments; a group must know the next word)."""
    command: Any = typer.main.get_command(app)
    reached = False
    for word in words:
        if not hasattr(command, "list_commands"):  # a leaf: the rest are its arguments
            return reached
        sub = command.get_command(command.context_class(command), word)
        if sub is None:
            return False
        command, reached = sub, True
    return reached


def _mentions() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        for match in MENTION.finditer(path.read_text(encoding="utf-8")):
            found.append((str(path.relative_to(ROOT)), match.group(1).strip()))
    return found


def test_every_named_command_exists() -> None:
    mentions = _mentions()
    assert len(mentions) > 10  # the scan sees the README's and the pages' commands
    missing = [(where, words) for where, words in mentions if not _resolves(words.split())]
    assert missing == [], f"commands named that calsync does not have: {missing}"


def test_the_check_tells_a_missing_command() -> None:
    assert not _resolves(["keys", "create"])
    assert _resolves(["api-keys", "create"])
    assert _resolves(["serve"])
