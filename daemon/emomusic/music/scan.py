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
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emomusic.config import Config
from emomusic.music.demo import DEMO_FOLDER, make_demo_library
from emomusic.music.library import Library, ScanReport, too_short
from emomusic.music.listing import iter_audio_files
from emomusic.music.moods import mood_to_va
from emomusic.music.tags import TagError, read_tags

log = logging.getLogger("emomusic.library")

LOG_EVERY_S = 10.0
INLINE_BELOW = 4  # fewer files to analyse than this: no worker pool (it costs ~0.5 s to start)


def analyse(path: str) -> tuple[tuple[float, float], dict[str, float]] | str:
    """Worker: the placement of one file, or why it has none (a string)."""
    from emomusic.music.analysis import AnalysisError
    from emomusic.music.placement import place_file

    try:
        return place_file(Path(path))
    except AnalysisError as e:
        return str(e)


class _Inline(Executor):
    """Runs submitted work at once in this process (small scans, one job, analysis off)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - delivered through the future, as a pool would
            f.set_exception(e)
        return f


class Progress:
    """tqdm on a terminal, periodic log lines otherwise."""

    def __init__(self, total: int, terminal: bool) -> None:
        self.total, self.n, self.t0, self.last_log = total, 0, time.monotonic(), time.monotonic()
        self.bar: Any = None
        if terminal and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="track", desc="scanning", dynamic_ncols=True)

    def step(self) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY_S and self.n < self.total:
            self.last_log = now
            rate = self.n / max(now - self.t0, 1e-9)
            log.info("library scan: %d/%d files (%.1f/s, about %.0f s left)", self.n, self.total, rate,
                     (self.total - self.n) / max(rate, 1e-9))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def die_with_parent(parent: int) -> None:
    """Pool worker initializer: the worker is killed when the process that started it dies, so a scan
    killed with SIGKILL (or a daemon killed mid-scan) leaves no analysing processes behind. Linux's
    PR_SET_PDEATHSIG; elsewhere nothing."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the line above: nobody is left to serve
        os._exit(1)


class _Workers:
    """The analysis processes. A worker that dies (a decoder crashing on a broken file, the OOM
    killer) breaks the whole pool: a new pool takes the remaining work, each file the dead pool held
    is analysed again alone, and the one that kills its worker again is marked as failed instead of
    taking the scan down."""

    def __init__(self, jobs: int, use_pool: bool, analyser: Callable[[str], Any] = analyse) -> None:
        self.jobs, self.use_pool, self.analyser = jobs, use_pool, analyser
        self.generation = 0
        self.pool: Executor = self._new()

    def _new(self) -> Executor:
        if not self.use_pool:
            return _Inline()
        import multiprocessing

        return ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=die_with_parent, initargs=(os.getpid(),))

    def submit(self, path: Path) -> tuple[int, Future[Any]]:
        return self.generation, self.pool.submit(self.analyser, str(path))

    def renew(self, generation: int) -> None:
        """Replace the pool that ``generation`` ran on, unless that was done already."""
        if generation == self.generation:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.generation += 1
            self.pool = self._new()

    def isolated(self, path: Path) -> Any:
        """Analyse one file alone in a process of its own: the file a dead pool held is either
        innocent (analysed now) or the one that kills its worker (then it is marked as failed)."""
        if not self.use_pool:
            return self.analyser(str(path))
        import multiprocessing

        log.warning("%s: an analysing process died; trying this file alone", path)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as alone:
            try:
                return alone.submit(self.analyser, str(path)).result()
            except BrokenProcessPool:
                return "the analysing process died on it (a decoder crash?)"

    def shutdown(self) -> None:
        self.pool.shutdown(cancel_futures=True)


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
    from emomusic.music.placement import PlacementModelError, load_model

    t0 = time.monotonic()
    report = ScanReport()
    if files is None:
        files = list(iter_audio_files([Path(f).expanduser().resolve() for f in folders],
                                      [Path(p).expanduser() for p in playlists]))
    try:
        model = load_model() if analyze and analyser is analyse else None
    except PlacementModelError as e:
        log.error("%s", e)
        model = None
    current = model.id if model is not None and refresh else None
    work: list[tuple[Path, os.stat_result, bool]] = []
    for path in files:
        report.seen += 1
        try:
            st = path.stat()
        except OSError as e:
            log.warning("%s: cannot stat (%s); skipped", path, e.strerror)
            report.failed += 1
            continue
        state = lib.file_state(path, st, current)
        if state == "unchanged":
            report.unchanged += 1
        else:
            work.append((path, st, state == "changed"))
    bar = Progress(len(work), progress)
    jobs = jobs or os.cpu_count() or 1
    # The tagger is loaded by worker processes only, so the daemon never keeps it (a pool even for one
    # file); the lighter audio-feature analysis of a few files runs here.
    pooled = analyze and bool(work) and ((model is not None and model.uses_tagger)
                                         or (len(work) >= INLINE_BELOW and jobs > 1))
    workers = _Workers(min(jobs, max(1, len(work))), pooled, analyser)
    try:
        with lib.writing() as write:
            pending: list[_Pending] = []
            for path, st, existed in work:
                if on_file:
                    on_file(path)
                try:
                    tags = read_tags(path)
                except TagError as e:
                    log.warning("%s: unreadable audio file (%s); skipped", path, e)
                    write.error(path, st, str(e))
                    report.failed += 1
                    bar.step()
                    continue
                placed = lib.placement_for(str(path), tags.artist, tags.title)
                tag_va = mood_to_va(tags.mood) if tags.mood else None
                if tags.duration_s < min_track_s:
                    write.track(path, st, tags, (0.0, 0.0), "none", tags.mood, None,
                                skip=too_short(tags.duration_s, min_track_s))
                    report.skipped += 1
                elif placed is not None:
                    write.track(path, st, tags, (placed["valence"], placed["arousal"]), "csv", placed["mood"], None)
                elif tag_va is not None:
                    write.track(path, st, tags, tag_va, "tag", tags.mood, None)
                elif analyze:
                    pending.append(_Pending(path, st, tags, existed, workers.submit(path)))
                    if len(pending) >= 2 * jobs:
                        _finish(write, pending.pop(0), report, bar, workers)
                    continue
                else:
                    write.track(path, st, tags, (0.0, 0.0), "none", tags.mood, None, skip="not placed (analysis off)")
                    report.skipped += 1
                report.updated += existed
                report.added += not existed
                bar.step()
            for p in pending:
                _finish(write, p, report, bar, workers)
            report.missing = write.retire_unseen({str(p) for p in files})
    finally:
        workers.shutdown()
        bar.close()
    report.seconds = time.monotonic() - t0
    return report


