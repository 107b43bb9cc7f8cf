"""When the queue is re-planned, and from where: the listener as the fused state places them.

The queue follows the listener only when they have moved by ``replan_distance`` and held there for
``dwell_s`` (a glance or one odd sentence does not change the music), at the end of a track, or on
a command. At start-up match and regulate wait up to ``LISTENER_WAIT_S`` for a first sight of the
listener, so the first track already meets them (the iso principle starts where they are). The
no-repeat history lives here too: what played is left out of the next plans (``policy.no_repeat``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence

from emomusic.config.music import PlayerConfig
from emomusic.listener.profile import ListenerProfile
from emomusic.messages import FusedState
from emomusic.music.library import Track
from emomusic.music.policy import Plan, Point, distance, no_repeat, plan

log = logging.getLogger("emomusic.music")

LISTENER_WAIT_S = 15.0  # match/regulate wait this long for a first sight of the listener before playing


class Planner:
    def __init__(self, pc: PlayerConfig, circumplex: Mapping[str, tuple[float, float]],
                 profile: ListenerProfile) -> None:
        self.pc = pc
        self.circumplex = circumplex
        self.profile = profile
        self.history: deque[int] = deque(maxlen=max(1, pc.history))
        self.position: Point | None = None  # the listener, from the fused state
        self.planned_from: Point = (0.0, 0.0)
        self._candidate_since: float | None = None
        self._hold_until = -float("inf")  # a song chosen by hand on a shared player: no re-plan before
        self._first_step: float | None = None

    def hold(self, now: float) -> None:
        """A person chose a song: no re-plan for ``dwell_s``."""
        self._hold_until = now + self.pc.dwell_s

    def settle(self) -> None:
        """Plan from where the listener is now (a track ends, the music starts)."""
        if self.position is not None:
            self.planned_from = self.position

    def waiting(self, now: float, mode: str) -> bool:
        """Whether match/regulate should still wait for a first sight of the listener."""
        if self.position is not None or mode not in ("match", "regulate"):
            return False
        if self._first_step is None:
            self._first_step = now
            log.info("waiting up to %.0f s for the listener before the first track", LISTENER_WAIT_S)
        return now - self._first_step < LISTENER_WAIT_S

    def follow(self, state: FusedState | None, now: float, mode: str) -> str | None:
        """Track the listener; the reason to re-plan once they have moved and held it, else None."""
        if state is None or state.emotion == "unknown" or now < self._hold_until:
            return None
        self.position = (state.valence, state.arousal)
        if distance(self.position, self.planned_from) < self.pc.replan_distance:
            self._candidate_since = None
            return None
        if self._candidate_since is None:
            self._candidate_since = now
        if now - self._candidate_since < self.pc.dwell_s or mode not in ("match", "regulate"):
            return None
        old, self.planned_from, self._candidate_since = self.planned_from, self.position, None
        return (f"listener moved from v={old[0]:+.2f} a={old[1]:+.2f} to v={self.position[0]:+.2f} "
                f"a={self.position[1]:+.2f} and held it for {self.pc.dwell_s:.0f} s")

    def plan(self, mode: str, fixed_mood: str, tracks: Sequence[Track], current: Track | None,
             unplayable: set[int]) -> Plan:
        """The next queue: the policy's plan from ``planned_from``, recent and unplayable tracks left out."""
        banned, likes = self.profile.banned(), self.profile.preferences()
        playable = sum(t.path not in banned and t.id not in unplayable for t in tracks)
        recent = (no_repeat(list(self.history), playable, self.pc.history) | unplayable
                  | ({current.id} if current else set()))
        fixed = self.circumplex[fixed_mood]
        return plan(mode, self.planned_from, tracks, recent, n=self.pc.queue_length,
                    target=self.pc.regulate_target, step=self.pc.regulate_step, fixed=(fixed[0], fixed[1]),
                    prefer={t.id: likes[t.path] for t in tracks if t.path in likes},
                    banned={t.id for t in tracks if t.path in banned}, effects=self.profile.effects,
                    continuing=current is not None)
