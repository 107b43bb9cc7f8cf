"""The music library: tracks from folders and M3U playlists, indexed in SQLite with a mood placement.

Every track gets a (valence, arousal) and the source of that placement, in this order of trust:
an imported CSV (``csv``), the file's own mood tags (``tag``), audio analysis (``analysis``); a
track none of these can place sits at the centre with source ``none``.

The index is a WAL-mode SQLite file with a schema version; a rescan only reads files whose mtime or
size changed, marks vanished files missing (it never deletes what the user might plug back in), and
commits in small transactions, so a kill -9 mid-scan loses at most the current batch. A corrupt file
is logged, recorded with its error, and skipped; it never stops a scan.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from emomusic.music.moods import mood_to_va
from emomusic.music.tags import TagError, read_tags

log = logging.getLogger("emomusic.library")

SCHEMA_VERSION = 1
AUDIO_EXTENSIONS = {".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".m4a", ".mp4", ".aac", ".aif", ".aiff"}
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


@dataclass
class ScanReport:
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    missing: int = 0

    def __str__(self) -> str:
        return (f"{self.seen} files: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.failed} unreadable, {self.missing} missing")


def song_key(artist: str, title: str) -> str:
    norm = lambda s: re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()  # noqa: E731
    return f"song:{norm(artist)}|{norm(title)}"


def read_m3u(path: Path) -> list[Path]:
    """Entries of an M3U/M3U8 playlist, relative ones resolved against the playlist's folder."""
    out = []
    text = path.read_text(encoding="utf-8" if path.suffix.lower() == ".m3u8" else "latin-1", errors="replace")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "://" in line:
            continue
        p = Path(line)
        out.append(p if p.is_absolute() else (path.parent / p))
    return out


def iter_audio_files(folders: Iterable[Path], playlists: Iterable[Path]) -> Iterator[Path]:
    seen: set[str] = set()
    for folder in folders:
        if not folder.is_dir():
            log.warning("music folder %s does not exist; skipped", folder)
            continue
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                if p.suffix.lower() in AUDIO_EXTENSIONS and str(p.resolve()) not in seen:
                    seen.add(str(p.resolve()))
                    yield p.resolve()
    for playlist in playlists:
        try:
            entries = read_m3u(playlist)
        except OSError as e:
            log.warning("playlist %s unreadable: %s", playlist, e)
            continue
        for p in entries:
            if str(p.resolve()) not in seen:
                seen.add(str(p.resolve()))
                yield p.resolve()


