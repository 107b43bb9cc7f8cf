"""emomusic status / send: talk to a running daemon through the broker."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

from emomusic.cli.common import config_from_args
from emomusic.config import Config

ANSWER_WAIT_S = 1.0  # how long send waits for the daemon to reject the command on …/error
OFFLINE_EXIT = 3  # emomusic status: the daemon is not online (its last retained state is still printed)


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
    cfg = config_from_args(args)
    prefix = cfg.topic_prefix
    got = _retained(cfg, args.timeout)
    if got is None:
        return 1
    if "error" in got:
        print(f"broker refused the connection: {got['error']}", file=sys.stderr)
        return 1
    if not got:
        print(f"no retained state under {prefix}/ (is the daemon running with this config?)", file=sys.stderr)
        return 1
    out = {key: _json_or_text(value) for key, value in sorted(got.items())}
    print(json.dumps(out, indent=2))
    if out.get("availability") != "online":
        print(f"emomusic status: the daemon under {prefix}/ is {out.get('availability') or 'not announced'}"
              f"{_last_heard(out.get('state'))}; what is shown above is its last retained state", file=sys.stderr)
        return OFFLINE_EXIT
    return 0


def _retained(cfg: Config, timeout: float) -> dict[str, str] | None:
    """The daemon's retained topics (by their part after the prefix); {"error"} when the broker refused
    us; None when it cannot be reached (said on stderr)."""
    import paho.mqtt.client as mqtt

    from emomusic.mqtt.link import MqttSettings, make_client

    prefix = cfg.topic_prefix
    got: dict[str, str] = {}
    done = threading.Event()
    client = make_client(MqttSettings.of(cfg), f"emomusic-status-{os.getpid()}")

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
        return None
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return got


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _last_heard(state: Any) -> str:
    """', last heard from at … (N min ago)', from the wall time stamped on the retained state."""
    import calendar
    import time

    stamp = state.get("time") if isinstance(state, dict) else None
    try:
        sent = calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return ""
    ago = max(0.0, time.time() - sent)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sent))
    span = f"{ago:.0f} s" if ago < 120 else (f"{ago / 60:.0f} min" if ago < 7200 else f"{ago / 3600:.1f} h")
    return f" since about {when} (its last state was sent {span} ago)"


def cmd_send(args: argparse.Namespace) -> int:
    """Send a command to the running daemon through the broker (the same topics HA uses): only to a
    daemon that says it is online, and with its answer when it rejects the command."""
    from emomusic.commands import PayloadError, parse_command
    from emomusic.mqtt.link import MqttSettings, make_client

    cfg = config_from_args(args)
    prefix = cfg.topic_prefix
    topic = f"{args.what}/set"  # mode, volume, player, mood, feedback: the topics Home Assistant uses
    try:
        parse_command(topic, args.value.encode(), cfg.mqtt.max_payload_bytes)
    except PayloadError as e:
        print(f"emomusic {args.command}: {e}" if args.command == "feel" else f"emomusic send {args.what}: {e}",
              file=sys.stderr)
        return 1
    availability: list[str] = []
    answers: list[str] = []
    heard, answered = threading.Event(), threading.Event()

    def on_message(c: Any, u: Any, msg: Any) -> None:
        if msg.topic == f"{prefix}/availability":
            availability.append(msg.payload.decode("utf-8", "replace"))
            heard.set()
            return
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("topic") == f"{prefix}/{topic}":
            answers.append(str(data.get("error")))
            answered.set()

    client = make_client(MqttSettings.of(cfg), f"emomusic-send-{os.getpid()}")
    client.on_message = on_message
    if not _connect(client, cfg):
        return 1
    try:
        client.subscribe([(f"{prefix}/availability", 1), (f"{prefix}/error", 1)])
        heard.wait(args.timeout)  # the retained availability, if the daemon ever ran
        if availability[-1:] != ["online"]:
            said = f"says {availability[-1]!r}" if availability else "was never announced"
            print(f"emomusic {args.command}: the daemon under {prefix}/ is not online (its availability {said}); "
                  "nothing sent", file=sys.stderr)
            return 1
        client.publish(f"{prefix}/{topic}", args.value, qos=1).wait_for_publish(5)
        if answered.wait(ANSWER_WAIT_S):
            print(f"emomusic {args.command}: the daemon did not act on it: {answers[0]}", file=sys.stderr)
            return 1
    finally:
        client.disconnect()
        client.loop_stop()
    print(f"sent {args.value!r} to {prefix}/{topic}")
    return 0
