"""Whether a host name leads only to public internet addresses (outbound requests to URLs a
caller gave: iCalendar feeds, webhooks)."""

from __future__ import annotations

import ipaddress
import socket


def resolves_public(host: str, port: int) -> bool:
    """True when every address ``host`` resolves to is global (no loopback, private,
    link-local or reserved one); OSError when it does not resolve."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return False
    return bool(infos)
