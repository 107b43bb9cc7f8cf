"""Where an untagged song sits on the valence/arousal plane: the learned placement model.

``models/music_placement.json`` (``scripts/train_music.py``: fitted on annotated 4Q songs and chosen
by cross-validation grouped by artist) holds a multinomial logistic regression over Russell's four
quadrants on a standardised vector (clipped to ±``Z_CLIP``): what musicnn's tagger hears in the
excerpt (its mean embedding and tag probabilities, ``music.embedding``) and the numpy audio features
of ``music.analysis``. P(valence > 0) and P(arousal > 0) are sums of two quadrants; a coordinate is
``2p - 1``, so a song the model is unsure about sits near the axis instead of being pushed to a corner,
and the placement's confidence is the probability of the quadrant it is placed in. Without the
tagger's model file the placement on the audio features alone (``music_placement_audio.json``) takes
over, and says so once. A dot product and a softmax: no runtime of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emomusic.music.analysis import AnalysisError, feature_names, features, load_excerpt

log = logging.getLogger("emomusic.library")

Z_CLIP = 3.0  # standardised features are clipped to ±3: a recording unlike any training song (a
# synthesizer's pure tones, a field recording) must not throw a song to a corner by one feature
MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
MODEL_FILE = "music_placement.json"  # tagger + audio features
FALLBACK_FILE = "music_placement_audio.json"  # audio features alone
TOP_TAGS = 5


QUADRANTS = ("v+a+", "v-a+", "v-a-", "v+a-")  # the model's classes, in this order


def signs(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(valence > 0), P(arousal > 0) from the quadrants' probabilities (last axis in ``QUADRANTS`` order)."""
    return q[..., 0] + q[..., 3], q[..., 0] + q[..., 1]


class PlacementModelError(RuntimeError):
    """The placement model file is missing or does not fit the analysis code."""


@dataclass(frozen=True)
class PlacementModel:
    id: str  # "musicnn:<digest>" or "audio:<digest>": which model placed a track (stale ones are redone)
    uses_tagger: bool
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (4, n): the quadrants in QUADRANTS order
    bias: np.ndarray  # (4,)

    def quadrants(self, vec: np.ndarray) -> np.ndarray:
        """The four quadrants' probabilities (``QUADRANTS`` order) for one input vector."""
        z = np.clip((np.asarray(vec, np.float64) - self.mean) / self.scale, -Z_CLIP, Z_CLIP)
        logits = self.weights @ z + self.bias
        e = np.exp(logits - logits.max())
        return np.asarray(e / e.sum())

    def probabilities(self, vec: np.ndarray) -> np.ndarray:
        """P(valence > 0), P(arousal > 0) for one input vector."""
        return np.array(signs(self.quadrants(vec)))

    def confidence(self, vec: np.ndarray) -> float:
        """The probability of the quadrant the song is placed in."""
        q = self.quadrants(vec)
        pv, pa = signs(q)
        return float(q[QUADRANTS.index(f"v{'+' if pv > 0.5 else '-'}a{'+' if pa > 0.5 else '-'}")])

    def place(self, vec: np.ndarray) -> tuple[float, float]:
        """(valence, arousal) in [-1, 1] for one input vector."""
        v, a = 2 * self.probabilities(vec) - 1
        return round(float(v), 4), round(float(a), 4)


def _read(path: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
        return meta
    except OSError as e:
        raise PlacementModelError(f"{path}: {e.strerror}; rebuild it with python scripts/train_music.py") from None
    except ValueError as e:
        raise PlacementModelError(f"{path}: not JSON ({e})") from None


def _model(path: Path, tagger_width: int) -> PlacementModel:
    meta = _read(path)
    uses_tagger = meta.get("tagger", 0) > 0
    if meta.get("features") != feature_names() or (uses_tagger and meta["tagger"] != tagger_width):
        raise PlacementModelError(f"{path}: its inputs do not match this emomusic's analysis; "
                                  "rebuild it with python scripts/train_music.py")
    quadrants = meta.get("quadrants")
    if not isinstance(quadrants, dict) or quadrants.get("order") != list(QUADRANTS):
        raise PlacementModelError(f"{path}: expected the four quadrants' model (\"quadrants\"), an older file's "
                                  "two sign models are no longer read; rebuild it with python scripts/train_music.py")
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
    return PlacementModel(f"{'musicnn' if uses_tagger else 'audio'}:{digest}", uses_tagger,
                          np.array(meta["mean"]), np.array(meta["scale"]),
                          np.array(quadrants["weights"]), np.array(quadrants["bias"]))


@lru_cache(maxsize=4)
def load_model(models_dir: Path = MODELS_DIR) -> PlacementModel:
    """The musicnn placement when its files are there, else the audio-feature placement."""
    from emomusic.music.embedding import TAGGER_WIDTH, tagger_files

    missing = [f.name for f in (*tagger_files(models_dir), models_dir / MODEL_FILE) if not f.is_file()]
    if not missing:
        return _model(models_dir / MODEL_FILE, TAGGER_WIDTH)
    log.warning("music placement: %s missing in %s; placing songs by the audio features alone (less accurate; "
                "rebuild with python scripts/build_music_model.py)", ", ".join(missing), models_dir)
    return audio_placement(models_dir)


def audio_placement(models_dir: Path = MODELS_DIR) -> PlacementModel:
    """The placement on the audio features alone (the fallback)."""
    return _model(models_dir / FALLBACK_FILE, 0)


def input_vector(y: np.ndarray, model: PlacementModel, models_dir: Path = MODELS_DIR) -> tuple[np.ndarray, Any]:
    """The model's input for 16 kHz audio (one function for training, evaluation and the scan), and
    what the tagger heard (None without it)."""
    audio = features(y)
    if not model.uses_tagger:
        return audio, None
    from emomusic.music.embedding import tagger

    heard = tagger(models_dir).hear(y)
    return np.concatenate([heard.embedding, heard.tags, audio]), heard


def place_file(path: Path, models_dir: Path = MODELS_DIR) -> tuple[tuple[float, float], dict[str, Any]]:
    """((valence, arousal), what is worth keeping: the model, its confidence, the tagger's top tags and a
    few readable features) of an audio file; raises AnalysisError."""
    model = load_model(models_dir)
    try:
        y = load_excerpt(path)
    except Exception as e:  # libsndfile cannot decode it (AAC in MP4, a broken stream)
        raise AnalysisError(f"cannot decode: {e}") from None
    vec, heard = input_vector(y, model, models_dir)
    named = dict(zip(feature_names(), vec[-len(feature_names()):].tolist(), strict=True))
    shown: dict[str, Any] = {k: round(named[k], 3) for k in ("bpm", "rms_db", "centroid_khz", "mode_strength",
                                                            "onset_rate")}
    shown["model"] = model.id
    shown["confidence"] = round(model.confidence(vec), 3)
    if heard is not None:
        from emomusic.music.embedding import tagger

        shown["tags"] = heard.top_tags(tagger(models_dir).labels, TOP_TAGS)
    return model.place(vec), shown
