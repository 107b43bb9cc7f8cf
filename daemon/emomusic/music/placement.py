"""Where an untagged song sits on the valence/arousal plane: the learned placement model.

``models/music_placement.json`` (``scripts/train_music.py``, fitted on annotated 4Q songs and chosen
by cross-validation grouped by artist) holds two logistic regressions on the standardised features
of ``music.analysis`` (clipped to ±``Z_CLIP``): P(valence > 0) and P(arousal > 0). A coordinate is
``2p - 1``, so a song the model is unsure about sits near the axis instead of being pushed to a
corner. A dot product: no runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from emomusic.music.analysis import analyze_file, feature_names

Z_CLIP = 3.0  # standardised features are clipped to ±3: a recording unlike any training song (a
# synthesizer's pure tones, a field recording) must not throw a song to a corner by one feature
MODEL_PATH = Path(__file__).resolve().parents[3] / "models" / "music_placement.json"


class PlacementModelError(RuntimeError):
    """The placement model file is missing or does not fit the analysis code."""


@dataclass(frozen=True)
class PlacementModel:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (2, n): valence, arousal
    bias: np.ndarray  # (2,)

    def place(self, vec: np.ndarray) -> tuple[float, float]:
        """(valence, arousal) in [-1, 1] for one feature vector."""
        z = np.clip((np.asarray(vec, np.float64) - self.mean) / self.scale, -Z_CLIP, Z_CLIP)
        logits = self.weights @ z + self.bias
        p = 1 / (1 + np.exp(-np.clip(logits, -30, 30)))
        v, a = 2 * p - 1
        return round(float(v), 4), round(float(a), 4)


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> PlacementModel:
    try:
        meta = json.loads(path.read_text())
    except OSError as e:
        raise PlacementModelError(f"{path}: {e.strerror}; rebuild it with python scripts/train_music.py") from None
    except ValueError as e:
        raise PlacementModelError(f"{path}: not JSON ({e})") from None
    if meta.get("features") != feature_names():
        raise PlacementModelError(f"{path}: its features do not match this emomusic's analysis; "
                                  "rebuild it with python scripts/train_music.py")
    return PlacementModel(np.array(meta["mean"]), np.array(meta["scale"]),
                          np.array([meta["valence"]["weights"], meta["arousal"]["weights"]]),
                          np.array([meta["valence"]["bias"], meta["arousal"]["bias"]]))


def place_file(path: Path, model_path: Path = MODEL_PATH) -> tuple[tuple[float, float], dict[str, float]]:
    """((valence, arousal), a few readable features) of an audio file; raises AnalysisError."""
    vec = analyze_file(path)
    named = dict(zip(feature_names(), vec.tolist(), strict=True))
    shown = {k: round(named[k], 3) for k in ("bpm", "rms_db", "centroid_khz", "mode_strength", "onset_rate")}
    return load_model(model_path).place(vec), shown
