"""pygame.mixer.music as a player: one stream, fades, volume, pause, end-of-track by polling.

pygame's end event needs a display, so the end of a track is found by polling ``get_busy`` (which
is also False while paused, hence the explicit paused flag). All calls come from one thread (the
music controller's): SDL's mixer is not meant to be driven from several.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emomusic.config.music import PlayerConfig
from emomusic.music.players.base import Backend, Clock, PlaybackError, PlayerEvent

log = logging.getLogger("emomusic.player")


def import_pygame() -> Any:
    """pygame, without the ~10 MB of setuptools' pkg_resources that its resource finder imports at
    start-up: only for looking up its bundled fonts and icons, which a headless mixer never does
    (pygame falls back to plain files when the import fails). Only pygame's own import sees the block."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if "pygame" in sys.modules:
        return sys.modules["pygame"]
    saved = sys.modules.get("pkg_resources", _ABSENT)
    if saved is _ABSENT:
        sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # makes its import raise ImportError
    try:
        import pygame
    finally:
        if saved is _ABSENT:
            del sys.modules["pkg_resources"]
    return pygame


_ABSENT = object()

# Samples SDL mixes per callback: 4096 (93 ms at 44.1 kHz) instead of pygame's 512 wakes the mixer
# thread 11 times a second instead of 86; decoding and mixing a track then cost 0.18-0.29 % of a core
# instead of 0.41-0.92 % (an Ogg, an MP3 and a FLAC; bench.py, docs/PERFORMANCE.md, #35). A pause, a
# volume change or a fade starts up to a tenth of a second later, which ambient music does not show.
MIXER_BUFFER = 4096


class PygamePlayer:
    """Plays here, through SDL (or silently through its dummy driver where there is no sound card)."""

    online = True  # a local mixer is always there
    error: str | None = None

    def __init__(self, fade_ms: int = 1500, volume: float = 0.6) -> None:
        pygame = import_pygame()
        self._pg = pygame
        if not os.environ.get("SDL_AUDIODRIVER") and not Path("/dev/snd").exists():
            os.environ["SDL_AUDIODRIVER"] = "dummy"  # no sound card: play silently, keep the timing
        try:
            pygame.mixer.init(frequency=44100, buffer=MIXER_BUFFER)
        except pygame.error as e:
            log.warning("no audio output (%s); using SDL's dummy driver", e)
            os.environ["SDL_AUDIODRIVER"] = "dummy"
            pygame.mixer.init(frequency=44100, buffer=MIXER_BUFFER)
        self.driver = os.environ.get("SDL_AUDIODRIVER", "default")
        self.fade_ms = fade_ms
        self.volume = volume
        self.current: str | None = None
        self.paused = False
        pygame.mixer.music.set_volume(volume)

    @property
    def audible(self) -> bool:
        return self.playing and self.driver != "dummy"  # the dummy driver plays nothing a microphone hears

    def describe(self) -> str:
        return f"SDL audio driver: {self.driver}"

    def play(self, key: str) -> None:
        """Start the file ``key``, fading the previous track out and this one in."""
        music = self._pg.mixer.music
        path = Path(key)
        if not path.is_file():
            raise PlaybackError(f"{path}: file no longer exists")
        if self.current is not None and music.get_busy():
            music.fadeout(self.fade_ms)
        try:
            music.load(str(path))
            music.play(fade_ms=self.fade_ms)
        except self._pg.error as e:
            self.current = None
            raise PlaybackError(f"{path}: cannot be played ({e})") from None
        music.set_volume(self.volume)
        self.current = key
        self.paused = False

    def pause(self) -> None:
        if self.current is not None and not self.paused:
            self._pg.mixer.music.pause()
            self.paused = True

    def resume(self) -> None:
        if self.current is not None and self.paused:
            self._pg.mixer.music.unpause()
            self.paused = False

    def stop(self) -> None:
        self._pg.mixer.music.stop()
        self.current = None
        self.paused = False

    def set_volume(self, volume: float) -> None:
        self.volume = max(0.0, min(1.0, volume))
        self._pg.mixer.music.set_volume(self.volume)

    @property
    def playing(self) -> bool:
        return self.current is not None and not self.paused

    def finished(self) -> bool:
        """True once the current track has played to its end (not when paused)."""
        return self.current is not None and not self.paused and not self._pg.mixer.music.get_busy()

    def poll(self) -> list[PlayerEvent]:
        """Nobody else steers this player: nothing ever happens behind the daemon's back."""
        return []

    def set_next(self, keys: Sequence[str]) -> None:
        """The planned queue lives in the controller; this player only plays one track at a time."""

    def close(self) -> None:
        try:
            self._pg.mixer.music.stop()
            self._pg.mixer.quit()
        except self._pg.error:
            pass


def open_pygame(pc: PlayerConfig, password: str | None, volume: float, clock: Clock) -> PygamePlayer:
    return PygamePlayer(pc.fade_ms, volume)


BACKEND = Backend(open_pygame)
