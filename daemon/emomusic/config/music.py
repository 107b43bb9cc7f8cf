"""Settings of the music sinks: the library index and the player."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from emomusic.config.base import VA, Section
from emomusic.config.fusion import DEFAULT_CIRCUMPLEX

MODES = ("match", "regulate", "fixed", "off")
MPD_PASSWORD_ENV = "EMOMUSIC_MPD_PASSWORD"


class LibraryConfig(Section):
    folders: list[str] = Field(
        default_factory=list, description="Music folders; empty = the generated demo library in the state dir."
    )
    playlists: list[str] = Field(default_factory=list, description="M3U/M3U8 playlists whose entries are added.")
    csv: str = Field("", description="Mood CSV (path_or_title,artist,mood or the seed list format), imported at scan.")
    analyze: bool = Field(True, description="Place untagged tracks by audio analysis.")
    min_track_s: float = Field(30.0, ge=0, description="Shorter tracks (stingers, jingles) are indexed, never queued.")
    scan_jobs: int = Field(0, ge=0, le=64, description="Processes analysing audio during a scan; 0 = one per core.")
    database: str = Field("", description="SQLite index; empty = <state_dir>/library.db.")
    scan_on_start: bool = Field(True, description="Incremental rescan when the daemon starts.")


class MpdConfig(Section):
    """The MPD (or Mopidy with mopidy-mpd) that plays when ``player.backend = "mpd"``."""

    host: str = Field("localhost", min_length=1, description="Host name, IP address or a socket path.")
    port: int = Field(6600, ge=1, le=65535)
    password_file: str = Field("", description=f"File holding MPD's password; or set {MPD_PASSWORD_ENV}. Never inline.")
    music_directory: str = Field(
        "", description="MPD's music_directory as seen from here: its files are read for tags and audio analysis. "
        "Empty = placement by the mood CSV only.")
    queue: Literal["append", "own"] = Field(
        "append", description="append: keep the user's queue, the daemon's picks go after the current song; "
        "own: the daemon manages the whole queue.")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Network timeout of one MPD command.")


class PlayerConfig(Section):
    enabled: bool = Field(True, description="Play music (SDL's dummy driver is used when there is no sound card).")
    backend: str = Field("pygame", pattern=r"^[a-z][a-z0-9_]*$", description="The player, by name "
                         "(music.players.BACKENDS): pygame plays here; mpd steers an MPD/Mopidy.")
    mode: Literal["match", "regulate", "fixed", "off"] = "match"
    volume: int = Field(60, ge=0, le=100, description="Percent.")
    fixed_mood: str = Field("calm", description="The mood played in 'fixed' mode (a canonical emotion label).")
    regulate_target: VA = Field((0.5, -0.4), description="Where 'regulate' leads: calm-positive by default.")
    regulate_step: float = Field(0.3, gt=0, le=2, description="Largest valence/arousal step from track to track.")
    queue_length: int = Field(4, ge=1, le=50)
    dwell_s: float = Field(30.0, ge=0, description="The state must hold a new position this long to re-plan.")
    replan_distance: float = Field(0.25, gt=0, le=2, description="How far the state must move to count as new.")
    history: int = Field(20, ge=0, le=1000, description="Recently played tracks are not repeated.")
    fade_ms: int = Field(1500, ge=0, le=10000)
    mpd: MpdConfig = Field(default_factory=MpdConfig)

    @field_validator("fixed_mood")
    @classmethod
    def _mood(cls, v: str) -> str:
        if v not in DEFAULT_CIRCUMPLEX:
            raise ValueError(f"expected one of {sorted(DEFAULT_CIRCUMPLEX)}")
        return v

    @field_validator("regulate_target")
    @classmethod
    def _target(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(-1 <= x <= 1 for x in v):
            raise ValueError("expected [valence, arousal] in [-1, 1]")
        return v
