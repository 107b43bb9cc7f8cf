"""emomusic profile: print (or reset) the listener profile from the state dir; no daemon needed."""

from __future__ import annotations

import argparse
import json

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
    print(json.dumps(profile.summary(), indent=2))
    return 0
