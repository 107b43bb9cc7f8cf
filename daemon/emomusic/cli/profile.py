"""emomusic profile: print (or reset) the listener profile from the state dir; no daemon needed."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from emomusic.cli.common import config_from_args
from emomusic.listener.profile import PROFILE_FILE, ListenerProfile
from emomusic.voice.personal import PERSONAL_FILE


def cmd_profile(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    profile = ListenerProfile(cfg.state_dir / PROFILE_FILE)
    if args.reset:
        before = profile.summary()["feedback"]
        profile.reset()  # a running daemon sees the file gone and forgets too
        voice = cfg.state_dir / PERSONAL_FILE  # what the statements taught the voice head, likewise
        told = voice.exists()
        voice.unlink(missing_ok=True)
        print(json.dumps({"path": str(profile.path), "reset": True, "feedback_forgotten": before,
                          "voice_personalisation_forgotten": told}))
        return 0
    print(json.dumps(profile.summary() | {"voice_statements": voice_statements(cfg.state_dir / PERSONAL_FILE)},
                     indent=2))
    return 0


def voice_statements(path: Path) -> dict[str, dict[str, int]]:
    """What the listener's statements taught each voice (voice/personal.py): per voice, statements per
    emotion; empty when nothing was taught or the file is unusable (the daemon says why in its log)."""
    try:
        voices = json.loads(path.read_text())["voices"]
        return {key: dict(Counter(str(s["label"]) for s in v["statements"])) for key, v in voices.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
