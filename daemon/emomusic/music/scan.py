"""Scanning the configured music into the index: tags, placement, odd tracks, on every core.

A scan lists the configured folders and playlists, then reads each new or changed file's tags and
places it (an imported CSV row, its own mood tag, else audio analysis: ``music.placement``, musicnn's
tagger and the audio features). Analysis runs in a pool of worker processes (one per core) on the
middle 20 s of each file only; the tagger lives in those processes, never in the daemon's own. A
track an older placement model placed is placed again by the next scan that refreshes. Tracks shorter than
``min_track_s`` (stingers, jingles), silent ones and ones whose analysis failed are indexed with
the reason they are not queued. Whatever the index holds that this scan did not find is no longer
in the configured library: it is not played, and ``prune`` forgets it.

Progress is a tqdm bar on a terminal and an INFO line every ``LOG_EVERY_S`` otherwise (the daemon
scanning at start-up), with the rate and the time left.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emomusic.config.music import LibraryConfig, PlayerConfig
from emomusic.music.analysing import INLINE_BELOW, Progress, Workers, analyse
from emomusic.music.demo import DEMO_FOLDER, forget_older_demos, make_demo_library
from emomusic.music.library import Library, ScanReport, too_short
from emomusic.music.listing import iter_audio_files
from emomusic.music.moods import mood_to_va
from emomusic.music.settings import MusicSettings
from emomusic.music.tags import TagError, read_tags

log = logging.getLogger("emomusic.library")

# A backend's own library into the index (MPD's database): (index, library and player settings,
# password, progress bar?, a callback before each file) -> the report; it raises when it cannot list.
LibraryScan = Callable[[Library, LibraryConfig, PlayerConfig, str | None, bool, Callable[[Path], None]], ScanReport]


@dataclass
class _Pending:
    path: Path
    stat: os.stat_result
    tags: Any
    existed: bool
    job: tuple[int, Future[Any]]


def scan(lib: Library, folders: Iterable[Path], playlists: Iterable[Path] = (), *,
         files: list[Path] | None = None, analyze: bool = True,
         min_track_s: float = 30.0, progress: bool = False, jobs: int = 0,
         on_file: Callable[[Path], None] | None = None, analyser: Callable[[str], Any] = analyse,
         refresh: bool = True) -> ScanReport:
    """Bring the index in line with the configured folders and playlists. ``on_file`` is called
    before each file (it may raise to stop the scan: what was committed stays consistent);
    ``analyser`` (a module-level function, for the worker processes) places one file; ``files``, when
    given, is the whole library instead of the folders' and playlists' files (MPD's listing);
    ``refresh``: tracks that an older placement model placed are placed again (the daemon does that in
    the background, after its music has started)."""
    t0 = time.monotonic()
    report = ScanReport()
    if files is None:
        files = list(iter_audio_files([Path(f).expanduser().resolve() for f in folders],
                                      [Path(p).expanduser() for p in playlists]))
    model = _model(analyze and analyser is analyse)
    work = _changed(lib, files, model.id if model is not None and refresh else None, report)
    bar = Progress(len(work), progress)
    jobs = jobs or os.cpu_count() or 1
    # The tagger is loaded by worker processes only, so the daemon never keeps it (a pool even for one
    # file); the lighter audio-feature analysis of a few files runs here.
    pooled = analyze and bool(work) and ((model is not None and model.uses_tagger)
                                         or (len(work) >= INLINE_BELOW and jobs > 1))
    workers = Workers(min(jobs, max(1, len(work))), pooled, analyser)
    try:
        with lib.writing() as write:
            pending: list[_Pending] = []
            for path, st, existed in work:
                if on_file:
                    on_file(path)
                job = _index(lib, write, path, st, existed, report, min_track_s, analyze, workers)
                if job is None:
                    bar.step()
                    continue
                pending.append(job)
                if len(pending) >= 2 * jobs:
                    _finish(write, pending.pop(0), report, bar, workers)
            for p in pending:
                _finish(write, p, report, bar, workers)
            report.missing = write.retire_unseen({str(p) for p in files})
    finally:
        workers.shutdown()
        bar.close()
    report.seconds = time.monotonic() - t0
    return report


def _model(analysing: bool) -> Any:
    """The placement model a scan's analysis uses (None when it does not analyse, or cannot)."""
    from emomusic.music.placement import PlacementModelError, load_model

    if not analysing:
        return None
    try:
        return load_model()
    except PlacementModelError as e:
        log.error("%s", e)
        return None


def _changed(lib: Library, files: list[Path], model: str | None,
             report: ScanReport) -> list[tuple[Path, os.stat_result, bool]]:
    """The files to read again: new, changed, or placed by another model than ``model`` (if given)."""
    work = []
    for path in files:
        report.seen += 1
        try:
            st = path.stat()
        except OSError as e:
            log.warning("%s: cannot stat (%s); skipped", path, e.strerror)
            report.failed += 1
            continue
        state = lib.file_state(path, st, model)
        if state == "unchanged":
            report.unchanged += 1
        else:
            work.append((path, st, state == "changed"))
    return work


def _index(lib: Library, write: Any, path: Path, st: os.stat_result, existed: bool, report: ScanReport,
           min_track_s: float, analyze: bool, workers: Workers) -> _Pending | None:
    """One file into the index: placed by the CSV or its own tags at once, or its analysis started
    (returned, to be finished); None when done here."""
    try:
        tags = read_tags(path)
    except TagError as e:
        log.warning("%s: unreadable audio file (%s); skipped", path, e)
        write.error(path, st, str(e))
        report.failed += 1
        return None
    placed = lib.placement_for(str(path), tags.artist, tags.title)
    tag_va = mood_to_va(tags.mood) if tags.mood else None
    if tags.duration_s < min_track_s:
        write.track(path, st, tags, (0.0, 0.0), "none", tags.mood, None, skip=too_short(tags.duration_s, min_track_s))
        report.skipped += 1
    elif placed is not None:
        write.track(path, st, tags, (placed["valence"], placed["arousal"]), "csv", placed["mood"], None)
    elif tag_va is not None:
        write.track(path, st, tags, tag_va, "tag", tags.mood, None)
    elif analyze:
        return _Pending(path, st, tags, existed, workers.submit(path))
    else:
        write.track(path, st, tags, (0.0, 0.0), "none", tags.mood, None, skip="not placed (analysis off)")
        report.skipped += 1
    report.updated += existed
    report.added += not existed
    return None


def _finish(write: Any, p: _Pending, report: ScanReport, bar: Progress, workers: Workers) -> None:
    generation, future = p.job
    try:
        result = future.result()
    except BrokenExecutor:  # a worker died (BrokenProcessPool)
        workers.renew(generation)
        result = workers.isolated(p.path)
    if isinstance(result, str):
        log.warning("%s: not queued: audio analysis failed (%s)", p.path, result)
        write.track(p.path, p.stat, p.tags, (0.0, 0.0), "none", p.tags.mood, None,
                    skip=f"analysis failed: {result}")
        report.skipped += 1
    else:
        va, shown = result
        write.track(p.path, p.stat, p.tags, va, "analysis", p.tags.mood, shown)
    report.updated += p.existed
    report.added += not p.existed
    bar.step()


def open_library(ms: MusicSettings, *, rescan: bool, csv: str = "", progress: bool = False, refresh: bool = True,
                 listing: LibraryScan | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> tuple[Library, ScanReport | None]:
    """The library index with the configured mood CSV imported and, if ``rescan``, the configured
    folders and playlists rescanned (the generated demo library when none is configured), or the
    player's own library with ``listing`` (a backend's: MPD's database; it raises when the player
    cannot be asked). ``should_stop`` is polled between files, so a daemon asked to stop does not
    finish a long scan."""
    lib = Library(ms.library_path)
    lc = ms.library
    folders, playlists = _configured(ms, listing is not None, should_stop)
    # What the config names but is not there: the daemon logs it and goes on (a NAS may mount later);
    # ``emomusic scan`` exits non-zero naming each (ScanReport.problems).
    problems = [f"library.folders: {f} is not a folder (missing, or not mounted yet?)"
                for f in folders if not f.expanduser().is_dir()]
    problems += [f"library.playlists: {p} is not a file" for p in playlists if not p.expanduser().is_file()]
    mood_csv = _import_csv(lib, csv, lc.csv, problems)
    if not rescan and lib.recovered_from is None:
        return lib, None

    def check_stop(path: Path) -> None:
        if should_stop():
            raise InterruptedError("stopped during the library scan")

    if listing is not None:
        try:
            report = listing(lib, lc, ms.player, ms.mpd_password, progress, check_stop)
        except BaseException:
            lib.close()
            raise
    else:
        log.info("scanning the library: %s", ", ".join(str(f) for f in [*folders, *playlists]))
        report = scan(lib, folders, playlists, analyze=lc.analyze, min_track_s=lc.min_track_s,
                      progress=progress, jobs=lc.scan_jobs, on_file=check_stop, refresh=refresh)
    log.info("library scan: %s", report)
    report.problems = problems
    if mood_csv is not None:
        report.unmatched_csv = _unmatched(lib, mood_csv)
    return lib, report


def _configured(ms: MusicSettings, own_library: bool,
                should_stop: Callable[[], bool]) -> tuple[list[Path], list[Path]]:
    """The folders and playlists to scan: the configured ones, or the generated demo library."""
    lc = ms.library
    folders, playlists = [Path(f) for f in lc.folders], [Path(p) for p in lc.playlists]
    if own_library:
        if folders or playlists:
            log.warning("player.backend %s keeps its own library; library.folders and playlists are ignored",
                        ms.player.backend)
        return folders, playlists
    if not folders and not playlists:
        demo = ms.state_dir / DEMO_FOLDER
        make_demo_library(demo, should_stop=should_stop)
        forget_older_demos(ms.state_dir)
        log.info("no music folders configured: using the generated demo library in %s", demo)
        return [demo], []
    return folders, playlists


def _import_csv(lib: Library, given: str, configured: str, problems: list[str]) -> Path | None:
    """Import the mood CSV (``--csv``, else library.csv); its path, or None (a problem is added)."""
    name = given or configured
    if not name:
        return None
    mood_csv = Path(name).expanduser()
    try:
        imported, rejected = lib.import_csv(mood_csv)
    except (OSError, ValueError) as e:
        log.error("library.csv: %s", e)
        problems.append(f"{'--csv' if given else 'library.csv'}: {e}")
        return None
    log.info("mood CSV %s: %d rows imported, %d rejected", mood_csv, imported, rejected)
    return mood_csv


def _unmatched(lib: Library, mood_csv: Path) -> list[str]:
    unmatched = lib.unmatched_placements(str(mood_csv))
    if unmatched:
        log.warning("mood CSV %s: %d rows match no track in the library: %s", mood_csv, len(unmatched),
                    "; ".join(unmatched[:20]) + (" …" if len(unmatched) > 20 else ""))
    return unmatched


def refresh_in_background(ms: MusicSettings, should_stop: Callable[[], bool],
                          listing: LibraryScan | None = None) -> threading.Thread | None:
    """Tracks that an older placement model placed are placed again by a scan in a thread of its own
    (its progress in the log), while the music plays on with their old placements; None when there is
    nothing to do (or the index cannot be read: the scan that opened it has said why)."""
    from emomusic.music.placement import PlacementModelError, load_model

    try:
        model = load_model()
        lib = Library(ms.library_path)
        try:
            n = lib.stale(model.id)
        finally:
            lib.close()
    except (PlacementModelError, OSError, sqlite3.Error, RuntimeError):
        return None
    if not n or not ms.library.analyze:
        return None

    def run() -> None:
        log.info("placing %d tracks again with the new placement model (%s), in the background", n, model.id)
        try:
            lib, report = open_library(ms, rescan=True, refresh=True, listing=listing, should_stop=should_stop)
            lib.close()
            log.info("placed again with the new model: %s", report)
        except InterruptedError:
            pass
        except Exception as e:  # a re-analysis that fails leaves the old placements: the music plays on
            log.warning("placing tracks again failed (%s: %s); the older placements stay", type(e).__name__, e)

    thread = threading.Thread(target=run, name="music-refresh", daemon=True)
    thread.start()
    return thread
