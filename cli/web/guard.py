"""Who may drive the studio, and how much a request may send: two plain ASGI middlewares.

:class:`AccessGuard` lets a request through only when

* its ``Host`` is a loopback name (``localhost``, ``127.x.x.x``, ``[::1]``) or one the server
  was told to answer to, which defeats DNS rebinding (a foreign page whose name now points at
  127.0.0.1 still sends its own name as Host);
* a state-changing request (POST, PUT, PATCH, DELETE) comes from the studio itself: its
  ``Origin`` (or, without one, its ``Referer``) names this very host and port; browsers send
  cross-site form posts without a preflight, so this check is what stops them;
* it carries the launch token: ``Authorization: token <t>`` (or ``Bearer <t>``), an
  ``X-Audiostyle-Token`` header, ``?token=<t>``, or the cookie that opening the page's
  ``/?token=<t>`` link sets (HttpOnly, SameSite=Strict). A request authenticated by the
  cookie alone must also be same-origin where the browser says so (``Sec-Fetch-Site``).

The static assets and the icon need no token; ``/`` without one is a short page saying where
to find the link. Every response forbids framing and MIME sniffing.

:class:`BodyLimit` counts the bytes a request body actually delivers, whatever its headers
claim, refuses ambiguous framing (both ``Content-Length`` and ``Transfer-Encoding``, or
several ``boundary`` parameters) and counts multipart parts on the wire, split on the
boundary the form parser will use, so an upload past the limits is cut off with 413 as it
arrives instead of being spooled first.

Both are written against the bare ASGI interface (no framework import), so the command line
can use :func:`is_loopback` without the web extra installed.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from http.cookies import CookieError, SimpleCookie
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

__all__ = ["AccessGuard", "BodyLimit", "is_loopback", "cookie_name", "SECURITY_HEADERS"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; object-src 'none'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
)
#: Paths anyone who can reach the port may read: the page's own code, styles and icon.
PUBLIC_PREFIX = "/static/"
PUBLIC_PATHS = frozenset({"/favicon.ico"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AUTH_SCHEME = re.compile(r"^\s*(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)

NO_TOKEN_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>audiostyle studio: token needed</title>
<link rel="stylesheet" href="/static/style.css"><link rel="icon" href="/favicon.ico"></head>
<body><header><h1>audiostyle <span>studio</span></h1>
<p>This studio only opens with its access token. Open the link that <code>audiostyle serve</code>
printed when it started (it ends in <code>?token=...</code>), or restart it with <code>--open</code>.</p>
</header></body></html>
"""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), brackets allowed."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_name(scope: Scope) -> str:
    """The token cookie's name: one per port, since cookies do not tell ports apart."""
    server = scope.get("server") or (None, None)
    return f"audiostyle-token-{server[1] or 'studio'}"


def _headers(scope: Scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return found


def _host_name(host: str) -> str:
    """``"[::1]:8765"`` -> ``"::1"``, ``"localhost:8765"`` -> ``"localhost"``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def send_json(send: Send, status: int, code: str, detail: str) -> None:
    """Send the studio's usual error body, ``{"error": code, "detail": message}``."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_Refusal = tuple[int, str, str]


def _query_tokens(scope: Scope) -> list[str]:
    return [value for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if name == "token"]


async def _send_page(send: Send, status: int, page: bytes) -> None:
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(page)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": page})


class AccessGuard:
    """Host, origin and token checks, plus the security headers on every response.

    Parameters
    ----------
    app : ASGI app
    token : str
        The launch token every non-public request must carry.
    allowed_hosts : iterable of str
        Host names answered besides the loopback ones; ``"*"`` answers any (a server that
        listens on every interface and is browsed to by its network name).
    """

    def __init__(self, app: ASGIApp, *, token: str, allowed_hosts: Iterable[str] = ()) -> None:
        if not token:
            raise ValueError("the studio needs a non-empty token")
        self.app = app
        self._token = token.encode()
        self._hosts = {host.strip("[]").lower() for host in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the studio has none; refuse rather than pass unchecked
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
            await send(message)

        headers = _headers(scope)
        path, method = scope.get("path", "/"), scope["method"]
        refusal = self._foreign(scope, headers)
        if refusal is None and not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)):
            if path == "/" and method in ("GET", "HEAD") and any(self._matches(t) for t in _query_tokens(scope)):
                await self._enter(scope, send_secured)
                return
            refusal = self._unauthenticated(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send_secured)
        elif refusal[0] == 401 and path == "/" and method in ("GET", "HEAD"):
            await _send_page(send_secured, 401, NO_TOKEN_PAGE)
        else:
            await send_json(send_secured, *refusal)

    def _foreign(self, scope: Scope, headers: dict[str, list[str]]) -> _Refusal | None:
        """Why a request from a foreign host name or, for a change, a foreign page is refused."""
        hosts = headers.get("host", [])
        if len(hosts) != 1 or not self._host_allowed(hosts[0]):
            shown = hosts[0] if len(hosts) == 1 else "none" if not hosts else "several"
            return 403, "bad_host", f"Host {shown!r} is not this studio (loopback names only)"
        if scope["method"] in UNSAFE_METHODS and not self._same_origin(headers, hosts[0]):
            return 403, "foreign_origin", "changes are accepted only from the studio's own page"
        return None

    def _unauthenticated(self, scope: Scope, headers: dict[str, list[str]]) -> _Refusal | None:
        """Why a request without the right token is refused (None: it has it)."""
        explicit = self._explicit_tokens(headers) + _query_tokens(scope)
        if any(self._matches(t) for t in explicit):
            return None
        cookie = self._cookie_token(headers, cookie_name(scope))
        if cookie is not None and self._matches(cookie) and not explicit:
            # A cookie rides along with whatever page makes the request; only the studio's own counts.
            fetch_site = headers.get("sec-fetch-site", ["same-origin"])[0].lower()
            if fetch_site not in ("same-origin", "none"):
                return 403, "foreign_origin", "the studio's cookie works only on its own page"
            return None
        detail = "wrong token" if explicit or cookie else "this studio needs its token"
        return 401, "unauthorized", f"{detail}: send it as 'Authorization: token <token>', an X-Audiostyle-Token header or ?token="

    def _host_allowed(self, host: str) -> bool:
        name = _host_name(host).lower()
        return is_loopback(name) or name in self._hosts or "*" in self._hosts

    @staticmethod
    def _same_origin(headers: dict[str, list[str]], host: str) -> bool:
        """The request's Origin (else Referer) names ``host``; neither: not from a browser page."""
        for header in ("origin", "referer"):
            values = headers.get(header)
            if values:
                return len(values) == 1 and urlsplit(values[0]).netloc.lower() == host.lower()
        return True

    @staticmethod
    def _explicit_tokens(headers: dict[str, list[str]]) -> list[str]:
        tokens = list(headers.get("x-audiostyle-token", []))
        for value in headers.get("authorization", []):
            match = _AUTH_SCHEME.match(value)
            tokens.append(match.group(1) if match else value)
        return tokens

    @staticmethod
    def _cookie_token(headers: dict[str, list[str]], name: str) -> str | None:
        for value in headers.get("cookie", []):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value)
            except CookieError:
                continue
            if name in jar:
                return jar[name].value
        return None

    def _matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self._token)

    async def _enter(self, scope: Scope, send: Send) -> None:
        """``/?token=...``: keep the token in a cookie and drop it from the address bar."""
        cookie = f"{cookie_name(scope)}={self._token.decode()}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"cache-control", b"no-store"), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


