"""The page the daemon serves, and its JSON API (aiohttp, in a thread of its own).

A sink like MQTT: it keeps the latest fused state and one point a second of the last ten minutes.
Commands go through the same parsing and validation as MQTT's, into the daemon's command queue.
Uploads to /api/analyze are analysed in memory (analyze/snapshot.py) and never stored. Every route
is behind the door of web/guard.py (host names, other sites, the password, security headers); the
config refuses a non-loopback host without a password. Idle with no page open, the stage does nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from emomusic.analyze.snapshot import AnalyzeError, Snapshot
from emomusic.commands import COMMAND_TOPICS, Command, PayloadError, parse_command
from emomusic.config import Config
from emomusic.config.web import WebConfig
from emomusic.messages import FusedState, PlayerStatus, Quiet
from emomusic.music.library import Library, Track
from emomusic.web.guard import Door, add_headers

log = logging.getLogger("emomusic.web")

STATIC = Path(__file__).parent / "static"
HISTORY_S = 600  # the timeline shows the last ten minutes, one point a second
EVENT_POLL_S = 0.5  # a connected page gets a new state at most this often
KEEPALIVE_S = 15.0
MAX_EVENT_STREAMS = 16  # pages following the state live at once: a flood of streams must not grow the daemon
SHUTDOWN_S = 0.5  # at stop, how long open requests (a page's event stream) get to finish
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebSettings:
    """What the page is given of the config: its own section, its password, where the index is."""

    web: WebConfig
    password: str | None
    library_path: Path
    max_payload_bytes: int  # a command from the page is held to MQTT's limit

    @classmethod
    def of(cls, cfg: Config) -> WebSettings:
        return cls(cfg.web, cfg.web_password, cfg.library_path, cfg.mqtt.max_payload_bytes)


class WebServer(Quiet):
    """Serves the page, a publisher like MQTT: it keeps the latest state and player status it was
    told; ``snapshot`` analyses uploads, ``submit`` takes validated commands, ``banned`` gives the
    disliked tracks' paths."""

    def __init__(self, ws: WebSettings, snapshot: Snapshot, submit: Callable[[Command], None],
                 banned: Callable[[], set[str]] = set, house: Callable[[], dict[str, Any]] | None = None,
                 to_room: Callable[[str, str, str], str | None] | None = None) -> None:
        """``house``: the house view's snapshot (house/view.py), None when the house is not followed;
        ``to_room``: sends a validated command to another room's daemon over MQTT (None: why not)."""
        self.ws = ws
        self.house = house
        self.to_room = to_room
        self.submit = submit
        self.player: PlayerStatus | None = None  # None: no music stage
        self.banned = banned
        self.snapshot = snapshot
        self.door = Door(ws.web, ws.password)
        self.latest: FusedState | None = None
        self.latest_at = 0.0
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_S)
        self.streams = 0  # event streams open now (counted in the page's event loop only)
        self.port = ws.web.port
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)

    # -- the sink side (fusion thread) --------------------------------------------------------------
    def on_state(self, state: FusedState) -> None:
        now = time.time()
        self.latest, self.latest_at = state, now
        if not self.history or now - self.history[-1]["t"] >= 1.0:
            self.history.append({"t": round(now, 1), "emotion": state.emotion, "confidence": round(state.confidence, 3),
                                 "valence": None if state.emotion == "unknown" else round(state.valence, 3),
                                 "arousal": None if state.emotion == "unknown" else round(state.arousal, 3)})

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> bool:
        """Listen; False (and ``error`` says why, logged once) if it cannot, e.g. the port is taken."""
        self._thread.start()
        self._ready.wait(timeout)
        return self.error is None and self._ready.is_set()

    def stop(self) -> None:
        """Stop serving: open pages' event streams end at their next poll (the page then says the
        daemon is offline), and what is still running after SHUTDOWN_S is cancelled."""
        self._stopping.set()
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread.ident is not None:
            self._thread.join(5)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_S)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.ws.web.host, self.ws.web.port)
            loop.run_until_complete(site.start())
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                self.port = server.sockets[0].getsockname()[1]
            log.info("web page on http://%s:%d/%s", self.ws.web.host, self.port,
                     " (password required)" if self.ws.password else "")
        except OSError as e:
            self.error = f"web page not served: cannot listen on {self.ws.web.host}:{self.ws.web.port}: " \
                         f"{e.strerror or e} (set web.port or EMOMUSIC_WEB_PORT, or web.enabled = false)"
            log.error("%s", self.error)
            self._ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    # -- the app --------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        limit = int(self.ws.web.max_upload_mb * 1024 * 1024)
        app = web.Application(middlewares=[self.door.check, self._errors], client_max_size=limit)
        app.on_response_prepare.append(add_headers)
        app.router.add_get("/", self._index)
        app.router.add_post("/api/login", self.door.login)
        app.router.add_post("/api/logout", self.door.logout)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_static("/static/", STATIC)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/history", self._history)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/player", self._player)
        app.router.add_get("/api/library", self._library)
        app.router.add_get("/api/house", self._house)
        app.router.add_post("/api/command", self._command)
        app.router.add_post("/api/analyze", self._analyze)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"upload too large: the limit is {self.ws.web.max_upload_mb:g} MB "
                          "(web.max_upload_mb)")
        except web.HTTPNotFound:
            return _error(404, f"no such page or API: {request.path}")
        except web.HTTPMethodNotAllowed as e:
            return _error(405, f"{request.method} not allowed on {request.path}; use {', '.join(e.allowed_methods)}")

    # -- routes ---------------------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _favicon(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml"})

    def state_json(self) -> dict[str, Any]:
        s = self.latest
        return {"state": None if s is None else s.to_json(),
                "age_s": None if s is None else round(time.time() - self.latest_at, 1)}

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state_json())

    async def _history(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"now": round(time.time(), 1), "points": list(self.history)})

    def on_player(self, status: PlayerStatus) -> None:
        self.player = status

    def player_json(self) -> dict[str, Any]:
        st = self.player
        if st is None:
            return {"status": None, "queue": []}
        return {"status": st.to_json(), "queue": [{"title": t.title, "artist": t.artist, "valence": t.valence,
                                                    "arousal": t.arousal} for t in st.upcoming]}

    async def _player(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.player_json())

    async def _house(self, request: web.Request) -> web.StreamResponse:
        """Every room's daemon on the broker, as their retained topics say (this one's included)."""
        if self.house is None:
            return web.json_response({"rooms": [], "mood": None, "published_by": None, "followed": False})
        return web.json_response(self.house() | {"followed": True})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the state and the player whenever either changed. At most
        ``MAX_EVENT_STREAMS`` at once; a page that went away gives its stream up at the next poll."""
        if self.streams >= MAX_EVENT_STREAMS:
            return _error(503, f"too many pages follow the state live ({MAX_EVENT_STREAMS} at once): close one",
                          headers={"Retry-After": "10"})
        self.streams += 1
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        last, quiet = None, 0.0
        try:
            await resp.prepare(request)
            while not self._stopping.is_set() and request.transport is not None \
                    and not request.transport.is_closing():
                payload = json.dumps({**self.state_json(), "player": self.player_json()})
                changed = payload != last
                if changed:
                    await resp.write(f"data: {payload}\n\n".encode())
                    last, quiet = payload, 0.0
                elif quiet >= KEEPALIVE_S:
                    await resp.write(b": keepalive\n\n")
                    quiet = 0.0
                await asyncio.sleep(EVENT_POLL_S)
                quiet += EVENT_POLL_S
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.streams -= 1
        return resp

    def _library_tracks(self) -> list[Track]:
        """The index's playable tracks, read on a connection of this call's own (an executor thread)."""
        lib = Library(self.ws.library_path)
        try:
            return lib.tracks()
        finally:
            lib.close()

    def library_json(self) -> dict[str, Any]:
        tracks = self._library_tracks()
        banned = self.banned()
        return {"tracks": [{"title": t.title, "artist": t.artist, "path": t.path, "valence": round(t.valence, 3),
                            "arousal": round(t.arousal, 3), "placement": t.source, "mood": t.mood,
                            "heard": list(t.heard), "confidence": t.confidence,
                            "banned": t.path in banned} for t in tracks]}

    async def _library(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await asyncio.get_running_loop().run_in_executor(None, self.library_json))

    async def _command(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'expected a JSON body {"topic": "player/set", "payload": "skip"}')
        if not isinstance(body, dict) or not isinstance(body.get("topic"), str) or "payload" not in body:
            return _error(400, 'expected a JSON body {"topic": "player/set", "payload": "skip"}')
        topic = body["topic"]
        if topic not in COMMAND_TOPICS:
            return _error(400, f"unknown topic {topic[:40]!r}; expected one of {', '.join(COMMAND_TOPICS)}")
        payload = body["payload"]
        raw = payload if isinstance(payload, str) else json.dumps(payload)
        try:
            cmd = parse_command(topic, raw.encode(), self.ws.max_payload_bytes)
        except PayloadError as e:
            return _error(400, f"{topic}: {e}")
        device = body.get("device")
        if device is not None:  # another room's daemon (the House tab): over MQTT, validated there again
            if not isinstance(device, str) or self.to_room is None:
                return _error(400, "device: expected the device id of a room this daemon follows")
            why = self.to_room(device, topic, raw)
            if why is not None:
                return _error(409, f"device: {why}")
            return web.json_response({"sent": {"device": device, "topic": topic, "payload": raw}})
        self.submit(cmd)
        return web.json_response({"accepted": {"kind": cmd.kind, "value": cmd.value, "target": cmd.target}})

    async def _analyze(self, request: web.Request) -> web.StreamResponse:
        if not request.content_type.startswith("multipart/"):
            return _error(415, "expected multipart/form-data with a file field image and/or audio")
        form = await request.post()
        files: dict[str, bytes | None] = {}
        for field in ("image", "audio"):
            part = form.get(field)
            # a form's file input left empty sends a part with no file name: not given
            files[field] = part.file.read() if isinstance(part, web.FileField) and part.filename else None
        mode = str(form.get("mode") or "match")
        try:
            n = max(1, min(20, int(str(form.get("n") or 5))))
        except ValueError:
            return _error(400, "n: expected a whole number of songs")
        try:
            tracks = await asyncio.get_running_loop().run_in_executor(None, self._tracks)
            result = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.snapshot.analyze(files["image"], files["audio"], mode=mode, n=n, tracks=tracks))
        except AnalyzeError as e:
            return _error(400, str(e))
        return web.json_response(result)

    def _tracks(self) -> list[Track]:
        banned = self.banned()
        return [t for t in self._library_tracks() if t.path not in banned]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
