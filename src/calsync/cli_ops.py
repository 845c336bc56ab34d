"""Operator commands of ``calsync``: providers, connections, sync, encryption keys.

They work on the whole deployment (every tenant) straight through the database, so they are
for whoever runs calsync, not for API callers. ``cli.py`` registers them.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from calsync.service.runtime import Runtime

providers_app = typer.Typer(
    help="The calendar providers this deployment offers (built-ins and the providers file).",
    no_args_is_help=True,
)
connections_app = typer.Typer(
    help="Connections of schedules to external calendar accounts, across every tenant.",
    no_args_is_help=True,
)
encryption_app = typer.Typer(
    help="The encryption keys that protect stored secrets (OAuth tokens, passwords). "
    "Not API keys: see 'calsync api-keys'.",
    no_args_is_help=True,
)

F = TypeVar("F", bound=Callable[..., Any])
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object per line.")]
ERROR_WIDTH = 40


def reflowed(command: F) -> F:
    """Join the docstring's wrapped lines into paragraphs: typer's help keeps line breaks."""
    doc = inspect.cleandoc(command.__doc__ or "")
    command.__doc__ = "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n"))
    return command


def open_runtime() -> Runtime:
    """The runtime of the configured settings, with the schema up to date."""
    from calsync.service.runtime import build_runtime
    from calsync.settings import get_settings
    from calsync.store import database

    runtime = build_runtime(get_settings())
    database.upgrade(runtime.store)
    return runtime


@contextmanager
def _runtime() -> Iterator[Runtime]:
    runtime = open_runtime()
    try:
        yield runtime
    finally:
        runtime.close()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell: readable in a terminal, easy to grep or cut."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _time(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


@providers_app.command("list")
@reflowed
def providers_list(as_json: JsonOption = False) -> None:
    """List providers with their connect methods and import/export features.

    'offered: no' means API callers do not see the provider: an OAuth provider needs a
    client_id in the providers file.
    """
    with _runtime() as rt:
        providers = rt.providers.all()
    rows: list[dict[str, Any]] = [
        {
            "id": p.id,
            "name": p.name,
            "kind": p.kind.value,
            "calendarType": p.calendar_type.value,
            "offered": p.listed,
            "connectMethods": [m.value for m in p.features.connect_methods],
            "updateSyncConfig": p.features.update_sync_config,
            "import": p.features.list_event_from_calendars.value,
            "export": p.features.sync_to_calendar.value,
            "url": p.url or None,
        }
        for p in providers
    ]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    print_table(
        ["ID", "NAME", "KIND", "OFFERED", "CONNECT", "IMPORT", "EXPORT"],
        [
            [
                r["id"],
                r["name"],
                r["kind"],
                "yes" if r["offered"] else "no",
                ",".join(r["connectMethods"]),
                r["import"],
                r["export"],
            ]
            for r in rows
        ],
    )


@connections_app.command("list")
@reflowed
def connections_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's connections.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List connections: schedule, provider, account, status, error and last successful sync.

    Disconnected connections are listed too (their status says so).
    """
    from calsync.service.connections.operations import list_connections

    with _runtime() as rt:
        found = list_connections(rt, tenant_id=tenant)
    if as_json:
        for c in found:
            row = {
                "id": c.id,
                "tenant": c.tenant_id,
                "scheduleId": c.schedule_id,
                "providerId": c.provider_id,
                "provider": c.provider_name,
                "externalAccountEmail": c.external_account_email,
                "status": c.status.value,
                "errorReason": c.error_reason.value,
                "lastError": c.last_error,
                "lastSynced": _time(c.last_synced_at),
            }
            typer.echo(json.dumps(row))
        return
    rows = []
    for c in found:
        error = c.error_reason.value if c.error_reason.value != "UNDEFINED" else c.last_error
        if error and len(error) > ERROR_WIDTH:
            error = error[: ERROR_WIDTH - 3] + "..."
        rows.append(
            [
                c.id,
                c.tenant_id,
                c.schedule_id,
                c.provider_name,
                c.external_account_email or "-",
                c.status.value,
                error or "-",
                _time(c.last_synced_at) or "never",
            ]
        )
    headers = ["ID", "TENANT", "SCHEDULE", "PROVIDER", "ACCOUNT", "STATUS", "ERROR", "LAST SYNCED"]
    print_table(headers, rows)


@reflowed
def sync_command(
    connection_id: Annotated[
        str | None, typer.Argument(help="The connection to sync (from 'connections list').")
    ] = None,
    all_: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Sync every connection the worker would (not disconnected, credentials not "
            "refused).",
        ),
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="With --all: only this tenant.")] = None,
) -> None:
    """Sync one or all connections now, as the worker would: import their calendars, then
    export the schedule's sessions to them.

    Exits 1 if any connection could not be synced; the reasons are printed.
    """
    from calsync.service.connections.operations import get_connection, syncable_connection_ids

    if (connection_id is None) == (not all_):
        raise typer.BadParameter("give a CONNECTION_ID or --all (not both)")
    if tenant is not None and not all_:
        raise typer.BadParameter("--tenant goes with --all")
    with _runtime() as rt:
        if connection_id is not None:
            found = get_connection(rt, connection_id=connection_id)
            if found is None:
                typer.echo(f"no connection {connection_id}", err=True)
                raise typer.Exit(2)
            if found.status.value == "DISCONNECTED":
                typer.echo(f"connection {connection_id} is disconnected", err=True)
                raise typer.Exit(2)
            ids = [connection_id]
        else:
            ids = syncable_connection_ids(rt, tenant_id=tenant)
        failures = _sync_all(rt, ids)
    typer.echo(f"synced {len(ids) - len(failures)} of {len(ids)} connections")
    for cid, reason in failures:
        typer.echo(f"failed {cid}: {reason}", err=True)
    if failures:
        raise typer.Exit(1)


