"""The dashboard's routes, gathered for ``create_app``, and its static files."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, RedirectResponse

from calsync.dashboard import auth_routes, connection_routes, schedule_routes, week_routes
from calsync.dashboard.pages import STATIC_DIR
from calsync.errors import NotFound

router = APIRouter(include_in_schema=False)
for part in (auth_routes, schedule_routes, connection_routes, week_routes):
    router.include_router(part.router)

STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@router.get("/")
async def root() -> Response:
    """A browser at the service's address lands on the dashboard (it signs in from there)."""
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/docs")
async def docs() -> Response:
    """The API's documentation is its OpenAPI document."""
    return RedirectResponse("/openapi.json", status_code=307)


@router.get("/dashboard/static/{name}")
async def static_file(name: str) -> Response:
    """Only the files shipped in ``static/``: no path from the request reaches the disk."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound(f"static file {name} not found")
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"cache-control": "public, max-age=3600"},
    )
