"""One photo and/or one voice clip -> the emotion of each, the fused one, and songs for it.

What ``emomusic analyze`` prints and what the web page's analyze tab shows. The photo and the clip
take the daemon's own face and voice paths (the detector, alignment and classifier; VAD windows,
the encoder and head) and its fusion, then the music policy picks tracks from the configured library.
Uploads are decoded in memory and never stored. A clip is read as a new voice (no adaptation, and
nothing is learned from it): it may be anyone's.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from emomusic.config import Config
from emomusic.fusion.fuser import Fusion
from emomusic.messages import Observation
from emomusic.music.library import Track
from emomusic.music.policy import distance, plan

NO_FACE = ("no face found in the image (a face should be turned to the camera and at least 32 px wide; "
           "a tight crop of one face, up to 256 px, is read as a face)")
NO_SPEECH = "no speech found in the clip (at least 0.8 s of voice, clearly above the noise)"


class AnalyzeError(ValueError):
    """An input that cannot be analysed; the message names the field and what was expected."""


def decode_image(data: bytes) -> np.ndarray:
    import cv2

    if not data:
        raise AnalyzeError("image: the file is empty (expected JPEG, PNG, BMP or WebP)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise AnalyzeError("image: not a picture that can be read (expected JPEG, PNG, BMP or WebP)")
    return image


_INTERNAL = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>:?\s*")  # "<_io.BytesIO object at 0x7f…>": ours, not the user's


def decode_audio(data: bytes) -> np.ndarray:
    import soundfile as sf

    from emomusic.audio import to_mono_16k

    if not data:
        raise AnalyzeError("audio: the file is empty (expected WAV, FLAC or OGG)")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        why = _INTERNAL.sub("", str(e).splitlines()[0]).replace("Error opening", "").strip(" :")
        raise AnalyzeError("audio: not a recording that can be read (expected WAV, FLAC or OGG)"
                           + (f": {why[:120]}" if why else "")) from None
    if len(samples) == 0:
        raise AnalyzeError("audio: the recording is empty")
    return to_mono_16k(samples, rate)


def modality_json(obs: Observation | None, missing: str) -> dict[str, Any]:
    if obs is None:
        return {"emotion": None, "error": missing}
    top = obs.top()
    return {"emotion": top, "confidence": round(obs.confidence, 3),
            "probabilities": {k: round(v, 4) for k, v in sorted(obs.probabilities.items(), key=lambda kv: -kv[1])},
            **{k: v for k, v in obs.extras.items() if k in ("faces", "speech_s", "snr_db", "read_as")}}


def recommend(cfg: Config, mode: str, position: tuple[float, float], tracks: Sequence[Track], n: int,
              fixed: str = "") -> dict[str, Any]:
    """Tracks for the listener at ``position``: the music policy's plan (placements only), with why."""
    pc = cfg.player
    fixed_va = cfg.fusion.circumplex.get(fixed or pc.fixed_mood, (0.0, 0.0))
    p = plan(mode, position, tracks, set(), n=n, target=pc.regulate_target, step=pc.regulate_step,
             fixed=(fixed_va[0], fixed_va[1]))
    out = []
    for k, (t, w) in enumerate(zip(p.tracks, p.waypoints, strict=False)):
        d = distance((t.valence, t.arousal), w)
        if mode == "regulate":
            why = (f"step {k + 1} toward the target: the waypoint v={w[0]:+.2f} a={w[1]:+.2f}, "
                   f"placed {d:.2f} from it")
        else:
            why = f"placed {d:.2f} from v={w[0]:+.2f} a={w[1]:+.2f}"
        out.append({"title": t.title, "artist": t.artist, "valence": round(t.valence, 3),
                    "arousal": round(t.arousal, 3), "placement": t.source, "why": why})
    return {"reason": p.reason, "tracks": out}


class Snapshot:
    """Holds the loaded models between calls (the web page's uploads); thread-safe."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._face: Any = None
        self._voice: Any = None

    def _analyzers(self) -> tuple[Any, Any]:
        from emomusic.face.analyzer import FaceAnalyzer
        from emomusic.voice.analyzer import VoiceClassifier

        if self._face is None:
            self._face = FaceAnalyzer(self.cfg.face, self.cfg.models)
            m = self.cfg.models
            self._voice = VoiceClassifier(m.path, m.threads, adaptation=None)
        return self._face, self._voice

    def analyze(self, image: bytes | None, audio: bytes | None, *, mode: str = "match", n: int = 5,
                tracks: Sequence[Track] = ()) -> dict[str, Any]:
        """The result as JSON-ready data (raises AnalyzeError for unusable input)."""
        from emomusic.voice.analyzer import VoiceAnalyzer

        if image is None and audio is None:
            raise AnalyzeError("nothing to analyse: give an image, an audio clip or both")
        if mode not in ("match", "regulate"):
            raise AnalyzeError(f"mode: expected match or regulate, got {mode!r}")
        picture = decode_image(image) if image is not None else None
        samples = decode_audio(audio) if audio is not None else None
        with self._lock:
            face, voice = self._analyzers()
            face_obs = face.photo(picture) if picture is not None else None
            voice_obs = (VoiceAnalyzer(self.cfg.voice, self.cfg.models, classifier=voice).clip(samples)
                         if samples is not None else None)
        fusion = Fusion(self.cfg.fusion)
        for obs in (face_obs, voice_obs):
            if obs is not None:
                fusion.add(Observation(obs.modality, 0.0, obs.probabilities, obs.confidence))
        state = fusion.update(0.0)
        result: dict[str, Any] = {"emotion": state.emotion, "confidence": round(state.confidence, 3),
                                  "valence": None, "arousal": None, "modalities": {}}
        if image is not None:
            result["modalities"]["face"] = modality_json(face_obs, NO_FACE)
        if audio is not None:
            result["modalities"]["voice"] = modality_json(voice_obs, NO_SPEECH)
        if state.emotion == "unknown":
            result["recommendations"] = []
            result["reason"] = "no face and no speech found: nothing to recommend for"
            return result
        result["valence"], result["arousal"] = round(state.valence, 3), round(state.arousal, 3)
        rec = recommend(self.cfg, mode, (state.valence, state.arousal), tracks, n)
        result["mode"], result["reason"], result["recommendations"] = mode, rec["reason"], rec["tracks"]
        if not tracks:
            result["reason"] = "the music library is empty: nothing to recommend"
        return result
