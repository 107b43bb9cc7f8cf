"""The ``emomusic`` command: run, demo, check-config, status, doctor."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from emomusic.config import Config, ConfigError, load_config
from emomusic.library import Library
from emomusic.logs import setup_logging
from emomusic.messages import FusedState
from emomusic.runtime import ModelError

log = logging.getLogger("emomusic")

DEFAULT_CONFIG_PATHS = ("config.toml", "/etc/emomusic/config.toml")


def find_config(path: str | None) -> str | None:
    """--config, else $EMOMUSIC_CONFIG, else ./config.toml, else /etc/emomusic/config.toml, else defaults."""
    if path:
        return path
    if os.environ.get("EMOMUSIC_CONFIG"):
        return os.environ["EMOMUSIC_CONFIG"]
    return next((p for p in DEFAULT_CONFIG_PATHS if Path(p).is_file()), None)


def broker_reachable(cfg: Config, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((cfg.mqtt.host, cfg.mqtt.port), timeout=timeout):
            return True
    except OSError:
        return False


class LogSink:
    """Logs each change of the fused label, so a terminal shows what the daemon perceives."""

    def __init__(self) -> None:
        self.label = ""

    def on_state(self, state: FusedState) -> None:
        if state.emotion != self.label:
            self.label = state.emotion
            mods = ", ".join(f"{m.modality}={m.emotion}" for m in state.modalities.values()) or "no evidence"
            log.info(
                "emotion: %s (confidence %.2f, valence %+.2f, arousal %+.2f; %s)",
                state.emotion, state.confidence, state.valence, state.arousal, mods,
            )


def _load(args: argparse.Namespace) -> Config:
    return load_config(find_config(getattr(args, "config", None)))


def cmd_run(args: argparse.Namespace, demo: bool = False) -> int:
    from emomusic.app import Daemon

    cfg = _load(args)
    setup_logging(args.log_level or cfg.logging.level)
    # Signals are caught from the start: a SIGTERM while models load or samples are generated
    # still ends in an orderly stop (exit 0, "offline"), not a kill half-way through a write.
    daemon_ref: list[Any] = []
    early_stop: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        if daemon_ref:
            daemon_ref[0].request_stop()
        else:
            early_stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting (config: %s)", cfg.origin)
    camera, microphone = args.camera, args.microphone
    if demo:
        from emomusic.samples import ensure_samples

        video, audio = ensure_samples(cfg.state_dir / "samples")
        camera, microphone = camera or str(video), microphone or str(audio)
    use_mqtt = cfg.mqtt.enabled and not args.no_mqtt
    if use_mqtt and not broker_reachable(cfg):
        log.warning(
            "MQTT broker %s:%d is not reachable: running anyway, retrying in the background; "
            "emotion changes are logged here meanwhile", cfg.mqtt.host, cfg.mqtt.port,
        )
    daemon = Daemon(
        cfg, camera=camera, microphone=microphone, fast=args.fast, loop=False if args.once else None,
        mqtt=use_mqtt, sinks=[LogSink()],
    )
    daemon_ref.append(daemon)
    if early_stop:
        daemon.request_stop()  # run() still starts and stops in order, so MQTT hears "offline"
    if use_mqtt:
        log.info("publishing under %s/ (try: mosquitto_sub -h %s -p %d -t '%s/#' -v)",
                 cfg.topic_prefix, cfg.mqtt.host, cfg.mqtt.port, cfg.topic_prefix)
    log.info("running; press Ctrl-C to stop")
    daemon.run(args.duration)
    if daemon.failures():  # only files played once (--once) give up
        log.error("input failed: %s", "; ".join(daemon.failures()))
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    path = find_config(args.path)
    cfg = load_config(path)
    print(f"{cfg.origin}: OK (device {cfg.device_id}, topics under {cfg.topic_prefix}/, "
          f"broker {cfg.mqtt.host}:{cfg.mqtt.port})")
    return 0


def _connect(client: Any, cfg: Config) -> bool:
    """Connect a CLI client and start its loop, or say plainly that the broker is not there."""
    try:
        client.connect(cfg.mqtt.host, cfg.mqtt.port, keepalive=10)
    except OSError as e:
        print(f"broker {cfg.mqtt.host}:{cfg.mqtt.port} not reachable: {e}", file=sys.stderr)
        return False
    client.loop_start()
    return True


def cmd_status(args: argparse.Namespace) -> int:
    """Read the retained topics from the broker and print them."""
    import paho.mqtt.client as mqtt

    from emomusic.mqtt_link import make_client

    cfg = _load(args)
    prefix = cfg.topic_prefix
    got: dict[str, str] = {}
    done = threading.Event()
    client = make_client(cfg, f"emomusic-status-{os.getpid()}")

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            got["error"] = str(rc)
            done.set()
            return
        c.subscribe(f"{prefix}/#")

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got[msg.topic[len(prefix) + 1 :]] = msg.payload.decode("utf-8", "replace")
        if "state" in got and "availability" in got:
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    if not _connect(client, cfg):
        return 1
    done.wait(args.timeout)
    client.disconnect()
    client.loop_stop()
    if "error" in got:
        print(f"broker refused the connection: {got['error']}", file=sys.stderr)
        return 1
    if not got:
        print(f"no retained state under {prefix}/ (is the daemon running with this config?)", file=sys.stderr)
        return 1
    out: dict[str, Any] = {}
    for key, value in sorted(got.items()):
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    print(json.dumps(out, indent=2))
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    """Index the configured folders/playlists (the demo library when none is configured)."""
    from emomusic.music import open_library

    lib, report = open_library(_load(args), scan=True, csv=args.csv or "", progress=True)
    print(f"{lib.path}: {report}")
    return 0


def cmd_library(args: argparse.Namespace) -> int:
    lib = Library(_load(args).library_path)
    rows = lib.rows()
    if not rows:
        print("the library is empty: run emomusic scan", file=sys.stderr)
        return 1
    print(f"{'valence':>8} {'arousal':>8}  {'source':<8} {'status':<8} title — artist")
    for r in rows:
        status = "missing" if r["missing"] else ("error" if r["error"] else "ok")
        print(f"{r['valence']:+8.2f} {r['arousal']:+8.2f}  {r['source']:<8} {status:<8} "
              f"{r['title']} — {r['artist'] or '?'}  [{r['path']}]")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """Send a command to the running daemon through the broker (the same topics HA uses)."""
    from emomusic.commands import PayloadError, parse_command
    from emomusic.mqtt_link import make_client

    cfg = _load(args)
    topic = {"mode": "mode/set", "volume": "volume/set", "player": "player/set", "mood": "mood/set"}[args.what]
    try:
        parse_command(topic, args.value.encode(), cfg.mqtt.max_payload_bytes)
    except PayloadError as e:
        print(f"emomusic send {args.what}: {e}", file=sys.stderr)
        return 1
    client = make_client(cfg, f"emomusic-send-{os.getpid()}")
    if not _connect(client, cfg):
        return 1
    client.publish(f"{cfg.topic_prefix}/{topic}", args.value, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    print(f"sent {args.value!r} to {cfg.topic_prefix}/{topic}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from emomusic.replay import ReplayError, plot_timeline, read_truth, run_replay

    cfg = _load(args)
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


def cmd_doctor(args: argparse.Namespace) -> int:
    from emomusic.doctor import run_doctor

    cfg = _load(args)
    return run_doctor(cfg)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emomusic", description="Emotion-aware ambient music daemon.")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper, default=None)
    sub = p.add_subparsers(dest="command", required=True)

    def runner(name: str, help_text: str) -> argparse.ArgumentParser:
        r = sub.add_parser(name, help=help_text)
        r.add_argument("--config", help="config.toml (default: $EMOMUSIC_CONFIG, ./config.toml, /etc/emomusic)")
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
    c.add_argument("path", nargs="?")
    s = sub.add_parser("status", help="print the retained state from the broker")
    s.add_argument("--config")
    s.add_argument("--timeout", type=float, default=3.0)
    d = sub.add_parser("doctor", help="list cameras, audio devices, models; check the broker")
    d.add_argument("--config")
    rp = sub.add_parser("replay", help="run the pipeline on files, write the fused timeline as JSON lines")
    rp.add_argument("--video")
    rp.add_argument("--audio")
    rp.add_argument("--jsonl", required=True)
    rp.add_argument("--plot", help="also draw the timeline to this PNG (needs matplotlib)")
    rp.add_argument("--truth", help="truth.csv (start_s,end_s,emotion) to draw beside it")
    rp.add_argument("--fast", action="store_true", help="as fast as possible, on the stream's own clock")
    rp.add_argument("--config")
    sc = sub.add_parser("scan", help="index the music library (incremental)")
    sc.add_argument("--config")
    sc.add_argument("--csv", help="also import this mood CSV")
    lb = sub.add_parser("library", help="list the indexed tracks with their mood placement")
    lb.add_argument("--config")
    se = sub.add_parser("send", help="send a command to the running daemon over MQTT")
    se.add_argument("what", choices=["mode", "volume", "player", "mood"])
    se.add_argument("value", help="match|regulate|fixed|off; 0-100; play|pause|toggle|skip; an emotion")
    se.add_argument("--config")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "INFO")
    commands = {
        "run": cmd_run, "demo": lambda a: cmd_run(a, demo=True), "check-config": cmd_check_config,
        "status": cmd_status, "doctor": cmd_doctor, "replay": cmd_replay, "scan": cmd_scan,
        "library": cmd_library, "send": cmd_send,
    }
    try:
        return commands[args.command](args)
    except ConfigError as e:
        print(f"emomusic: config error:\n{e}", file=sys.stderr)
        return 1
    except ModelError as e:
        print(f"emomusic: {e}", file=sys.stderr)
        return 2
