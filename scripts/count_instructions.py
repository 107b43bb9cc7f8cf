"""Instructions each stage executes on aarch64 kernels: a Pi 4's relative costs without a Pi.

Run by ``sudo scripts/check-arm64.sh --instructions``, never by hand: there the arm64 root's Python runs
under qemu-user emulating a Cortex-A72 (a Pi 4's core: NEON, no SDOT, so onnxruntime and XNNPACK pick the
kernels a Pi 4 runs) with a small plugin (``scripts/insn_count_plugin.c``) that counts the guest
instructions of each thread. This script brackets each stage with a marker system call
(``getpriority(PRIO_PROCESS, MAGIC + n)``, which fails harmlessly); at each marker the plugin appends the
calling thread's count to the file named by ``EMOMUSIC_INSN_FILE``, which this script reads back.

Timings under emulation say nothing of a Pi (qemu computes floating point in software: an fp32 stage runs
20-60x slower against an int8 one than on a real CPU), but the number of instructions a stage executes is
the real kernels' own and does not depend on how fast the emulator runs them: it ranks stages and
precisions, and with a core's instructions per cycle it estimates time (docs/PERFORMANCE.md).

Prints one JSON object: instructions per run of each stage (the minimum over ``--repeat`` runs after a
warm-up run), and those of the whole pipeline per second of stream: ``emomusic replay --fast`` of the
sample story (the face, the voice and fusion, all their threads, on the daemon's defaults; its first minute
and the whole story, the difference, so that start-up and model loading drop out); and those of the pygame
player a second of music (``player``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import MODELS, PLAYER_COUNT, demo_track, frame_decoder, sample_frame, voiced_window  # noqa: E402

MAGIC = 0x4000000  # the plugin's marker range: getpriority(PRIO_PROCESS, MAGIC + n)


class Counter:
    """Instruction counts as the plugin wrote them at a marker: the calling thread's, and all threads'."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0

    def marker(self) -> tuple[int, int]:
        self.n += 1
        try:
            os.getpriority(os.PRIO_PROCESS, MAGIC + self.n)  # the marker; no such process
        except OSError:
            pass
        for line in reversed(self.path.read_text().splitlines()):
            marker, thread, everyone = line.split()
            if int(marker) == self.n:
                return int(thread), int(everyone)
        raise RuntimeError(f"{self.path}: no count for marker {self.n}: is the plugin loaded?")

    def read(self) -> int:
        return self.marker()[0]


def instructions(counter: Counter, fn: Callable[[], Any], repeat: int) -> int:
    """The fewest instructions one call of ``fn`` took over ``repeat`` calls, after one to warm up."""
    fn()
    best = None
    for _ in range(repeat):
        before = counter.read()
        fn()
        n = counter.read() - before
        best = n if best is None else min(best, n)
    assert best is not None
    return best


def stages(counter: Counter, repeat: int, heavy_repeat: int, backends: list[str]) -> dict[str, int]:
    from emomusic.face.analyzer import ExpressionClassifier
    from emomusic.face.detector import FaceDetector
    from emomusic.face.preprocess import align_face
    from emomusic.face.tracking import FaceFollower
    from emomusic.voice.analyzer import VoiceClassifier
    from emomusic.voice.encoder import mel_frames

    out: dict[str, int] = {}
    out["capture decode 640x480 MJPG frame"] = instructions(counter, frame_decoder(2), repeat)
    frame = sample_frame()
    found = FaceDetector("full").detect(frame)[0]
    crop = align_face(frame, found.box, found.keypoints)
    out["face align"] = instructions(counter, lambda: align_face(frame, found.box, found.keypoints), repeat)
    follower = FaceFollower(frame, found)
    out["face following"] = instructions(counter, lambda: follower.follow(frame), repeat)
    for backend in backends:
        for model in ("full", "short"):
            det = FaceDetector(model, backend)  # type: ignore[arg-type]
            out[f"face detect, {model} range, {backend}"] = instructions(
                counter, lambda d=det: d.detect(frame), heavy_repeat)
        for size in ("large", "small"):
            for precision in ("int8", "fp32"):
                clf = ExpressionClassifier(MODELS, backend, precision, size=size)  # type: ignore[arg-type]
                out[f"face classify one view, {size}, {precision}, {backend}"] = instructions(
                    counter, lambda c=clf: c.classify([crop], "plain"), heavy_repeat if precision == "fp32" else repeat)
    window = voiced_window()
    window16 = (window * 32767).astype(np.int16)
    out["voice mel frames per 2 s window"] = instructions(counter, lambda: mel_frames(window), repeat)
    voice = VoiceClassifier(MODELS, adaptation=True)
    out["voice encoder + adaptation + head per 2 s window"] = instructions(
        counter, lambda: voice.classify([window16]), heavy_repeat)
    import webrtcvad

    vad = webrtcvad.Vad(2)
    frame30 = window16[:480].tobytes()
    out["VAD per 30 ms frame"] = instructions(counter, lambda: vad.is_speech(frame30, 16000), repeat)
    return out


