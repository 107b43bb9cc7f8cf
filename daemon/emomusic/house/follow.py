"""Music that follows the listener from room to room (``house.follow``, off by default).

Room A's daemon sees its listener leave (no face for ``house.left_after_s``) while its music plays: it
offers its music to the house, retained on ``<base>/A/handoff`` (mode, fixed mood, volume, what played,
the next track of its plan, when the face was last seen). Room B's daemon sees a face appear within
``house.follow_window_s`` of that: it takes the music over (same mode, mood and volume, A's history,
A's next track) and marks the offer taken (``{"taken_by": …}`` on the same topic); A sees its offer
taken and pauses. Both rooms log why. A listener who comes back to A before anyone took it withdraws
the offer (the topic is cleared). The offer usually lands *after* the face appeared in B (A waits
``left_after_s`` to be sure, and the broker delivers when it does), so B keeps looking for one for
``left_after_s`` after the face appeared. Only what the retained topics carry is used: no protocol
beyond them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emomusic.commands import Command, Handover
from emomusic.messages import FusedState, PlayerStatus, Quiet

log = logging.getLogger("emomusic.house")

FACE_FRESH_S = 2.0  # a face observation this recent means someone is here
SLACK_S = 5.0  # two rooms' clocks and cameras disagree by this much about who was seen first
MAX_HISTORY = 50


@dataclass(frozen=True)
class Handoff:
    """A room's music, offered to the house when its listener left."""

    device: str
    room: str
    mode: str
    mood: str
    volume: int
    history: tuple[str, ...]  # track paths, oldest first
    next: str  # the next track of its plan ("" when none)
    left: float  # wall time the listener's face was last seen in that room

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "room": self.room, "mode": self.mode, "mood": self.mood, "volume": self.volume,
                "history": list(self.history), "next": self.next, "left": round(self.left, 1)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Handoff:
        """Raises ValueError (KeyError, TypeError) for anything but what ``to_json`` writes."""
        volume = int(data["volume"])
        history = tuple(str(p) for p in data["history"])[-MAX_HISTORY:]
        if not 0 <= volume <= 100 or not math.isfinite(float(data["left"])):
            raise ValueError("volume or time out of range")
        return cls(str(data["device"]), str(data["room"]), str(data["mode"]), str(data["mood"]), volume,
                   history, str(data["next"]), float(data["left"]))


class Presence:
    """Whether this room's listener is here, from the fused state's face."""

    def __init__(self, left_after_s: float) -> None:
        self.left_after_s = left_after_s
        self.here = False
        self.last_seen = -math.inf
        self.gone_said = True  # nobody was here at start: no "left" before someone came

    def update(self, face_seen: bool, now: float) -> str | None:
        """'arrived' when a face appears after none, 'left' once after ``left_after_s`` without one."""
        if face_seen:
            self.last_seen = now
            if not self.here:
                self.here, self.gone_said = True, False
                return "arrived"
            return None
        if self.here and now - self.last_seen >= self.left_after_s:
            self.here = False
        if not self.here and not self.gone_said:
            self.gone_said = True
            return "left"
        return None


class Follower(Quiet):
    """A publisher (it hears the fused state and the player) that hands the music between rooms.

    ``music``: this room's music as a handoff, or None when nothing plays; ``offer``/``take``: publish the
    offer on our own topic (None: withdraw it) / mark another room's offer taken; ``offers``: the house's
    open offers (the house view); ``submit``: commands into this daemon, as if the user had sent them."""

    def __init__(self, me: str, room: str, left_after_s: float, window_s: float,
                 music: Callable[[], tuple[tuple[str, ...], str] | None],
                 offer: Callable[[dict[str, Any] | None], None], take: Callable[[str], None],
                 offers: Callable[[], list[dict[str, Any]]], submit: Callable[[Command], None],
                 wall: Callable[[], float] = time.time) -> None:
        self.me, self.room, self.window_s = me, room, window_s
        self.presence = Presence(left_after_s)
        self.music, self.offer, self.take, self.offers = music, offer, take, offers
        self.submit, self.wall = submit, wall
        self.player: PlayerStatus | None = None
        self.offered = False
        self.arrived: float | None = None  # wall time a face appeared here, while an offer may still come

    def on_player(self, status: PlayerStatus) -> None:
        self.player = status

    def on_state(self, state: FusedState) -> None:
        face = state.modalities.get("face")
        now = time.monotonic()
        event = self.presence.update(face is not None and face.age_s <= FACE_FRESH_S, now)
        if event == "left":
            self.arrived = None
            self._left(now)
        elif event == "arrived":
            self._arrived()
        if self.arrived is not None:
            self._look_for_offer()
        self._check_taken()

    def _left(self, now: float) -> None:
        st, music = self.player, self.music()
        if st is None or st.state != "playing" or music is None:
            return
        history, nxt = music
        last_seen = self.wall() - (now - self.presence.last_seen)
        h = Handoff(self.me, self.room, st.mode, st.fixed_mood, st.volume, history, nxt, last_seen)
        self.offer(h.to_json())
        self.offered = True
        log.info("the listener left %s (no face for %.0f s): its music is offered to the house",
                 self.room or self.me, self.presence.left_after_s)

    def _arrived(self) -> None:
        if self.offered:  # back before another room took it: the music stays here
            self.offered = False
            self.offer(None)
            log.info("the listener is back in %s: its music is no longer offered", self.room or self.me)
            return
        self.arrived = self.wall()

    def _look_for_offer(self) -> None:
        """Take over the music of a room the listener left shortly before appearing here."""
        assert self.arrived is not None
        if self.wall() - self.arrived > self.presence.left_after_s + SLACK_S:  # the room left would have offered
            self.arrived = None
            return
        fresh = []
        for data in self.offers():
            if "taken_by" in data:
                continue
            try:
                h = Handoff.from_json(data)
            except (ValueError, KeyError, TypeError):
                continue
            if h.device != self.me and -SLACK_S <= self.arrived - h.left <= self.window_s:
                fresh.append(h)
        if not fresh:
            return
        self.arrived = None
        h = max(fresh, key=lambda x: x.left)
        log.info("the listener came from %s: taking over its music (%s, next '%s')", h.room or h.device, h.mode,
                 h.next.rsplit("/", 1)[-1] or "from the plan")
        self.take(h.device)
        self.submit(Command("takeover", h.room or h.device, h.next, h.history, Handover(h.mode, h.mood, h.volume)))

    def _check_taken(self) -> None:
        """Our offer taken by another room: pause here."""
        if not self.offered:
            return
        mine = next((o for o in self.offers() if o.get("device") == self.me), None)
        if mine is None or "taken_by" not in mine:
            return
        self.offered = False
        log.info("the listener went to %s: pausing here", mine.get("taken_room") or mine["taken_by"])
        self.submit(Command("player", "pause"))
