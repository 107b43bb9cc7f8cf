"""A simulated listener for the closed-loop regulation: does learning what songs do pay off?

    python scripts/simulate_listener.py --seed 1 [--listener misplaced|faithful] [--episodes 40] [--step 0.3]

The daemon's real parts run: the music policy (``music.policy.plan``, open loop = placements only,
closed loop = with the learned ``listener.effects.Effects``) and fusion (``fusion.fuser.Fusion``: the
learner sees only the fused valence/arousal, made from noisy face observations of the listener,
never the listener's true state). Only the listener and the library are made up, seeded:

- Library: 60 tracks, 15 artists of 4, placed uniformly on the valence/arousal plane.
- Listener: starts stressed (valence −0.8..−0.3, arousal +0.3..+0.8). During a track (180 s, in
  10 s steps) they move toward the track's *response point* (60 % per track, rate-wise) and drift
  back toward their stressed home (15 % per track), with noise. ``faithful``: the response point is
  the placement, as the open-loop policy assumes. ``misplaced``: half the artists are heard
  differently from how they are placed: their response point is the placement moved by 0.5–0.9 in
  a random direction (per artist, plus 0.1 per track) — a song placed as calming that agitates.
- Observations: every 10 s a face and a voice observation whose probabilities fall off with the
  distance of each of the model's labels' circumplex positions from the true state, mixed 85/15 with
  Dirichlet noise, confidence 0.8 (the face has no "calm": a calm listener looks neutral).
- Episode: regulate mode toward (0.5, −0.4); it ends when the listener (their true state, which the
  policies never see) is within 0.3 of the target (the time counts) or after 20 tracks (3,600 s).

Learning period: the closed loop plays episodes until it has learned from 50 tracks (it stops
there). Then every policy runs the same ``--episodes`` starts (seeded): the open loop, the closed
loop that keeps learning (as the daemon does) and the closed loop frozen after the learning period.
Last stdout line: JSON with ``open_loop_s``, ``closed_loop_s`` and ``closed_loop_frozen_s`` (mean
time to the target zone), how many episodes reached it, ``episodes``, ``learning_tracks``, the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.config.fusion import DEFAULT_CIRCUMPLEX, FusionConfig  # noqa: E402
from emomusic.fusion.fuser import Fusion  # noqa: E402
from emomusic.labels import FACE_LABELS, VOICE_LABELS  # noqa: E402
from emomusic.listener.effects import Candidate, Effects  # noqa: E402
from emomusic.messages import Observation  # noqa: E402
from emomusic.music.library import Track  # noqa: E402
from emomusic.music.policy import plan  # noqa: E402

TARGET = (0.5, -0.4)
ZONE = 0.3
STEP = 0.3  # player.regulate_step's default
TRACK_S, DT = 180.0, 10.0
MAX_TRACKS = 20
LEARNING_TRACKS = 50
MOVE, DRIFT, NOISE = 1.0, 0.05, 0.02
HOME = (-0.6, 0.6)
MODELS = {"face": FACE_LABELS, "voice": VOICE_LABELS}


def library(rng: np.random.Generator, listener: str) -> tuple[list[Track], dict[int, np.ndarray]]:
    """Tracks and, per track id, where this listener is actually drawn to by it."""
    tracks, response = [], {}
    for artist in range(15):
        misplaced = listener == "misplaced" and rng.random() < 0.5
        angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 0.9)
        shift = length * np.array([math.cos(angle), math.sin(angle)]) if misplaced else np.zeros(2)
        for k in range(4):
            i = artist * 4 + k + 1
            v, a = rng.uniform(-0.9, 0.9, 2)
            tracks.append(Track(i, f"/music/{artist}/{k}.ogg", f"track {i}", f"artist {artist}", TRACK_S,
                                float(v), float(a), "simulated", ""))
            jitter = rng.normal(0, 0.1, 2) if misplaced else np.zeros(2)
            response[i] = np.clip(np.array([v, a]) + shift + jitter, -1, 1)
    return tracks, response


def observe(rng: np.random.Generator, state: np.ndarray, t: float, fusion: Fusion) -> Any:
    """Both modalities read the listener at ``t``; the fused state after them."""
    for modality, labels in MODELS.items():
        va = np.array([DEFAULT_CIRCUMPLEX[k] for k in labels])
        p = np.exp(-((va - state) ** 2).sum(1) / 0.06)
        p = 0.85 * p / p.sum() + 0.15 * rng.dirichlet(np.ones(len(p)))
        fusion.add(Observation(modality, t, {k: float(x) for k, x in zip(labels, p, strict=True)}, 0.8))
    return fusion.update(t)


def episode(rng: np.random.Generator, tracks: list[Track], response: dict[int, np.ndarray],
            effects: Effects | None, learn: bool = True, max_tracks: int = MAX_TRACKS, step: float = STEP) -> float:
    """Seconds until the listener is in the target zone (``effects`` None: open loop; ``learn``
    False: plan with them but learn nothing more)."""
    state = np.array([rng.uniform(-0.8, -0.3), rng.uniform(0.3, 0.8)])
    fusion = Fusion(FusionConfig())
    t = 0.0
    fused = observe(rng, state, t, fusion)
    recent: list[int] = []
    for played in range(max_tracks):
        start = (fused.valence, fused.arousal)
        p = plan("regulate", start, tracks, set(recent[-10:]), n=4, target=TARGET, step=step, fixed=(0, 0),
                 effects=effects, continuing=played > 0)
        track = p.tracks[0]
        recent.append(track.id)
        for _ in range(int(TRACK_S / DT)):
            t += DT
            state = state + MOVE * DT / TRACK_S * (response[track.id] - state) \
                + DRIFT * DT / TRACK_S * (np.array(HOME) - state) + rng.normal(0, NOISE, 2)
            state = np.clip(state, -1, 1)
            fused = observe(rng, state, t, fusion)
            if math.dist(state, TARGET) <= ZONE:  # (the part-played track teaches nothing: a track's
                return t  # effect is what a whole play does)
        if effects is not None and learn:
            effects.observe(Candidate(track.path, (track.valence, track.arousal), track.artist), start,
                            (fused.valence, fused.arousal))
    return MAX_TRACKS * TRACK_S


def run(seed: int, listener: str, episodes: int, step: float = STEP) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    tracks, response = library(rng, listener)
    effects = Effects()
    learning_episodes = 0
    while effects.plays < LEARNING_TRACKS:  # the closed loop learns from at most 50 tracks
        episode(np.random.default_rng([seed, 1000 + learning_episodes]), tracks, response, effects, step=step,
                max_tracks=min(MAX_TRACKS, LEARNING_TRACKS - effects.plays))
        learning_episodes += 1
    learned = effects.plays
    frozen = Effects.from_json(effects.to_json())  # what it knows after the learning period, no more
    times: dict[str, list[float]] = {"open_loop": [], "closed_loop": [], "closed_loop_frozen": []}
    for k in range(episodes):  # the same starts and the same noise for every policy
        times["open_loop"].append(episode(np.random.default_rng([seed, k]), tracks, response, None, step=step))
        times["closed_loop"].append(episode(np.random.default_rng([seed, k]), tracks, response, effects, step=step))
        times["closed_loop_frozen"].append(
            episode(np.random.default_rng([seed, k]), tracks, response, frozen, learn=False, step=step))
    out: dict[str, Any] = {"seed": seed, "listener": listener, "step": step, "episodes": episodes,
                           "learning_tracks": learned,
                           "learning_episodes": learning_episodes}
    for name, ts in times.items():
        out[f"{name}_s"] = round(float(np.mean(ts)), 1)
        out[f"{name}_reached"] = sum(x < MAX_TRACKS * TRACK_S for x in ts)
    out["ratio"] = round(out["closed_loop_s"] / out["open_loop_s"], 3)
    out["ratio_frozen"] = round(out["closed_loop_frozen_s"] / out["open_loop_s"], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--listener", choices=["misplaced", "faithful"], default="misplaced")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--step", type=float, default=STEP, help="player.regulate_step (default %(default)s)")
    args = ap.parse_args()
    print(json.dumps(run(args.seed, args.listener, args.episodes, args.step)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
