"""What a provider kind is: the one spec each provider package exports.

A kind spec holds everything calsync needs to know about a kind of provider (Google, Microsoft,
CalDAV): its defaults and endpoints, its features, how to build its adapter (the adapter carries
its writer and push channels), its OAuth client, and how to read its push notifications. The
registry is a table of these specs; nothing outside ``providers/`` branches on the kind.

Push notifications arrive at ``/push/{kind}`` (and ``/push/{kind}/<stream>`` for a provider
that has more than one stream, e.g. Graph's lifecycle notifications). The kind's
``PushReceiver`` turns what arrived into ``PushDelivery``: the notifications it carries, each
naming its channel and the secret it presented; the service checks the secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from calsync.domain import CalendarType, ConnectMethod, ProviderFeatures, ProviderKind
from calsync.providers.base import CalendarProvider, ProviderError
from calsync.providers.oauth2 import OAuthClient


@dataclass(frozen=True)
class ProviderConfig:
    """One configured provider (a built-in or an entry of the providers file)."""

    id: str
    name: str
    kind: ProviderKind
    calendar_type: CalendarType
    features: ProviderFeatures
    url: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def listed(self) -> bool:
        """OAuth providers without a client ID cannot be used, so they are not offered."""
        if ConnectMethod.OAUTH in self.features.connect_methods:
            return bool(self.options.get("client_id"))
        return True


@dataclass(frozen=True)
class AdapterSettings:
    """The deployment's settings an adapter is built with."""

    timeout: float = 10.0
    horizon_past_days: int = 90
    horizon_future_days: int = 400
    feed_allow_private: bool = False


class Signal(Enum):
    """What a verified notification asks of calsync."""

    CHANGED = "changed"  # the calendar changed (or changes were lost): sync now
    HELLO = "hello"  # the channel says it exists (Google's "sync" message): nothing to do
    REMOVED = "removed"  # the provider dropped the channel: forget it, sync (re-subscribes)
    REAUTHORIZE = "reauthorize"  # the channel must be renewed soon; sync


@dataclass(frozen=True)
class Notification:
    """One notification: the channel it claims to come from and the secret it presented."""

    channel_id: str
    secret: str
    signal: Signal


@dataclass(frozen=True)
class PushRequest:
    """A delivery as it arrived: ``stream`` is the address below ``/push/{kind}`` ("" or e.g.
    "lifecycle"); header names are lower case."""

    stream: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class PushDelivery:
    """What a delivery carries. ``handshake``: a subscription check to answer with this text,
    touching nothing. ``strict``: a notification that fails the secret check is refused (the
    provider is told), rather than ignored."""

    notifications: tuple[Notification, ...] = ()
    handshake: str | None = None
    strict: bool = False


class MalformedNotification(ProviderError):
    """The delivery cannot be read (e.g. a body that is not JSON)."""


class UnknownPushStream(ProviderError):
    """The kind has no notification stream at that address."""


class PushReceiver(Protocol):
    """Reads a kind's change notifications (its push channels are the adapter's ``push``)."""

    # The streams besides the main one that channels are subscribed with ("lifecycle").
    lifecycle_stream: str | None
    # The success status the provider expects for a delivery (Graph documents 202 Accepted).
    acknowledge_status: int

    def parse(self, request: PushRequest) -> PushDelivery:
        """The delivery's notifications; MalformedNotification, UnknownPushStream."""
        ...


AdapterBuilder = Callable[[ProviderConfig, AdapterSettings], CalendarProvider]
OAuthBuilder = Callable[[ProviderConfig, float], OAuthClient]


@dataclass(frozen=True)
class ProviderKindSpec:
    """A provider kind (see the module docstring).

    ``defaults`` are the options every provider of the kind starts from (endpoint URLs,
    scopes; ``{tenant}`` in a URL is filled in from the ``tenant`` option); ``needs_url``: a
    provider of the kind must name its server's URL (CalDAV). ``oauth_client`` is None for a
    kind that connects by credentials; ``push`` None for one without change notifications.
    """

    kind: ProviderKind
    default_name: str
    calendar_type: CalendarType
    features: ProviderFeatures
    build_adapter: AdapterBuilder
    defaults: Mapping[str, Any] = field(default_factory=dict)
    needs_url: bool = False
    oauth_client: OAuthBuilder | None = None
    push: PushReceiver | None = None


def oauth_client_from_options(provider: ProviderConfig, timeout: float) -> OAuthClient:
    """The OAuth 2.0 client an OAuth provider's options describe."""
    o = provider.options
    return OAuthClient(
        client_id=str(o.get("client_id", "")),
        client_secret=str(o.get("client_secret", "")),
        authorize_url=str(o["authorize_url"]),
        token_url=str(o["token_url"]),
        revoke_url=str(o.get("revoke_url", "")),
        userinfo_url=str(o["userinfo_url"]),
        scopes=[str(s) for s in o.get("scopes", [])],
        authorize_params={str(k): str(v) for k, v in o.get("authorize_params", {}).items()},
        timeout=timeout,
    )