def _sync_all(rt: Runtime, ids: list[str]) -> list[tuple[str, str]]:
    """Sync each connection in turn, with a progress bar on a terminal and a line per
    connection otherwise; returns (id, reason) of each failure."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    failures: list[tuple[str, str]] = []
    if not on_terminal():
        for cid in ids:
            reason = _sync_one(rt, cid)
            typer.echo(f"{'failed' if reason else 'ok'} {cid}")
            if reason:
                failures.append((cid, reason))
        return failures
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    console = Console(file=sys.stdout, force_terminal=True)
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("syncing", total=len(ids))
        for cid in ids:
            reason = _sync_one(rt, cid)
            if reason:
                failures.append((cid, reason))
            progress.update(task, advance=1, description=f"syncing ({len(failures)} failed)")
    return failures


def on_terminal() -> bool:
    return sys.stdout.isatty()


def _sync_one(rt: Runtime, connection_id: str) -> str | None:
    """None on success, else why it failed."""
    from calsync.service.sync.run import SyncFailed, sync_connection

    try:
        sync_connection(rt, connection_id, export=True)  # what the worker does
    except SyncFailed as exc:
        return str(exc)
    except Exception as exc:  # one broken connection must not stop the others
        return f"internal error ({type(exc).__name__})"
    return None


@encryption_app.command("generate")
def keys_generate() -> None:
    """Print a new encryption key, for CALSYNC_ENCRYPTION_KEYS (see 'keys rotate --help')."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())


@encryption_app.command("rotate")
@reflowed
def keys_rotate(
    generate: Annotated[
        bool,
        typer.Option(
            "--generate",
            help="First put a new key at the head of the key file (key file only).",
        ),
    ] = False,
    drop_old: Annotated[
        bool,
        typer.Option(
            "--drop-old",
            help="After a complete rotation, remove every other key from the key file.",
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Secrets re-encrypted per committed batch.")
    ] = 200,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be re-encrypted.")
    ] = False,
) -> None:
    """Re-encrypt every stored secret with the first encryption key.

    Resumable: each batch commits on its own, and running it again (without --generate)
    finishes an interrupted rotation; secrets already under the first key are skipped.

    With the key file (the default: secret.key in the data directory): stop calsync, run
    'calsync keys rotate --generate --drop-old', start calsync.

    With CALSYNC_ENCRYPTION_KEYS: put a key from 'calsync keys generate' first in the
    variable, keeping the old ones after it, and restart every calsync process; then run
    'calsync keys rotate'; then remove the old keys from the variable and restart again.

    Processes still running with the old keys cannot read secrets rotated to a key they do not
    know. A new first key also ends outstanding List Events cursors and dashboard forms
    (their signatures derive from it).
    """
    from calsync.crypto import drop_old_keys, key_file, prepend_new_key
    from calsync.service.access.key_rotation import ColumnReport, rotate_secrets
    from calsync.settings import get_settings

    path = key_file(get_settings())
    if (generate or drop_old) and path is None:
        typer.echo(
            "--generate and --drop-old edit the key file, but CALSYNC_ENCRYPTION_KEYS is set: "
            "edit that variable instead (see --help)",
            err=True,
        )
        raise typer.Exit(2)
    if generate and path is not None and path.exists() and not dry_run:
        prepend_new_key(path)
        typer.echo(f"new first key written to {path}")

    def progress(column: ColumnReport) -> None:
        typer.echo(f"{column.column}: {column.seen} checked so far")

    with _runtime() as rt:
        report = rotate_secrets(rt, batch_size=batch_size, dry_run=dry_run, after_batch=progress)
    verb = "to re-encrypt" if dry_run else "re-encrypted"
    for c in report.columns:
        typer.echo(
            f"{c.column}: {c.rotated} {verb}, {c.current} already under the first key, "
            f"{c.unreadable} unreadable, {c.changed_meanwhile} changed meanwhile"
        )
    if not report.complete:
        typer.echo(
            "not complete: unreadable secrets need the key they were written with; secrets "
            "changed meanwhile are rotated by running this again",
            err=True,
        )
        raise typer.Exit(1)
    if drop_old and path is not None and not dry_run:
        removed = drop_old_keys(path)
        typer.echo(f"removed {removed} old key(s) from {path}")
    elif path is None and not dry_run:
        typer.echo("every secret is under the first key: old keys can leave the variable now")
