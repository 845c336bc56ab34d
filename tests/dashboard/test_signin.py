"""Signing in to the dashboard: links (once, expiring), API keys, cookies, CSRF, signing out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from calsync.api.app import create_app
from calsync.dashboard import browser_sessions
from calsync.service.access import api_keys
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import DashboardSession, DashboardSigninLink, utcnow
from tests.conftest import TENANT, new_key
from tests.dashboard.helpers import csrf_of, link_path, sign_in_with_key, sign_in_with_link


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, worker=False)) as c:
        yield c


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/dashboard", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/signin"
    assert client.get("/dashboard/schedules/x/week", follow_redirects=False).status_code == 303


def test_a_link_signs_in_once_as_the_tenants_admin(client: TestClient, runtime: Runtime) -> None:
    path = link_path(runtime)
    page = client.get(path)
    assert page.status_code == 200
    assert "Continue to the dashboard" in page.text
    signed_in = client.post(path, data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/dashboard"
    home = client.get("/dashboard")
    assert home.status_code == 200
    assert f"Admin of {TENANT}" in home.text

    # The same link again: refused, whether opened or submitted.
    again = client.get(path)
    assert again.status_code == 410
    assert "not valid any more" in again.text
    fresh = csrf_of(client.get("/dashboard/signin"))  # the browser's current pre-session
    replay = client.post(path, data={"csrf": fresh}, follow_redirects=False)
    assert replay.status_code == 410
    # Only hashes are stored.
    token = path.rsplit("/", 1)[1]
    with transaction(runtime.db) as session:
        assert session.get(DashboardSigninLink, token) is None
        assert session.get(DashboardSigninLink, browser_sessions.token_hash(token)) is not None


def test_an_expired_link_is_refused(client: TestClient, runtime: Runtime) -> None:
    path = link_path(runtime)
    page = client.get(path)
    with transaction(runtime.db) as session:
        session.execute(
            update(DashboardSigninLink).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get(path).status_code == 410
    refused = client.post(path, data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert refused.status_code == 410
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_an_unknown_link_is_refused(client: TestClient) -> None:
    assert client.get("/dashboard/signin/not-a-token").status_code == 410


def test_session_cookie_flags(client: TestClient, runtime: Runtime) -> None:
    response = sign_in_with_link(client, runtime)
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("calsync_dashboard=")
    )
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/dashboard" in flags
    assert "secure" not in flags  # http://127.0.0.1 here
    value = cookie.split(";")[0].split("=", 1)[1]
    with transaction(runtime.db) as session:  # opaque: only its hash is stored
        assert session.get(DashboardSession, value) is None
        assert session.get(DashboardSession, browser_sessions.token_hash(value)) is not None


def test_cookies_are_secure_behind_https(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(public_url="https://calsync.example.com")
    with TestClient(create_app(rt, worker=False), base_url="https://testserver") as client:
        assert link_path(rt).startswith("/dashboard/signin/")
        response = sign_in_with_link(client, rt)
        assert response.status_code == 303
        cookies = response.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("calsync_dashboard="))
        assert "secure" in [p.strip().lower() for p in session_cookie.split(";")]


def test_sign_in_with_an_api_key(client: TestClient, runtime: Runtime) -> None:
    wrong = sign_in_with_key(client, "csk_not-a-key")
    assert wrong.status_code == 401
    assert "This API key is not valid" in wrong.text
    assert 'aria-invalid="true"' in wrong.text
    user = "1f0b7ad2-7d6e-4f61-9d3a-6f1b2c3d4e5f"
    key = new_key(runtime, user_id=user)
    assert sign_in_with_key(client, key).status_code == 303
    assert f"User {user} of {TENANT}" in client.get("/dashboard").text


def test_revoking_the_key_ends_its_sessions(client: TestClient, runtime: Runtime) -> None:
    key = new_key(runtime)
    assert sign_in_with_key(client, key).status_code == 303
    assert client.get("/dashboard", follow_redirects=False).status_code == 200
    with runtime.store.transaction() as tx:
        for info in api_keys.list_keys(tx, tenant_id=TENANT):
            api_keys.revoke_key(tx, key_id=info.id)
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_posts_without_the_sessions_csrf_token_are_refused(
    client: TestClient, runtime: Runtime
) -> None:
    # Sign-in forms are tied to the browser's pre-session cookie.
    page = client.get("/dashboard/signin")
    client.cookies.delete("calsync_dashboard_pre", path="/dashboard")
    forged = client.post(
        "/dashboard/signin",
        data={"csrf": csrf_of(page), "api_key": new_key(runtime)},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert sign_in_with_link(client, runtime).status_code == 303
    for data in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": csrf_of(page)}):
        refused = client.post("/dashboard/signout", data=data, follow_redirects=False)
        assert refused.status_code == 403, data
        assert "Form expired" in refused.text
    assert client.get("/dashboard", follow_redirects=False).status_code == 200


def test_sign_out_ends_the_session(client: TestClient, runtime: Runtime) -> None:
    sign_in_with_link(client, runtime)
    home = client.get("/dashboard")
    old_cookie = client.cookies.get("calsync_dashboard")
    out = client.post("/dashboard/signout", data={"csrf": csrf_of(home)}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/dashboard/signin?out=1"
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    assert old_cookie is not None
    client.cookies.set("calsync_dashboard", old_cookie, path="/dashboard")
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def _rows(runtime: Runtime) -> tuple[int, int]:
    with transaction(runtime.db) as session:
        links = session.scalar(select(func.count()).select_from(DashboardSigninLink))
        sessions = session.scalar(select(func.count()).select_from(DashboardSession))
        return int(links or 0), int(sessions or 0)


def _expire_all(runtime: Runtime) -> None:
    past = utcnow() - timedelta(seconds=1)
    with transaction(runtime.db) as session:
        session.execute(update(DashboardSigninLink).values(expires_at=past))
        session.execute(update(DashboardSession).values(expires_at=past))


def test_expired_links_and_sessions_are_deleted_when_new_ones_are_issued(
    client: TestClient, runtime: Runtime
) -> None:
    sign_in_with_link(client, runtime)
    link_path(runtime)
    assert _rows(runtime) == (2, 1)
    _expire_all(runtime)
    link_path(runtime)  # issuing a link deletes every expired row
    assert _rows(runtime) == (1, 0)

    assert sign_in_with_link(client, runtime).status_code == 303  # (2 links, 1 session)
    live = client.cookies.get("calsync_dashboard")
    _expire_all(runtime)
    assert sign_in_with_key(client, new_key(runtime)).status_code == 303
    assert _rows(runtime) == (0, 1)  # starting a session deletes them too; the new one stays
    assert client.get("/dashboard", follow_redirects=False).status_code == 200
    assert client.cookies.get("calsync_dashboard") != live
