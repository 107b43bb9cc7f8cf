"""emomusic scan / library: index the music and list the placements."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from emomusic.cli.common import config_from_args
from emomusic.music.library import Library, analysis_details


def cmd_scan(args: argparse.Namespace) -> int:
    """Index the configured folders/playlists (the demo library when none is configured)."""
    from emomusic.music.players import backend
    from emomusic.music.scan import open_library
    from emomusic.music.settings import MusicSettings

    cfg = config_from_args(args)
    try:
        lib, report = open_library(MusicSettings.of(cfg), listing=backend(cfg.player.backend).scan_library,
                                   rescan=True, csv=args.csv or "", progress=True)
    except (OSError, sqlite3.Error) as e:
        print(f"emomusic scan: cannot use the library index {cfg.library_path}: {e}", file=sys.stderr)
        return 1
    if lib.recovered_from is not None:
        print(f"{lib.path} was corrupt: moved aside to {lib.recovered_from.name} and rebuilt")
    print(f"{lib.path}: {report}")
    if report is not None and report.unmatched_csv:
        print(f"{len(report.unmatched_csv)} mood CSV rows match no track:")
        for row in report.unmatched_csv:
            print(f"  {row}")
    if args.prune:
        print(f"forgot {lib.prune()} tracks that are gone or outside the configured library")
    for problem in report.problems if report is not None else []:
        print(f"emomusic scan: {problem}", file=sys.stderr)
    return 1 if report is not None and report.problems else 0


def cmd_library(args: argparse.Namespace) -> int:
    path = config_from_args(args).library_path
    try:
        rows = Library(path).rows()
    except (OSError, sqlite3.Error) as e:
        print(f"emomusic library: cannot read the library index {path}: {e}", file=sys.stderr)
        return 1
    if not rows:
        print("the library is empty: run emomusic scan", file=sys.stderr)
        return 1
    print(f"{'valence':>8} {'arousal':>8}  {'source':<8} {'status':<8} title — artist")
    for r in rows:
        status = "missing" if r["missing"] else ("error" if r["error"] else ("skipped" if r["skip"] else "ok"))
        why = f"  ({r['error'] or r['skip']})" if (r["error"] or r["skip"]) else ""
        heard, confidence = analysis_details(r["features"]) if r["source"] == "analysis" else ((), None)
        sure = f" sure {confidence:.2f}" if confidence is not None else ""
        print(f"{r['valence']:+8.2f} {r['arousal']:+8.2f}  {r['source']:<8} {status:<8} "
              f"{r['title']} — {r['artist'] or '?'}  [{r['path']}]{why}"
              + (f"\n{'':>36}heard: {', '.join(heard)};{sure}" if heard else ""))
    return 0