class Progress:
    """A one-line progress bar on a terminal; a log line every 100 files otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.tty = enabled and sys.stderr.isatty()
        self.n = 0

    def step(self, name: str) -> None:
        self.n += 1
        if self.tty:
            sys.stderr.write(f"\rscanning: {self.n} files  {name[:50]:<50}")
            sys.stderr.flush()
        elif self.n % 100 == 0:
            log.info("scanned %d files", self.n)

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


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
                        key = f"path:{p.resolve()}" if p.exists() else song_key(row.get("artist", ""), target)
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

    def _placement_for(self, path: str, artist: str, title: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM placements WHERE key IN (?, ?) ORDER BY key LIKE 'path:%' DESC",
                               (f"path:{path}", song_key(artist, title))).fetchone()

    def _apply_placements(self) -> None:
        with self._tx():
            for t in self.db.execute("SELECT id, path, artist, title FROM tracks").fetchall():
                p = self._placement_for(t["path"], t["artist"], t["title"])
                if p is not None:
                    self.db.execute("UPDATE tracks SET valence=?, arousal=?, source='csv', mood=? WHERE id=?",
                                    (p["valence"], p["arousal"], p["mood"], t["id"]))

    # -- scanning ---------------------------------------------------------------------------------
    def scan(self, folders: Iterable[Path], playlists: Iterable[Path] = (), analyze: bool = True,
             progress: bool = False, on_file: Callable[[Path], None] | None = None) -> ScanReport:
        report = ScanReport()
        bar = Progress(progress)
        seen: set[str] = set()
        folders = [Path(f).expanduser().resolve() for f in folders]
        pending = 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for path in iter_audio_files(folders, [Path(p).expanduser() for p in playlists]):
                report.seen += 1
                seen.add(str(path))
                bar.step(path.name)
                if on_file:
                    on_file(path)
                self._scan_one(path, analyze, report)
                pending += 1
                if pending >= BATCH:
                    self.db.execute("COMMIT")
                    self.db.execute("BEGIN IMMEDIATE")
                    pending = 0
            # Files under the scanned folders that were not seen this time are gone (for now).
            for row in self.db.execute("SELECT id, path FROM tracks WHERE missing=0").fetchall():
                if row["path"] not in seen and any(row["path"].startswith(str(f) + os.sep) for f in folders):
                    self.db.execute("UPDATE tracks SET missing=1 WHERE id=?", (row["id"],))
                    report.missing += 1
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            bar.done()
        return report

    def _scan_one(self, path: Path, analyze: bool, report: ScanReport) -> None:
        try:
            st = path.stat()
        except OSError as e:
            log.warning("%s: cannot stat (%s); skipped", path, e.strerror)
            report.failed += 1
            return
        old = self.db.execute("SELECT mtime, size, missing, error FROM tracks WHERE path=?", (str(path),)).fetchone()
        if old and old["mtime"] == st.st_mtime and old["size"] == st.st_size and not old["error"]:
            if old["missing"]:
                self.db.execute("UPDATE tracks SET missing=0 WHERE path=?", (str(path),))
            report.unchanged += 1
            return
        now = time.time()
        try:
            tags = read_tags(path)
        except TagError as e:
            log.warning("%s: unreadable audio file (%s); skipped", path, e)
            self.db.execute(
                "INSERT INTO tracks (path, mtime, size, title, error, scanned_at, missing) VALUES (?,?,?,?,?,?,0) "
                "ON CONFLICT(path) DO UPDATE SET mtime=excluded.mtime, size=excluded.size, error=excluded.error, "
                "scanned_at=excluded.scanned_at, missing=0",
                (str(path), st.st_mtime, st.st_size, path.stem, str(e), now),
            )
            report.failed += 1
            return
        valence, arousal, source, features, mood = 0.0, 0.0, "none", None, tags.mood
        placement = self._placement_for(str(path), tags.artist, tags.title)
        tag_va = mood_to_va(tags.mood) if tags.mood else None
        if placement is not None:
            valence, arousal, source, mood = placement["valence"], placement["arousal"], "csv", placement["mood"]
        elif tag_va is not None:
            (valence, arousal), source = tag_va, "tag"
        elif analyze:
            try:
                from emomusic.music.analysis import analyze_file

                f = analyze_file(path)
                (valence, arousal), source = f.placement(), "analysis"
                features = json.dumps({"bpm": round(f.bpm, 1), "rms_db": round(f.rms_db, 1),
                                       "centroid_hz": round(f.centroid_hz), "major": f.major,
                                       "mode_strength": round(f.mode_strength, 3)})
            except Exception as e:  # undecodable formats (AAC) or broken audio: keep the tags, centre it
                log.warning("%s: audio analysis failed (%s); placed at the centre", path, e)
        values = (str(path), st.st_mtime, st.st_size, tags.title, tags.artist, tags.album, tags.genre,
                  tags.duration_s, tags.bpm, mood, valence, arousal, source, features, now)
        self.db.execute(
            "INSERT INTO tracks (path, mtime, size, title, artist, album, genre, duration_s, bpm, mood, valence, "
            "arousal, source, features, scanned_at, missing, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,NULL) "
            "ON CONFLICT(path) DO UPDATE SET mtime=excluded.mtime, size=excluded.size, title=excluded.title, "
            "artist=excluded.artist, album=excluded.album, genre=excluded.genre, duration_s=excluded.duration_s, "
            "bpm=excluded.bpm, mood=excluded.mood, valence=excluded.valence, arousal=excluded.arousal, "
            "source=excluded.source, features=excluded.features, scanned_at=excluded.scanned_at, missing=0, "
            "error=NULL",
            values,
        )
        if old:
            report.updated += 1
        else:
            report.added += 1

    # -- reading ----------------------------------------------------------------------------------
    def tracks(self, playable_only: bool = True) -> list[Track]:
        where = "WHERE missing=0 AND error IS NULL" if playable_only else ""
        rows = self.db.execute(f"SELECT * FROM tracks {where} ORDER BY artist, title, path").fetchall()
        return [Track(r["id"], r["path"], r["title"], r["artist"], r["duration_s"], r["valence"], r["arousal"],
                      r["source"], r["mood"]) for r in rows]

    def rows(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM tracks ORDER BY missing, artist, title, path").fetchall()

    def mark_unplayable(self, track_id: int, error: str) -> None:
        """A file that failed at play time (deleted or corrupted after the scan) is skipped from now on."""
        with self._tx():
            self.db.execute("UPDATE tracks SET error=? WHERE id=?", (error, track_id))
