"""API keys are answered from a short per-process cache; revoking one must still take effect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from calsync.service.access import api_keys, auth
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import ApiKey, utcnow
from tests.conftest import EXT, Api, new_key


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    auth.key_cache.clear()
    yield
    auth.key_cache.clear()


def _key_id(rt: Runtime, key: str) -> str:
    with rt.store.reading() as tx:
        return auth.authenticate(tx, key, None).key_id or ""


def test_a_key_revoked_in_this_process_stops_working_at_once(api: Api, runtime: Runtime) -> None:
    key = new_key(runtime)
    assert api.get(f"{EXT}/providers", key=key).status_code == 200  # now cached
    with runtime.store.transaction() as tx:
        assert api_keys.revoke_key(tx, key_id=_key_id(runtime, key))
    assert api.get(f"{EXT}/providers", key=key).status_code == 401


def test_a_key_revoked_elsewhere_stops_working_within_the_bound(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    key = new_key(runtime)
    assert api.get(f"{EXT}/providers", key=key).status_code == 200
    # Another process (``calsync api-keys revoke``) writes the database; this one's cache
    # does not hear of it.
    with transaction(runtime.db) as session:
        session.execute(
            update(ApiKey).values(revoked_at=utcnow()).where(ApiKey.id == _key_id(runtime, key))
        )
    now[0] += auth.KEY_CACHE_SECONDS - 0.5
    assert api.get(f"{EXT}/providers", key=key).status_code == 200  # still within the bound
    now[0] += 1.0
    assert api.get(f"{EXT}/providers", key=key).status_code == 401


def test_unknown_keys_are_not_cached_and_new_keys_work_at_once(api: Api, runtime: Runtime) -> None:
    assert api.get(f"{EXT}/providers", key="csk_not-yet").status_code == 401
    with runtime.store.transaction() as tx:
        created = api_keys.create_key(tx, tenant_id="other-site")
    assert api.get(f"{EXT}/providers", key=created.key).status_code == 200
    assert api.get(f"{EXT}/providers", key="csk_not-yet").status_code == 401


def test_the_site_header_is_checked_on_cached_keys(api: Api) -> None:
    assert api.get(f"{EXT}/providers").status_code == 200
    response = api.client.get(
        f"{EXT}/providers", headers={"Authorization": api.key, "wix-site-id": "another-site"}
    )
    assert response.status_code == 403


def test_the_cache_stays_bounded() -> None:
    cache = auth.KeyCache(ttl=60, entries=3)
    identity = auth.Identity(tenant_id="t", type=auth.IdentityType.APP, permissions=frozenset())
    for n in range(10):
        cache.put(None, f"hash{n}", identity)
    assert cache.get(None, "hash9") is identity
    assert cache.get(None, "hash0") is None
    assert len(cache._items) <= 3
