"""Shared steps of the dashboard tests: schedules, connections and signing in over HTTP."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from calsync.dashboard.signin import admin_identity, issue_signin_link
from calsync.service.connections import connect
from calsync.service.platform import schedules
from calsync.service.runtime import Runtime
from tests.conftest import TENANT

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


def add_schedule(rt: Runtime, schedule_id: str, owner: str | None, name: str, tz: str) -> None:
    schedules.put_schedule(
        rt,
        identity=admin_identity(TENANT),
        schedule_id=schedule_id,
        owner_user_id=owner,
        owner_name=name,
        time_zone=tz,
    )


def add_connection(
    rt: Runtime, schedule_id: str, provider_id: str, email: str, password: str
) -> str:
    view = connect.connect_by_credentials(
        rt,
        identity=admin_identity(TENANT),
        schedule_id=schedule_id,
        provider_id=provider_id,
        email=email,
        password=password,
    )
    return view.id


def link_path(rt: Runtime, tenant: str = TENANT) -> str:
    url = issue_signin_link(rt, tenant)
    assert url.startswith(rt.settings.public_url.rstrip("/") + "/dashboard/signin/")
    return url.removeprefix(rt.settings.public_url.rstrip("/"))


def sign_in_with_link(client: TestClient, rt: Runtime) -> httpx.Response:
    """Open a fresh sign-in link and press its button; returns the POST's response (303)."""
    path = link_path(rt)
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf": csrf_of(page)}, follow_redirects=False)


def sign_in_with_key(client: TestClient, key: str) -> httpx.Response:
    page = client.get("/dashboard/signin")
    return client.post(
        "/dashboard/signin",
        data={"csrf": csrf_of(page), "api_key": key},
        follow_redirects=False,
    )
