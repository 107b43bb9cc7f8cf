"""What a model that has heard music makes of a track: musicnn's embeddings and tags of its excerpt.

The tagger (``models/music_tagger_int8.onnx``, built from the ``musicnn`` wheel by
``scripts/build_music_model.py``: its two taggers side by side, one trained on the Million Song
Dataset's tags, one on MagnaTagATune's) reads 3 s log-mel patches and gives two 200-wide embeddings
and 100 tag probabilities (happy, sad, chillout, party, slow, soft, loud …) per patch. A track is the
mean over ``PATCHES`` patches spread evenly over the excerpt the scan decodes
(``music.analysis.load_excerpt``: the middle 20 s, as long as the annotated songs it learned from).
Each patch costs ~40 ms of a core per tagger: three keep a scan at ≥ 5 tracks/s on two cores.

The front end is musicnn's, in numpy: 16 kHz, n_fft 512, hop 256, 96 Slaney mel bands,
``log10(1 + 10^4 · power)`` (the power rounded to float16 first, as musicnn's own extractor does): one
function for training, evaluation and the scan. The model is loaded by the scan's worker processes
only: the playing daemon never holds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from emomusic.audio import RATE, mel_power

N_FFT = 512
HOP = 256
N_MELS = 96
PATCH = 187  # frames in 3 s: musicnn's input length
PATCHES = 3  # patches heard per track, spread over the excerpt
MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
REBUILD = "python scripts/build_music_model.py (see models/README.md)"
TAGGER_WIDTH = 500  # what the placement reads from the tagger: both models' embeddings (2 x 200) and tags (2 x 50)


def tagger_files(models_dir: Path) -> tuple[Path, Path]:
    return models_dir / "music_tagger_int8.onnx", models_dir / "music_tagger.json"


def log_mel(y: np.ndarray) -> np.ndarray:
    """(frames, 96) musicnn's input of float audio at 16 kHz."""
    power = mel_power(y, N_FFT, HOP, N_MELS, RATE).astype(np.float16).astype(np.float32)
    return np.log10(1.0 + 10000.0 * power)


def patches(mel: np.ndarray, n: int | None = None) -> np.ndarray:
    """3 s patches (k, 187, 96): all non-overlapping ones, or ``n`` spread evenly from the first frame
    to the last (fewer if the clip is short); a clip shorter than one patch is padded with silence."""
    if mel.shape[0] < PATCH:
        mel = np.pad(mel, ((0, PATCH - mel.shape[0]), (0, 0)))
    room = mel.shape[0] // PATCH
    if n is None or n >= room:
        return np.ascontiguousarray(mel[: room * PATCH].reshape(room, PATCH, N_MELS), dtype=np.float32)
    starts = np.linspace(0, mel.shape[0] - PATCH, n).round().astype(int)
    return np.ascontiguousarray(np.stack([mel[s : s + PATCH] for s in starts]), dtype=np.float32)


@dataclass(frozen=True)
class Heard:
    """A track as the tagger hears it: the mean embedding and the mean tag probabilities."""

    embedding: np.ndarray  # (400,)
    tags: np.ndarray  # (100,)

    def top_tags(self, labels: list[str], n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` likeliest tags, each name once: both taggers know rock, pop, electronic, dance, metal,
        ambient, guitar and country, and a name heard by both counts with the surer of the two."""
        best: dict[str, float] = {}
        for label, p in zip(labels, self.tags.tolist(), strict=True):
            best[label] = max(best.get(label, 0.0), p)
        return [(label, round(p, 3)) for label, p in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


class MusicTagger:
    """The int8 tagger in onnxruntime (weights dequantized at load: the arithmetic is float32)."""

    def __init__(self, models_dir: Path = MODELS_DIR, threads: int = 1) -> None:
        from emomusic.runtime import Model, ModelError

        onnx_file, meta = tagger_files(models_dir)
        self.model = Model(onnx_file, "onnxruntime", threads, rebuild_hint=REBUILD, weight_only=True,
                           shared_arena=False)  # runs seldom, on patches larger than the stream's
        try:
            self.labels: list[str] = json.loads(meta.read_text())["tags"]
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"model file {meta} cannot be read ({e}); rebuild it with {REBUILD}") from None

    def hear(self, y: np.ndarray) -> Heard:
        """Float audio at 16 kHz (music.analysis has already refused what is too short or silent)."""
        emb, tags = self.model.run(patches(log_mel(y), PATCHES))
        return Heard(emb.mean(axis=0), tags.mean(axis=0))


@lru_cache(maxsize=1)
def tagger(models_dir: Path = MODELS_DIR) -> MusicTagger:
    """One tagger per process (each scan worker loads it once)."""
    return MusicTagger(models_dir)
