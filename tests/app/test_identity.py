"""The identity cookie is set by the server, HttpOnly (app_pages/identity.py); the page script never writes it.

A real server (``streamlit run app.py`` through this middleware) is checked by every browser test that reads the
cookie (tests/e2e/e2e_helpers.py identity_cookie: HttpOnly, and ``document.cookie`` in the page lacks it)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app_pages.identity import HOST_OWNER_COOKIE, OWNER_COOKIE, IdentityCookie, cookie_id
from builder.runs.owners import new_anonymous_id, valid_anonymous_id

ROOT = Path(__file__).resolve().parents[2]


def _answer(content_type: bytes, cookie: bytes | None = None, kind: str = "http", scheme: str = "http") -> list[dict]:
    """The messages the middleware sends for one request to an app answering with ``content_type``."""

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": b"x"})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    headers = [(b"host", b"127.0.0.1")] + ([(b"cookie", cookie)] if cookie is not None else [])
    asyncio.run(IdentityCookie(inner)({"type": kind, "scheme": scheme, "path": "/build", "headers": headers}, None, send))
    return sent


def _set_cookies(messages: list[dict]) -> list[str]:
    return [v.decode() for k, v in messages[0].get("headers", []) if k == b"set-cookie"]


def test_a_page_without_the_cookie_gets_a_new_id_that_scripts_cannot_read():
    (header,) = _set_cookies(_answer(b"text/html; charset=utf-8"))
    name, _, rest = header.partition("=")
    value = rest.split(";")[0]
    assert name == OWNER_COOKIE and valid_anonymous_id(value)
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert value != _set_cookies(_answer(b"text/html"))[0].split(";")[0].split("=")[1]  # each browser its own
    assert "Secure" not in header  # plain HTTP (127.0.0.1): a Secure cookie would never come back
    assert _set_cookies(_answer(b"text/html", scheme="https"))[0].endswith("; Secure")


def test_a_known_id_is_kept_and_set_again_httponly_and_anything_else_is_replaced():
    mine = new_anonymous_id()
    (header,) = _set_cookies(_answer(b"text/html", b"_streamlit_xsrf=2|a; " + f"{OWNER_COOKIE}={mine}".encode()))
    assert header.startswith(f"{OWNER_COOKIE}={mine};") and "HttpOnly" in header
    for others in (b"jupyter=a b; ", b'bad"x=1; ', b"a=[1,2]; "):  # another app's cookies on 127.0.0.1
        (header,) = _set_cookies(_answer(b"text/html", others + f"{OWNER_COOKIE}={mine}".encode()))
        assert header.startswith(f"{OWNER_COOKIE}={mine};"), others
    for forged in (b"layerlab_owner=../../etc", b"layerlab_owner=" + b"A" * 32, b'layerlab_owner="x;y'):
        (header,) = _set_cookies(_answer(b"text/html", forged))
        assert valid_anonymous_id(header.split(";")[0].split("=")[1]) and forged.decode() not in header


def test_over_https_a_sibling_hosts_cookie_cannot_put_a_person_in_someone_elses_workspace():
    """A page on ``evil.school.org`` may set ``layerlab_owner`` for ``.school.org``; over HTTPS the id lives in the
    ``__Host-`` cookie, which no other host can set, and it wins. A browser that had the plain cookie keeps its id
    on its first HTTPS visit."""
    mine, attackers = new_anonymous_id(), new_anonymous_id()
    (header,) = _set_cookies(_answer(b"text/html", f"{OWNER_COOKIE}={mine}".encode(), scheme="https"))
    assert header.startswith(f"{HOST_OWNER_COOKIE}={mine};") and "Path=/" in header and "Domain" not in header
    assert header.endswith("; Secure")
    both = f"{OWNER_COOKIE}={attackers}; {HOST_OWNER_COOKIE}={mine}".encode()
    (header,) = _set_cookies(_answer(b"text/html", both, scheme="https"))
    assert header.startswith(f"{HOST_OWNER_COOKIE}={mine};")
    assert cookie_id(both) == mine  # and the pages read the same one (app_pages.state uses chosen_id)
    (header,) = _set_cookies(_answer(b"text/html", f"{OWNER_COOKIE}={mine}".encode()))
    assert header.startswith(f"{OWNER_COOKIE}={mine};") and "Secure" not in header  # plain HTTP: the plain cookie


def test_only_pages_set_it_and_other_answers_and_the_websocket_pass_through():
    assert _set_cookies(_answer(b"application/json")) == []
    assert _set_cookies(_answer(b"text/javascript")) == []
    assert _set_cookies(_answer(b"text/html", kind="websocket")) == []


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_cookie_header_gives_a_valid_id_or_none(header):
    got = cookie_id(header)
    assert got is None or valid_anonymous_id(got)


def test_app_py_is_served_through_the_middleware_and_no_page_writes_the_cookie():
    """``streamlit run app.py`` serves its ``app`` (an st.App with the middleware) only if Streamlit's discovery finds
    it; and nothing in the pages sets a cookie from the browser any more."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "app.py")
    assert found.is_asgi_app and found.app_name == "app", found
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    assert "IdentityCookie" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for path in [*(ROOT / "app_pages").glob("*.py"), ROOT / "app.py", *(ROOT / "frontend" / "src").glob("*.js*")]:
        assert "document.cookie" not in path.read_text(encoding="utf-8"), path
