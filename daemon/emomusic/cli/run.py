"""emomusic run / demo: the daemon in the foreground (what systemd starts)."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from emomusic.cli.common import config_from_args
from emomusic.config import Config
from emomusic.service.logs import setup_logging

log = logging.getLogger("emomusic")


def broker_reachable(cfg: Config, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((cfg.mqtt.host, cfg.mqtt.port), timeout=timeout):
            return True
    except OSError:
        return False


def _demo_media(cfg: Config, stopping: threading.Event) -> tuple[Path, Path] | int:
    """The sample video and speech (made once), or the exit code when they cannot be had."""
    from emomusic.sources.samples import SampleMediaError, ensure_samples

    try:
        return ensure_samples(cfg.state_dir / "samples", stopping.is_set)
    except SampleMediaError as e:
        log.error("demo: %s (free space or set device.state_dir / EMOMUSIC_STATE_DIR)", e)
        return 1
    except InterruptedError:
        log.info("stopped while generating the sample media")
        return 0


def cmd_run(args: argparse.Namespace, demo: bool = False) -> int:
    from emomusic.service.daemon import Daemon
    from emomusic.service.memory import keep_memory_small

    stopping = threading.Event()  # shared with sample generation and the daemon from the start
    keep_memory_small(stopping)  # before any stage thread exists (docs/PERFORMANCE.md: memory)
    cfg = config_from_args(args)
    setup_logging(args.log_level or cfg.logging.level)
    # Signals are caught from the start: a SIGTERM while models load or samples are generated
    # still ends in an orderly stop (exit 0, "offline"), not a kill half-way through a write.
    daemon_ref: list[Any] = []

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stopping.set()

    def on_hangup(signum: int, frame: Any) -> None:
        # The conventional "reload": logs go to stderr (journald), so there is nothing to reopen;
        # new or changed music is what a user expects a reload to pick up.
        log.info("received SIGHUP: re-scanning the music library")
        if daemon_ref:
            daemon_ref[0].request_rescan()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    log.info("starting (config: %s)", cfg.origin)
    camera, microphone = args.camera, args.microphone
    if demo:
        samples = _demo_media(cfg, stopping)
        if isinstance(samples, int):
            return samples
        camera, microphone = camera or str(samples[0]), microphone or str(samples[1])
    use_mqtt = cfg.mqtt.enabled and not args.no_mqtt
    if use_mqtt and not broker_reachable(cfg):
        log.warning(
            "MQTT broker %s:%d is not reachable: running anyway, retrying in the background; "
            "emotion changes are logged here meanwhile", cfg.mqtt.host, cfg.mqtt.port,
        )
    try:
        daemon = Daemon(
            cfg, camera=camera, microphone=microphone, fast=args.fast, loop=False if args.once else None,
            mqtt=use_mqtt, stop_event=stopping,
        )
    except InterruptedError:  # SIGTERM while the sample media were being made: nothing started yet
        log.info("stopped while setting up")
        return 0
    daemon_ref.append(daemon)  # a stop asked for before this point: run() still starts and stops in order
    if use_mqtt:
        log.info("publishing under %s/ (try: mosquitto_sub -h %s -p %d -t '%s/#' -v)",
                 cfg.topic_prefix, cfg.mqtt.host, cfg.mqtt.port, cfg.topic_prefix)
    log.info("running; press Ctrl-C to stop")
    daemon.run(args.duration)
    if daemon.failures():  # only files played once (--once) give up
        log.error("input failed: %s", "; ".join(daemon.failures()))
        return 1
    return 0
