"""The dashboard's token check, in front of every route but `/healthz`.

A request passes with `Authorization: Bearer TOKEN` (scripts), or with the session cookie
that opening any page with `?token=TOKEN` sets once (browsers): that request is answered
with a redirect to the same page without the token, so it leaves the address bar and the
history. The cookie is Starlette's signed session (itsdangerous), keyed by the token:
changing the token signs every browser out. Anything else is answered 401, as JSON for
`/api/` and as a page saying how to sign in for the rest.

A form POST that came with the cookie must come from the dashboard's own pages: its
`Origin` (or `Referer`) must name the host it was sent to. The cookie is `SameSite=Strict`
as well, so another site's page cannot make a browser retry jobs.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode, urlsplit

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.secret import Secret

SESSION_COOKIE = "fillpipe_dashboard"
SESSION_MAX_AGE_S = 7 * 24 * 3600
OPEN_PATHS = frozenset({"/healthz"})
SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>fillpipe dashboard: sign in</title></head><body style="font-family:sans-serif">
<h1>Sign in</h1><p>Open this page with <code>?token=TOKEN</code>, TOKEN being
<code>FILLPIPE_DASHBOARD_TOKEN</code> (the embedded stack writes it into
<code>stack.env</code>), or send <code>Authorization: Bearer TOKEN</code>.</p></body></html>"""


def token_middleware(token: Secret) -> list[Middleware]:
    """The session cookie and the token check, outermost first."""
    session_key = hmac.new(token.reveal().encode(), b"dashboard session", hashlib.sha256)
    return [
        Middleware(
            SessionMiddleware,
            secret_key=session_key.hexdigest(),
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE_S,
            same_site="strict",
        ),
        Middleware(TokenGate, token=token),
    ]


class TokenGate:
    """Lets a request through with the token (header or session), else answers 401."""

    def __init__(self, app: ASGIApp, *, token: Secret) -> None:
        self._app = app
        self._token = token.reveal().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        answer = self._check(request)
        if answer is None:
            await self._app(scope, receive, send)
        else:
            await answer(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        """None to let the request through, else the answer to give instead."""
        offered = request.query_params.get("token")
        if offered is not None:
            if not self._matches(offered):
                return _unauthorized(request)
            request.session["signed_in"] = True
            return RedirectResponse(_without_token(request), status_code=303)
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._matches(bearer.strip()):
            return None
        if request.session.get("signed_in") and _same_origin(request):
            return None
        return _unauthorized(request)

    def _matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self._token)


def _same_origin(request: HTTPConnection) -> bool:
    """A GET always; anything else only from a page of this host."""
    if request.scope["method"] in ("GET", "HEAD"):
        return True
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    return urlsplit(source).netloc == request.headers.get("host")


def _without_token(request: Request) -> str:
    """The same page, relative to this host, without `token` in its query."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


def _unauthorized(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"error": "unauthorized: send Authorization: Bearer FILLPIPE_DASHBOARD_TOKEN"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return HTMLResponse(SIGN_IN_PAGE, status_code=401, headers={"WWW-Authenticate": "Bearer"})
