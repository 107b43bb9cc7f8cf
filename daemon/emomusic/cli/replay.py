"""``emomusic replay``: the real pipeline on a video and an audio file, one JSON line per fused state.

No MQTT and no music: sources -> analyzers -> fusion -> a JSONL sink. With ``--fast`` the files are
read as fast as the analyzers go and the stream's own clock drives fusion (observations are merged
in stream-time order), so a replay gives the same timeline whatever the machine's speed.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from emomusic.cli.common import config_from_args
from emomusic.config import Config
from emomusic.config.modalities import MODALITIES
from emomusic.labels import ALL_LABELS
from emomusic.messages import FusedState, Quiet
from emomusic.service.logs import setup_logging
from emomusic.service.workers import AnalyzerFactory


class ReplayError(Exception):
    """An input could not be replayed (missing, not a video or audio file, unreadable part way)."""


class JsonlSink(Quiet):
    """A publisher that writes every fused state as one JSON line with stream time ``t``."""

    def __init__(self, out: IO[str], t0: float = 0.0) -> None:
        self.out = out
        self.t0 = t0
        self.count = 0

    def on_state(self, state: FusedState) -> None:
        line: dict[str, Any] = {"t": round(state.t - self.t0, 3), **state.to_json()}
        line["modalities"] = {  # with each modality's probabilities, which the published state leaves out
            name: {k: v for k, v in m.to_json().items() if k != "modality"} for name, m in state.modalities.items()
        }
        self.out.write(json.dumps(line) + "\n")
        self.count += 1


def run_replay(cfg: Config, video: str | None, audio: str | None, jsonl: Path, fast: bool,
               analyzers: dict[str, AnalyzerFactory] | None = None) -> int:
    """Replay the files once; returns the number of states written. Raises ReplayError when a file
    cannot be read (the states up to then are written). ``analyzers``: the registered ones by default."""
    from emomusic.service.daemon import Daemon

    if video is None and audio is None:
        raise ReplayError("nothing to replay: give --video FILE and/or --audio FILE")
    cfg = cfg.model_copy(update={
        "camera": cfg.camera.model_copy(update={"enabled": video is not None}),
        "microphone": cfg.microphone.model_copy(update={"enabled": audio is not None}),
    })
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    with open(jsonl, "w") as out:
        sink = JsonlSink(out, t0=0.0 if fast else time.monotonic())
        # persist=False: what the analyzers learn (the voices) stays in memory: a recording must not
        # change what the daemon has learned
        daemon = Daemon(cfg, camera=video, microphone=audio, fast=fast, loop=False, mqtt=False, music=False, web=False,
                        publishers=[sink], analyzers=analyzers, persist=False)
        daemon.run()
    if daemon.failures():
        raise ReplayError("; ".join(daemon.failures()))
    return sink.count


def read_truth(path: Path) -> list[tuple[float, float, str]]:
    with open(path, newline="") as f:
        return [(float(r["start_s"]), float(r["end_s"]), r["emotion"]) for r in csv.DictReader(f)]


def plot_timeline(jsonl: Path, png: Path, truth: list[tuple[float, float, str]] | None = None) -> None:
    """Stacked fused probabilities over time, the fused label, each modality's label and the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    t = [r["t"] for r in rows]
    cmap = plt.get_cmap("tab10")
    colors = {lab: cmap(i) for i, lab in enumerate(ALL_LABELS)}
    fig, (ax, lanes) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    stacks = [[r["probabilities"].get(lab, 0.0) for r in rows] for lab in ALL_LABELS]
    ax.stackplot(t, stacks, labels=ALL_LABELS, colors=[colors[lab] for lab in ALL_LABELS], alpha=0.85)
    ax.set_ylabel("fused probability")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", ncol=9, fontsize=7)
    seen = [m for m in MODALITIES if any(m in r["modalities"] for r in rows) and MODALITIES[m].source]
    lane_names = ["truth", "fused", *seen]

    def band(y: int, spans: list[tuple[float, float, str]]) -> None:
        for a, b, lab in spans:
            if lab in colors:
                lanes.broken_barh([(a, b - a)], (y - 0.4, 0.8), color=colors[lab])
                if b - a > 3:
                    lanes.text((a + b) / 2, y, lab, ha="center", va="center", fontsize=7)

    def spans_of(values: list[tuple[float, str]]) -> list[tuple[float, float, str]]:
        out: list[tuple[float, float, str]] = []
        for i, (ti, lab) in enumerate(values):
            nxt = values[i + 1][0] if i + 1 < len(values) else ti + 0.2
            if out and out[-1][2] == lab and abs(out[-1][1] - ti) < 1.0:
                out[-1] = (out[-1][0], nxt, lab)
            else:
                out.append((ti, nxt, lab))
        return out

    if truth:
        band(len(lane_names) - 1, truth)
    band(len(lane_names) - 2, spans_of([(r["t"], r["emotion"]) for r in rows]))
    for y, name in zip(range(len(seen) - 1, -1, -1), seen, strict=True):
        band(y, spans_of([(r["t"], r["modalities"][name]["emotion"]) for r in rows if name in r["modalities"]]))
    lanes.set_yticks(list(range(len(lane_names) - 1, -1, -1)), lane_names)
    lanes.set_xlabel("stream time (s)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def cmd_replay(args: argparse.Namespace) -> int:
    from emomusic.cli.replay import ReplayError, plot_timeline, read_truth, run_replay

    cfg = config_from_args(args)
    if args.plot and importlib.util.find_spec("matplotlib") is None:  # say so before a long replay, not after
        print("emomusic replay: --plot needs matplotlib (pip install 'emomusic[plot]')", file=sys.stderr)
        return 1
    setup_logging(args.log_level or "WARNING")
    try:
        n = run_replay(cfg, args.video, args.audio, Path(args.jsonl), args.fast)
    except ReplayError as e:
        print(f"emomusic replay: {e}", file=sys.stderr)
        return 1
    print(f"{n} fused states written to {args.jsonl}")
    if args.plot:
        plot_timeline(Path(args.jsonl), Path(args.plot), read_truth(Path(args.truth)) if args.truth else None)
        print(f"timeline plotted to {args.plot}")
    return 0
