"""Measure the self-hearing guard: music alone at the microphone must give (almost) no voice observations.

    python scripts/measure_self_hearing.py [--seconds 40]

Plays every piece of the generated demo library into the voice analyzer, as if the microphone heard
the daemon's own speaker, once with the guard told that music is playing and once without it, and
prints one JSON line: observations per minute of music in each case.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.audio import PlaybackGuard, read_audio_file  # noqa: E402
from emomusic.config import parse_config  # noqa: E402
from emomusic.messages import AudioChunk  # noqa: E402
from emomusic.music.demo import make_demo_library  # noqa: E402
from emomusic.voice.analyzer import VoiceAnalyzer  # noqa: E402


def count(audio: np.ndarray, guarded: bool) -> int:
    cfg = parse_config({}, env={})
    guard = PlaybackGuard(cfg.voice.music_margin_db)
    guard.set_playback(guarded, 0.6)
    analyzer = VoiceAnalyzer(cfg.voice, cfg.models, cfg.state_dir, guard=guard)
    n = 0
    for i in range(0, audio.size, 4800):
        n += analyzer.process(AudioChunk(i / 16000, audio[i : i + 4800])) is not None
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_demo_library(Path(tmp), seconds=args.seconds)
        minutes = 0.0
        guarded = unguarded = 0
        for f in files:
            audio = read_audio_file(f)
            minutes += audio.size / 16000 / 60
            guarded += count(audio, True)
            unguarded += count(audio, False)
    print(json.dumps({"music_minutes": round(minutes, 2), "tracks": len(files),
                      "voice_observations_guarded": guarded, "voice_observations_unguarded": unguarded,
                      "per_minute_guarded": round(guarded / minutes, 2),
                      "per_minute_unguarded": round(unguarded / minutes, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
