"""The ``emomusic`` command line: the parser and the dispatch; each command group has its own module."""

from __future__ import annotations

import argparse
import sys

from emomusic import __version__
from emomusic.cli.analyze import cmd_analyze
from emomusic.cli.common import find_config, path_problems
from emomusic.cli.doctor import cmd_doctor
from emomusic.cli.library import cmd_library, cmd_scan
from emomusic.cli.profile import cmd_profile
from emomusic.cli.remote import cmd_send, cmd_status
from emomusic.cli.replay import cmd_replay
from emomusic.cli.run import cmd_run
from emomusic.config import ConfigError, load_config
from emomusic.labels import ALL_LABELS
from emomusic.runtime import ModelError
from emomusic.service.logs import setup_logging


def cmd_check_config(args: argparse.Namespace) -> int:
    path = find_config(args.path)
    cfg = load_config(path)
    problems = path_problems(cfg)
    if problems:
        print("emomusic: config error:\n" + "\n".join(f"{cfg.origin}: {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"{cfg.origin}: OK (device {cfg.device_id}, topics under {cfg.topic_prefix}/, "
          f"broker {cfg.mqtt.host}:{cfg.mqtt.port})")
    return 0


CONFIG_HELP = "config.toml to use (default: $EMOMUSIC_CONFIG, else ./config.toml, else /etc/emomusic/config.toml)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emomusic", description="Emotion-aware ambient music daemon.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper, default=None,
                   help="log this much (default: logging.level from the config, INFO)")
    sub = p.add_subparsers(dest="command", required=True)

    def runner(name: str, help_text: str) -> argparse.ArgumentParser:
        r = sub.add_parser(name, help=help_text)
        r.add_argument("--config", help=CONFIG_HELP)
        r.add_argument("--camera", help="override camera.source")
        r.add_argument("--microphone", help="override microphone.source")
        r.add_argument("--fast", action="store_true", help="replay files as fast as possible")
        r.add_argument("--once", action="store_true", help="play files once, then exit")
        r.add_argument("--duration", type=float, help="stop after this many seconds")
        r.add_argument("--no-mqtt", action="store_true", help="do not connect to a broker")
        return r

    runner("run", "run the daemon")
    runner("demo", "run the daemon on generated sample media")
    c = sub.add_parser("check-config", help="validate a config file; exit 0 if valid, 1 if not")
    c.add_argument("path", nargs="?", help=CONFIG_HELP.replace("config.toml", "the config file", 1))
    s = sub.add_parser("status", help="print the retained state from the broker (exit 3 if the daemon is offline)")
    s.add_argument("--config", help=CONFIG_HELP)
    s.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the retained topics (default 3)")
    d = sub.add_parser("doctor", help="list cameras, audio devices, models; check the broker")
    d.add_argument("--config", help=CONFIG_HELP)
    rp = sub.add_parser("replay", help="run the pipeline on files, write the fused timeline as JSON lines")
    rp.add_argument("--video", help="a video file, in place of the camera")
    rp.add_argument("--audio", help="an audio file (WAV, FLAC, OGG), in place of the microphone")
    rp.add_argument("--jsonl", required=True, help="where to write one JSON line per fused state")
    rp.add_argument("--plot", help="also draw the timeline to this PNG (needs matplotlib)")
    rp.add_argument("--truth", help="truth.csv (start_s,end_s,emotion) to draw beside it")
    rp.add_argument("--fast", action="store_true", help="as fast as possible, on the stream's own clock")
    rp.add_argument("--config", help=CONFIG_HELP)
    sc = sub.add_parser("scan", help="index the music library (incremental); exit 1 naming what is missing")
    sc.add_argument("--config", help=CONFIG_HELP)
    sc.add_argument("--csv", help="also import this mood CSV")
    sc.add_argument("--prune", action="store_true",
                    help="forget tracks that are gone or outside the configured folders/playlists")
    lb = sub.add_parser("library", help="list the indexed tracks with their mood placement")
    lb.add_argument("--config", help=CONFIG_HELP)
    se = sub.add_parser("send", help="send a command to the running daemon over MQTT")
    se.add_argument("what", choices=["mode", "volume", "player", "mood", "feedback"], help="which control")
    se.add_argument("value", help="match|regulate|fixed|off; 0-100; play|pause|toggle|skip|like|dislike; "
                    "an emotion (mood: the fixed mood; feedback: how you feel)")
    se.add_argument("--config", help=CONFIG_HELP)
    se.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the daemon's availability")
    fe = sub.add_parser("feel", help="tell the running daemon how you feel (it follows and learns from it)")
    fe.add_argument("value", metavar="LABEL", help="an emotion: " + ", ".join(ALL_LABELS))
    fe.add_argument("--config", help=CONFIG_HELP)
    fe.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the daemon's availability")
    fe.set_defaults(what="feedback")
    an = sub.add_parser("analyze", help="the emotion in a photo and/or a voice clip, and songs for it (no daemon)")
    an.add_argument("--image", help="a photo with a face (JPEG, PNG, ...)")
    an.add_argument("--audio", help="a voice clip (WAV, FLAC, OGG)")
    an.add_argument("--mode", choices=["match", "regulate"], default="match",
                    help="songs that match the emotion, or that lead it toward player.regulate_target")
    an.add_argument("-n", type=int, default=5, help="how many songs")
    an.add_argument("--config", help=CONFIG_HELP)
    pr = sub.add_parser("profile", help="print the listener profile (feedback, calibration, track likes) as JSON")
    pr.add_argument("--config", help=CONFIG_HELP)
    pr.add_argument("--reset", action="store_true", help="forget it all (a running daemon forgets too)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "INFO")
    commands = {
        "run": cmd_run, "demo": lambda a: cmd_run(a, demo=True), "check-config": cmd_check_config,
        "status": cmd_status, "doctor": cmd_doctor, "replay": cmd_replay, "scan": cmd_scan,
        "library": cmd_library, "send": cmd_send, "feel": cmd_send, "profile": cmd_profile,
        "analyze": cmd_analyze,
    }
    try:
        return commands[args.command](args)
    except ConfigError as e:
        print(f"emomusic: config error:\n{e}", file=sys.stderr)
        return 1
    except ModelError as e:
        print(f"emomusic: {e}", file=sys.stderr)
        return 2
