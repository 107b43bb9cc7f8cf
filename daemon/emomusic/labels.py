"""Canonical emotion labels and the spellings other corpora and devices use for them.

Everything inside the daemon speaks the canonical names; anything that arrives from outside
(datasets, MQTT payloads, CSVs) goes through :func:`normalize_label` first.
"""

from __future__ import annotations

VOICE_LABELS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
)
FACE_LABELS: tuple[str, ...] = (
    "neutral", "happy", "surprised", "sad", "angry", "disgust", "fearful", "contempt",
)
ALL_LABELS: tuple[str, ...] = VOICE_LABELS + ("contempt",)

_ALIASES: dict[str, str] = {
    "anger": "angry", "mad": "angry",
    "happiness": "happy", "joy": "happy", "happy": "happy",
    "sadness": "sad",
    "fear": "fearful", "afraid": "fearful", "scared": "fearful",
    "surprise": "surprised",
    "disgusted": "disgust",
    "relaxed": "calm", "calmness": "calm",
    "neutrality": "neutral",
}


def normalize_label(name: str) -> str | None:
    """Return the canonical label for ``name`` (case/space-insensitive), or None if unknown."""
    key = name.strip().lower()
    if key in ALL_LABELS:
        return key
    return _ALIASES.get(key)
