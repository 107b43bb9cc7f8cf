"""Choose the fusion defaults (tau, hold, margin, face window) on scenarios, by measurement.

    python scripts/tune_fusion.py --dirs /tmp/scen1 /tmp/scen2 /tmp/scen3 [--models DIR] [--top 15]

Each scenario (scripts/make_scenario.py) is analysed once per face window with the daemon's own
analyzers (face at the camera's analysis rate, voice in microphone-sized chunks); the observations
are then replayed through :class:`emomusic.fusion.Fusion` for every setting of the grid, fed in
stream-time order and updated after each one, as ``emomusic replay --fast`` does. Prints one line
per setting (mean over the scenarios of evaluate.py's metrics), best first. Confirm a choice with
``evaluate.py scenario`` (the real daemon on the files).

Pass ``--models`` a directory whose voice model has not heard the scenario's speakers
(``train_voice_head.py`` on a reduced speech folder), or the voice numbers mean little.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "scripts"))

from evaluate import scenario_metrics  # noqa: E402

from emomusic.cli.replay import read_truth  # noqa: E402
from emomusic.config import Config, load_config  # noqa: E402
from emomusic.fusion.fuser import Fusion  # noqa: E402
from emomusic.messages import AudioChunk, Observation, VideoFrame  # noqa: E402


def observe(cfg: Config, scenario: Path) -> list[Observation]:
    """Every observation the two analyzers make on the scenario, in stream-time order."""
    import cv2

    from emomusic.audio import read_audio_file
    from emomusic.face.analyzer import FaceAnalyzer
    from emomusic.voice.analyzer import VoiceAnalyzer

    out: list[Observation] = []
    face = FaceAnalyzer(cfg.face, cfg.models)
    cap = cv2.VideoCapture(str(scenario / "video.avi"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
    period, next_t, i = 1.0 / cfg.camera.analysis_fps, 0.0, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = i / fps
        if t + 1e-9 >= next_t:
            next_t += period
            obs = face.process(VideoFrame(t, frame, i))
            if obs is not None:
                out.append(obs)
        i += 1
    cap.release()
    voice = VoiceAnalyzer(cfg.voice, cfg.models)  # a fresh voice per scenario, as replay reads it; nothing saved
    audio = read_audio_file(scenario / "audio.wav")
    block = int(cfg.microphone.block_ms * 16)
    for k in range(0, len(audio), block):
        obs = voice.process(AudioChunk(k / 16000, audio[k : k + block]))
        if obs is not None:
            out.append(obs)
    return sorted(out, key=lambda o: (o.t, o.modality))


def replay(cfg: Config, observations: list[Observation]) -> list[dict[str, Any]]:
    fusion = Fusion(cfg.fusion)
    rows = []
    for obs in observations:
        fusion.add(obs)
        s = fusion.update(obs.t)
        rows.append({"t": s.t, "emotion": s.emotion,
                     "modalities": {m: {"emotion": e.emotion} for m, e in s.modalities.items()}})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dirs", type=Path, nargs="+", required=True)
    ap.add_argument("--config", help="base config.toml (default: built-in defaults)")
    ap.add_argument("--models", help="models directory (default: the config's)")
    ap.add_argument("--face-tau", default="0.5,1,1.5,2,3")
    ap.add_argument("--voice-tau", default="1.5,2,3,4")
    ap.add_argument("--hold", default="0,0.5,1,2")
    ap.add_argument("--margin", default="0.05,0.1,0.2")
    ap.add_argument("--face-window", default="1,2")
    ap.add_argument("--jump", default="1", help="jump_margin values (1 = no jump)")
    ap.add_argument("--reliability", default="", help="face:voice pairs, e.g. 0.82:0.57,1:1 (default: the config's)")
    ap.add_argument("--max-flips", type=float, default=None,
                    help="rank only settings with at most this many flips/min beyond the truth first")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    base = load_config(args.config) if args.config else load_config(None, env={})
    if args.models:
        base = base.model_copy(update={"models": base.models.model_copy(update={"dir": args.models})})
    floats = lambda s: [float(x) for x in s.split(",")]  # noqa: E731
    truths = {d: read_truth(d / "truth.csv") for d in args.dirs}
    results = []
    for window in floats(args.face_window):
        cfg = base.model_copy(update={"face": base.face.model_copy(update={"window_s": window})})
        observed = {d: observe(cfg, d) for d in args.dirs}
        rels = [tuple(float(x) for x in pair.split(":")) for pair in args.reliability.split(",")] if args.reliability \
            else [(cfg.fusion.reliability["face"], cfg.fusion.reliability["voice"])]
        grid = itertools.product(floats(args.face_tau), floats(args.voice_tau), floats(args.hold), floats(args.margin),
                                 floats(args.jump), rels)
        for face_tau, voice_tau, hold, margin, jump, (rel_face, rel_voice) in grid:
            tau = {**cfg.fusion.tau_s, "face": face_tau, "voice": voice_tau}
            rel = {**cfg.fusion.reliability, "face": rel_face, "voice": rel_voice}
            fusion = cfg.fusion.model_copy(update={"tau_s": tau, "hold_s": hold, "margin": margin,
                                                   "jump_margin": jump, "reliability": rel})
            run = cfg.model_copy(update={"fusion": fusion})
            ms = [scenario_metrics(replay(run, observed[d]), truths[d]) for d in args.dirs]
            mean = {k: round(float(np.mean([m[k] for m in ms if m[k] is not None])), 3)
                    for k in ("fused_accuracy", "face_accuracy", "voice_accuracy", "flips_beyond_truth_per_min")}
            reactions = [r for m in ms for r in m["reactions_s"] if r is not None]
            results.append({"face_window_s": window, "face_tau_s": face_tau, "voice_tau_s": voice_tau,
                            "hold_s": hold, "margin": margin, "jump_margin": jump,
                            "reliability": [rel_face, rel_voice], **mean,
                            "median_reaction_s": round(float(np.median(reactions)), 2) if reactions else None,
                            "p90_reaction_s": round(float(np.percentile(reactions, 90)), 2) if reactions else None,
                            "never_reached": sum(m["segments_never_reached"] for m in ms)})
    cap = math.inf if args.max_flips is None else args.max_flips
    results.sort(key=lambda r: (r["flips_beyond_truth_per_min"] > cap, -r["fused_accuracy"],
                                r["median_reaction_s"] or math.inf))
    for r in results[: args.top]:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
