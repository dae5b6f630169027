"""Plain, accessible HTML: one layout, a few building blocks, every value escaped."""

from __future__ import annotations

from html import escape
from typing import Mapping

from aiohttp import web

STYLE = """
body{font:1.05rem/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.5rem;margin-top:0}
header{border-bottom:1px solid #ccc;margin-bottom:1.5rem;color:#555;font-size:.95rem}
code,kbd{font-size:.95em;background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}
label{display:block;margin-top:1rem;font-weight:600}
input[type=text],input[type=email],input[type=tel]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #767676;border-radius:4px}
fieldset{border:1px solid #ccc;border-radius:4px;margin-top:1rem}
.hint{color:#555;font-size:.9rem;margin:.2rem 0 0}
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;background:#0b5cad;color:#fff;cursor:pointer}
button:focus,input:focus{outline:3px solid #ffbf47}
.ok{border-left:6px solid #00703c;padding:.2rem 1rem;background:#eef7f1}
.bad{border-left:6px solid #b10e1e;padding:.2rem 1rem;background:#fbeeee}
img.captcha{display:block;margin-top:.5rem;border:1px solid #ccc}
"""


def page(title: str, body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A whole page; ``body`` is HTML already escaped by the caller."""
    html = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex\">"
        f"<title>{escape(title)} - fswl whitelist</title><style>{STYLE}</style></head>\n"
        f"<body><header>fswl global sender whitelist</header><main>\n<h1>{escape(title)}</h1>\n{body}\n</main></body></html>\n"
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                            headers=dict(headers or {}))
    # Links in mail must not act on prefetch, and pages must not be framed or cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def problem(title: str, message: str, status: int, advice: str = "") -> web.Response:
    """A page that says what went wrong and what to do."""
    more = f"<p>{escape(advice)}</p>" if advice else ""
    return page(title, f"<p class=\"bad\">{escape(message)}</p>{more}", status)


def form(action: str, csrf: str, button: str, fields: str = "", hidden: Mapping[str, str] | None = None) -> str:
    """A POST form with the CSRF token; ``fields`` is HTML built with :func:`field`."""
    inputs = "".join(f"<input type=\"hidden\" name=\"{escape(k)}\" value=\"{escape(v)}\">"
                     for k, v in {"csrf": csrf, **(hidden or {})}.items())
    return (f"<form method=\"post\" action=\"{escape(action)}\">{inputs}{fields}"
            f"<button type=\"submit\">{escape(button)}</button></form>")


def field(name: str, label: str, kind: str = "text", value: str = "", hint: str = "", required: bool = True,
          autocomplete: str = "off") -> str:
    hint_id = f"{name}-hint"
    described = f" aria-describedby=\"{hint_id}\"" if hint else ""
    hint_html = f"<p class=\"hint\" id=\"{hint_id}\">{escape(hint)}</p>" if hint else ""
    label_html = f"<label for=\"{name}\">{escape(label)}</label>" if label else ""
    return (f"{label_html}<input type=\"{kind}\" id=\"{name}\" name=\"{name}\" value=\"{escape(value)}\""
            f"{' required' if required else ''} autocomplete=\"{autocomplete}\"{described}>{hint_html}")
