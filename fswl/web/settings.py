"""[web] in fswl.toml."""

from __future__ import annotations

from dataclasses import dataclass

from fswl import defaults


@dataclass(frozen=True)
class WebSettings:
    """[web]: where the pages are served and how hard they are to abuse."""

    listen: str = defaults.WEB_LISTEN
    #: The public URL of these pages, as mail, DNS TXT and the policy reply give it.
    base_url: str = defaults.WEB_BASE_URL
    #: Form submissions and CAPTCHA images per client IP (per /64 for IPv6) per minute.
    posts_per_minute: int = 10
    #: CAPTCHA images drawn per minute for all clients together (each costs CPU).
    costly_per_minute: int = 600
    #: Pages per client per minute.
    pages_per_minute: int = 120
    #: Take the client IP from X-Forwarded-For (only behind your own reverse proxy).
    trust_forwarded_for: bool = False
    #: Characters in a CAPTCHA, and how long one may be answered.
    captcha_length: int = 5
    captcha_seconds: int = 600
    #: FOR TESTS ONLY: every CAPTCHA has this answer. Never set it on a real site.
    test_captcha_answer: str = ""
    #: Networks the IPv6 form accepts, beside global unicast ("2001:db8::/32" for a lab).
    ipv6_extra_networks: tuple = ()
