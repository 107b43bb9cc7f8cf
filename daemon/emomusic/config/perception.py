"""Settings of perception: which models, the face and the voice paths."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from emomusic.config.base import Section


class ModelsConfig(Section):
    dir: str = Field("", description="Where the model files are; empty = the models/ folder beside the package "
                     "(a checkout), else /opt/emomusic/models.")
    backend: Literal["onnxruntime", "tflite"] = "onnxruntime"
    precision: Literal["int8", "fp32"] = Field("int8", description="Which classifier files to load.")
    threads: int = Field(1, ge=1, le=8, description="Threads per model.")

    @property
    def path(self) -> Path:
        if self.dir:
            return Path(self.dir).expanduser()
        here = Path(__file__).resolve().parents[3] / "models"
        return here if here.is_dir() else Path("/opt/emomusic/models")


class FaceConfig(Section):
    detector: Literal["both", "full", "short"] = Field(
        "both", description="BlazeFace full range (room distance), short range (within ~2 m, cheaper), or both: "
        "full range first, short range where it finds nothing (near faces the full range misses)."
    )
    score_threshold: float = Field(0.6, gt=0, lt=1, description="Minimum detector score.")
    min_face_px: int = Field(32, ge=8, le=2000, description="Smaller faces are ignored.")
    window_s: float = Field(2.0, gt=0, le=30, description="Sliding window over which a face's expression is pooled.")
    detect_every: int = Field(
        5, ge=1, le=30,
        description="Run the detector on every n-th analysed frame (sooner when a face can no longer be followed); "
        "in between, faces are followed by template matching and classified on every frame.",
    )
    faces: Literal["largest", "all"] = Field("largest", description="Report the largest face, or average all.")
    tile_every: int = Field(
        5, ge=0, le=60,
        description="With detector \"both\": after this many detections in a row found nothing, look for small faces "
        "in the frame's four quarters, enlarged (four full-range runs; 0 = never).",
    )


class VoiceConfig(Section):
    vad_aggressiveness: int = Field(2, ge=0, le=3, description="WebRTC VAD mode: 0 lenient ... 3 strict.")
    window_s: float = Field(2.0, ge=1.0, le=4.0, description="Analysis window (the model was trained on 2 s).")
    hop_s: float = Field(1.0, gt=0, le=4.0)
    min_speech_s: float = Field(0.8, gt=0, le=4.0, description="Shorter utterances are ignored.")
    music_margin_db: float = Field(
        10.0, ge=0, le=40, description="While music plays, voice must be this much louder than the music."
    )
    adapt: bool = Field(True, description="Learn each voice's baseline (statistics only, in the state dir).")
    personalise: bool = Field(True, description="Learn from each 'I feel …' what the voice that spoke just before "
                              "sounds like in that emotion (needs adapt; kept in the state dir).")

    @model_validator(mode="after")
    def _lengths(self) -> VoiceConfig:
        if self.min_speech_s > self.window_s or self.hop_s > self.window_s:
            raise ValueError("min_speech_s and hop_s must not exceed window_s")
        return self
