"""Connections to MPD (or Mopidy's MPD frontend) through python-mpd2, with errors a person can act on.

Two connections: one for commands (the music thread's), and one that waits in ``idle`` in a thread
of its own and only says *that* something changed — MPD answers no command on a connection while it
idles. Either may drop at any moment (MPD restarted, network): every failure becomes :class:`MpdError`
with one line naming the server and what to check.

Mopidy's MPD frontend speaks the same protocol with differences that matter here: ``listallinfo`` is
disabled (the library is walked with ``lsinfo`` instead), songs are URIs (``local:track:…``,
``file:///…``) rather than paths in MPD's music folder, and what it lacks it refuses with error code 0,
which python-mpd2 cannot parse (a ``ValueError``): :func:`call` turns that into :class:`NotSupported`.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from emomusic.config.music import MpdConfig

log = logging.getLogger("emomusic.mpd")

IDLE_SUBSYSTEMS = ("player", "mixer", "playlist", "database", "options")
WATCH_RETRY_MAX_S = 30.0
MPD_PREFIX = "mpd:"  # library key of a song known only by its MPD URI (no music_directory)


LOCAL_TRACK = "local:track:"  # Mopidy-Local's songs: the path below its media_dir, percent-encoded
_told_walk: set[str] = set()  # servers already told about (the walk is logged once per server)


class MpdError(Exception):
    """MPD unreachable, gone, or refusing us; the message says which and what to check."""


class NotSupported(Exception):
    """The server does not have this command (Mopidy: not implemented, or disabled in its config)."""

    def __init__(self, command: str) -> None:
        super().__init__(f"the server does not support {command!r}")
        self.command = command


def call(client: Any, name: str, *args: Any) -> Any:
    """One command on a connected client; a refusal python-mpd2 cannot parse becomes NotSupported."""
    try:
        return getattr(client, name)(*args)
    except ValueError as e:
        if "FailureResponseCode" not in str(e):
            raise
        raise NotSupported(name) from None


def is_uri(name: str) -> bool:
    """``local:track:…``, ``file:///…``, ``http://…``: not a path in MPD's music folder."""
    scheme, colon, _ = name.partition(":")
    return bool(colon) and scheme.isalnum() and scheme.islower()


def key_of(uri: str, music_dir: Path | None) -> str:
    """The library key of a song the server names: the file under ``music_dir`` where there is one
    (MPD's relative path, Mopidy-Local's ``local:track:``, a ``file://`` URI), else ``mpd:`` + URI."""
    if music_dir is not None:
        if uri.startswith(LOCAL_TRACK):
            return str(music_dir / unquote(uri[len(LOCAL_TRACK):]))
        if uri.startswith("file://"):
            return unquote(urlparse(uri).path)
        if not is_uri(uri) or (music_dir / uri).exists():  # "live:set.ogg" may be a file after all
            return str(music_dir / uri)
    return MPD_PREFIX + uri


def uri_for(path: Path, music_dir: Path, style: str) -> str:
    """How the server names a file under its music folder: ``mpd`` (relative path), ``local``
    (Mopidy-Local) or ``file`` (Mopidy's file backend)."""
    rel = path.relative_to(music_dir).as_posix()
    if style == "local":
        return LOCAL_TRACK + quote(rel)
    if style == "file":
        return path.as_uri()
    return rel


def uri_style(client: Any) -> str:
    """``local`` or ``file`` on a Mopidy with those backends (its ``urlhandlers`` are bare schemes),
    ``mpd`` on MPD (whose handlers are ``http://`` and the like)."""
    import mpd

    try:
        handlers = set(call(client, "urlhandlers"))
    except (NotSupported, mpd.CommandError, mpd.ConnectionError, OSError):
        return "mpd"  # an old server without urlhandlers; a lost connection shows at the next command
    return "local" if "local" in handlers else "file" if "file" in handlers else "mpd"


@dataclass(frozen=True)
class MpdAddress:
    host: str
    port: int
    password: str | None
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, m: MpdConfig, password: str | None) -> MpdAddress:
        return cls(m.host, m.port, password, m.timeout_s)

    def __str__(self) -> str:
        return self.host if self.host.startswith(("/", "@")) else f"{self.host}:{self.port}"


