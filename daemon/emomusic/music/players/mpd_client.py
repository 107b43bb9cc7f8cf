"""Connections to MPD (or Mopidy's MPD frontend) through python-mpd2, with errors a person can act on.

Two connections: one for commands (the music thread's), and one that waits in ``idle`` in a thread
of its own and only says *that* something changed — MPD answers no command on a connection while it
idles. Either may drop at any moment (MPD restarted, network): every failure becomes :class:`MpdError`
with one line naming the server and what to check.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emomusic.config.music import MpdConfig

log = logging.getLogger("emomusic.mpd")

IDLE_SUBSYSTEMS = ("player", "mixer", "playlist", "database", "options")
WATCH_RETRY_MAX_S = 30.0
MPD_PREFIX = "mpd:"  # library key of a song known only by its MPD URI (no music_directory)


class MpdError(Exception):
    """MPD unreachable, gone, or refusing us; the message says which and what to check."""


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


def list_songs(addr: MpdAddress) -> list[dict[str, Any]]:
    """Every song in MPD's database (``listallinfo``), on a short-lived connection."""
    import mpd

    client = connect(addr)
    try:
        return [s for s in client.listallinfo() if "file" in s]
    except (OSError, mpd.ConnectionError, mpd.CommandError) as e:
        raise MpdError(f"MPD at {addr}: listing the library failed ({describe(e)})") from None
    finally:
        close(client)


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
