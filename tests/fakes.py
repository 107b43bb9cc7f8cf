"""Test-only stand-ins at the edges: an analyzer that answers with a fixed emotion for every item (the
real ones come with the face and voice pipelines), a player and a library for the music stage's logic.
Also a runner that registers the analyzer and calls the real CLI, so end-to-end tests run the daemon
as a subprocess exactly as systemd would."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from emomusic.audio import PlaybackGuard
from emomusic.config import Config
from emomusic.labels import FACE_LABELS, VOICE_LABELS
from emomusic.messages import AudioChunk, Observation, Sensed
from emomusic.music.library import Track
from emomusic.service.workers import AnalyzerFactory


class ConstantAnalyzer:
    latency_s = 0.0

    def __init__(self, modality: str, label: str, confidence: float = 0.9) -> None:
        self.modality = modality
        labels = FACE_LABELS if modality == "face" else VOICE_LABELS
        self.probabilities = {name: (0.72 if name == label else 0.04) for name in labels}
        self.confidence = confidence
        self.items = 0

    def process(self, item: Sensed) -> Observation:
        self.items += 1
        return Observation(self.modality, item.t, dict(self.probabilities), self.confidence)


class FakePlayer:
    """The music.players.base.Player port, as a stand-in that plays nothing."""

    online = True
    error = None
    audible = False

    def __init__(self) -> None:
        self.current: str | None = None
        self.paused = False
        self.volume = 0.6
        self.done = False

    def describe(self) -> str:
        return "a fake player"

    def play(self, key: str) -> None:
        self.current, self.paused, self.done = key, False, False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def stop(self) -> None:
        self.current = None

    def set_volume(self, v: float) -> None:
        self.volume = v

    @property
    def playing(self) -> bool:
        return self.current is not None and not self.paused

    def finished(self) -> bool:
        return self.current is not None and self.done

    def poll(self) -> list[object]:
        return []

    def set_next(self, keys: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


class FakeLibrary:
    def __init__(self, tracks: list[Track]) -> None:
        self._tracks = tracks

    def tracks(self, playable_only: bool = True) -> list[Track]:
        return list(self._tracks)

    def track(self, path: str) -> Track | None:
        return next((t for t in self._tracks if t.path == path), None)


def factories(face: str = "happy", voice: str = "happy") -> dict[str, AnalyzerFactory]:
    return {
        "face": lambda cfg, playback, persist: ConstantAnalyzer("face", face),
        "voice": lambda cfg, playback, persist: ConstantAnalyzer("voice", voice),
    }


class PresentFace(ConstantAnalyzer):
    """A happy face while the file ``flag`` exists, none otherwise: a listener who comes and goes."""

    def __init__(self, flag: Path) -> None:
        super().__init__("face", "happy")
        self.flag = flag

    def process(self, item: Sensed) -> Observation | None:  # type: ignore[override]
        return super().process(item) if self.flag.exists() else None


def happy(cfg: Config, playback: PlaybackGuard, persist: bool) -> ConstantAnalyzer:
    """The face of the CLI under test: always happy, or present only while $EMOMUSIC_TEST_FACE_FILE exists."""
    flag = os.environ.get("EMOMUSIC_TEST_FACE_FILE")
    return PresentFace(Path(flag)) if flag else ConstantAnalyzer("face", "happy")


def happy_voice(cfg: Config, playback: PlaybackGuard, persist: bool) -> ConstantAnalyzer:
    return ConstantAnalyzer("voice", "happy")


if __name__ == "__main__":  # the real CLI, its face and voice read by the constant analyzers (the registry)
    import dataclasses

    from emomusic.cli.main import main
    from emomusic.config.modalities import MODALITIES, register

    register(dataclasses.replace(MODALITIES["face"], analyzer="fakes:happy"))
    register(dataclasses.replace(MODALITIES["voice"], analyzer="fakes:happy_voice"))
    raise SystemExit(main(sys.argv[1:]))


def crashing_analyse(path: str) -> object:
    """A library-scan analyser whose worker process dies on files named crash*, as a decoder that
    segfaults on a broken file would (used in worker processes: it must be importable)."""
    import os

    from emomusic.music.analysing import analyse

    if Path(path).name.startswith("crash"):
        os._exit(139)
    return analyse(path)


class LoudnessAnalyzer:
    """A test-only modality (tests/test_modalities.py): loud audio reads as angry, quiet as calm."""

    modality = "loudness"
    latency_s = 0.0

    def process(self, item: Sensed) -> Observation:
        import numpy as np

        assert isinstance(item, AudioChunk), "the loudness modality reads the microphone"
        level = float(np.sqrt(np.mean(item.samples.astype(np.float64) ** 2))) / 32768
        loud = min(1.0, level * 20)
        return Observation("loudness", item.t, {"angry": 0.1 + 0.8 * loud, "calm": 0.9 - 0.8 * loud}, 0.6)


def loudness(cfg: Config, playback: PlaybackGuard, persist: bool) -> LoudnessAnalyzer:
    return LoudnessAnalyzer()
