"""Each stage thread's name where the system shows it (``top -H``, ``ps -L``, /proc/PID/task/TID/comm).

Python before 3.14 leaves every thread named after the program, so which stage spends a Pi's CPU could
not be told from outside the process; Linux lets a process rename its threads through /proc.
"""

from __future__ import annotations

import threading
from pathlib import Path

COMM_BYTES = 15  # the kernel keeps this much of a thread's name


def name_threads() -> int:
    """Give every running thread but the main one (whose name is the process's) its Python name; how
    many were named. Nothing where /proc cannot be written (not Linux)."""
    named = 0
    main = threading.main_thread()
    for t in threading.enumerate():
        if t is main or t.native_id is None:
            continue
        try:
            Path(f"/proc/self/task/{t.native_id}/comm").write_bytes(t.name.encode()[:COMM_BYTES])
        except OSError:
            continue
        named += 1
    return named
