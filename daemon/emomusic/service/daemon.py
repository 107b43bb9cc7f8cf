"""Wiring: sources -> analyzers -> fusion -> sinks, started in order and stopped in reverse.

One thread per stage with an explicit bounded queue between stages. The main thread supervises:
it applies commands, sends heartbeats, feeds the systemd watchdog while the stages are alive,
and on a stop request shuts everything down within a few seconds.
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from emomusic.commands import CONTROLS_FILE, Command, Controls
from emomusic.config import Config
from emomusic.config.fusion import FEEDBACK_MODALITY
from emomusic.fusion.fuser import Fusion
from emomusic.listener.profile import PROFILE_FILE, ListenerProfile
from emomusic.messages import FusedState, Observation, redact
from emomusic.queues import DropOldestQueue, RateLimiter, StreamGate
from emomusic.service.systemd import Notifier
from emomusic.service.workers import ANALYZERS, MODALITY_OF, SOURCE_OF, AnalyzerFactory, AnalyzerWorker
from emomusic.sources.base import Source
from emomusic.sources.camera import CameraSource
from emomusic.sources.microphone import AudioFileSource, MicrophoneSource
from emomusic.sources.microphone import describe_kind as audio_kind
from emomusic.sources.resolve import resolve_camera, resolve_microphone
from emomusic.sources.samples import SampleMediaError
from emomusic.voice.vad import PlaybackGuard

log = logging.getLogger("emomusic.app")

class StateSink(Protocol):
    """Anything that wants every fused state (MQTT, the player, a JSONL writer)."""

    def on_state(self, state: FusedState) -> None: ...


class Daemon:
    """The running pipeline. ``fast`` replays files as fast as possible, losing nothing."""

    def __init__(
        self,
        cfg: Config,
        *,
        camera: str | None = None,
        microphone: str | None = None,
        fast: bool = False,
        loop: bool | None = None,
        mqtt: bool | None = None,
        sinks: Iterable[StateSink] = (),
        analyzers: dict[str, AnalyzerFactory] | None = None,
        notifier: Notifier | None = None,
        music: bool = True,
        web: bool = True,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.cfg = cfg
        self.fast = fast
        self.loop = loop
        self.clock: Callable[[], float] = time.monotonic
        self.notifier = notifier or Notifier()
        self.stop_event = stop_event or threading.Event()  # the CLI's, so a SIGTERM during set-up counts
        self.controls = Controls.restore(cfg.player.mode, cfg.player.volume, cfg.player.fixed_mood,
                                         cfg.state_dir / CONTROLS_FILE)
        self.profile = ListenerProfile(cfg.state_dir / PROFILE_FILE)  # feedback, calibration, track likes
        self.sinks: list[StateSink] = list(sinks)
        self.commands: queue.Queue[Command] = queue.Queue(maxsize=100)
        self.dropped_commands = 0
        self._warnings = RateLimiter(burst=1, interval_s=10.0)
        self.fusion = Fusion(cfg.fusion)
        self.observations: DropOldestQueue[Observation] = DropOldestQueue(1000, "observations")
        self.sources: list[Source] = []
        self.gate = StreamGate()  # keeps fast-replayed files in step
        self.workers: list[AnalyzerWorker] = []
        self.last_state: FusedState | None = None
        self.player: Any = None  # set by the music pipeline when it is enabled
        self.playback = PlaybackGuard(cfg.voice.music_margin_db)
        self._fusion_thread = threading.Thread(target=self._fusion_loop, name="fusion", daemon=True)
        self._fusion_lock = threading.Lock()
        self.bridge: Any = None
        use_mqtt = cfg.mqtt.enabled if mqtt is None else mqtt
        if use_mqtt:
            from emomusic.mqtt.bridge import MqttBridge

            self.bridge = MqttBridge(cfg, self.submit_command, self.submit_observation)
            self.sinks.append(self.bridge)
        if cfg.player.enabled and music:
            from emomusic.music.controller import MusicController

            publish = self.bridge.publish_player if self.bridge is not None else None
            on_fault = functools.partial(self.bridge.publish_fault, "music") if self.bridge is not None else None
            self.player = MusicController(cfg, self.playback, publish, controls=self.controls, on_fault=on_fault,
                                          profile=self.profile, on_refuse=functools.partial(self._refuse, "player/set"))
            self.sinks.append(self.player)
        self.web: Any = None
        if cfg.web.enabled and web:
            from emomusic.web.server import WebServer

            self.web = WebServer(cfg, self.submit_command, self._player_view, self.profile.banned)
            self.sinks.append(self.web)
        factories = ANALYZERS if analyzers is None else analyzers
        self._build_stages(factories, camera, microphone)

    # -- construction ---------------------------------------------------------------------------
    def _build_stages(self, factories: dict[str, AnalyzerFactory], camera: str | None, microphone: str | None) -> None:
        cfg = self.cfg
        for modality in ("face", "voice"):
            source_name = SOURCE_OF[modality]
            section = cfg.camera if source_name == "camera" else cfg.microphone
            if not section.enabled:
                log.info("%s disabled in config", source_name)
                continue
            factory = factories.get(modality)
            if factory is None:
                log.warning("no %s analyzer available: %s not started", modality, source_name)
                continue
            first = factory(cfg, self.playback)  # raises ModelError now if a model file is missing or broken
            inbox: DropOldestQueue[Any] = DropOldestQueue(section.queue_size, source_name)
            loop = section.loop if self.loop is None else self.loop
            source: Source
            try:
                spec = (resolve_camera(camera or cfg.camera.source, cfg, self.stop_event.is_set)
                        if source_name == "camera"
                        else resolve_microphone(microphone or cfg.microphone.source, cfg, self.stop_event.is_set))
            except SampleMediaError as e:  # no device and no sample: this modality is off, the rest runs
                detail = f"no {source_name} found, and {e}; {modality} analysis is off (free space or set " \
                         "device.state_dir / EMOMUSIC_STATE_DIR to a writable folder)"
                log.error("%s", detail)
                self._on_status(source_name, "failed", detail)
                continue
            if source_name == "camera":
                source = CameraSource(
                    spec, inbox, analysis_fps=cfg.camera.analysis_fps, loop=loop, width=cfg.camera.width,
                    height=cfg.camera.height, fast=self.fast, on_status=self._on_status, stall_s=cfg.camera.stall_s,
                )
            else:
                if audio_kind(spec) == "file":
                    source = AudioFileSource(
                        spec, inbox, block_ms=cfg.microphone.block_ms, loop=loop, fast=self.fast,
                        on_status=self._on_status,
                    )
                else:
                    source = MicrophoneSource(
                        spec, inbox, block_ms=cfg.microphone.block_ms, stall_s=cfg.microphone.stall_s,
                        on_status=self._on_status,
                    )
            log.info("%s: %s -> %s analyzer", source_name, redact(spec), modality)
            if self.fast:
                self.gate.register(source.source_name)
                source.gate = self.gate
            self.sources.append(source)
            self.workers.append(
                AnalyzerWorker(
                    modality, functools.partial(factory, cfg, self.playback), inbox, self.observations,
                    block_output=self.fast, on_status=self._on_status, first=first,
                )
            )

    # -- inputs from other threads ----------------------------------------------------------
    def submit_observation(self, obs: Observation) -> None:
        self.observations.put(obs)

    def submit_command(self, cmd: Command) -> None:
        try:
            self.commands.put_nowait(cmd)
        except queue.Full:
            self.dropped_commands += 1
            if self._warnings.allow("command queue full"):
                log.warning("command queue full: dropped %s (%d dropped so far; said at most every %.0f s)",
                            cmd, self.dropped_commands, self._warnings.interval_s)

    def request_stop(self) -> None:
        self.stop_event.set()

    def request_rescan(self) -> None:
        """SIGHUP: the music stage re-scans the library (incrementally) in its own thread."""
        if self.player is not None:
            self.player.request_rescan()
        else:
            log.info("no music stage running: nothing to re-scan")

    def _on_status(self, name: str, status: str, detail: str) -> None:
        if self.bridge is not None:
            modality = MODALITY_OF.get(name, name)
            self.bridge.publish_modality_status(modality, status, detail)
            if status == "disabled":  # needs a person: also on …/error, where automations watch for faults
                self.bridge.publish_fault(modality, detail)

    # -- stages ---------------------------------------------------------------------------------
    def _emit(self, now: float) -> None:
        with self._fusion_lock:
            state = self.fusion.update(now)
        self.last_state = state
        for sink in self.sinks:
            try:
                sink.on_state(state)
            except Exception:  # one broken sink must not silence the others
                log.exception("sink %s failed", type(sink).__name__)

    def _fuse(self, obs: Observation, now: float) -> None:
        obs = self.profile.calibrate(obs)  # this listener's correction of the model's reading
        try:
            with self._fusion_lock:
                self.fusion.add(obs)
        except ValueError as e:
            log.warning("dropped an invalid %s observation: %s", obs.modality, e)
            return
        self._emit(now)

    def _fusion_loop(self) -> None:
        if self.fast:
            self._fusion_loop_fast()
            return
        tick = 0.5
        next_tick = self.clock() + tick
        while True:
            obs = self.observations.get(timeout=tick)
            if obs is not None:
                self._fuse(obs, max(obs.t, self.clock()))  # live: fusion runs on the wall clock
            elif self.observations.closed:
                break
            if self.clock() >= next_tick:
                next_tick = self.clock() + tick
                self._emit(self.clock())

    def _watermark(self) -> float:
        """Stream time up to which every still-running modality has been analysed."""
        ended = lambda s: s.ident is not None and not s.is_alive()  # noqa: E731  (not merely unstarted)
        marks = [w.progress_t for s, w in zip(self.sources, self.workers, strict=True)
                 if not ended(s) or not w.idle]
        return min(marks) if marks else math.inf

    def _fusion_loop_fast(self) -> None:
        """Replayed as fast as possible, the modalities run ahead of each other: observations are
        merged in stream-time order (up to the slowest modality's progress), so fusion sees the same
        sequence it would see live."""
        pending: list[tuple[float, str, int, Observation]] = []  # ties broken by modality: repeatable
        seq = 0
        while True:
            # Read the progress first: a worker queues its observation before it advances its
            # progress, so everything at or before this mark is already in the queue.
            closed = self.observations.closed
            mark = math.inf if closed else self._watermark()
            obs = self.observations.get(timeout=0.05)
            while obs is not None:
                heapq.heappush(pending, (obs.t, obs.modality, seq, obs))
                seq += 1
                obs = self.observations.get(timeout=0)
            while pending and pending[0][0] <= mark:
                first = heapq.heappop(pending)[-1]
                self._fuse(first, first.t)
            if closed and not pending:
                break

    # -- commands -------------------------------------------------------------------------------
    def apply_command(self, cmd: Command) -> None:
        log.info("command: %s %s", cmd.kind, cmd.value)
        if cmd.kind == "feedback":
            self._feel(str(cmd.value))
            return
        self.controls.apply(cmd)
        if cmd.kind == "player" and cmd.value in ("play", "skip", "toggle", "like", "dislike") and (
                self.player is None or (self.controls.mode == "off" and cmd.value not in ("like", "dislike"))):
            why = ("no music stage is running (player.enabled is false)" if self.player is None else
                   "the music mode is off: set a mode first (match, regulate or fixed)")
            self._refuse("player/set", f"'{cmd.value}' does nothing: {why}")
        if self.player is not None:
            self.player.apply(cmd)
        self._publish_controls()

    def _feel(self, label: str) -> None:
        """The listener says how they feel: the state follows at once (strong evidence that fades
        slowly), and each modality's calibration learns from what it read just before."""
        now = self.clock()
        paired = self.profile.feel(label, now)
        log.info("listener feels %s: calibration pairs now %s", label,
                 ", ".join(f"{m} {n}" for m, n in paired.items()) or "none (no recent face or voice)")
        self.submit_observation(Observation(FEEDBACK_MODALITY, now, {label: 1.0}, 1.0))

    def _refuse(self, subtopic: str, why: str) -> None:
        """A valid command that cannot act now: say why, in the log and on …/error."""
        if self.bridge is not None:
            self.bridge.publish_error(f"{self.cfg.topic_prefix}/{subtopic}", why)
        else:
            log.warning("%s: %s", subtopic, why)

    def _publish_controls(self) -> None:
        if self.bridge is not None:
            self.bridge.publish_controls(self.controls.mode, self.controls.volume, self.controls.mood)

    # -- lifecycle ------------------------------------------------------------------------------
    def _player_view(self) -> tuple[dict[str, Any], list[Any]] | None:
        return None if self.player is None else (self.player.status(), list(self.player.queue))

    def start(self) -> None:
        self._publish_controls()
        if self.bridge is not None:
            self.bridge.start()
        if self.web is not None:
            self.web.start()  # a port already taken is logged; the rest runs without the page
        self._fusion_thread.start()
        if self.player is not None:
            self.player.start()
        for w in self.workers:
            w.start()
        for s in self.sources:
            s.start()

    def finished(self) -> bool:
        """True when every source ended (files played once) and everything was analysed."""
        if not self.sources or any(s.is_alive() for s in self.sources):
            return False
        return all(w.idle for w in self.workers) and len(self.observations) == 0

    def failures(self) -> list[str]:
        """Why sources gave up for good (only a file played once does: a missing or unreadable one)."""
        return [s.detail for s in self.sources if s.status == "failed"]

    def healthy(self) -> bool:
        return self._fusion_thread.is_alive()

    def run(self, duration_s: float | None = None) -> None:
        """Start, supervise until a stop request (or the end of finite inputs), then stop."""
        self.start()
        self.notifier.ready("running")
        deadline = None if duration_s is None else time.monotonic() + duration_s
        interval = min(0.5, self.notifier.watchdog_s / 3) if self.notifier.watchdog_s else 0.5
        try:
            while not self.stop_event.wait(interval):
                self.supervise_once()
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if self.finished():
                    log.info("no input left: %s", "some failed" if self.failures() else "all played to the end")
                    break
        finally:
            self.stop()

    def supervise_once(self) -> None:
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                break
            self.apply_command(cmd)
        now = time.monotonic()
        self.profile.refresh()  # one stat(): `emomusic profile --reset` while we run
        for source in self.sources:
            source.check_stall(now)
        if self.bridge is not None:
            self.bridge.heartbeat()
        if self.healthy():
            self.notifier.watchdog()  # a wedged fusion stage stops the pings; systemd restarts us

    def stop(self, timeout: float = 3.0) -> None:
        """Ordered shutdown: sources, analyzers, fusion, then ``offline`` on MQTT."""
        self.notifier.stopping()
        log.info("stopping")
        for s in self.sources:
            s.stop()
        for w in self.workers:
            w.stop()
            w.inbox.close()
        end = time.monotonic() + timeout
        for t in [*self.sources, *self.workers]:
            t.join(max(0.0, end - time.monotonic()))
        self.observations.close()
        if self._fusion_thread.is_alive():
            self._fusion_thread.join(max(0.1, end - time.monotonic()))
        if self.player is not None:
            self.player.stop()
            if self.player.is_alive():
                self.player.join(max(0.5, end - time.monotonic()))
        if self.bridge is not None:
            self.bridge.stop()
        if self.web is not None:
            self.web.stop()
        log.info("stopped")

    # -- for replay and status --------------------------------------------------------------------
    def drops(self) -> dict[str, int]:
        return {w.inbox.name: w.inbox.dropped for w in self.workers} | {"observations": self.observations.dropped}
