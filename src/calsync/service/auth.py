"""Caller authentication (API keys) and the permission checks of spec section 3."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from calsync.crypto import hash_api_key
from calsync.domain import Identity, IdentityType, Permission
from calsync.errors import PermissionDenied, Unauthenticated
from calsync.store.models import ApiKey


def authenticate(session: Session, authorization: str | None, site_id: str | None) -> Identity:
    """The identity behind an ``Authorization`` header (raw key or ``Bearer <key>``).

    Raises Unauthenticated for a missing/unknown/revoked key, PermissionDenied when
    ``wix-site-id`` names another tenant than the key's.
    """
    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Unauthenticated("an API key is required in the Authorization header")
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_api_key(token))).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("the API key is not valid")
    if site_id and site_id.strip() and site_id.strip() != row.tenant_id:
        raise PermissionDenied("the API key does not belong to the site in wix-site-id")
    return identity_of(row)


def identity_of(row: ApiKey) -> Identity:
    perms = frozenset(Permission(p) for p in row.permissions.get("permissions", []))
    return Identity(
        tenant_id=row.tenant_id,
        type=IdentityType(row.identity_type),
        permissions=perms,
        user_id=row.user_id,
        app_id=row.app_id,
        key_id=row.id,
    )


def require_any(identity: Identity, *permissions: Permission) -> None:
    """PermissionDenied unless the identity holds at least one of ``permissions``."""
    if not any(identity.has(p) for p in permissions):
        raise PermissionDenied("missing permission: " + " or ".join(p.value for p in permissions))


def owns(identity: Identity, schedule_owner_user_id: str | None) -> bool:
    return (
        identity.user_id is not None
        and schedule_owner_user_id is not None
        and identity.user_id.lower() == schedule_owner_user_id.lower()
    )


def may_act_on(
    identity: Identity, schedule_owner_user_id: str | None, *, own: Permission, all_: Permission
) -> bool:
    """Whether the caller may act on a connection of a schedule with that owner."""
    if identity.has(all_):
        return True
    return identity.has(own) and owns(identity, schedule_owner_user_id)
