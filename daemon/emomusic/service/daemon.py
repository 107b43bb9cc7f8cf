"""Wiring: sources -> analyzers -> fusion -> publishers and the music stage, started in order and
stopped in reverse.

One thread per stage with an explicit bounded queue between stages. Everything the daemon tells the
world goes through one fan-out of publishers (the log, MQTT, the page, and any given by the caller:
``emomusic replay``'s JSON lines): a new publisher is one class and one line in ``__init__``. The
main thread supervises: it applies commands, sends heartbeats, feeds the systemd watchdog while the
stages are alive, and on a stop request shuts everything down within a few seconds.
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
from typing import TYPE_CHECKING

from emomusic.audio import PlaybackGuard
from emomusic.commands import CONTROLS_FILE, Command, Controls
from emomusic.config import Config
from emomusic.config.fusion import FEEDBACK_MODALITY
from emomusic.config.modalities import fed_by
from emomusic.fusion.fuser import Fusion
from emomusic.listener.profile import PROFILE_FILE, ListenerProfile
from emomusic.messages import FusedState, Observation, Publisher, Sensed, redact
from emomusic.queues import DropOldestQueue, Inbox, RateLimiter, StreamGate
from emomusic.service.publishers import Fanout, LogPublisher
from emomusic.service.systemd import Notifier
from emomusic.service.threadnames import name_threads
from emomusic.service.workers import AnalyzerFactory, AnalyzerWorker, Tee, registered_analyzers
from emomusic.sources.base import Source
from emomusic.sources.camera import CameraSource
from emomusic.sources.microphone import AudioFileSource, MicrophoneSource
from emomusic.sources.microphone import describe_kind as audio_kind
from emomusic.sources.resolve import resolve_camera, resolve_microphone
from emomusic.sources.samples import SampleMediaError

if TYPE_CHECKING:
    from emomusic.mqtt.bridge import MqttBridge
    from emomusic.music.controller import MusicController
    from emomusic.web.server import WebServer

log = logging.getLogger("emomusic.app")


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
        publishers: Iterable[Publisher] = (),
        analyzers: dict[str, AnalyzerFactory] | None = None,
        notifier: Notifier | None = None,
        music: bool = True,
        web: bool = True,
        persist: bool = True,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.cfg = cfg
        self.fast = fast
        self.persist = persist  # analyzers may keep what they learn (a replay's must not)
        self.loop = loop
        self.clock: Callable[[], float] = time.monotonic
        self.notifier = notifier or Notifier()
        self.stop_event = stop_event or threading.Event()  # the CLI's, so a SIGTERM during set-up counts
        self.controls = Controls.restore(cfg.player.mode, cfg.player.volume, cfg.player.fixed_mood,
                                         cfg.state_dir / CONTROLS_FILE)
        self.profile = ListenerProfile(cfg.state_dir / PROFILE_FILE)  # feedback, calibration, track likes
        self.commands: queue.Queue[Command] = queue.Queue(maxsize=100)
        self.dropped_commands = 0
        self._warnings = RateLimiter(burst=1, interval_s=10.0)
        self.fusion = Fusion(cfg.fusion)
        self.observations: DropOldestQueue[Observation] = DropOldestQueue(1000, "observations")
        self.sources: list[Source] = []
        self.gate = StreamGate()  # keeps fast-replayed files in step
        self.workers: list[AnalyzerWorker] = []
        self.last_state: FusedState | None = None
        self.playback = PlaybackGuard(cfg.voice.music_margin_db)
        self._fusion_thread = threading.Thread(target=self._fusion_loop, name="fusion", daemon=True)
        self._fusion_lock = threading.Lock()
        # The publishers: the log always, MQTT and the page as configured, and the caller's.
        self.bridge: MqttBridge | None = None
        if cfg.mqtt.enabled if mqtt is None else mqtt:
            from emomusic.mqtt.bridge import MqttBridge
            from emomusic.mqtt.link import MqttSettings

            self.bridge = MqttBridge(MqttSettings.of(cfg), self.submit_command, self.submit_observation)
        self.web: WebServer | None = None
        if cfg.web.enabled and web:
            from emomusic.analyze.snapshot import Snapshot
            from emomusic.web.server import WebServer, WebSettings

            b = self.bridge if self.bridge is not None and self.bridge.house is not None else None  # the house
            self.web = WebServer(WebSettings.of(cfg), Snapshot(cfg), self.submit_command, self.profile.banned,
                                 *((b.house.snapshot, b.send_to_room) if b is not None and b.house else (None, None)))
        self.out = Fanout([LogPublisher(), *(p for p in (self.bridge, self.web) if p is not None), *publishers])
        self.player: MusicController | None = None  # the music stage, when enabled
        if cfg.player.enabled and music:
            from emomusic.music.controller import MusicController
            from emomusic.music.settings import MusicSettings

            self.player = MusicController(MusicSettings.of(cfg), self.playback, self.out, controls=self.controls,
                                          profile=self.profile)
        if cfg.house.follow and self.player is not None and self.bridge is not None and self.bridge.house is not None:
            from emomusic.house.follow import Follower  # music that follows the listener: hears state and player
            b, h, house = self.bridge, cfg.house, self.bridge.house
            self.out.publishers.append(Follower(cfg.device_id, cfg.device.room, h.left_after_s, h.follow_window_s,
                                                self.player.handoff, b.offer_handoff, b.take_handoff,
                                                house.handoffs, self.submit_command))
        self.fed: list[tuple[Source, AnalyzerWorker]] = []  # each analyzer's worker and the source feeding it
        self._build_stages(registered_analyzers() if analyzers is None else analyzers, camera, microphone)

    # -- construction ---------------------------------------------------------------------------
    def _build_stages(self, factories: dict[str, AnalyzerFactory], camera: str | None, microphone: str | None) -> None:
        """A source for each kind the registered modalities read (config.modalities), feeding each of
        their analyzers' workers."""
        for source_name, wanted in (("camera", camera), ("microphone", microphone)):
            modalities = [m.name for m in fed_by(source_name) if m.name in factories]
            section = self.cfg.camera if source_name == "camera" else self.cfg.microphone
            if not section.enabled:
                log.info("%s disabled in config", source_name)
            elif not modalities:
                log.warning("no analyzer reads the %s: it is not started", source_name)
            else:
                self._build_source(source_name, wanted, {name: factories[name] for name in modalities})

    def _build_source(self, source_name: str, wanted: str | None, factories: dict[str, AnalyzerFactory]) -> None:
        cfg = self.cfg
        # built here, so a missing or broken model file fails at start-up (ModelError), not in a thread
        firsts = {name: f(cfg, self.playback, self.persist) for name, f in factories.items()}
        section = cfg.camera if source_name == "camera" else cfg.microphone
        inboxes: dict[str, DropOldestQueue[Sensed]] = {
            name: DropOldestQueue(section.queue_size, source_name if len(factories) == 1 else f"{source_name}/{name}")
            for name in factories}
        out: Inbox[Sensed] = next(iter(inboxes.values())) if len(inboxes) == 1 else Tee(list(inboxes.values()))
        try:
            spec = (resolve_camera(wanted or cfg.camera.source, cfg.state_dir, self.stop_event.is_set)
                    if source_name == "camera"
                    else resolve_microphone(wanted or cfg.microphone.source, cfg.state_dir, self.stop_event.is_set))
        except SampleMediaError as e:  # no device and no sample: these modalities are off, the rest runs
            detail = f"no {source_name} found, and {e}; {', '.join(factories)} analysis is off (free space or " \
                     "set device.state_dir / EMOMUSIC_STATE_DIR to a writable folder)"
            log.error("%s", detail)
            self._on_status(source_name, "failed", detail)
            return
        source = self._source(source_name, spec, out)
        log.info("%s: %s -> %s", source_name, redact(spec), ", ".join(f"{name} analyzer" for name in factories))
        if self.fast:
            self.gate.register(source.source_name)
            source.gate = self.gate
        self.sources.append(source)
        for name, factory in factories.items():
            worker = AnalyzerWorker(name, functools.partial(factory, cfg, self.playback, self.persist), inboxes[name],
                                    self.observations, block_output=self.fast, on_status=self._on_status,
                                    first=firsts[name])
            self.workers.append(worker)
            self.fed.append((source, worker))

    def _source(self, source_name: str, spec: str, out: Inbox[Sensed]) -> Source:
        cfg, loop = self.cfg, self.loop
        if source_name == "camera":
            return CameraSource(spec, out, analysis_fps=cfg.camera.analysis_fps,
                                loop=cfg.camera.loop if loop is None else loop, width=cfg.camera.width,
                                height=cfg.camera.height, fast=self.fast, on_status=self._on_status,
                                stall_s=cfg.camera.stall_s)
        if audio_kind(spec) == "file":
            return AudioFileSource(spec, out, block_ms=cfg.microphone.block_ms,
                                   loop=cfg.microphone.loop if loop is None else loop, fast=self.fast,
                                   on_status=self._on_status)
        return MicrophoneSource(spec, out, block_ms=cfg.microphone.block_ms, stall_s=cfg.microphone.stall_s,
                                on_status=self._on_status)

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
        """A source's status is each of its modalities'; an analyzer's (by modality name) its own."""
        for modality in [w.analyzer_name for s, w in self.fed if s.source_name == name] or [name]:
            self.out.on_modality_status(modality, status, detail)
            if status == "disabled":  # needs a person: also on …/error, where automations watch for faults
                self.out.on_fault(modality, detail)

    # -- stages ---------------------------------------------------------------------------------
    def _emit(self, now: float) -> None:
        with self._fusion_lock:
            state = self.fusion.update(now)
        self.last_state = state
        self.out.on_state(state)
        if self.player is not None:
            self.player.on_state(state)

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
        marks = [w.progress_t for s, w in self.fed if not ended(s) or not w.idle]
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
            self.out.on_refusal("player/set", f"'{cmd.value}' does nothing: {why}")  # the log, …/error
        if self.player is not None:
            self.player.apply(cmd)
        self._publish_controls()

    def _feel(self, label: str) -> None:
        """The listener says how they feel: the state follows at once (strong evidence that fades
        slowly), the face's calibration learns from what it read just before, and the voice what the
        voice that spoke just before sounds like so."""
        now = self.clock()
        paired = self.profile.feel(label, now)
        for w in self.workers:  # the voice learns this voice's sound of it (voice/personal.py)
            w.tell(label, now)
        log.info("listener feels %s: calibration pairs now %s", label,
                 ", ".join(f"{m} {n}" for m, n in paired.items()) or "none (no recent face)")
        self.submit_observation(Observation(FEEDBACK_MODALITY, now, {label: 1.0}, 1.0))

    def _publish_controls(self) -> None:
        self.out.on_controls(self.controls.mode, self.controls.volume, self.controls.mood)

    # -- lifecycle ------------------------------------------------------------------------------
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
        name_threads()  # each stage by its name in top -H and ps -L

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
