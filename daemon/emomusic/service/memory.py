"""Keeping the daemon's resident memory small on a 1-2 GB Pi.

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and freed memory in
one arena is not reused by another: with a dozen stage threads that is tens of megabytes of
freed-but-held heap. Two arenas are plenty for threads that mostly wait on queues.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # from glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; call before the stage threads start. False where it cannot (not glibc)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process, libc's among them
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, arenas))
