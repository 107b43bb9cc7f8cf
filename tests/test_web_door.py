"""The page is no door into the home (issue #29): host names, other sites, the password and the
security headers, over plain HTTP and from an attacker's page in a real browser (Chromium)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from emomusic.config import parse_config
from emomusic.service.daemon import Daemon
from emomusic.web.guard import FREE_TRIES, HEADERS
from emomusic.web.server import KEEPALIVE_S, MAX_EVENT_STREAMS

from conftest import daemon_config, free_port
from fakes import factories

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "s3cret pass"


def start(supervised: Callable[..., Daemon], tmp_path: Path, password: str | None = None,
          allowed: tuple[str, ...] = ()) -> tuple[Daemon, int]:
    cfg = daemon_config(None, tmp_path, "door", microphone={"enabled": False},
                        web={"enabled": True, "port": 0, "allowed_hosts": list(allowed)})
    if password:
        cfg = parse_config(cfg.model_dump(), env={"EMOMUSIC_WEB_PASSWORD": password})
    daemon = supervised(cfg, analyzers=factories(face="happy"), mqtt=False)
    end = time.monotonic() + 20
    while (daemon.web.port == 0 or daemon.last_state is None) and time.monotonic() < end:
        time.sleep(0.05)
    return daemon, daemon.web.port


def request(port: int, path: str, *, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """A raw request (urllib would not let the Host header be anything else)."""
    hdrs = {"Host": host or f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head.encode() + (body or b""))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if path == "/api/events" and b"\r\n\r\n" in data:
                break
    head_raw, _, rest = data.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers_out = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers_out[k.strip().lower()] = v.strip()
    return status, headers_out, rest


def command(port: int, payload: object, content_type: str = "application/json", **headers: str) -> int:
    body = json.dumps({"topic": "volume/set", "payload": payload}).encode()
    return request(port, "/api/command", method="POST", body=body,
                   headers={"Content-Type": content_type, **headers})[0]


def test_only_this_machines_names_are_answered(tmp_path: Path, supervised: Callable[..., Daemon]) -> None:
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 asks with its own Host."""
    _, port = start(supervised, tmp_path, allowed=("music.example.org",))
    name = socket.gethostname()
    for path in ("/", "/api/state", "/api/history", "/api/events", "/static/app.js", "/api/nothing"):
        status, headers, body = request(port, path, host=f"evil.example:{port}")
        assert status == 421, path
        assert "web.allowed_hosts" in json.loads(body)["error"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", name, f"{name}.local:{port}",
                 "music.example.org", "MUSIC.example.org:443"):
        assert request(port, "/api/state", host=host)[0] == 200, host
    assert request(port, "/api/events", host=f"localhost:{port}")[0] == 200


