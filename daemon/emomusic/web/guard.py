"""Who may come in: the page's door, checked in front of every route (page, API, event stream).

The page shows the listener's emotion and drives the home's music: a web site the listener happens
to open must neither read it nor change it.
- **Host**: only this machine's names and addresses (loopback, ``web.host``, the host name and
  ``<hostname>.local``, its interface addresses) and ``web.allowed_hosts``. Anything else is a
  DNS-rebinding page or a misrouted request: 421, naming ``web.allowed_hosts``.
- **Another site**: a request that ``Sec-Fetch-Site``, ``Origin`` or ``Referer`` places on another
  origin (another port of this host included) is refused (403), except a plain navigation to the page.
  A state change must be JSON (multipart only for ``/api/analyze``), which no form and no "simple"
  cross-site fetch can send. No CORS headers, ever.
- **Password** (when one is set): a session cookie (HttpOnly, SameSite=Strict, so never sent by
  another site) from ``POST /api/login``, or HTTP basic auth for API clients. The page never asks the
  browser for basic auth, so a browser never caches credentials it would resend cross-site. After
  ``FREE_TRIES`` wrong passwords from one address, each answer to it waits longer (1, 2, 4 … 30 s).
- **Headers** on every answer: a Content-Security-Policy without inline script and with
  ``frame-ancestors 'none'``, ``nosniff``, ``no-referrer``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from emomusic.config.web import WebConfig
from emomusic.queues import RateLimiter

log = logging.getLogger("emomusic.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "emomusic_session"
SESSION_S = 12 * 3600.0
MAX_SESSIONS = 64
FREE_TRIES = 5  # wrong passwords from one address before answers to it slow down
MAX_DELAY_S = 30.0
FORGET_S = 900.0  # an address's wrong tries are forgotten after this long without one
MAX_ADDRESSES = 1024
PUBLIC = {"/static/login.js", "/static/style.css", "/static/favicon.svg", "/favicon.ico", "/api/login"}
SAME = ("same-origin", "none")  # Sec-Fetch-Site values of the page itself, or of a typed URL / bookmark
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def own_hosts(cfg: WebConfig) -> set[str]:
    """The names and addresses this machine answers to, lower case, without ports."""
    hosts = {"localhost", "localhost.localdomain", "127.0.0.1", "::1", *(h.lower() for h in cfg.allowed_hosts)}
    if cfg.host not in ("0.0.0.0", "::", ""):
        hosts.add(cfg.host.lower())
    name = socket.gethostname().lower()
    hosts |= {name, f"{name}.local", name.split(".")[0], f"{name.split('.')[0]}.local"}
    hosts |= _local_addresses()
    with_addresses = set(hosts)
    for h in (name, f"{name}.local"):
        try:
            with_addresses |= {str(a[4][0]).split("%")[0].lower() for a in socket.getaddrinfo(h, None)}
        except OSError:
            continue
    return with_addresses


def _local_addresses() -> set[str]:
    """Every address of this machine's interfaces (Linux: the kernel's routing tables), else none."""
    out: set[str] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for prev, line in zip(lines, lines[1:], strict=False):
            if "/32 host LOCAL" in line:
                out.add(prev.split()[-1])
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            out.add(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    except (OSError, ValueError, IndexError):
        pass
    return out


def host_of(value: str) -> str:
    """``Host``/netloc value -> host, lower case, without the port (IPv6 brackets removed)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _netloc(url: str) -> str | None:
    """``scheme://host[:port]`` -> ``host[:port]`` as a Host header carries it (default ports elided)."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return None
    if not u.hostname:
        return None
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    default = {"http": 80, "https": 443}.get(u.scheme)
    return host if port is None or port == default else f"{host}:{port}"


class Door:
    """The checks, as aiohttp middleware; ``password`` None: no password (loopback only, by config)."""

    def __init__(self, cfg: WebConfig, password: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.password = password
        self.clock = clock
        self.hosts = own_hosts(cfg)
        self.sessions: dict[str, float] = {}
        self.wrong: dict[str, tuple[int, float]] = {}  # address -> (wrong tries, when the last one was)
        self._said = RateLimiter(burst=1, interval_s=60.0, clock=clock)
        self.refused = 0

    def _refuse(self, status: int, kind: str, request: web.Request, message: str) -> web.Response:
        self.refused += 1
        if self._said.allow(kind):
            log.warning("refused %s %s from %s: %s (said at most once a minute)", request.method, request.path,
                        request.remote, message)
        return web.json_response({"error": message}, status=status)

    # -- the middleware -----------------------------------------------------------------------------
    @web.middleware
    async def check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host_of(host) not in self.hosts:
            return self._refuse(421, "host", request, f"this page does not answer to the host name "
                                f"{host_of(host)[:80]!r}; add it to web.allowed_hosts if you reach it that way "
                                "(a reverse proxy)")
        cross = self._cross_site(request)
        if cross:
            return self._refuse(403, "cross-site", request, f"refused: the request comes from another site ({cross})")
        if request.method == "POST" and not self._content_allowed(request):
            return self._refuse(415, "content-type", request, "expected Content-Type: application/json"
                                + (" or multipart/form-data" if request.path == "/api/analyze" else ""))
        if self.password is not None and request.path not in PUBLIC and not await self._authorised(request):
            if request.path == "/" and request.method == "GET":
                return web.FileResponse(Path(__file__).parent / "static" / "login.html", status=401)
            return web.json_response({"error": "this page needs its password: log in on the page, or send HTTP "
                                      "basic auth (any user name)"}, status=401, headers=self._retry_after(request))
        return await handler(request)

    def _cross_site(self, request: web.Request) -> str:
        """Why the request comes from another site, or '' (same origin, or no browser at all)."""
        h = request.headers
        navigation = (request.method == "GET" and request.path == "/" and h.get("Sec-Fetch-Mode") == "navigate"
                      and h.get("Sec-Fetch-Dest", "document") == "document")
        if navigation:  # a link or a bookmark to the page itself: it may open (it reads nothing by itself)
            return ""
        site = h.get("Sec-Fetch-Site")
        if site is not None and site not in SAME:
            return f"Sec-Fetch-Site: {site}"
        here = h.get("Host", "").lower()
        for name in ("Origin", "Referer"):
            value = h.get(name)
            if value is None or (name == "Origin" and value == "null" and site in SAME):
                continue
            there = _netloc(value)
            if there is None or there.lower() != here:
                return f"{name}: {value[:80]}"
        return ""

    @staticmethod
    def _content_allowed(request: web.Request) -> bool:
        kind = request.content_type
        return kind == "application/json" or (request.path == "/api/analyze" and kind == "multipart/form-data")

    # -- the password -------------------------------------------------------------------------------
    async def _authorised(self, request: web.Request) -> bool:
        token = request.cookies.get(COOKIE)
        if token is not None and self.sessions.get(token, 0.0) > self.clock():
            return True
        header = request.headers.get("Authorization")
        if header is None:
            return False
        return await self.try_password(request, _basic_password(header))

    async def try_password(self, request: web.Request, given: str | None) -> bool:
        """Check a password (login form or basic auth), slowing down an address that keeps guessing."""
        who = request.remote or "?"
        delay = self._delay(who)
        if delay:
            await asyncio.sleep(delay)
        assert self.password is not None
        ok = given is not None and hmac.compare_digest(_digest(given), _digest(self.password))
        if ok:
            self.wrong.pop(who, None)
            return True
        n = self.wrong.get(who, (0, 0.0))[0] + 1
        if len(self.wrong) >= MAX_ADDRESSES and who not in self.wrong:
            self.wrong.pop(next(iter(self.wrong)))
        self.wrong[who] = (n, self.clock())
        if n > FREE_TRIES:
            log.warning("wrong password for the page from %s (%d in a row): answering it after %.0f s", who, n,
                        self._delay(who))
        return False

    def _delay(self, who: str) -> float:
        n, last = self.wrong.get(who, (0, 0.0))
        if n and self.clock() - last > FORGET_S:
            self.wrong.pop(who, None)
            return 0.0
        return 0.0 if n < FREE_TRIES else min(MAX_DELAY_S, 2.0 ** (n - FREE_TRIES))

    def _retry_after(self, request: web.Request) -> dict[str, str]:
        delay = self._delay(request.remote or "?")
        return {"Retry-After": f"{delay:.0f}"} if delay else {}

    def open_session(self) -> str:
        now = self.clock()
        self.sessions = {t: end for t, end in self.sessions.items() if end > now}
        while len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        token = secrets.token_urlsafe(32)
        self.sessions[token] = now + SESSION_S
        return token

    # -- routes of its own ----------------------------------------------------------------------------
    async def login(self, request: web.Request) -> web.StreamResponse:
        if self.password is None:
            return web.json_response({"logged_in": True, "password": False})
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        given = body.get("password") if isinstance(body, dict) else None
        if not isinstance(given, str) or not await self.try_password(request, given):
            return web.json_response({"error": "wrong password"}, status=401, headers=self._retry_after(request))
        resp = web.json_response({"logged_in": True, "password": True})
        resp.set_cookie(COOKIE, self.open_session(), max_age=int(SESSION_S), httponly=True, samesite="Strict",
                        path="/")
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.pop(request.cookies.get(COOKIE, ""), None)
        resp = web.json_response({"logged_in": False})
        resp.del_cookie(COOKIE, path="/")
        return resp


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the security headers on every answer, errors and streams included."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


def _digest(text: str) -> bytes:
    """Compared as digests: constant time whatever the lengths."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _basic_password(header: str) -> str | None:
    if not header.startswith("Basic "):
        return None
    try:
        _, _, given = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return given
