"""The kind table: one spec per provider kind, and nothing outside ``providers/`` branching on
the kind; the push receivers' reading of what arrives at ``/push/{kind}``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import calsync
from calsync.domain import ConnectMethod, ProviderKind
from calsync.providers.kinds import (
    AdapterSettings,
    MalformedNotification,
    PushRequest,
    Signal,
    UnknownPushStream,
)
from calsync.providers.registry import KINDS, builtin_providers, kind_spec, push_receiver

SRC = Path(calsync.__file__).parent


def test_every_kind_has_a_spec_that_builds_its_adapter() -> None:
    assert set(KINDS) == set(ProviderKind)
    for provider in builtin_providers():
        spec = kind_spec(provider.kind)
        adapter = spec.build_adapter(provider, AdapterSettings(timeout=3.0))
        assert (spec.push is not None) == (adapter.push is not None), provider.kind
        oauth = ConnectMethod.OAUTH in spec.features.connect_methods
        assert (spec.oauth_client is not None) == oauth, provider.kind


def test_push_receivers_by_name() -> None:
    assert push_receiver("google") is kind_spec(ProviderKind.GOOGLE).push
    assert push_receiver("microsoft") is kind_spec(ProviderKind.MICROSOFT).push
    assert push_receiver("caldav") is None
    assert push_receiver("nope") is None


def test_nothing_outside_providers_branches_on_the_kind() -> None:
    branching = re.compile(r"ProviderKind\.(GOOGLE|MICROSOFT)|\.kind\s*(is|==|!=|in)\b")
    found = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        if "providers" not in path.relative_to(SRC).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if branching.search(line)
    ]
    assert found == []


def _request(stream: str = "", *, body: object = b"", **query: str) -> PushRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return PushRequest(stream, {}, query, raw)


def test_google_notifications() -> None:
    receiver = push_receiver("google")
    assert receiver is not None and receiver.lifecycle_stream is None
    headers = {
        "x-goog-channel-id": "c1",
        "x-goog-channel-token": "s1",
        "x-goog-resource-state": "sync",
    }
    delivery = receiver.parse(PushRequest("", headers, {}, b""))
    assert delivery.strict and delivery.handshake is None
    [hello] = delivery.notifications
    assert (hello.channel_id, hello.secret, hello.signal) == ("c1", "s1", Signal.HELLO)
    for state in ("exists", "not_exists"):
        changed = receiver.parse(
            PushRequest("", {**headers, "x-goog-resource-state": state}, {}, b"")
        )
        assert [n.signal for n in changed.notifications] == [Signal.CHANGED]
    [anonymous] = receiver.parse(_request()).notifications
    assert (anonymous.channel_id, anonymous.secret) == ("", "")  # fails the secret check
    with pytest.raises(UnknownPushStream):
        receiver.parse(_request("lifecycle"))


def test_graph_notifications() -> None:
    receiver = push_receiver("microsoft")
    assert receiver is not None and receiver.lifecycle_stream == "lifecycle"
    check = receiver.parse(_request("lifecycle", validationToken="tok"))
    assert (check.handshake, check.notifications) == ("tok", ())
    batch = {
        "value": [
            {"subscriptionId": "s1", "clientState": "a", "changeType": "created"},
            "not an object",
            {"subscriptionId": "s2"},
        ]
    }
    delivery = receiver.parse(_request(body=batch))
    assert not delivery.strict
    assert [(n.channel_id, n.secret, n.signal) for n in delivery.notifications] == [
        ("s1", "a", Signal.CHANGED),
        ("s2", "", Signal.CHANGED),
    ]
    events = ["reauthorizationRequired", "subscriptionRemoved", "missed", None]
    lifecycle = {"value": [{"subscriptionId": "s", "lifecycleEvent": e} for e in events]}
    signals = [
        n.signal for n in receiver.parse(_request("lifecycle", body=lifecycle)).notifications
    ]
    assert signals == [Signal.REAUTHORIZE, Signal.REMOVED, Signal.CHANGED, Signal.CHANGED]
    assert receiver.parse(_request(body=[1, 2])).notifications == ()
    assert receiver.parse(_request(body={"value": "x"})).notifications == ()
    with pytest.raises(MalformedNotification):
        receiver.parse(_request(body=b"{"))
    with pytest.raises(UnknownPushStream):
        receiver.parse(_request("other", validationToken="tok"))