def connect(addr: MpdAddress) -> Any:
    """A connected, authenticated ``mpd.MPDClient``; raises MpdError."""
    import mpd

    client = mpd.MPDClient()
    client.timeout = addr.timeout_s
    client.idletimeout = None
    try:
        client.connect(addr.host, addr.port)
    except (OSError, mpd.ConnectionError) as e:
        raise MpdError(f"MPD at {addr} is unreachable ({describe(e)}); is it running? "
                       "(player.mpd.host, player.mpd.port)") from None
    try:
        if addr.password:
            client.password(addr.password)
        client.ping()
    except mpd.CommandError as e:
        close(client)
        text = str(e)
        if "password" in text.lower():
            raise MpdError(f"MPD at {addr} refused the password ({text}); check player.mpd.password_file "
                           "or EMOMUSIC_MPD_PASSWORD") from None
        raise MpdError(f"MPD at {addr} refused us ({text}); it may need a password "
                       "(player.mpd.password_file or EMOMUSIC_MPD_PASSWORD)") from None
    except (OSError, mpd.ConnectionError) as e:
        close(client)
        raise MpdError(f"MPD at {addr} closed the connection ({describe(e)})") from None
    return client


def describe(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def close(client: Any) -> None:
    try:
        client.disconnect()
    except Exception:  # noqa: BLE001 - a broken connection is being thrown away anyway
        pass


def list_songs(addr: MpdAddress, music_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every song the server knows, each once, on a short-lived connection: ``listallinfo`` where the
    server allows it, else a walk folder by folder with ``lsinfo``."""
    import mpd

    client = connect(addr)
    try:
        try:
            return [s for s in call(client, "listallinfo") if "file" in s]
        except (NotSupported, mpd.CommandError) as e:
            why = "it is disabled or not implemented there" if isinstance(e, NotSupported) else str(e)
            (log.debug if str(addr) in _told_walk else log.info)(
                "MPD at %s does not allow listallinfo (%s); walking the library with lsinfo instead", addr, why)
            _told_walk.add(str(addr))
            return walk(client, music_dir)
    except (OSError, mpd.ConnectionError, mpd.CommandError, NotSupported) as e:
        raise MpdError(f"MPD at {addr}: listing the library failed ({describe(e)})") from None
    finally:
        close(client)


def walk(client: Any, music_dir: Path | None) -> list[dict[str, Any]]:
    """The library with ``lsinfo``, folder by folder. Mopidy shows a song under each backend and in
    several browse views (by artist, album, …): each song is kept once, by the file it is under
    ``music_dir`` or, without one, by its tags (``local:track:a.ogg`` and ``file:///…/a.ogg`` are one song)."""
    songs: dict[object, dict[str, Any]] = {}
    todo, seen = [""], {""}
    while todo:
        for entry in call(client, "lsinfo", todo.pop()):
            if "file" in entry:
                key = key_of(entry["file"], music_dir)
                same: object = key if not key.startswith(MPD_PREFIX) or "title" not in entry else \
                    tuple(str(entry.get(t, "")) for t in ("title", "artist", "album", "time"))
                songs.setdefault(same, entry)
            elif "directory" in entry and entry["directory"] not in seen:
                seen.add(entry["directory"])
                todo.append(entry["directory"])
    return list(songs.values())


class IdleWatcher(threading.Thread):
    """Waits in ``idle`` and sets ``changed`` (with the subsystems in ``pending``) whenever MPD
    reports a change; reconnects by itself with a capped backoff. Only a wake-up call: the music
    thread reads MPD's state on its own connection."""

    def __init__(self, addr: MpdAddress, on_change: Callable[[], None] | None = None) -> None:
        super().__init__(name="mpd-idle", daemon=True)
        self.addr = addr
        self.changed = threading.Event()
        self.on_change = on_change
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._client: Any = None

    def take(self) -> set[str]:
        """The subsystems that changed since the last call (and clears the flag)."""
        with self._lock:
            out, self._pending = self._pending, set()
            self.changed.clear()
        return out

    def _note(self, subsystems: set[str]) -> None:
        with self._lock:
            self._pending |= subsystems
            self.changed.set()
        if self.on_change is not None:
            self.on_change()

    def run(self) -> None:
        import mpd

        delay = 1.0
        while not self._closing.is_set():
            try:
                client = connect(self.addr)
            except MpdError:
                if self._closing.wait(delay):
                    return
                delay = min(delay * 2, WATCH_RETRY_MAX_S)
                continue
            delay = 1.0
            with self._lock:
                self._client = client
            self._note({"connection"})
            try:
                while not self._closing.is_set():
                    self._note(set(client.idle(*IDLE_SUBSYSTEMS)))
            except (OSError, mpd.ConnectionError, mpd.CommandError, ValueError):
                pass  # MPD went away, or close() shut the socket
            finally:
                with self._lock:
                    self._client = None
                close(client)
            self._note({"connection"})

    def close(self) -> None:
        """Stop: shutting the socket down wakes the thread out of its blocking ``idle``."""
        self._closing.set()
        with self._lock:
            client = self._client
        if client is not None:
            try:
                sock = client._sock  # python-mpd2 offers no other way to interrupt a blocking idle
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.join(timeout=5)
