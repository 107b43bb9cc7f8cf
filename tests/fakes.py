"""A test-only analyzer: answers with a fixed emotion for every item (the real ones come with the
face and voice pipelines). Also a runner that registers it and calls the real CLI, so end-to-end
tests run the daemon as a subprocess exactly as systemd would."""

from __future__ import annotations

import sys
from typing import Any

from emomusic.labels import FACE_LABELS, VOICE_LABELS
from emomusic.messages import Observation


class ConstantAnalyzer:
    def __init__(self, modality: str, label: str, confidence: float = 0.9) -> None:
        self.modality = modality
        labels = FACE_LABELS if modality == "face" else VOICE_LABELS
        self.probabilities = {name: (0.72 if name == label else 0.04) for name in labels}
        self.confidence = confidence
        self.items = 0

    def process(self, item: Any) -> Observation:
        self.items += 1
        return Observation(self.modality, item.t, dict(self.probabilities), self.confidence)


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