class _Refused(Exception):
    """Raised from the counted ``receive`` once a body has gone past a limit."""


class _Boundaries:
    """Counts multipart delimiters (``--boundary``) in a body that arrives in pieces."""

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"--" + boundary
        self._tail = b""
        self.count = 0

    def feed(self, chunk: bytes) -> int:
        data = self._tail + chunk
        self.count += data.count(self._delimiter)
        # What is kept is shorter than a delimiter, so no delimiter is counted twice.
        self._tail = data[-(len(self._delimiter) - 1) :]
        return self.count


def _multipart_boundary(content_type: str) -> bytes | None:
    """The boundary the form parser will split ``content_type``'s body on, or None.

    Read with the parser's own header reader, so that the parts counted here are the parts
    the app will see (two readers that disagree on which of several ``boundary`` parameters
    counts would let a body of many parts through uncounted).
    """
    try:
        from python_multipart.multipart import parse_options_header
    except ImportError:  # python-multipart before 0.0.13
        from multipart.multipart import parse_options_header
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    return params.get(b"boundary") or None


def _boundary_parameters(content_type: str) -> int:
    """How many ``boundary`` parameters ``content_type`` names (more than one is ambiguous)."""
    return sum(
        param.partition("=")[0].strip().lower() in ("boundary", "boundary*") for param in content_type.split(";")[1:]
    )


class BodyLimit:
    """Bounds what one request body may deliver: bytes received and multipart parts.

    Parameters
    ----------
    app : ASGI app
    max_bytes : int
        The most body bytes read from one request; past it the request gets 413.
    max_parts : int
        The most parts (files and fields) in a multipart body; past it 413.
    too_large : str, optional
        The message of that 413 (default: the byte limit).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_parts: int, too_large: str | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_parts = max_parts
        self._too_large_detail = too_large or f"the request body is larger than the limit of {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        lengths = headers.get("content-length", [])
        if headers.get("transfer-encoding") and lengths:
            await send_json(send, 400, "ambiguous_framing", "a request may have Content-Length or Transfer-Encoding, not both")
            return
        if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
            await send_json(send, 400, "ambiguous_framing", "Content-Length must be one number")
            return
        if lengths and int(lengths[0]) > self.max_bytes:
            await send_json(send, 413, "too_large", self._too_large())
            return
        content_types = headers.get("content-type", [""])
        if len(content_types) > 1 or _boundary_parameters(content_types[0]) > 1:
            await send_json(send, 400, "ambiguous_boundary", "a form must have one Content-Type with one boundary")
            return
        boundary = _multipart_boundary(content_types[0])
        parts = _Boundaries(boundary) if boundary else None
        received = 0
        refusal: _Refusal | None = None
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refusal
            if refusal is not None:
                raise _Refused
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_bytes:
                    refusal = (413, "too_large", self._too_large())
                # A multipart body of n parts holds n + 1 delimiters (the last closes it).
                elif parts is not None and parts.feed(chunk) > self.max_parts + 1:
                    refusal = (413, "too_many_parts", f"a form may have at most {self.max_parts} parts (files and fields)")
                if refusal is not None:
                    raise _Refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                # The app answered a body it could not read (e.g. as a parse error): answer
                # for it, once, with the real reason.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await send_json(send, *refusal)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:  # noqa: BLE001 - whatever the app made of the cut-off body
            if refusal is None:
                raise
        if refusal is not None and not started:
            await send_json(send, *refusal)

    def _too_large(self) -> str:
        return self._too_large_detail
