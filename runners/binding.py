"""Where servers listen: loopback unless the user says otherwise, and a clear warning when a
server will be reachable from other machines (nothing it serves asks who is calling)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, or the name localhost) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # another name: it may resolve to any interface
        return False


def exposure_warning(host: str, what: str) -> str | None:
    """The warning to give when `what` listens on `host`, or None where that is loopback."""
    if is_loopback(host):
        return None
    return (
        f"{what} listens on {host}, reachable from other machines, with no authentication; "
        "bind to 127.0.0.1 (strategy.host, the default) to keep it on this host"
    )
