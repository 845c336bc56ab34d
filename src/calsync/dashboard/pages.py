"""Rendering: the Jinja2 environment of the dashboard's templates (HTML auto-escaped)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from calsync.tz import zone

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"

_env = Environment(
    loader=FileSystemLoader(PACKAGE_DIR / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(moment: datetime | None, time_zone: str = "UTC") -> str:
    """A moment as people read it, in the schedule's zone: ``Mon 3 Mar 2031, 09:30``."""
    if moment is None:
        return "never"
    local = moment.astimezone(zone(time_zone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


_env.filters["when"] = when


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template ``name`` as an HTML response; pages are never cached (they show state).
    ``api.guard`` adds the security headers of every HTML page (CSP, frames, referrer)."""
    html = _env.get_template(name).render(**context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    return response
