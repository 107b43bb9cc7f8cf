"""Mood words (ID3 TMOO, Vorbis MOOD, AllMusic-style mood lists) -> valence/arousal.

Placements follow Russell's circumplex as used for music in Warriner et al.'s affective norms and the
MIREX mood clusters; each is (valence, arousal) in [-1, 1]. A track with several mood words sits
at their mean. Words are matched case-insensitively, with "/" and "-" treated as separators.
"""

from __future__ import annotations

import re

MOOD_VA: dict[str, tuple[float, float]] = {
    # high arousal, positive
    "happy": (0.8, 0.5), "joyful": (0.85, 0.55), "joyous": (0.85, 0.55), "cheerful": (0.8, 0.45),
    "euphoric": (0.85, 0.8), "energetic": (0.5, 0.8), "exciting": (0.6, 0.75), "excited": (0.6, 0.75),
    "exuberant": (0.75, 0.75), "party": (0.7, 0.75), "fun": (0.7, 0.55), "playful": (0.65, 0.45),
    "upbeat": (0.65, 0.6), "triumphant": (0.7, 0.65), "rousing": (0.55, 0.7), "confident": (0.55, 0.45),
    "lively": (0.6, 0.65), "uplifting": (0.7, 0.5), "bright": (0.6, 0.4), "sunny": (0.7, 0.35),
    "whimsical": (0.5, 0.3), "boisterous": (0.45, 0.75), "fiery": (0.2, 0.85), "passionate": (0.4, 0.6),
    # low arousal, positive
    "calm": (0.5, -0.6), "relaxed": (0.55, -0.55), "relaxing": (0.55, -0.55), "peaceful": (0.6, -0.65),
    "serene": (0.6, -0.6), "soothing": (0.55, -0.6), "tender": (0.5, -0.35), "romantic": (0.6, -0.1),
    "warm": (0.55, -0.2), "gentle": (0.45, -0.5), "dreamy": (0.35, -0.45), "mellow": (0.35, -0.45),
    "chill": (0.4, -0.5), "laid-back": (0.4, -0.45), "laidback": (0.4, -0.45), "ethereal": (0.3, -0.4),
    "comforting": (0.55, -0.4), "sweet": (0.6, -0.15), "hopeful": (0.55, 0.1), "sentimental": (0.2, -0.3),
    "reflective": (0.1, -0.4), "meditative": (0.3, -0.7), "quiet": (0.2, -0.6), "soft": (0.3, -0.5),
    # low arousal, negative
    "sad": (-0.7, -0.5), "melancholic": (-0.55, -0.45), "melancholy": (-0.55, -0.45), "gloomy": (-0.6, -0.4),
    "somber": (-0.55, -0.45), "sombre": (-0.55, -0.45), "depressing": (-0.75, -0.45), "bleak": (-0.65, -0.4),
    "lonely": (-0.6, -0.45), "bittersweet": (-0.15, -0.25), "wistful": (-0.2, -0.35), "mournful": (-0.7, -0.4),
    "brooding": (-0.4, -0.1), "dark": (-0.5, 0.0), "tired": (-0.3, -0.7), "bored": (-0.3, -0.7),
    "yearning": (-0.2, -0.1), "nostalgic": (0.05, -0.3), "atmospheric": (0.0, -0.35),
    # high arousal, negative
    "angry": (-0.6, 0.8), "aggressive": (-0.5, 0.85), "hostile": (-0.7, 0.8), "tense": (-0.45, 0.6),
    "anxious": (-0.55, 0.6), "nervous": (-0.45, 0.55), "fearful": (-0.7, 0.7), "scary": (-0.65, 0.65),
    "menacing": (-0.6, 0.55), "ominous": (-0.5, 0.35), "intense": (-0.1, 0.75), "harsh": (-0.4, 0.65),
    "rebellious": (-0.2, 0.7), "volatile": (-0.4, 0.75), "paranoid": (-0.6, 0.55), "sarcastic": (-0.3, 0.3),
    "defiant": (-0.2, 0.6), "frantic": (-0.35, 0.85), "agitated": (-0.5, 0.7), "wild": (0.1, 0.85),
    # near the centre
    "neutral": (0.0, 0.0), "cool": (0.2, 0.0), "sophisticated": (0.25, -0.1), "elegant": (0.3, -0.2),
    "mysterious": (-0.1, 0.0), "hypnotic": (0.1, -0.1), "earnest": (0.15, 0.05), "detached": (-0.15, -0.3),
}

_SPLIT = re.compile(r"[;,/|\n]+")


def mood_words(text: str) -> list[str]:
    return [w.strip().lower() for w in _SPLIT.split(text) if w.strip()]


def mood_to_va(text: str) -> tuple[float, float] | None:
    """Mean placement of the known mood words in ``text``; None if none is known."""
    known = []
    for w in mood_words(text):
        key = w.replace(" ", "-")
        va = MOOD_VA.get(key) or MOOD_VA.get(key.replace("-", "")) or MOOD_VA.get(w.split()[0])
        if va:
            known.append(va)
    if not known:
        return None
    return (sum(v for v, _ in known) / len(known), sum(a for _, a in known) / len(known))
