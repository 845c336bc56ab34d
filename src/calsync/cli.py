"""The ``calsync`` command: serve the API, migrate the database, manage API keys."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from calsync import __version__, cli_ops
from calsync.domain import Permission
from calsync.settings import Settings, get_settings

if TYPE_CHECKING:
    from calsync.store.unit import Tx

app = typer.Typer(
    help="calsync connects booking-platform schedules to Google, Microsoft, iCloud and CalDAV "
    "calendars, behind the External Calendar API v2.\n\n"
    "Start with 'calsync serve' (or 'calsync serve --demo'). Settings are CALSYNC_* "
    "environment variables: 'calsync settings' lists them. Run any command with --help.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys that callers send in the Authorization header.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="api-keys")
app.add_typer(cli_ops.providers_app, name="providers")
app.add_typer(cli_ops.connections_app, name="connections")
app.command("sync")(cli_ops.sync_command)
app.add_typer(cli_ops.encryption_app, name="keys")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Providers TOML file (overrides CALSYNC_PROVIDERS_FILE)."),
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"calsync {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
]


@app.callback()
def main_options(config: ConfigOption = None, version: VersionOption = False) -> None:
    if config is not None:
        os.environ["CALSYNC_PROVIDERS_FILE"] = str(config)
        get_settings.cache_clear()


def _settings() -> Settings:
    return get_settings()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or migrate it to the newest version (SQLite and PostgreSQL alike)."""
    from calsync.store import database

    store = database.open_store(_settings().resolved_database_url())
    database.upgrade(store)
    database.close(store)
    typer.echo("database is up to date")


def _open_redirects_in_production(settings: Settings) -> bool:
    """An https public URL off this machine is production: OAuth redirects must be listed."""
    url = urlsplit(settings.public_url)
    loopback = url.hostname in ("localhost", "127.0.0.1", "::1")
    return url.scheme == "https" and not loopback and settings.redirect_origins() is None


