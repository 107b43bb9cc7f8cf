"""What the music stage needs of a player, whatever plays the music: the port every backend implements.

A backend is one module in ``music/players/`` (``pygame_player``: plays here; ``mpd_player``: steers
the MPD or Mopidy people already use) and one line in the registry (``music.players.BACKENDS``).
Tracks are named by their library key (a path, or ``mpd:<uri>`` for a song only MPD knows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from emomusic.config.music import PlayerConfig
from emomusic.music.scan import LibraryScan


class PlaybackError(Exception):
    """A track that cannot be played (deleted, corrupt); the message names the file."""


class PlayerOffline(Exception):
    """The player cannot be reached now (an MPD restarting); nothing is wrong with the track."""


@dataclass(frozen=True)
class PlayerEvent:
    """What happened on a player people share (MPD), not by the daemon's doing.

    ``kind``: 'advanced' (another song plays: ``path``/``title``/``artist``; ``by_hand`` when a person
    changed it mid-song, ``ours`` when it is one of the daemon's picks), 'paused', 'resumed',
    'volume' (``volume`` in percent), 'database' (the player's library changed), 'lost' (``error``),
    'back' (connected again)."""

    kind: str
    path: str = ""
    title: str = ""
    artist: str = ""
    by_hand: bool = False
    ours: bool = False
    volume: int = 0
    error: str = ""


class Player(Protocol):
    """A player the music stage steers from its own thread (never from several)."""

    @property
    def online(self) -> bool:
        """Reachable now (a local mixer always is)."""
        ...

    @property
    def error(self) -> str | None:
        """Why it is not usable, while it is not."""
        ...

    @property
    def current(self) -> str | None:
        """The library key of what plays (or is paused); None when idle."""
        ...

    @property
    def paused(self) -> bool: ...

    @property
    def playing(self) -> bool: ...

    @property
    def audible(self) -> bool:
        """Whether what plays can reach the microphone (not through SDL's dummy driver)."""
        ...

    def describe(self) -> str:
        """One phrase for the log: which output or server."""
        ...

    def play(self, key: str) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> None: ...

    def set_volume(self, volume: float) -> None:
        """0 … 1."""
        ...

    def finished(self) -> bool:
        """True once the current track has played to its end (not when paused)."""
        ...

    def poll(self) -> list[PlayerEvent]:
        """What happened that the daemon did not do (a shared player: someone pressed next)."""
        ...

    def set_next(self, keys: Sequence[str]) -> None:
        """The planned queue after the current track (a shared player shows it in its own queue)."""
        ...

    def close(self) -> None: ...


Clock = Callable[[], float]


@dataclass(frozen=True)
class Backend:
    """A player backend: how to open it, and where the library comes from when it has its own."""

    open: Callable[[PlayerConfig, str | None, float, Clock], Player]  # (settings, password, volume, clock)
    scan_library: LibraryScan | None = None  # None: the configured folders and playlists
    # True: the library is listed when the player is reached (its "back" event), not by the start-up scan
    lists_when_reached: bool = False
