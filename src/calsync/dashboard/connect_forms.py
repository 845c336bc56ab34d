"""The Connect section: which providers are offered how, and service errors mapped onto the
fields of the credentials form."""

from __future__ import annotations

from dataclasses import dataclass

from calsync.domain import ConnectMethod
from calsync.errors import (
    BadCredentials,
    CalsyncError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
)
from calsync.providers.registry import ICLOUD_PROVIDER_ID, ProviderConfig
from calsync.service.runtime import Runtime

FORM = "form"  # errors that belong to no single field
APPLE_ID_URL = "https://appleid.apple.com"


@dataclass(frozen=True)
class ConnectOptions:
    oauth: list[ProviderConfig]
    credentials: list[ProviderConfig]


def connect_options(rt: Runtime) -> ConnectOptions:
    listed = rt.providers.listed()
    return ConnectOptions(
        oauth=[p for p in listed if ConnectMethod.OAUTH in p.features.connect_methods],
        credentials=[p for p in listed if ConnectMethod.CREDENTIALS in p.features.connect_methods],
    )


def is_icloud(provider: ProviderConfig) -> bool:
    return provider.id.lower() == ICLOUD_PROVIDER_ID or "icloud.com" in provider.url.lower()


def missing_fields(email: str, password: str) -> dict[str, str]:
    errors = {}
    if not email.strip():
        errors["email"] = "Enter the e-mail address or user name of the calendar account."
    if not password:
        errors["password"] = "Enter the password."
    return errors


def field_errors(exc: CalsyncError, provider: ProviderConfig) -> dict[str, str]:
    """A service error of Connect By Credentials as messages keyed by form field."""
    if isinstance(exc, BadCredentials):
        hint = (
            " Use an app-specific password, not your Apple ID password."
            if is_icloud(provider)
            else ""
        )
        return {"password": f"{provider.name} refused this e-mail and password.{hint}"}
    if isinstance(exc, InvalidArgument):
        errors: dict[str, str] = {}
        for violation in exc.violations:
            name = violation.field if violation.field in ("email", "password") else FORM
            errors.setdefault(name, violation.description)
        return errors
    if isinstance(exc, ProviderUnavailable):
        return {FORM: f"{provider.name} could not be reached. Try again in a moment."}
    if isinstance(exc, PermissionDenied):
        return {FORM: "You may not connect calendars to this schedule."}
    if isinstance(exc, NotFound):
        return {FORM: "This schedule or provider does not exist any more."}
    return {FORM: exc.description}
