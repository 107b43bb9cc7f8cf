"""Test-only stand-ins at the edges: an analyzer that answers with a fixed emotion for every item (the
real ones come with the face and voice pipelines), a player and a library for the music stage's logic.
Also a runner that registers the analyzer and calls the real CLI, so end-to-end tests run the daemon
as a subprocess exactly as systemd would."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from emomusic.labels import FACE_LABELS, VOICE_LABELS
from emomusic.messages import Observation
from emomusic.music.library import Track


class ConstantAnalyzer:
    latency_s = 0.0

    def __init__(self, modality: str, label: str, confidence: float = 0.9) -> None:
        self.modality = modality
        labels = FACE_LABELS if modality == "face" else VOICE_LABELS
        self.probabilities = {name: (0.72 if name == label else 0.04) for name in labels}
        self.confidence = confidence
        self.items = 0

    def process(self, item: Any) -> Observation:
        self.items += 1
        return Observation(self.modality, item.t, dict(self.probabilities), self.confidence)


class FakePlayer:
    online = True
    error = None

    def __init__(self) -> None:
        self.current: Path | None = None
        self.paused = False
        self.volume = 0.6
        self.done = False

    def play(self, path: Path) -> None:
        self.current, self.paused, self.done = path, False, False

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

    def set_next(self, paths: list[str]) -> None:
        pass


class FakeLibrary:
    def __init__(self, tracks: list[Track]) -> None:
        self._tracks = tracks

    def tracks(self, playable_only: bool = True) -> list[Track]:
        return list(self._tracks)

    def track(self, path: str) -> Track | None:
        return next((t for t in self._tracks if t.path == path), None)


def factories(face: str = "happy", voice: str = "happy") -> dict[str, Any]:
    return {
        "face": lambda cfg, playback: ConstantAnalyzer("face", face),
        "voice": lambda cfg, playback: ConstantAnalyzer("voice", voice),
    }


if __name__ == "__main__":
    from emomusic.cli.main import main
    from emomusic.service.daemon import ANALYZERS

    ANALYZERS.update(factories())
    raise SystemExit(main(sys.argv[1:]))


def crashing_analyse(path: str) -> object:
    """A library-scan analyser whose worker process dies on files named crash*, as a decoder that
    segfaults on a broken file would (used in worker processes: it must be importable)."""
    import os
    from pathlib import Path

    from emomusic.music.scan import analyse

    if Path(path).name.startswith("crash"):
        os._exit(139)
    return analyse(path)
