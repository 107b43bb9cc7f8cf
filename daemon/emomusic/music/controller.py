"""The music stage: a sink for fused states that keeps a queue of tracks playing.

It runs in its own thread (SDL's mixer wants one thread) and re-plans the queue only when the
listener's position has moved by ``replan_distance`` and held there for ``dwell_s``, or when a
track ends — never cutting the current track for a change of mood. Recently played tracks are not
repeated. Every decision is logged with its reason, and the player's status goes to the publishers.
The player is whatever backend ``player.backend`` names (``music.players``), behind one port.
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable

from emomusic.audio import PlaybackGuard
from emomusic.commands import Command, Controls
from emomusic.listener.profile import ListenerProfile
from emomusic.messages import FusedState, PlayerStatus, Publisher, QueuedTrack, Quiet
from emomusic.music.library import Library, Track
from emomusic.music.lifecycle import RetryingStage
from emomusic.music.observer import PlayObserver
from emomusic.music.planner import Planner
from emomusic.music.players import backend
from emomusic.music.players.base import Player, PlayerEvent, PlayerOffline
from emomusic.music.policy import Point
from emomusic.music.scan import open_library, refresh_in_background
from emomusic.music.settings import MusicSettings

log = logging.getLogger("emomusic.music")

EMPTY_RETRY_S = 30.0  # with nothing playable (empty library, every file gone), how often to look again
EARLY_SKIP_S = 20.0  # a skip this soon after a track started counts as a mild dislike of it


class MusicController(RetryingStage):
    def __init__(self, ms: MusicSettings, guard: PlaybackGuard | None = None, out: Publisher | None = None,
                 clock: Callable[[], float] = time.monotonic, controls: Controls | None = None,
                 profile: ListenerProfile | None = None) -> None:
        super().__init__("music", clock)
        self.ms = ms
        self.pc = ms.player
        self.backend = backend(self.pc.backend)
        self.guard = guard or PlaybackGuard()
        self.out: Publisher = out or Quiet()  # the player's status, faults, commands that cannot act
        self.unplayable: set[int] = set()
        self._retry_at = -float("inf")
        self.clock = clock
        self.events: queue.Queue[Command] = queue.Queue(maxsize=100)
        self.rescan_event = threading.Event()
        self.controls = controls or Controls(self.pc.mode, self.pc.volume, self.pc.fixed_mood)
        self.queue: list[Track] = []
        self.current: Track | None = None
        self.started_at = 0.0  # when the current track started (clock)
        self.profile = profile or ListenerProfile(None)  # likes, dislikes, what tracks do to the listener
        self.observer = PlayObserver(self.profile, clock)
        self.planner = Planner(self.pc, ms.circumplex, self.profile)
        self._latest: FusedState | None = None
        self.user_paused = False
        self.decisions: list[str] = []  # the reasons, newest last (bounded)
        self.played: list[str] = []  # titles in play order (bounded), for status and tests
        self.played_paths: list[str] = []  # the same as paths: what a handoff to another room carries
        self.library: Library | None = None
        self.player: Player | None = None
        self._last_published: PlayerStatus | None = None

    # The controls are set by whoever applies a command (the daemon, a takeover here, or MPD's own volume).
    @property
    def mode(self) -> str:
        return self.controls.mode

    @property
    def volume(self) -> int:
        return self.controls.volume

    @property
    def fixed_mood(self) -> str:
        return self.controls.mood

    # -- called from other threads ----------------------------------------------------------------
    def on_state(self, state: FusedState) -> None:
        self._latest = state

    def apply(self, cmd: Command) -> None:
        """Act on a command whose control change (if any) is already in ``controls``."""
        try:
            self.events.put_nowait(cmd)
        except queue.Full:
            log.warning("music command queue full; dropped %s", cmd)

    def stop(self) -> None:
        self.stop_event.set()

    def request_rescan(self) -> None:
        self.rescan_event.set()

    # -- helpers ----------------------------------------------------------------------------------
    def _decide(self, reason: str) -> None:
        log.info("%s", reason)
        self.decisions = [*self.decisions[-49:], reason]

    def _fixed_point(self) -> Point:
        v, a = self.ms.circumplex[self.fixed_mood]
        return (v, a)

    def _open_library(self) -> Library:
        # A player with its own library (MPD) lists it when it is reached (its "back" event), not before.
        rescan = self.ms.library.scan_on_start and not self.backend.lists_when_reached
        # Tracks an older placement model placed are placed again in the background, after the start.
        return open_library(self.ms, rescan=rescan, refresh=False, listing=self.backend.scan_library,
                            should_stop=self.stop_event.is_set)[0]

    def _replan(self, reason: str) -> None:
        assert self.library is not None
        p = self.planner.plan(self.mode, self.fixed_mood, self.library.tracks(), self.current, self.unplayable)
        self.queue = p.tracks
        titles = ", ".join(t.title for t in p.tracks) or "nothing"
        self._decide(f"{reason}; {p.reason}; queue: {titles}")

    def _play_next(self, reason: str) -> None:
        assert self.library is not None
        self.observer.ended(self._latest)
        for _ in range(len(self.queue) + 3):
            if not self.queue:
                self._replan(reason)
                if not self.queue:
                    self.current = None
                    return
            track = self.queue.pop(0)
            try:
                self._player.play(track.path)
            except PlayerOffline:  # MPD restarting: the track is fine, the player will come back
                self.queue.insert(0, track)
                return
            except Exception as e:  # deleted or corrupted since the scan: skip it for good
                log.warning("skipping %s", e)
                self.unplayable.add(track.id)  # remembered here too: the index may not be writable (disk full)
                try:
                    self.library.mark_unplayable(track.id, str(e))
                except sqlite3.Error as db_error:
                    if self._step_errors.allow(f"mark: {db_error}"):
                        log.warning("cannot record that %s is unplayable in the library index (%s); "
                                    "skipping it until the daemon restarts", track.path, db_error)
                continue
            self._now_playing(track, reason)
            return
        self.current = None

    def _now_playing(self, track: Track, reason: str) -> None:
        self.current, self.started_at = track, self.clock()
        self.played = [*self.played[-99:], track.title]
        self.played_paths = [*self.played_paths[-49:], track.path]
        if track.id < 0:  # a song the library does not know (started on MPD by someone)
            self._decide(f"playing '{track.title}' by {track.artist or 'unknown'} (not in the library): {reason}")
            return
        self.observer.started(track, self._latest)
        self.planner.history.append(track.id)
        self._decide(f"playing '{track.title}' by {track.artist or 'unknown'} (v={track.valence:+.2f} "
                     f"a={track.arousal:+.2f}, placed by {track.source}): {reason}")

    # -- a player shared with people (MPD) --------------------------------------------------------
    def _player_event(self, ev: PlayerEvent) -> None:
        if ev.kind == "advanced":
            self._other_song(ev)
        elif ev.kind in ("paused", "resumed"):
            self.user_paused = ev.kind == "paused"
            self._decide(f"{ev.kind} on the player by someone else")
        elif ev.kind == "volume" and ev.volume != self.controls.volume:
            self.controls.volume = ev.volume
            self.controls.save()
        elif ev.kind in ("database", "back"):  # MPD's library, read again (incrementally) before what it plays
            self._rescan()
        elif ev.kind == "lost":
            self._fault(ev.error)

    def _other_song(self, ev: PlayerEvent) -> None:
        """The player moved on by itself to the next pick, or a person chose a song: that one is
        respected (never cut, no re-plan for dwell_s) and is a mild like."""
        previous = self.current
        if previous is not None and ev.by_hand and ev.ours and self.clock() - self.started_at < EARLY_SKIP_S:
            self._opinion("skip")  # "next" pressed early on someone's phone
        self.observer.ended(self._latest)
        known = self.library.track(ev.path) if self.library is not None else None
        track = known or Track(-1, ev.path, ev.title, ev.artist, 0.0, math.nan, math.nan, "none", "")
        self.queue = [t for t in self.queue if t.path != ev.path]
        if ev.by_hand and not ev.ours:
            self.planner.hold(self.clock())
            if known is not None:
                self.profile.track_feedback(known.path, "pick")
            self._now_playing(track, f"chosen by hand on the player: respected, no re-plan for {self.pc.dwell_s:.0f} s")
            return
        self._now_playing(track, "next in the player's queue")
        self.planner.settle()
        self._replan(f"'{previous.title}' ended" if previous is not None else "following the player")

    # -- the loop ---------------------------------------------------------------------------------
    def _handle(self, cmd: Command) -> None:
        if cmd.kind == "mode":
            if self.mode == "off":
                self._player.stop()
                self.current, self.queue = None, []
                self._decide("mode off: stopped")
            else:
                self._replan(f"mode set to {self.mode}")
        elif cmd.kind == "mood":
            self._replan(f"fixed mood set to {self.fixed_mood}")
        elif cmd.kind == "volume":
            self._player.set_volume(self.volume / 100)
        elif cmd.kind == "player":
            self._player_action(str(cmd.value), cmd.target)
        elif cmd.kind == "takeover":
            self._take_over(cmd)

    def handoff(self) -> tuple[tuple[str, ...], str] | None:
        """What played and the next track of the plan, while something plays (house/follow.py; read from
        the fusion thread: copies of two lists, no library access)."""
        queue = list(self.queue)
        return None if self.current is None else (tuple(self.played_paths), queue[0].path if queue else "")

    def _take_over(self, cmd: Command) -> None:
        """The listener came from another room: its controls, history and next track, all in this step."""
        assert self.library is not None
        if cmd.handover is not None and self.controls.adopt(cmd.handover):
            self._player.set_volume(self.volume / 100)
            self.out.on_controls(self.mode, self.volume, self.fixed_mood)
            self._replan(f"mode {self.mode} taken over from {cmd.value}")
        self.planner.history.extend(t.id for path in cmd.paths if (t := self.library.track(path)) is not None)
        nxt = self.library.track(cmd.target) if cmd.target else None
        self.queue = [nxt, *(t for t in self.queue if t.id != nxt.id)] if nxt is not None else []
        self.user_paused = False
        self._play_next(f"the listener came from {cmd.value}: its music goes on here")

    def _player_action(self, action: str, target: str) -> None:
        """play, pause, toggle, skip, like, dislike (``target``: a track other than the playing one)."""
        if action == "toggle":
            action = "pause" if self._player.playing else "play"
        if action == "pause":
            self.user_paused = True
            self._player.pause()
        elif action == "play":
            self.user_paused = False
            if self._player.current is not None:
                self._player.resume()
            elif self.mode != "off":
                self._play_next("play requested")
        elif action == "skip" and self.mode != "off":
            self.user_paused = False
            if self.current is not None and self.clock() - self.started_at < EARLY_SKIP_S:
                self._opinion("skip")
            self._play_next("skip requested")
        elif action in ("like", "dislike"):
            self._opinion(action, target)

    def _named(self, name: str) -> Track | None:
        assert self.library is not None
        return self.library.track(name) or next(
            (t for t in self.library.tracks(playable_only=False) if t.title.casefold() == name.casefold()), None)

    def _opinion(self, kind: str, target: str = "") -> None:
        """Like, dislike or an early skip of the current track (or of the named one), kept in the
        listener profile. A dislike of the playing track skips it now; a disliked track stays out of
        every queue until it is liked again."""
        playing = self.current if self._player.current is not None else None
        track = self._named(target) if target else playing
        if track is None:
            why = f"no track {target!r} in the library" if target else "no track is playing"
            log.warning("%s: %s", kind, why)
            self.out.on_refusal("player/set", f"'{kind}' does nothing: {why}")
            return
        op = self.profile.track_feedback(track.path, kind)
        what = {"like": "liked", "dislike": "disliked", "skip": "skipped early (a mild dislike)"}[kind]
        self._decide(f"'{track.title}' {what}: {op.likes} likes, {op.dislikes} dislikes, {op.skips} early skips")
        if kind == "dislike":
            self.queue = [t for t in self.queue if t.path != track.path]
            if track is not playing:
                return
            if self.mode != "off":
                self.user_paused = False
                self._play_next(f"'{track.title}' disliked")
            else:
                self._player.stop()

    def step(self) -> None:
        """One iteration: the player's news, commands, the listener, the end of a track, the published state."""
        for event in self._player.poll():
            self._player_event(event)
        self._commands()
        if self.rescan_event.is_set():
            self.rescan_event.clear()
            self._rescan()
        now = self.clock()
        moved = self.planner.follow(self._latest, now, self.mode)
        if moved is not None:
            self._replan(moved)
        if self.mode != "off" and not self.user_paused:
            self._keep_playing(now)
        # With SDL's dummy driver nothing is audible, so there is nothing for the microphone to hear.
        self.guard.set_playback(self._player.audible, self.volume / 100)
        if self.mode != "off":
            self._player.set_next([t.path for t in self.queue])  # MPD: the picks wait in its queue
        self._publish()

    def _commands(self) -> None:
        while True:
            try:
                cmd = self.events.get_nowait()
                self._handle(cmd)
            except queue.Empty:
                return
            except PlayerOffline as e:  # MPD restarting: say so, the command is not kept for later
                self.out.on_refusal("player/set", f"'{cmd.value}' not done: {e}")

    def _keep_playing(self, now: float) -> None:
        """The next track at the end of one; the first once the player is there (and the listener seen)."""
        if self._player.finished():
            self.planner.settle()
            self._queue_after_track_end()
        elif self._player.current is None and self._player.online and now >= self._retry_at \
                and not (self.current is None and self.planner.waiting(now, self.mode)):
            self.planner.settle()
            self._play_next("starting")
            if self.current is None:  # nothing playable: look again later, not four times a second
                self._retry_at = now + EMPTY_RETRY_S

    def _rescan(self) -> None:
        assert self.library is not None
        new, _ = open_library(self.ms, rescan=True, listing=self.backend.scan_library,
                              should_stop=self.stop_event.is_set)  # raises: the old one stays
        self.library, old = new, self.library
        old.close()
        self._retry_at = -float("inf")  # new music may be playable now
        self._replan("library re-scanned")

    def _queue_after_track_end(self) -> None:
        title = self.current.title if self.current else "track"
        self.observer.ended(self._latest)  # before the re-plan: it plans with what this play showed
        self._replan(f"'{title}' ended")
        self._play_next("next in queue")

    def status(self) -> PlayerStatus:
        cur = self.current if self.player is not None and self.player.current is not None else None
        state = "idle" if cur is None else ("paused" if self.player is not None and self.player.paused else "playing")
        error = self.start_error or (self.player.error if self.player is not None else None)
        if error is not None:
            state = "error"
        target: Point | None = None
        if self.mode == "regulate":
            target = self.pc.regulate_target
        elif self.mode == "fixed":
            target = self._fixed_point()
        elif self.mode == "match" and self.planner.position is not None:
            target = self.planner.planned_from
        known = cur is not None and cur.id >= 0
        return PlayerStatus(
            state, cur.title if cur else None, cur.artist if cur else None,
            round(cur.valence, 3) if cur and known else None, round(cur.arousal, 3) if cur and known else None,
            cur.source if cur and known else None, self.mode, self.fixed_mood, self.volume,
            (round(target[0], 3), round(target[1], 3)) if target else None, error,
            tuple(QueuedTrack(t.title, t.artist, round(t.valence, 3), round(t.arousal, 3)) for t in self.queue))

    def _publish(self) -> None:
        st = self.status()
        if st != self._last_published:
            self._last_published = st
            self.out.on_player(st)

    def _fault(self, error: str) -> None:
        self.out.on_fault("music", error)

    @property
    def _player(self) -> Player:
        assert self.player is not None, "the music stage has not started"
        return self.player

    def _open(self) -> None:
        self.library = self._open_library()
        if self.library.recovered_from is not None:
            self._fault(f"library index was corrupt: moved aside to {self.library.recovered_from.name} "
                        "and rebuilt by a rescan")
        self.player = self.backend.open(self.pc, self.ms.mpd_password, self.volume / 100, self.clock)
        if self.ms.library.scan_on_start and not self.backend.lists_when_reached:
            refresh_in_background(self.ms, self.stop_event.is_set)
        log.info("player ready (%s), mode %s", self.player.describe(), self.mode)

    def _close_quietly(self) -> None:
        if self.library is not None:
            self.library.close()
            self.library = None

    def _close(self) -> None:
        if self.player is not None:
            self.player.close()
        self._close_quietly()
        # A clean stop leaves "idle" retained, not the last "playing" or "error".
        self.start_error, self.current, self.queue = None, None, []
        self.out.on_player(self.status())
