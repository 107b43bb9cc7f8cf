"""The music library: tracks from folders and M3U playlists, indexed in SQLite with a mood placement.

Every track gets a (valence, arousal) and the source of that placement, in this order of trust:
an imported CSV (``csv``), the file's own mood tags (``tag``), audio analysis (``analysis``). A
track none of these can place, or one too short or silent to be music, is kept with the reason in
``skip`` and never queued.

The index is a WAL-mode SQLite file with a schema version. ``music.scan`` fills it: only files whose
mtime or size changed are read again; files that vanished or are no longer in the configured folders
and playlists are marked missing (not played; ``prune`` forgets them), and writes are committed in
small transactions, so a kill -9 mid-scan loses at most the current batch. A corrupt file is
recorded with its error; it never stops a scan.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emomusic.music.listing import AUDIO_EXTENSIONS
from emomusic.music.moods import mood_to_va
from emomusic.music.tags import TrackTags

log = logging.getLogger("emomusic.library")

SCHEMA_VERSION = 2
BATCH = 25

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    mtime REAL NOT NULL,
    size INTEGER NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    artist TEXT NOT NULL DEFAULT '',
    album TEXT NOT NULL DEFAULT '',
    genre TEXT NOT NULL DEFAULT '',
    duration_s REAL NOT NULL DEFAULT 0,
    bpm REAL,
    mood TEXT NOT NULL DEFAULT '',
    valence REAL NOT NULL DEFAULT 0,
    arousal REAL NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT 'none',
    features TEXT,
    missing INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    skip TEXT,                     -- why a readable track is not queued (too short, silent, unplaced)
    scanned_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS placements (
    key TEXT PRIMARY KEY,          -- 'path:<abs path>' or 'song:<artist>|<title>' (normalised)
    valence REAL NOT NULL,
    arousal REAL NOT NULL,
    mood TEXT NOT NULL,
    origin TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Track:
    id: int
    path: str
    title: str
    artist: str
    duration_s: float
    valence: float
    arousal: float
    source: str
    mood: str
    heard: tuple[str, ...] = ()  # analysis: the tagger's top tags ("happy 0.41", …)
    confidence: float | None = None  # analysis: the probability of the placement's quadrant


@dataclass
class ScanReport:
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0  # indexed but not queued: too short, silent, analysis failed
    missing: int = 0  # gone, or no longer in the configured folders/playlists
    seconds: float = 0.0
    unmatched_csv: list[str] = field(default_factory=list)  # mood CSV rows no track matched
    problems: list[str] = field(default_factory=list)  # configured folders, playlists or CSV not usable

    def __str__(self) -> str:
        rate = (self.added + self.updated) / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.seen} files: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.failed} unreadable, {self.skipped} not queued (short, silent or unplaceable), "
                f"{self.missing} no longer in the configured library; {self.seconds:.1f} s ({rate:.1f} tracks/s)")


def song_key(artist: str, title: str) -> str:
    norm = lambda s: re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()  # noqa: E731
    return f"song:{norm(artist)}|{norm(title)}"


class Library:
    """The SQLite index. One connection per thread: the player reads while a scan may write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recovered_from: Path | None = None  # where a corrupt index was moved aside, if one was
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connect()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # locked, read-only, disk I/O: not the file's fault
                raise
            if getattr(self, "db", None) is not None:
                self.db.close()
            self.recovered_from = self._move_aside(str(e))
            self._connect()

    def _connect(self) -> None:
        # Autocommit mode: transactions are explicit (see _tx), never opened behind our back.
        self.db = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        check = self.db.execute("PRAGMA quick_check(1)").fetchone()[0]  # a truncated file opens, then fails
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        self._migrate()

    def _move_aside(self, why: str) -> Path:
        """A corrupt index is only an index: keep it for a post-mortem and start a new one (a rescan
        rebuilds it; mood CSV placements are re-imported from the CSV)."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        self.path.replace(aside)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.replace(aside.with_name(aside.name + suffix))
        log.error("library index %s is corrupt (%s): moved aside to %s; rebuilding it with a rescan",
                  self.path, why, aside.name)
        return aside

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        row = None
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            pass
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: schema version {version} is newer than this emomusic ({SCHEMA_VERSION})")
        self.db.executescript(SCHEMA)  # idempotent; executescript manages its own transaction
        if version == 1:  # 1 -> 2: the skip column
            self.db.execute("ALTER TABLE tracks ADD COLUMN skip TEXT")
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # -- placements from CSV ----------------------------------------------------------------------
    def import_csv(self, path: Path) -> tuple[int, int]:
        """Import mood placements; returns (rows imported, rows rejected). Two layouts:
        ``path_or_title,artist,mood…`` and the seed list's ``Song,Artist,Title,MoodsStrSplit,SampleURL``."""
        imported = rejected = 0
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [h.strip() for h in (reader.fieldnames or [])]
            seed = {"Artist", "Title", "MoodsStrSplit"} <= set(fields)
            plain = "path_or_title" in fields and "mood" in fields
            if not (seed or plain):
                raise ValueError(f"{path}: expected columns path_or_title,artist,mood or "
                                 "Song,Artist,Title,MoodsStrSplit,SampleURL")
            with self._tx():
                for line, row in enumerate(reader, start=2):
                    row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                    if seed:
                        key, mood = song_key(row["Artist"], row["Title"]), row["MoodsStrSplit"]
                    else:
                        target = row["path_or_title"]
                        p = Path(target).expanduser()
                        if not p.is_absolute() and (path.parent / p).exists():
                            p = path.parent / p
                        if not p.is_absolute() and p.suffix.lower() in AUDIO_EXTENSIONS:
                            p = path.parent / p  # a file name: relative to the CSV, even if not there
                        is_file = p.exists() or p.suffix.lower() in AUDIO_EXTENSIONS
                        key = f"path:{p.resolve()}" if is_file else song_key(row.get("artist", ""), target)
                        mood = row["mood"]
                    va = mood_to_va(mood)
                    if va is None:
                        log.warning("%s:%d: mood %r has no known mood word; row skipped", path, line, mood[:60])
                        rejected += 1
                        continue
                    self.db.execute("INSERT OR REPLACE INTO placements VALUES (?, ?, ?, ?, ?)",
                                    (key, va[0], va[1], mood, str(path)))
                    imported += 1
        self._apply_placements()
        return imported, rejected

    def placement_for(self, path: str, artist: str, title: str) -> sqlite3.Row | None:
        """The imported CSV placement of a file: by path first, then by artist and title, then by
        title alone (a CSV row without an artist)."""
        return self.db.execute(
            "SELECT * FROM placements WHERE key IN (?, ?, ?) ORDER BY key LIKE 'path:%' DESC, key = ? DESC",
            (f"path:{path}", song_key(artist, title), song_key("", title), song_key(artist, title))).fetchone()

    def _apply_placements(self) -> None:
        with self._tx():
            for t in self.db.execute("SELECT id, path, artist, title FROM tracks").fetchall():
                p = self.placement_for(t["path"], t["artist"], t["title"])
                if p is not None:
                    self.db.execute("UPDATE tracks SET valence=?, arousal=?, source='csv', mood=? WHERE id=?",
                                    (p["valence"], p["arousal"], p["mood"], t["id"]))

    # -- writing (music.scan drives it) ----------------------------------------------------------
    def file_state(self, path: Path, st: os.stat_result, model: str | None = None) -> str:
        """"new", "changed" or "unchanged" (same mtime and size, read without error); an unchanged
        file that had gone missing is marked present again. With ``model`` (the placement model's id),
        a track that audio analysis placed with another model is "changed" too: it is placed again."""
        old = self.db.execute("SELECT mtime, size, missing, error, source, features FROM tracks WHERE path=?",
                              (str(path),)).fetchone()
        if old is None:
            return "new"
        if model is not None and old["source"] == "analysis" and placed_by(old["features"]) not in (model, None):
            return "changed"
        if old["mtime"] == st.st_mtime and old["size"] == st.st_size and not old["error"]:
            if old["missing"]:
                with self._tx():
                    self.db.execute("UPDATE tracks SET missing=0 WHERE path=?", (str(path),))
            return "unchanged"
        return "changed"

    @contextmanager
    def writing(self) -> Iterator[Writer]:
        """Writes in transactions of ``BATCH`` rows: a scan killed mid-way loses at most one batch."""
        writer = Writer(self.db)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield writer
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def prune(self) -> int:
        """Forget the tracks that are gone or outside the configured library; returns how many."""
        with self._tx():
            return self.db.execute("DELETE FROM tracks WHERE missing=1").rowcount

    def unmatched_placements(self, origin: str) -> list[str]:
        """Rows of the CSV ``origin`` that no indexed track matched (by path or by artist and title)."""
        paths = {r[0] for r in self.db.execute("SELECT path FROM tracks")}
        songs = set()
        for artist, title in self.db.execute("SELECT artist, title FROM tracks"):
            songs |= {song_key(artist, title), song_key("", title)}
        out = []
        for r in self.db.execute("SELECT key FROM placements WHERE origin=? ORDER BY key", (origin,)):
            key = r[0]
            if key.startswith("path:") and key[5:] not in paths:
                out.append(key[5:])
            elif key.startswith("song:") and key not in songs:
                artist, title = key[5:].split("|", 1)
                out.append(f"{title} — {artist or '?'}")
        return out

    # -- reading ----------------------------------------------------------------------------------
    def tracks(self, playable_only: bool = True) -> list[Track]:
        where = "WHERE missing=0 AND error IS NULL AND skip IS NULL" if playable_only else ""
        rows = self.db.execute(f"SELECT * FROM tracks {where} ORDER BY artist, title, path").fetchall()
        return [_track(r) for r in rows]

    def track(self, path: str) -> Track | None:
        """The indexed track at ``path`` (playable or not), or None."""
        r = self.db.execute("SELECT * FROM tracks WHERE path=?", (path,)).fetchone()
        return None if r is None else _track(r)

    def stale(self, model: str) -> int:
        """How many present tracks audio analysis placed with another model than ``model``."""
        rows = self.db.execute("SELECT features FROM tracks WHERE source='analysis' AND missing=0").fetchall()
        return sum(placed_by(r["features"]) not in (model, None) for r in rows)

    def rows(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM tracks ORDER BY missing, artist, title, path").fetchall()

    def mark_unplayable(self, track_id: int, error: str) -> None:
        """A file that failed at play time (deleted or corrupted after the scan) is skipped from now on."""
        with self._tx():
            self.db.execute("UPDATE tracks SET error=? WHERE id=?", (error, track_id))


def placed_by(features: str | None) -> str | None:
    """The id of the model that placed a track by analysis ("audio:" for the first, which kept none)."""
    try:
        model = json.loads(features).get("model") if features else None
    except (ValueError, AttributeError):
        return None
    return str(model) if model else "audio:"


def analysis_details(features: str | None) -> tuple[tuple[str, ...], float | None]:
    """The tagger's top tags and the placement's confidence kept for an analysed track."""
    try:
        shown = json.loads(features) if features else {}
        tags = tuple(f"{name} {p:.2f}" for name, p in shown.get("tags", []))
        confidence = shown.get("confidence")
        return tags, float(confidence) if confidence is not None else None
    except (ValueError, TypeError, AttributeError):
        return (), None


def _track(r: sqlite3.Row) -> Track:
    heard, confidence = analysis_details(r["features"]) if r["source"] == "analysis" else ((), None)
    return Track(r["id"], r["path"], r["title"], r["artist"], r["duration_s"], r["valence"], r["arousal"],
                 r["source"], r["mood"], heard, confidence)


def too_short(duration_s: float, min_track_s: float) -> str:
    """Why a track is not queued: shorter than ``library.min_track_s`` (a stinger, a jingle)."""
    return f"short ({duration_s:.0f} s < library.min_track_s {min_track_s:g} s)"


class Writer:
    """Row writes of one scan, committed every ``BATCH`` rows (see ``Library.writing``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.pending = 0

    def _written(self) -> None:
        self.pending += 1
        if self.pending >= BATCH:
            self.db.execute("COMMIT")
            self.db.execute("BEGIN IMMEDIATE")
            self.pending = 0

    def error(self, path: Path, st: os.stat_result, error: str) -> None:
        self.db.execute(
            "INSERT INTO tracks (path, mtime, size, title, error, scanned_at, missing) VALUES (?,?,?,?,?,?,0) "
            "ON CONFLICT(path) DO UPDATE SET mtime=excluded.mtime, size=excluded.size, error=excluded.error, "
            "scanned_at=excluded.scanned_at, missing=0",
            (str(path), st.st_mtime, st.st_size, path.stem, error, time.time()),
        )
        self._written()

    def track(self, path: Path, st: os.stat_result, tags: TrackTags, va: tuple[float, float], source: str,
              mood: str, features: dict[str, Any] | None, skip: str | None = None) -> None:
        """One readable track; ``skip`` says why it is not queued (too short, silent, not placed)."""
        values = (str(path), st.st_mtime, st.st_size, tags.title, tags.artist, tags.album, tags.genre,
                  tags.duration_s, tags.bpm, mood, va[0], va[1], source,
                  json.dumps(features) if features else None, time.time(), skip)
        self.db.execute(
            "INSERT INTO tracks (path, mtime, size, title, artist, album, genre, duration_s, bpm, mood, valence, "
            "arousal, source, features, scanned_at, skip, missing, error) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,NULL) "
            "ON CONFLICT(path) DO UPDATE SET mtime=excluded.mtime, size=excluded.size, title=excluded.title, "
            "artist=excluded.artist, album=excluded.album, genre=excluded.genre, duration_s=excluded.duration_s, "
            "bpm=excluded.bpm, mood=excluded.mood, valence=excluded.valence, arousal=excluded.arousal, "
            "source=excluded.source, features=excluded.features, scanned_at=excluded.scanned_at, "
            "skip=excluded.skip, missing=0, error=NULL",
            values,
        )
        self._written()

    def retire_unseen(self, seen: set[str]) -> int:
        """Mark what the index holds but this scan did not find (deleted, or outside the configured
        folders and playlists) as missing: it is not played. Returns how many were newly marked."""
        n = 0
        for row in self.db.execute("SELECT id, path FROM tracks WHERE missing=0").fetchall():
            if row["path"] not in seen:
                self.db.execute("UPDATE tracks SET missing=1 WHERE id=?", (row["id"],))
                n += 1
        return n
