"""What the music stage is given of the config: its own sections and a few facts, not the whole Config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emomusic.config import Config
from emomusic.config.music import LibraryConfig, PlayerConfig


@dataclass(frozen=True)
class MusicSettings:
    player: PlayerConfig
    library: LibraryConfig
    circumplex: dict[str, tuple[float, float]]  # where a fixed mood sits
    state_dir: Path  # the demo library is made here
    library_path: Path  # the SQLite index
    mpd_password: str | None

    @classmethod
    def of(cls, cfg: Config) -> MusicSettings:
        return cls(cfg.player, cfg.library, cfg.fusion.circumplex, cfg.state_dir, cfg.library_path, cfg.mpd_password)
