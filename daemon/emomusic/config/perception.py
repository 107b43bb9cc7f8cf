"""Settings of perception: which models, the face and the voice paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from emomusic.config.base import Section


class ModelsConfig(Section, frozen=True):
    dir: Annotated[
        str,
        Meta(
            description="Where the model files are; empty = the models/ folder beside the package "
            "(a checkout), else /opt/emomusic/models."
        ),
    ] = ""
    backend: Literal["onnxruntime", "tflite"] = "onnxruntime"
    precision: Annotated[Literal["int8", "fp32"], Meta(description="Which classifier files to load.")] = "int8"
    threads: Annotated[int, Meta(ge=1, le=8, description="Threads per model.")] = 1

    @property
    def path(self) -> Path:
        if self.dir:
            return Path(self.dir).expanduser()
        here = Path(__file__).resolve().parents[3] / "models"
        return here if here.is_dir() else Path("/opt/emomusic/models")


class FaceConfig(Section, frozen=True):
    detector: Annotated[
        Literal["both", "full", "short"],
        Meta(
            description="BlazeFace full range (room distance), short range (within ~2 m, cheaper), or both: "
            "full range first, short range where it finds nothing (near faces the full range misses)."
        ),
    ] = "both"
    classifier: Annotated[
        Literal["auto", "large", "small"],
        Meta(
            description="The expression CNN: large (96 M multiply-adds a view), small (54 M, about 2 points less "
            "accurate on held-out faces), or auto: large where the CPU has an int8 dot product (x86 VNNI, a Pi 5), "
            "small where it has none (a Pi 4), on which a large view costs four times as much."
        ),
    ] = "auto"
    score_threshold: Annotated[float, Meta(gt=0, lt=1, description="Minimum detector score.")] = 0.6
    min_face_px: Annotated[int, Meta(ge=8, le=2000, description="Smaller faces are ignored.")] = 32
    window_s: Annotated[
        float, Meta(gt=0, le=30, description="Sliding window over which a face's expression is pooled.")
    ] = 2.0
    detect_every: Annotated[
        int,
        Meta(
            ge=1,
            le=30,
            description="Run the detector on every n-th analysed frame (sooner when a face can no longer be followed); "
            "in between, faces are followed by template matching and classified on every frame.",
        ),
    ] = 3
    steady_every: Annotated[
        int,
        Meta(
            ge=1,
            le=5,
            description="While one followed face has read the same clear expression for its last 4 views, classify "
            "it on every n-th analysed frame only (1 = every frame); a new or re-detected face is classified at once.",
        ),
    ] = 2
    faces: Annotated[Literal["largest", "all"], Meta(description="Report the largest face, or average all.")] = (
        "largest"
    )
    tile_every: Annotated[
        int,
        Meta(
            ge=0,
            le=60,
            description='With detector "both": after this many detections in a row found nothing, look for small faces '
            "in the frame's four quarters, enlarged (four full-range runs; 0 = never).",
        ),
    ] = 5
    recall: Annotated[
        int,
        Meta(
            ge=0,
            le=30,
            description='With detector "both": for this many detections after a face was found, where neither range '
            "finds it, look again at the region where it was, enlarged (a turned head; 0 = never).",
        ),
    ] = 3
    scan_every: Annotated[
        int,
        Meta(
            ge=1,
            le=30,
            description='With detector "both": while one face is followed, search the whole frame on every n-th '
            "detection only; in between, the short range looks around that face, enlarged (a quarter of the "
            "cost). Someone coming in is found within n detections (1 = always the whole frame).",
        ),
    ] = 5
    quiet_every: Annotated[
        int,
        Meta(
            ge=1,
            le=30,
            description="In a room where 5 detections in a row found nobody and nothing has moved since, "
            "run only every n-th detection (1 = every one); any movement brings the next one at once.",
        ),
    ] = 5


class VoiceConfig(Section, frozen=True):
    vad_aggressiveness: Annotated[int, Meta(ge=0, le=3, description="WebRTC VAD mode: 0 lenient ... 3 strict.")] = 2
    window_s: Annotated[float, Meta(ge=1.0, le=4.0, description="Analysis window (the model was trained on 2 s).")] = (
        2.0
    )
    hop_s: Annotated[float, Meta(gt=0, le=4.0)] = 1.0
    min_speech_s: Annotated[float, Meta(gt=0, le=4.0, description="Shorter utterances are ignored.")] = 0.8
    first_s: Annotated[float, Meta(ge=0, le=4.0, description=(
        "A provisional first reading after this much of an utterance's speech, replaced by the whole "
        "window's (0 = none)."))] = 1.0
    music_margin_db: Annotated[
        float, Meta(ge=0, le=40, description="While music plays, voice must be this much louder than the music.")
    ] = 10.0
    adapt: Annotated[bool, Meta(description="Learn each voice's baseline (statistics only, in the state dir).")] = True
    personalise: Annotated[
        bool,
        Meta(
            description="Learn from each 'I feel …' what the voice that spoke just before "
            "sounds like in that emotion (needs adapt; kept in the state dir)."
        ),
    ] = True

    def __post_init__(self) -> None:
        if self.min_speech_s > self.window_s or self.hop_s > self.window_s:
            raise ValueError("min_speech_s and hop_s must not exceed window_s")
