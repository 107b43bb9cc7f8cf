"""Small JSON files in the state dir, written atomically: a power cut mid-write leaves the old file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (raises OSError)."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of ``path``, None if it does not exist: tells whether someone else changed it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns
