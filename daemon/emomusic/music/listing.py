"""Which files the configured library names: audio files under the folders, entries of the playlists."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger("emomusic.library")

AUDIO_EXTENSIONS = {".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".m4a", ".mp4", ".aac", ".aif", ".aiff"}


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