def _refuse_a_busy_port(host: str, port: int) -> None:
    """One plain sentence, not a traceback, when something else listens there already."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # e.g. an address of another machine: uvicorn says what is wrong
            typer.echo(
                f"calsync serve: port {port} on {host} is in use; stop the other program or "
                "choose another port with --port or CALSYNC_PORT (make run PORT=8080)",
                err=True,
            )
            raise typer.Exit(1) from None


def _serve_settings(host: str, port: int, *, tls: bool) -> Settings:
    """The settings ``serve`` runs with: unset, the public URL is where it listens (for the
    links it prints and OAuth redirects). Exits when production would accept any OAuth
    redirect origin."""
    settings = _settings()
    if "public_url" not in settings.model_fields_set:
        address = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        scheme = "https" if tls else "http"
        settings = settings.model_copy(update={"public_url": f"{scheme}://{address}:{port}"})
    if _open_redirects_in_production(settings):
        typer.echo(
            f"calsync serve: CALSYNC_PUBLIC_URL is {settings.public_url}, a public https "
            "address, but CALSYNC_OAUTH_REDIRECT_ORIGINS is not set, so the OAuth flow could "
            "send a user's browser to any site. Name the origins your platform redirects to, "
            """e.g. CALSYNC_OAUTH_REDIRECT_ORIGINS='{"*": ["https://app.example.com"]}'""",
            err=True,
        )
        raise typer.Exit(2)
    return settings


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: CALSYNC_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: CALSYNC_PORT, 8000).")
    ] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    migrate: Annotated[bool, typer.Option(help="Upgrade the database before serving.")] = True,
    worker: Annotated[
        bool, typer.Option(help="Also sync connections in this process (--no-worker: API only).")
    ] = True,
    demo: Annotated[
        bool,
        typer.Option(
            help="Also run a local CalDAV server (Radicale) with sample events, connected to a "
            "demo tenant and schedule; reused on restart, stopped with serve."
        ),
    ] = False,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes behind the port, dealt its connections in turn (each with "
            "its own worker unless --no-worker); more than one uses more cores. Not with --demo.",
        ),
    ] = 1,
) -> None:
    """Serve the External Calendar API, calsync's own /v1 API and the dashboard.

    Prints a dashboard sign-in link for the admin of CALSYNC_ADMIN_TENANT (or, with --demo,
    of the demo tenant, with its API key and a curl example).
    """
    from contextlib import ExitStack

    import uvicorn

    from calsync import demo as demo_mode
    from calsync import logs
    from calsync.api.app import create_app
    from calsync.api.processes import serve_processes
    from calsync.dashboard.signin import issue_signin_link
    from calsync.service.runtime import build_runtime
    from calsync.store import database

    if demo and processes > 1:
        typer.echo("calsync serve: --demo serves one process; leave out --processes", err=True)
        raise typer.Exit(2)
    host = host if host is not None else _settings().host
    port = port if port is not None else _settings().port
    settings = _serve_settings(host, port, tls=ssl_certfile is not None)
    _refuse_a_busy_port(host, port)
    logs.configure(settings.log_level)
    with ExitStack() as stack:
        caldav = None
        if demo:
            try:
                caldav = stack.enter_context(demo_mode.caldav_running(settings))
            except demo_mode.DemoUnavailable as exc:
                typer.echo(f"calsync serve --demo: {exc}", err=True)
                raise typer.Exit(1) from exc
        extra = [demo_mode.demo_provider(caldav)] if caldav else []
        runtime = build_runtime(settings, extra_providers=extra)
        stack.callback(runtime.close)
        if settings.redirect_origins() is None:
            logging.getLogger("calsync").warning(
                "CALSYNC_OAUTH_REDIRECT_ORIGINS is not set: OAuth may redirect to any origin"
            )
        if migrate or caldav:
            database.upgrade(runtime.store)
        if caldav:
            today = demo_mode.today()
            access = demo_mode.seed(runtime, caldav, today)
            link = issue_signin_link(runtime, access.tenant_id)
            typer.echo(demo_mode.banner(access, settings.public_url, link, today))
        elif settings.admin_tenant:
            link = issue_signin_link(runtime, settings.admin_tenant)
            typer.echo(f"Dashboard sign-in for the admin of {settings.admin_tenant!r}: {link}")
        options: dict[str, Any] = {
            "host": host,
            "port": port,
            "ssl_certfile": str(ssl_certfile) if ssl_certfile else None,
            "ssl_keyfile": str(ssl_keyfile) if ssl_keyfile else None,
            "log_config": None,
            "http": "h11",
            "h11_max_incomplete_event_size": 64 * 1024,
            "proxy_headers": False,
        }
        if processes > 1:
            stack.close()  # each process builds its own runtime from the environment
            os.environ.setdefault("CALSYNC_PUBLIC_URL", settings.public_url)
            serve_processes(processes, worker=worker, options=options)
            return
        uvicorn.Server(uvicorn.Config(create_app(runtime, worker=worker), **options)).run()


@app.command("settings")
def settings_command() -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    from calsync.settings import settings_table

    typer.echo(settings_table())


@app.command("worker")
def worker_command() -> None:
    """Sync connections without serving the API; run as many as you like on PostgreSQL."""
    import signal

    from calsync import logs
    from calsync.service.runtime import build_runtime
    from calsync.service.sync.worker import Worker
    from calsync.store import database

    settings = _settings()
    logs.configure(settings.log_level)
    runtime = build_runtime(settings)
    database.upgrade(runtime.store)
    background = Worker(runtime)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    background.start()
    typer.echo(f"worker {runtime.instance_id} running", err=True)
    stopping.wait()
    background.stop()
    runtime.close()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant (site) the key belongs to.")],
    user: Annotated[
        str | None, typer.Option(help="User GUID: the key acts as that user. Omit for an app key.")
    ] = None,
    permission: Annotated[
        list[str] | None,
        typer.Option(help="Permission of a user key (repeat). Default: the 'own' permissions."),
    ] = None,
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from calsync.api.parse import GUID
    from calsync.service.access import api_keys

    if user is not None and not GUID.match(user):
        raise typer.BadParameter("--user must be a GUID")
    try:
        perms = [Permission(p) for p in permission or []]
    except ValueError as exc:
        valid = ", ".join(p.value for p in Permission)
        raise typer.BadParameter(f"unknown permission; valid: {valid}") from exc
    with _transaction() as tx:
        created = api_keys.create_key(
            tx, tenant_id=tenant, user_id=user, permissions=perms or None, name=name
        )
    if as_json:
        info = created.info
        typer.echo(
            json.dumps(
                {
                    "key": created.key,
                    "id": info.id,
                    "tenant": info.tenant_id,
                    "identityType": info.identity_type,
                    "userId": info.user_id,
                    "appId": info.app_id,
                    "permissions": info.permissions,
                }
            )
        )
    else:
        typer.echo(created.key)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List keys (never the keys themselves: only ids and what they may do)."""
    from calsync.service.access import api_keys

    with _transaction() as tx:
        found = api_keys.list_keys(tx, tenant_id=tenant)
    rows = [
        {
            "id": k.id,
            "tenant": k.tenant_id,
            "identityType": k.identity_type,
            "userId": k.user_id,
            "name": k.name,
            "revoked": k.revoked,
            "created": k.created_at.isoformat(),
        }
        for k in found
    ]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
    elif not rows:
        typer.echo("no API keys yet: create one with 'calsync api-keys create --tenant T'")
    else:
        headers = ["id", "tenant", "type", "user", "name", "revoked", "created"]
        cells = [["-" if v is None else str(v) for v in row.values()] for row in rows]
        cli_ops.print_table(headers, cells)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id from 'api-keys list'.")],
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from calsync.service.access import api_keys

    with _transaction() as tx:
        found = api_keys.revoke_key(tx, key_id=key_id)
    if not found:
        typer.echo(f"no key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@contextmanager
def _transaction() -> Iterator[Tx]:
    """A unit of work on the configured database, its schema brought up to date first."""
    from calsync.store import database

    store = database.open_store(_settings().resolved_database_url())
    try:
        database.upgrade(store)
        with store.transaction() as tx:
            yield tx
    finally:
        database.close(store)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