def cut(video: Path, audio: Path, seconds: float, folder: Path) -> tuple[Path, Path]:
    """The first ``seconds`` of the sample story, as files of the same kinds."""
    import cv2
    import soundfile as sf

    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(folder / "cut.avi"), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    for _ in range(round(seconds * fps)):
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    y, rate = sf.read(str(audio), dtype="int16")
    sf.write(str(folder / "cut.wav"), y[: round(seconds * rate)], rate)
    return folder / "cut.avi", folder / "cut.wav"


def pipeline(counter: Counter, samples: Path) -> dict[str, float]:
    """All threads' instructions per second of stream of ``emomusic replay --fast`` on the sample story."""
    import soundfile as sf

    from emomusic.cli.replay import run_replay
    from emomusic.config import load_config
    from emomusic.sources.samples import ensure_samples

    video, audio = ensure_samples(samples)
    tmp = Path(tempfile.mkdtemp())
    story_s = sf.info(str(audio)).duration
    first = cut(video, audio, story_s / 2, tmp)
    cfg = load_config(ROOT / "config.toml", env={})
    counts = []
    for v, a in (first, (video, audio)):
        before = counter.marker()[1]
        run_replay(cfg, str(v), str(a), tmp / "story.jsonl", fast=True)
        counts.append(counter.marker()[1] - before)
    return {"replay, all threads, per second of stream": (counts[1] - counts[0]) / (story_s - story_s / 2),
            "replay of the whole story, all threads": counts[1], "story seconds": story_s}


def player(counter: Counter, seconds: float = 10.0) -> dict[str, float]:
    """All threads' instructions a second of music while the daemon's pygame player plays a demo track (Ogg): SDL's
    mixer thread decodes and mixes it into the dummy driver, which takes the audio at a sound card's pace. The
    seconds are the player's own count of what it played, so a slow emulator does not change the figure."""
    os.environ["SDL_AUDIODRIVER"] = "dummy"
    import time

    from emomusic.music.players.pygame_player import PygamePlayer, import_pygame

    track = demo_track(Path(tempfile.mkdtemp()) / "track.ogg", seconds + 10.0)
    music = PygamePlayer(fade_ms=0)
    music.play(str(track))
    position = import_pygame().mixer.music.get_pos  # ms the player has played of the track
    time.sleep(2.0)  # past the first buffers
    played, before = position(), counter.marker()[1]
    time.sleep(seconds)
    n, played = counter.marker()[1] - before, position() - played
    music.close()
    if played <= 0:
        raise RuntimeError(f"the player stopped before {seconds:.0f} s of {track.name} were counted")
    return {PLAYER_COUNT: n / (played / 1000)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each light stage after its warm-up")
    ap.add_argument("--heavy-repeat", type=int, default=1,
                    help="runs of each floating-point model (seconds each under emulation) after its warm-up")
    ap.add_argument("--backends", default="onnxruntime,tflite")
    ap.add_argument("--samples", type=Path, default=Path("/var/tmp/emomusic-state/samples"),
                    help="the sample story's folder (made there if missing)")
    args = ap.parse_args()
    path = Path(os.environ.get("EMOMUSIC_INSN_FILE", ""))
    if not path.name:
        print("count_instructions.py: EMOMUSIC_INSN_FILE is not set: run it through "
              "sudo scripts/check-arm64.sh --instructions", file=sys.stderr)
        return 2
    backends = [b for b in args.backends.split(",") if b]
    if "tflite" in backends:
        import importlib.util

        if importlib.util.find_spec("ai_edge_litert") is None:
            backends.remove("tflite")
    counter = Counter(path)
    out: dict[str, float] = dict(stages(counter, args.repeat, args.heavy_repeat, backends))
    out |= player(counter)
    out |= pipeline(counter, args.samples)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
