"""emomusic analyze: the daemon's face and voice paths on a photo and/or a clip, and songs for the result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emomusic.cli.common import config_from_args


def cmd_analyze(args: argparse.Namespace) -> int:
    from emomusic.analyze.snapshot import AnalyzeError, Snapshot
    from emomusic.music.players import backend
    from emomusic.music.scan import open_library
    from emomusic.music.settings import MusicSettings

    cfg = config_from_args(args)
    if not args.image and not args.audio:
        print("emomusic analyze: give --image, --audio or both", file=sys.stderr)
        return 1
    data: dict[str, bytes | None] = {"image": None, "audio": None}
    for key in data:
        path = getattr(args, key)
        if path is not None:
            try:
                data[key] = Path(path).read_bytes()
            except OSError as e:
                print(f"emomusic analyze: --{key} {path}: {e.strerror or e}", file=sys.stderr)
                return 1
    lib, _ = open_library(MusicSettings.of(cfg), listing=backend(cfg.player.backend).scan_library, rescan=False)
    try:
        tracks = lib.tracks()
        if not tracks:  # never scanned here: index the configured library (or the demo) first
            lib.close()
            lib, _ = open_library(MusicSettings.of(cfg), listing=backend(cfg.player.backend).scan_library, rescan=True)
            tracks = lib.tracks()
    finally:
        lib.close()
    try:
        result = Snapshot(cfg).analyze(data["image"], data["audio"], mode=args.mode, n=args.n, tracks=tracks)
    except AnalyzeError as e:
        print(f"emomusic analyze: {naming_the_file(str(e), args)}", file=sys.stderr)
        return 1
    print(summary(result))
    print(json.dumps(result))
    missing = [m["error"] for m in result["modalities"].values() if m.get("emotion") is None]
    for why in missing:
        print(f"emomusic analyze: {why}", file=sys.stderr)
    return 1 if missing else 0


def naming_the_file(message: str, args: argparse.Namespace) -> str:
    """The snapshot's "image: …" / "audio: …" (the page's field names) as the option and file given here."""
    field, _, rest = message.partition(": ")
    path = getattr(args, field, None) if field in ("image", "audio") else None
    return f"--{field} {path}: {rest}" if path is not None and rest else message


def summary(r: dict[str, object]) -> str:
    lines = []
    modalities = r["modalities"]
    assert isinstance(modalities, dict)
    for name, m in modalities.items():
        if m.get("emotion") is None:
            lines.append(f"{name:6} {m['error']}")
        else:
            note = f"; {m['read_as']}" if m.get("read_as") else ""
            lines.append(f"{name:6} {m['emotion']} (confidence {m['confidence']:.2f}{note})")
    if r["emotion"] == "unknown":
        lines.append(f"fused  unknown: {r['reason']}")
        return "\n".join(lines)
    lines.append(f"fused  {r['emotion']} (confidence {r['confidence']:.2f}), valence {r['valence']:+.2f}, "
                 f"arousal {r['arousal']:+.2f}")
    lines.append(f"{r['reason']}:")
    recs = r["recommendations"]
    assert isinstance(recs, list)
    for k, t in enumerate(recs, start=1):
        lines.append(f"  {k}. {t['title']} - {t['artist'] or 'unknown'} (v={t['valence']:+.2f} a={t['arousal']:+.2f}, "
                     f"{t['placement']}): {t['why']}")
    return "\n".join(lines)
