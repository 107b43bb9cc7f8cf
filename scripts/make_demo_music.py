"""Write the demo music library into a folder (the daemon does this by itself when no music folder
is configured): twenty synthesized pieces, four per circumplex quadrant and four near its centre, as OGG Vorbis,
FLAC and MP3, each with a mood tag (Vorbis MOOD / ID3v2.4 TMOO).

    python scripts/make_demo_music.py OUT_DIR [--seconds 80]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.music.demo import DEMO_PIECES, DEMO_SECONDS, make_demo_library  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=DEMO_SECONDS)
    args = ap.parse_args()
    for path, (_title, bpm, major, bright, mood, _) in zip(make_demo_library(args.out, args.seconds), DEMO_PIECES,
                                                          strict=True):
        tag = f"mood tag '{mood}'" if mood else "no mood tag"
        print(f"{path.name}: {bpm} BPM, {'major' if major else 'minor'}, brightness {bright}, {tag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
