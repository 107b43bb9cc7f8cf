"""Settings of the music sinks: the library index and the player."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, field

from emomusic.config.base import VA, Section
from emomusic.config.fusion import DEFAULT_CIRCUMPLEX

MODES = ("match", "regulate", "fixed", "off")
MPD_PASSWORD_ENV = "EMOMUSIC_MPD_PASSWORD"


class LibraryConfig(Section, frozen=True):
    folders: Annotated[
        list[str], Meta(description="Music folders; empty = the generated demo library in the state dir.")
    ] = field(default_factory=list)
    playlists: Annotated[list[str], Meta(description="M3U/M3U8 playlists whose entries are added.")] = field(
        default_factory=list
    )
    csv: Annotated[
        str, Meta(description="Mood CSV (path_or_title,artist,mood or the seed list format), imported at scan.")
    ] = ""
    analyze: Annotated[bool, Meta(description="Place untagged tracks by audio analysis.")] = True
    min_track_s: Annotated[
        float, Meta(ge=0, description="Shorter tracks (stingers, jingles) are indexed, never queued.")
    ] = 30.0
    scan_jobs: Annotated[
        int, Meta(ge=0, le=64, description="Processes analysing audio during a scan; 0 = one per core.")
    ] = 0
    database: Annotated[str, Meta(description="SQLite index; empty = <state_dir>/library.db.")] = ""
    scan_on_start: Annotated[bool, Meta(description="Incremental rescan when the daemon starts.")] = True


class MpdConfig(Section, frozen=True):
    """The MPD (or Mopidy with mopidy-mpd) that plays when ``player.backend = "mpd"``."""

    host: Annotated[str, Meta(min_length=1, description="Host name, IP address or a socket path.")] = "localhost"
    port: Annotated[int, Meta(ge=1, le=65535)] = 6600
    password_file: Annotated[
        str, Meta(description=f"File holding MPD's password; or set {MPD_PASSWORD_ENV}. Never inline.")
    ] = ""
    music_directory: Annotated[
        str,
        Meta(
            description="MPD's music_directory as seen from here: its files are read for tags and audio analysis. "
            "Empty = placement by the mood CSV only."
        ),
    ] = ""
    queue: Annotated[
        Literal["append", "own"],
        Meta(
            description="append: keep the user's queue, the daemon's picks go after the current song; "
            "own: the daemon manages the whole queue."
        ),
    ] = "append"
    timeout_s: Annotated[float, Meta(gt=0, le=300, description="Network timeout of one MPD command.")] = 10.0


class PlayerConfig(Section, frozen=True):
    enabled: Annotated[
        bool, Meta(description="Play music (SDL's dummy driver is used when there is no sound card).")
    ] = True
    backend: Annotated[
        str,
        Meta(
            pattern=r"^[a-z][a-z0-9_]*$",
            description="The player, by name (music.players.BACKENDS): pygame plays here; mpd steers an MPD/Mopidy.",
        ),
    ] = "pygame"
    mode: Literal["match", "regulate", "fixed", "off"] = "match"
    volume: Annotated[int, Meta(ge=0, le=100, description="Percent.")] = 60
    fixed_mood: Annotated[str, Meta(description="The mood played in 'fixed' mode (a canonical emotion label).")] = (
        "calm"
    )
    regulate_target: Annotated[VA, Meta(description="Where 'regulate' leads: calm-positive by default.")] = (0.5, -0.4)
    regulate_step: Annotated[
        float, Meta(gt=0, le=2, description="Largest valence/arousal step from track to track.")
    ] = 0.3
    queue_length: Annotated[int, Meta(ge=1, le=50)] = 4
    dwell_s: Annotated[float, Meta(ge=0, description="The state must hold a new position this long to re-plan.")] = 30.0
    replan_distance: Annotated[float, Meta(gt=0, le=2, description="How far the state must move to count as new.")] = (
        0.25
    )
    history: Annotated[int, Meta(ge=0, le=1000, description="Recently played tracks are not repeated.")] = 20
    fade_ms: Annotated[int, Meta(ge=0, le=10000)] = 1500
    mpd: MpdConfig = field(default_factory=MpdConfig)

    def __post_init__(self) -> None:
        if self.fixed_mood not in DEFAULT_CIRCUMPLEX:
            raise ValueError(f"fixed_mood: expected one of {sorted(DEFAULT_CIRCUMPLEX)}")
        if not all(-1 <= x <= 1 for x in self.regulate_target):
            raise ValueError("regulate_target: expected [valence, arousal] in [-1, 1]")