def _finish(write: Any, p: _Pending, report: ScanReport, bar: Progress, workers: _Workers) -> None:
    generation, future = p.job
    try:
        result = future.result()
    except BrokenProcessPool:
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


def open_library(cfg: Config, *, rescan: bool, csv: str = "", progress: bool = False, refresh: bool = True,
                 should_stop: Callable[[], bool] = lambda: False) -> tuple[Library, ScanReport | None]:
    """The library index with the configured mood CSV imported and, if ``rescan``, the configured
    folders and playlists rescanned (the generated demo library when none is configured), or MPD's
    database with ``player.backend = "mpd"`` (raises MpdError when MPD cannot be asked).
    ``should_stop`` is polled between files, so a daemon asked to stop does not finish a long scan."""
    lib = Library(cfg.library_path)
    lc = cfg.library
    mpd = cfg.player.backend == "mpd"
    folders, playlists = [Path(f) for f in lc.folders], [Path(p) for p in lc.playlists]
    if mpd:
        if folders or playlists:
            log.warning("player.backend is mpd: the library is MPD's; library.folders and playlists are ignored")
    elif not folders and not playlists:
        demo = cfg.state_dir / DEMO_FOLDER
        make_demo_library(demo, should_stop=should_stop)
        folders = [demo]
        log.info("no music folders configured: using the generated demo library in %s", demo)
    # What the config names but is not there: the daemon logs it and goes on (a NAS may mount later);
    # ``emomusic scan`` exits non-zero naming each (ScanReport.problems).
    problems = [f"library.folders: {f} is not a folder (missing, or not mounted yet?)"
                for f in folders if not f.expanduser().is_dir()]
    problems += [f"library.playlists: {p} is not a file" for p in playlists if not p.expanduser().is_file()]
    csv_name = csv or lc.csv
    mood_csv = Path(csv_name).expanduser() if csv_name else None
    if mood_csv is not None:
        try:
            imported, rejected = lib.import_csv(mood_csv)
            log.info("mood CSV %s: %d rows imported, %d rejected", mood_csv, imported, rejected)
        except (OSError, ValueError) as e:
            log.error("library.csv: %s", e)
            problems.append(f"{'--csv' if csv else 'library.csv'}: {e}")
            mood_csv = None
    if not rescan and lib.recovered_from is None:
        return lib, None

    def check_stop(path: Path) -> None:
        if should_stop():
            raise InterruptedError("stopped during the library scan")

    if mpd:
        from emomusic.music.mpd_library import scan_mpd

        try:
            report = scan_mpd(lib, cfg, progress=progress, on_file=check_stop)
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
        unmatched = lib.unmatched_placements(str(mood_csv))
        if unmatched:
            log.warning("mood CSV %s: %d rows match no track in the library: %s", mood_csv, len(unmatched),
                        "; ".join(unmatched[:20]) + (" …" if len(unmatched) > 20 else ""))
        report.unmatched_csv = unmatched
    return lib, report


def refresh_in_background(cfg: Config, should_stop: Callable[[], bool]) -> threading.Thread | None:
    """Tracks that an older placement model placed are placed again by a scan in a thread of its own
    (its progress in the log), while the music plays on with their old placements; None when there is
    nothing to do (or the index cannot be read: the scan that opened it has said why)."""
    from emomusic.music.placement import PlacementModelError, load_model

    try:
        model = load_model()
        lib = Library(cfg.library_path)
        try:
            n = lib.stale(model.id)
        finally:
            lib.close()
    except (PlacementModelError, OSError, sqlite3.Error, RuntimeError):
        return None
    if not n or not cfg.library.analyze:
        return None

    def run() -> None:
        log.info("placing %d tracks again with the new placement model (%s), in the background", n, model.id)
        try:
            lib, report = open_library(cfg, rescan=True, refresh=True, should_stop=should_stop)
            lib.close()
            log.info("placed again with the new model: %s", report)
        except InterruptedError:
            pass
        except Exception as e:  # a re-analysis that fails leaves the old placements: the music plays on
            log.warning("placing tracks again failed (%s: %s); the older placements stay", type(e).__name__, e)

    thread = threading.Thread(target=run, name="music-refresh", daemon=True)
    thread.start()
    return thread
