"""Reading track metadata with mutagen: title, artist, album, duration, genre, BPM and mood.

Mood lives in different places per format: ID3v2.4 ``TMOO``, Vorbis comments (FLAC/Ogg/Opus)
``MOOD``, MP4 ``----:com.apple.iTunes:MOOD``. mutagen's "easy" interface normalises the common
fields; mood and BPM are read from the raw frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TagError(Exception):
    """The file is not a readable audio file."""


@dataclass(frozen=True)
class TrackTags:
    title: str
    artist: str
    album: str
    genre: str
    duration_s: float
    bpm: float | None
    mood: str


def first_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    # one value of a multi-valued frame: ID3v2.4 separates values with NUL
    return str(value).split("\x00")[0].strip()


def _raw_mood_bpm(audio: Any) -> tuple[str, str]:
    tags = getattr(audio, "tags", None)
    if tags is None:
        return "", ""
    mood = bpm = ""
    try:
        keys = list(tags.keys())
    except Exception:  # some tag containers are not mappings
        return "", ""
    for key in keys:
        k = str(key)
        upper = k.upper()
        if upper.startswith("TMOO") or upper == "MOOD" or upper.endswith(":MOOD"):
            frame = tags[key]
            mood = first_value(getattr(frame, "text", frame))
        elif upper.startswith("TBPM") or upper in ("BPM", "TMPO") or upper.endswith(":BPM"):
            frame = tags[key]
            bpm = first_value(getattr(frame, "text", frame))
    return mood, bpm


def read_tags(path: Path) -> TrackTags:
    """Tags of one file; raises TagError for a file mutagen cannot parse (corrupt, not audio)."""
    import mutagen

    try:
        audio = mutagen.File(str(path))
        easy = mutagen.File(str(path), easy=True)
    except Exception as e:  # mutagen raises many kinds of errors on corrupt files
        raise TagError(f"{type(e).__name__}: {e}") from None
    if audio is None or easy is None:
        raise TagError("not a recognised audio file")
    info = getattr(audio, "info", None)
    duration = float(getattr(info, "length", 0.0) or 0.0)
    if duration <= 0:
        raise TagError("no audio stream (duration 0)")
    mood, bpm_text = _raw_mood_bpm(audio)
    try:
        bpm = float(bpm_text) if bpm_text else None
    except ValueError:
        bpm = None
    get = easy.get if easy.tags is not None else (lambda k, d=None: d)
    return TrackTags(
        title=first_value(get("title")) or path.stem,
        artist=first_value(get("artist")),
        album=first_value(get("album")),
        genre=first_value(get("genre")),
        duration_s=duration,
        bpm=bpm if bpm and 20 <= bpm <= 300 else None,
        mood=mood,
    )