def test_every_answer_carries_the_security_headers(tmp_path: Path, supervised: Callable[..., Daemon]) -> None:
    _, port = start(supervised, tmp_path)
    for path, host in (("/", None), ("/api/state", None), ("/static/app.js", None), ("/api/none", None),
                       ("/", "evil.example")):
        _, headers, _ = request(port, path, host=host)
        for name, value in HEADERS.items():
            assert headers.get(name.lower()) == value, (path, name)
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert not any(k.startswith("access-control-") for k in headers), (path, headers)
    status, headers, _ = request(port, "/api/command", method="OPTIONS", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert status >= 400 and not any(k.startswith("access-control-") for k in headers)


def test_a_flood_of_event_streams_is_refused_and_a_page_that_goes_frees_its_place(
        tmp_path: Path, supervised: Callable[..., Daemon]) -> None:
    """Each open stream is a task polling the state: a process opening them without end must not grow the daemon."""
    daemon, port = start(supervised, tmp_path)
    streams = []
    try:
        for _ in range(MAX_EVENT_STREAMS):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            streams.append(s)
        # one more is refused, with why and when to try again (read whole: the answer ends the connection)
        status, headers, body = request(port, "/api/events?refused", headers={"Accept": "text/event-stream"})
        assert status == 503 and headers["retry-after"] == "10"
        assert f"too many pages follow the state live ({MAX_EVENT_STREAMS} at once)" in json.loads(body)["error"]
        assert request(port, "/api/state")[0] == 200  # the rest of the page answers as before
        streams.pop().close()
        end = time.monotonic() + KEEPALIVE_S / 3  # found gone at its next poll, not at a keep-alive
        while daemon.web.streams >= MAX_EVENT_STREAMS and time.monotonic() < end:
            time.sleep(0.05)
        assert request(port, "/api/events")[0] == 200
    finally:
        for s in streams:
            s.close()
    end = time.monotonic() + KEEPALIVE_S / 3
    while daemon.web.streams and time.monotonic() < end:
        time.sleep(0.05)
    assert daemon.web.streams == 0


def test_no_state_change_from_another_origin(tmp_path: Path, supervised: Callable[..., Daemon]) -> None:
    daemon, port = start(supervised, tmp_path)
    before = daemon.controls.volume
    here = f"http://127.0.0.1:{port}"
    assert command(port, 5, "text/plain") == 415  # a "simple" request any page may send
    assert command(port, 5, "application/x-www-form-urlencoded") == 415
    assert command(port, 5, Origin="http://evil.example") == 403
    assert command(port, 5, Origin=f"http://127.0.0.1:{port + 1}") == 403  # this host, another port: another origin
    assert command(port, 5, Origin="null") == 403
    assert command(port, 5, **{"Sec-Fetch-Site": "cross-site"}) == 403
    assert command(port, 5, **{"Sec-Fetch-Site": "same-site"}) == 403
    assert command(port, 5, Referer="http://evil.example/page") == 403
    status, _, body = request(port, "/api/analyze", method="POST", body=b"--x--\r\n",
                              headers={"Content-Type": "multipart/form-data; boundary=x", "Origin": "http://evil.example"})
    assert status == 403 and "another site" in json.loads(body)["error"]
    time.sleep(0.5)
    assert daemon.controls.volume == before  # nothing got through
    assert command(port, 7, Origin=here, **{"Sec-Fetch-Site": "same-origin"}) == 200  # the page itself
    assert command(port, 9) == 200  # a script on this machine (curl): no browser, no other site
    end = time.monotonic() + 5
    while daemon.controls.volume != 9 and time.monotonic() < end:
        time.sleep(0.05)
    assert daemon.controls.volume == 9
    # a link to the page from elsewhere opens it (it reads nothing by itself); anything else does not
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert request(port, "/", headers=nav)[0] == 200
    image = {**nav, "Sec-Fetch-Dest": "image", "Sec-Fetch-Mode": "no-cors"}
    assert request(port, "/api/state", headers=image)[0] == 403


def test_the_password_login_cookie_and_growing_delay(tmp_path: Path, supervised: Callable[..., Daemon],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    _, port = start(supervised, tmp_path, password=PASSWORD)
    status, headers, body = request(port, "/")
    assert status == 401 and b'id="login"' in body and "www-authenticate" not in headers  # no browser prompt
    assert request(port, "/static/login.js")[0] == 200 and request(port, "/static/app.js")[0] == 401
    basic = {"Authorization": "Basic " + base64.b64encode(f"any:{PASSWORD}".encode()).decode()}
    assert request(port, "/api/state", headers=basic)[0] == 200  # API clients: basic auth
    login = json.dumps({"password": PASSWORD}).encode()
    status, headers, _ = request(port, "/api/login", method="POST", body=login,
                                 headers={"Content-Type": "application/json"})
    cookie = headers["set-cookie"]
    assert status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = {"Cookie": cookie.split(";")[0]}
    assert request(port, "/api/state", headers=session)[0] == 200
    assert request(port, "/", headers=session)[0] == 200
    # guessing: FREE_TRIES wrong answers at once, then each one waits longer (and says how long)
    wrong = json.dumps({"password": "guess"}).encode()
    waits = []
    for _ in range(FREE_TRIES + 2):
        t0 = time.monotonic()
        status, headers, _ = request(port, "/api/login", method="POST", body=wrong,
                                     headers={"Content-Type": "application/json"})
        assert status == 401
        waits.append((time.monotonic() - t0, float(headers.get("retry-after", 0))))
    assert [w for _, w in waits] == [0, 0, 0, 0, 1, 2, 4]
    assert waits[-1][0] >= 2.0 and waits[-2][0] >= 1.0  # the 6th and 7th answers were held back
    assert any("wrong password for the page" in r.getMessage() for r in caplog.records)
    status, _, _ = request(port, "/api/state", headers={
        "Authorization": "Basic " + base64.b64encode(b"any:guess").decode()})
    assert status == 401
    assert request(port, "/api/state", headers=basic)[0] == 200  # the right one still works, and resets


# -- an attacker's page in a real browser ------------------------------------------------------------------
ATTACK_JS = """
const T = TARGET;
const results = {};
async function attempt(name, f) {
  try { const r = await f(); results[name] = r && r.type === "opaque" ? "sent (opaque)" : `status ${r.status}`; }
  catch (e) { results[name] = `blocked: ${e.message}`; }
}
(async () => {
  await attempt("fetch text/plain", () => fetch(T + "/api/command", { method: "POST", mode: "no-cors",
    headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ topic: "volume/set", payload: 5 }) }));
  await attempt("fetch form", () => fetch(T + "/api/command", { method: "POST", mode: "no-cors",
    headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "topic=volume%2Fset&payload=5" }));
  await attempt("fetch json", () => fetch(T + "/api/command", { method: "POST", credentials: "include",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ topic: "mode/set", payload: "off" }) }));
  await attempt("read state", async () => { const r = await fetch(T + "/api/state", { credentials: "include" });
    results.stolen = await r.text(); return r; });
  const img = new Image();
  await new Promise((done) => { img.onload = img.onerror = done; img.src = T + "/api/state"; });
  results.img = "done";
  const form = document.getElementById("f");
  form.action = T + "/api/command";
  form.submit();
  await new Promise((r) => setTimeout(r, 1500));
  document.title = "attack done";
})();
"""
ATTACK_HTML = """<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink">
<input name='{"topic": "feedback/set", "payload": "sad", "x": "' value='"}'></form>
<script src="/attack.js"></script></body></html>"""


@pytest.fixture
def attacker() -> Iterator[int]:
    """Another local web server, on another port: the page a listener might open while the daemon runs."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    port = free_port()
    target: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = (ATTACK_JS.replace("TARGET", json.dumps(target["url"])) if self.path == "/attack.js"
                    else ATTACK_HTML).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript" if self.path == "/attack.js" else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.target = target  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port, target  # type: ignore[misc]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("password", [None, PASSWORD])
def test_an_attackers_page_changes_nothing_and_reads_nothing(tmp_path: Path, supervised: Callable[..., Daemon],
                                                              attacker: Any, password: str | None) -> None:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"{CHROMIUM} is required (scripts/system-deps.sh dev installs Debian's chromium)"
    daemon, port = start(supervised, tmp_path, password=password)
    evil_port, target = attacker
    target["url"] = f"http://127.0.0.1:{port}"
    controls = (daemon.controls.mode, daemon.controls.volume)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        # the listener uses the page first (and logs in): the browser now holds whatever it would resend
        page.goto(f"http://127.0.0.1:{port}/")
        if password:
            page.fill("#password", password)
            page.click("#login-go")
        expect(page.locator("#emotion")).to_have_text("happy", timeout=15000)
        refused = daemon.web.door.refused
        evil = browser.new_page()
        evil.goto(f"http://127.0.0.1:{evil_port}/")
        expect(evil).to_have_title("attack done", timeout=20000)
        results = evil.evaluate("results")
        # the page of the daemon still works, from 127.0.0.1 and from localhost
        page.reload()
        expect(page.locator("#emotion")).to_have_text("happy", timeout=15000)
        other = browser.new_page()
        other.goto(f"http://localhost:{port}/")
        if password:
            other.fill("#password", password)
            other.click("#login-go")
        expect(other.locator("#emotion")).to_have_text("happy", timeout=15000)
        browser.close()
    assert "happy" not in results.get("stolen", "") and "emotion" not in results.get("stolen", ""), results
    assert results["read state"].startswith("blocked") and results["fetch json"].startswith("blocked"), results
    time.sleep(0.5)
    assert (daemon.controls.mode, daemon.controls.volume) == controls
    assert daemon.last_state is not None and daemon.last_state.emotion == "happy"  # no "I feel sad" got in
    assert daemon.web.door.refused >= refused + 4  # text/plain, form, the image, the form post (at least)
