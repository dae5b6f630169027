"""HOST:PORT as written in fswl.toml and on the command line."""

from __future__ import annotations

import ipaddress

from fswl.errors import BadInput


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError(port)
    except ValueError:
        raise BadInput(f"not a listen address: {text!r}; use HOST:PORT, e.g. 127.0.0.1:5353 or [::1]:5353") from None
    return host, number
