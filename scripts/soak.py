"""Soak: replay a scenario in a loop, as fast as it goes, and watch for growth.

    python scripts/soak.py [--minutes 30] [--video V --audio A] [--mqtt HOST:PORT] [--no-web] [--out FILE]
                           [--samples FILE] [--glibc-defaults]

Runs the real daemon in this process (sources looping the files at fast pace, the real models,
fusion, the music stage with the demo library through SDL's dummy driver, the page with one browser's
worth of requests: an open event stream and the state, player and library every few seconds; MQTT if
a broker is given) and samples its resident memory, thread count and queue drops every ``--every``
seconds. Prints one JSON line at the end: RSS after warm-up and at the end, its range over the last
half, growth per hour, the same for anonymous memory (what no page cache explains), the largest thread
count, drops, page requests answered. glibc's malloc is set up as ``emomusic run`` sets it, since the
growth a soak looks for depends on it. The documented run is 30 minutes; CI-sized runs take a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.config import parse_config  # noqa: E402
from emomusic.service.daemon import Daemon  # noqa: E402
from emomusic.service.memory import keep_memory_small  # noqa: E402
from emomusic.sources.samples import ensure_samples  # noqa: E402


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``RssAnon``: the part no page cache explains)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def page_visitor(port: int, stop: threading.Event, answered: list[int]) -> None:
    """What one open page asks of the daemon: its event stream, and now and then the rest."""

    def events() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=30) as r:
                    while not stop.is_set() and r.readline():
                        pass
            except OSError:
                stop.wait(1.0)

    threading.Thread(target=events, name="soak-events", daemon=True).start()
    while not stop.wait(5.0):
        for route in ("state", "player", "history", "library"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/{route}", timeout=30) as r:
                    r.read()
                answered[0] += 1
            except OSError as e:
                print(f"page: /api/{route}: {e}", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--video")
    ap.add_argument("--audio")
    ap.add_argument("--mqtt", help="HOST:PORT of a broker to publish to")
    ap.add_argument("--no-web", action="store_true", help="without the page")
    ap.add_argument("--first-start", action="store_true",
                    help="measure a first start too: the demo library made and indexed inside the soaked daemon "
                    "(by default an `emomusic scan` in another process makes it first, as on a second start)")
    ap.add_argument("--out", type=Path, help="append the result to this Markdown file")
    ap.add_argument("--samples", type=Path, help="append each sample to this file as a JSON line, as it is taken")
    ap.add_argument("--glibc-defaults", action="store_true",
                    help="leave glibc's malloc as it comes (by default the soak sets it up as `emomusic run` does: "
                    "two arenas, a fixed mmap threshold, freed heap handed back every 20 s)")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                    help="also trace Python allocations and print the N sites that grew most after warm-up "
                    "(slows the run; for finding a leak, not for the documented numbers)")
    return ap.parse_args()


def build_daemon(args: argparse.Namespace, tmp: Path) -> Daemon:
    """The daemon as a user runs it, on looping files, in a state dir of its own."""
    video, audio = (args.video, args.audio) if args.video else map(str, ensure_samples(tmp / "samples"))
    data: dict = {"device": {"id": "soak", "state_dir": str(tmp / "state")}, "web": {"port": 0}}
    if not args.first_start:
        subprocess.run([sys.executable, "-m", "emomusic", "scan", "--config", str(ROOT / "config.toml")], check=True,
                       env=os.environ | {"EMOMUSIC_STATE_DIR": str(tmp / "state"),
                                         "PYTHONPATH": str(ROOT / "daemon")}, stdout=subprocess.DEVNULL)
    if args.mqtt:
        host, port = args.mqtt.rsplit(":", 1)
        data["mqtt"] = {"host": host, "port": int(port)}
    return Daemon(parse_config(data, env={}), camera=video, microphone=audio, fast=True, loop=True,
                  mqtt=bool(args.mqtt), web=not args.no_web)


def visit_the_page(daemon: Daemon, runner: threading.Thread, stop: threading.Event, answered: list[int]) -> None:
    if daemon.web is None:
        return
    deadline = time.monotonic() + 120
    while daemon.web.port == 0 and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)  # port 0: the page says which port it got once it listens
    threading.Thread(target=page_visitor, args=(daemon.web.port, stop, answered), daemon=True).start()


def summarise(samples: list[dict], answered: int, stopped: bool) -> dict:
    first = min(len(samples) - 1, max(1, len(samples) // 5))  # after the first fifth (warm-up)
    warm, last = samples[first], samples[-1]
    steady = samples[first:]
    # The least-squares slope over every sample after warm-up: one noisy reading cannot fake a trend.
    def slope(key: str) -> float:
        if len(steady) < 3:
            return 0.0
        return round(float(np.polyfit([s["t"] for s in steady], [s[key] for s in steady], 1)[0]) * 3600, 2)

    second_half = samples[len(samples) // 2:]
    return {
        "minutes": round(last["t"] / 60, 1), "items_analysed": last["items"],
        "rss_after_warmup_mb": warm["rss_mb"], "rss_end_mb": last["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in steady),
        "rss_last_half_mb": [min(s["rss_mb"] for s in second_half), max(s["rss_mb"] for s in second_half)],
        "rss_growth_mb_per_hour": slope("rss_mb"),
        "anon_after_warmup_mb": warm["anon_mb"], "anon_end_mb": last["anon_mb"],
        "anon_growth_mb_per_hour": slope("anon_mb"),
        "threads_max": max(s["threads"] for s in samples), "threads_end": last["threads"],
        "drops": last["drops"], "page_requests": answered, "stopped_cleanly": stopped,
    }


def main() -> int:
    args = parse_args()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(5)
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    released = threading.Event()
    if not args.glibc_defaults:  # as cmd_run does, before any stage thread exists
        keep_memory_small(released)
    daemon = build_daemon(args, Path(tempfile.mkdtemp()))
    runner = threading.Thread(target=daemon.run, daemon=True)
    start = time.monotonic()
    runner.start()
    visiting, answered = threading.Event(), [0]
    visit_the_page(daemon, runner, visiting, answered)
    samples = []
    end = start + args.minutes * 60
    warm_snapshot = None
    while time.monotonic() < end and runner.is_alive():
        time.sleep(min(args.every, max(0.1, end - time.monotonic())))
        frames = sum(w.processed for w in daemon.workers)
        samples.append({"t": round(time.monotonic() - start, 1), "rss_mb": round(rss_mb(), 1),
                        "anon_mb": round(rss_mb("RssAnon"), 1), "threads": threading.active_count(),
                        "items": frames, "drops": daemon.drops()})
        if args.samples:
            with open(args.samples, "a") as f:
                f.write(json.dumps(samples[-1]) + "\n")
        if args.tracemalloc and warm_snapshot is None and time.monotonic() - start > args.minutes * 12:
            warm_snapshot = tracemalloc.take_snapshot()  # after the first fifth, like the RSS baseline
    visiting.set()
    daemon.request_stop()
    runner.join(10)
    released.set()
    result = summarise(samples, answered[0], not runner.is_alive())
    print(json.dumps(result))
    if args.tracemalloc and warm_snapshot is not None:
        diff = tracemalloc.take_snapshot().compare_to(warm_snapshot, "traceback")
        for stat in diff[: args.tracemalloc]:
            print(f"{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks at "
                  + " <- ".join(f"{fr.filename.rsplit('/', 1)[-1]}:{fr.lineno}" for fr in stat.traceback))
    if args.out:
        with open(args.out, "a") as f:
            f.write(f"\n### Soak, {time.strftime('%Y-%m-%d %H:%M')}\n\n```json\n{json.dumps(result, indent=1)}\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
