"""Keeping the daemon's resident memory small on a 1-2 GB Pi.

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and freed memory in
one arena is not reused by another: with a dozen stage threads that is tens of megabytes of
freed-but-held heap. Two arenas are plenty for threads that mostly wait on queues.

glibc also raises its mmap threshold each time a large block is freed (up to 32 MB), so after the
first start's media generation every later whole-piece numpy buffer lands in the heap, where one
small live object above it keeps the whole top from going back to the system. A fixed threshold keeps
large buffers in their own mappings, returned the moment they are freed (docs/PERFORMANCE.md: memory).
Each such mapping is faulted in page by page, so what the stream does several times a second keeps its
large buffers (runtime's shared arena, the detector's input), and the heap keeps up to ``TRIM_THRESHOLD``
free at its top: the voice's temporaries of a window (~1 MB) were trimmed and faulted in again each time,
180 faults a second (#35). ``release_every`` hands back the rest.
"""

from __future__ import annotations

import ctypes
import functools
import threading

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024  # glibc's dynamic threshold starts at 128 KB; fixing it stops the climb
TRIM_THRESHOLD = 2 * 1024 * 1024  # free heap top kept between a stream's steps (glibc's default: 128 KB)
RELEASE_EVERY_S = 20.0  # freed heap handed back this often (after bursts: first start, rescans, page requests)


@functools.cache  # looked up once: release_every asks every 20 s
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the symbols already loaded into this process, libc's among them
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas and fix its mmap threshold; call before the stage threads start.
    False where it cannot (not glibc)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, arenas)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_freed() -> bool:
    """Hand freed heap back to the system (glibc's malloc_trim), after a burst such as the first
    start's sample media and demo library. False where it cannot (not glibc)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def release_every(seconds: float, stop: threading.Event) -> threading.Thread:
    """A thread that hands freed heap back every ``seconds`` until ``stop``: after the first start's
    sample media and demo library, a rescan's analysis, a burst of page requests. malloc_trim takes
    well under a millisecond on this daemon's heap."""
    def run() -> None:
        while not stop.wait(seconds):
            release_freed()

    thread = threading.Thread(target=run, name="release-freed", daemon=True)
    thread.start()
    return thread


def keep_memory_small(stop: threading.Event) -> None:
    """glibc's malloc as the daemon runs on it: capped arenas, a fixed mmap threshold, freed heap handed back
    every ``RELEASE_EVERY_S`` until ``stop``. Call before any stage thread exists; ``emomusic run`` and the soak
    (scripts/soak.py) both do, so the soak measures the growth the daemon would have."""
    limit_malloc_arenas()
    release_every(RELEASE_EVERY_S, stop)
