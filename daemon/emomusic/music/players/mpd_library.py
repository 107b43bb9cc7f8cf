"""The library as MPD knows it: ``listallinfo`` into the same SQLite index and placement path.

With ``player.mpd.music_directory`` (MPD's music folder as seen from here) the listed songs are
scanned as local files — tags, mood tags, audio analysis, incrementally by mtime — exactly like
configured folders. Without it only MPD's own tags are known: a song is placed by the mood CSV (by
artist and title) or not queued, with that reason in the index.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from emomusic.config.music import LibraryConfig, PlayerConfig
from emomusic.music.library import Library, ScanReport, too_short
from emomusic.music.players.mpd_client import MPD_PREFIX, MpdAddress, key_of, list_songs
from emomusic.music.scan import scan
from emomusic.music.tags import TrackTags, first_value

log = logging.getLogger("emomusic.library")


def music_dir(pc: PlayerConfig) -> Path | None:
    d = pc.mpd.music_directory
    return Path(d).expanduser().resolve() if d else None


def scan_mpd(lib: Library, lc: LibraryConfig, pc: PlayerConfig, password: str | None, progress: bool,
             on_file: Callable[[Path], None]) -> ScanReport:
    """Bring the index in line with MPD's database; raises MpdError when MPD cannot be asked."""
    addr = MpdAddress.from_settings(pc.mpd, password)
    folder = music_dir(pc)
    songs = list_songs(addr, folder)
    log.info("MPD at %s lists %d songs", addr, len(songs))
    if folder is not None:
        files = [Path(k) for s in songs if not (k := key_of(s["file"], folder)).startswith(MPD_PREFIX)]
        return scan(lib, (), files=files, analyze=lc.analyze,
                    min_track_s=lc.min_track_s, progress=progress, jobs=lc.scan_jobs, on_file=on_file)
    return _index_tags(lib, songs, lc.min_track_s, on_file)


def _stat(song: dict[str, Any]) -> os.stat_result:
    """A stand-in stat of a song MPD knows: its last-modified time (size unknown)."""
    try:
        mtime = datetime.fromisoformat(str(song.get("last-modified", "")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        mtime = 0.0
    return os.stat_result((0, 0, 0, 0, 0, 0, 0, int(mtime), mtime, mtime))


def _index_tags(lib: Library, songs: list[dict[str, Any]], min_track_s: float,
                on_file: Callable[[Path], None] | None) -> ScanReport:
    t0, report = time.monotonic(), ScanReport()
    keys = set()
    with lib.writing() as write:
        for song in songs:
            key = Path(MPD_PREFIX + song["file"])
            keys.add(str(key))
            report.seen += 1
            if on_file:
                on_file(key)
            st = _stat(song)
            state = lib.file_state(key, st)
            if state == "unchanged":
                report.unchanged += 1
                continue
            try:
                duration = float(song.get("duration") or song.get("time") or 0)
            except ValueError:
                duration = 0.0
            tags = TrackTags(title=first_value(song.get("title")) or Path(song["file"]).stem,
                             artist=first_value(song.get("artist")), album=first_value(song.get("album")),
                             genre=first_value(song.get("genre")), duration_s=duration, bpm=None, mood="")
            placed = lib.placement_for(str(key), tags.artist, tags.title)
            if duration < min_track_s:
                write.track(key, st, tags, (0.0, 0.0), "none", "", None,
                            skip=too_short(duration, min_track_s))
                report.skipped += 1
            elif placed is not None:
                write.track(key, st, tags, (placed["valence"], placed["arousal"]), "csv", placed["mood"], None)
            else:
                write.track(key, st, tags, (0.0, 0.0), "none", "", None,
                            skip="not placed: no mood CSV row, and no player.mpd.music_directory to analyse it")
                report.skipped += 1
            report.updated += state == "changed"
            report.added += state == "new"
        report.missing = write.retire_unseen(keys)
    report.seconds = time.monotonic() - t0
    return report
