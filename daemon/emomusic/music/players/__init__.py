"""The players the music stage can steer, by name (``player.backend``): a backend is one module here
and one line in ``BACKENDS``. Backends are imported only when chosen (pygame is not loaded to steer MPD)."""

from __future__ import annotations

from importlib import import_module

from emomusic.config import ConfigError
from emomusic.music.players.base import Backend

BACKENDS: dict[str, str] = {  # name -> the module whose BACKEND it is
    "pygame": "emomusic.music.players.pygame_player",
    "mpd": "emomusic.music.players.mpd_player",
}


def backend(name: str) -> Backend:
    """The backend called ``name``; a ConfigError naming ``player.backend`` for one that does not exist."""
    if name not in BACKENDS:
        raise ConfigError(f"player.backend: no player called {name!r}; expected one of {', '.join(BACKENDS)}")
    chosen: Backend = import_module(BACKENDS[name]).BACKEND
    return chosen


