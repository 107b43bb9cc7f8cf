"""The analysis processes of a scan: one per core, each placing files (``music.placement``: the
tagger lives in them, never in the daemon's own process), a file whose worker died tried again alone,
and the progress (a tqdm bar on a terminal, a log line every ``LOG_EVERY_S`` otherwise)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future
from pathlib import Path
from typing import Any

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


class Workers:
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
        import multiprocessing  # here: a steady daemon whose library is indexed never needs them (1.4 MB)
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=die_with_parent, initargs=(os.getpid(),))

    def submit(self, path: Path) -> tuple[int, Future[Any]]:
        try:
            return self.generation, self.pool.submit(self.analyser, str(path))
        except BrokenExecutor:  # a worker died since the last file was handed out: the files that pool held
            self.renew(self.generation)  # are analysed again alone when they are collected (``isolated``)
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
        from concurrent.futures import ProcessPoolExecutor

        log.warning("%s: an analysing process died; trying this file alone", path)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as alone:
            try:
                return alone.submit(self.analyser, str(path)).result()
            except BrokenExecutor:  # the pool's worker died (BrokenProcessPool)
                return "the analysing process died on it (a decoder crash?)"

    def shutdown(self) -> None:
        self.pool.shutdown(cancel_futures=True)
