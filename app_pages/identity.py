"""The browser's anonymous identity: a cookie the server sets, HttpOnly, so no script in the page can read it.

``app.py``, imported as a module (``streamlit run app.py`` finds its ``app``, an ``st.App``; ``uvicorn app:app``),
serves the pages through :class:`IdentityCookie`. Every HTML answer sets ``layerlab_owner``: the id the browser
sent when it is one LayerLab made (its year starts again), else a new one. The pages read it from the websocket's
handshake (``st.context.cookies``, :func:`app_pages.state.owner`) and never write it: before, a script in the page
set it, so anything that ran in the page (a user's text that escaped its escaping) could read the key to a
person's work and send it anywhere.

Over HTTPS the cookie is ``__Host-layerlab_owner`` (Secure, this host only): a page of a sibling host
(``evil.school.org`` beside ``layerlab.school.org``) can set a plain cookie for the parent domain, and so put a
person in the attacker's workspace, but never a ``__Host-`` one. Its value wins over the plain cookie's, which is
read only where no ``__Host-`` one came (plain HTTP, or the first HTTPS visit of a browser that had the plain one).

>>> header = set_cookie_header("0" * 32)
>>> header.split("; ")[0], "HttpOnly" in header, "SameSite=Lax" in header
('layerlab_owner=00000000000000000000000000000000', True, True)
>>> cookie_id(b"a=1; layerlab_owner=" + b"f" * 32) == "f" * 32, cookie_id(b"layerlab_owner=../../x")
(True, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import cookie_parser

OWNER_COOKIE = "layerlab_owner"
HOST_OWNER_COOKIE = "__Host-" + OWNER_COOKIE  # over HTTPS: no Domain, Path=/, Secure (see the module)
MAX_AGE_S = 365 * 24 * 3600  # a year since the last visit

__all__ = ["OWNER_COOKIE", "HOST_OWNER_COOKIE", "IdentityCookie", "cookie_id", "chosen_id", "set_cookie_header"]


def cookie_id(header: bytes | str | None) -> str | None:
    """The anonymous id in a ``Cookie`` request header, when it is one :func:`new_anonymous_id` makes; else None.
    Read as the pages read it (Starlette's lenient parser, what ``st.context.cookies`` holds): another site's
    cookie on the same host that the standard library's parser refuses (a space in its value) must not make a
    person someone new."""

    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    return chosen_id(cookie_parser(text))


def chosen_id(cookies: Mapping[str, str]) -> str | None:
    """The anonymous id among parsed cookies (the request's, or ``st.context.cookies``): the ``__Host-`` cookie's
    when it holds one, else the plain cookie's, else None.

    >>> chosen_id({OWNER_COOKIE: "a" * 32, HOST_OWNER_COOKIE: "b" * 32}) == "b" * 32
    True
    >>> chosen_id({OWNER_COOKIE: "a" * 32, HOST_OWNER_COOKIE: "../x"}) == "a" * 32, chosen_id({})
    (True, None)
    """
    from builder.runs.owners import valid_anonymous_id  # lazy: heavy (the run store)

    for name in (HOST_OWNER_COOKIE, OWNER_COOKIE):
        value = cookies.get(name)
        if valid_anonymous_id(value):
            return value
    return None


def set_cookie_header(anon_id: str, *, secure: bool = False) -> str:
    """The ``Set-Cookie`` value that keeps ``anon_id`` in the browser: HttpOnly, this site's pages only; with
    ``secure`` (the page came over HTTPS) the ``__Host-`` cookie, never sent over plain HTTP nor set by a sibling
    host."""
    from builder.runs.owners import valid_anonymous_id  # lazy: heavy (the run store)

    if not valid_anonymous_id(anon_id):
        raise ValueError("not an anonymous id made by builder.runs.owners.new_anonymous_id")
    name = HOST_OWNER_COOKIE if secure else OWNER_COOKIE
    return f"{name}={anon_id}; Path=/; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")


class IdentityCookie:
    """ASGI middleware: every HTML answer (a page, whatever its address) sets the identity cookie (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        from builder.runs.owners import new_anonymous_id  # lazy: heavy (the run store)

        sent = b"; ".join(v for k, v in scope.get("headers") or [] if k == b"cookie")  # HTTP/2 may send several
        anon_id = cookie_id(sent) or new_anonymous_id()

        async def send_with_cookie(message: dict) -> None:
            if message.get("type") == "http.response.start":
                headers = list(message.get("headers") or [])
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                if html:
                    cookie = set_cookie_header(anon_id, secure=scope.get("scheme") == "https")
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
