"""Keeping the daemon's resident memory small on a 1-2 GB Pi.

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and freed memory in
one arena is not reused by another: with a dozen stage threads that is tens of megabytes of
freed-but-held heap. Two arenas are plenty for threads that mostly wait on queues.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("emomusic.app")

M_ARENA_MAX = -8  # from glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") else None  # glibc only (not musl)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; call before the stage threads start. False where it cannot."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas))


def trim_heap() -> None:
    """Give freed heap back to the system (after start-up work such as a library scan)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
