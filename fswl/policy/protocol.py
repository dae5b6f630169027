"""Postfix's policy delegation protocol, as pure functions: lines in, attributes out, action out.

A request is ``name=value`` lines ending with an empty line; the reply is
``action=...`` and an empty line (https://www.postfix.org/SMTPD_POLICY_README.html).
"""

from __future__ import annotations

from fswl.errors import BadInput

#: Postfix's own limits are far below these; anything larger is not Postfix.
MAX_LINE_BYTES = 4096
MAX_ATTRIBUTES = 64
MAX_REQUEST_BYTES = 16384


class BadRequest(BadInput):
    """Bad policy request: {}."""


def parse_request(lines: list[bytes]) -> dict[str, str]:
    """Attributes of one request (its lines, without the ending empty line).

    :raises BadRequest: a line without ``=``, too many or too long lines, or
        a repeated attribute.
    """
    if len(lines) > MAX_ATTRIBUTES:
        raise BadRequest(f"more than {MAX_ATTRIBUTES} attributes")
    attributes: dict[str, str] = {}
    for raw in lines:
        if len(raw) > MAX_LINE_BYTES:
            raise BadRequest(f"a line longer than {MAX_LINE_BYTES} bytes")
        line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
        name, sep, value = line.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum():
            raise BadRequest(f"not a name=value line: {line[:60]!r}")
        if name in attributes:
            raise BadRequest(f"{name} given twice")
        attributes[name] = value
    return attributes


def format_action(action: str) -> bytes:
    """The reply for one request; newlines are refused so a reply is always one action."""
    if "\n" in action or "\r" in action:
        raise ValueError("an action is one line")
    return f"action={action}\n\n".encode("utf-8", "surrogateescape")
