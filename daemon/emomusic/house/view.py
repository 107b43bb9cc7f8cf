"""What this daemon knows of the house: every room's daemon under the same topic base, as their retained
topics tell it (``<base>/<device>/availability``, ``instance``, ``state``, ``player``), and the house mood.

No protocol of our own: a room is online while its availability says so (the broker's last will says
``offline`` when a daemon dies), and the **house mood** (``<base>/house/state``, retained) is published by
exactly one daemon, the online one with the lowest device id. When it goes offline every other daemon
sees it at once and the next one takes over at its next heartbeat. The mood is the state of the room
whose listener was seen most recently with a sure state (confidence at least ``house.sure``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("emomusic.house")

HOUSE = "house"  # <base>/house/state: not a device id
FOLLOWED = ("availability", "instance", "state", "player", "handoff")
MAX_ROOMS = 64  # a broker full of strangers cannot grow this without bound


@dataclass
class Room:
    """One daemon of the house, as its retained topics last said."""

    device: str
    room: str = ""
    online: bool = False
    state: dict[str, Any] | None = None
    player: dict[str, Any] | None = None
    sure_at: float = -math.inf  # wall time of its last sure state
    handoff: dict[str, Any] | None = None  # its music offered to the house, or taken (house/follow.py)

    def to_json(self) -> dict[str, Any]:
        s = self.state or {}
        p = self.player or {}
        return {"device": self.device, "room": self.room, "online": self.online,
                "emotion": s.get("emotion"), "confidence": s.get("confidence"),
                "valence": s.get("valence"), "arousal": s.get("arousal"),
                "player": {k: p.get(k) for k in ("state", "title", "artist", "mode", "volume") if k in p}}


class HouseView:
    """Thread-safe: messages arrive on paho's thread, the page and the heartbeat read it on theirs."""

    def __init__(self, base: str, me: str, sure: float, room: str = "", clock: Callable[[], float] = time.time) -> None:
        self.base, self.me, self.sure, self.clock = base, me, sure, clock
        self._rooms: dict[str, Room] = {me: Room(me, room)}  # (our own …/instance is the link's, not ours)
        self._lock = threading.Lock()
        self.mood_topic = f"{base}/{HOUSE}/state"

    def topics(self) -> list[str]:
        return [f"{self.base}/+/{sub}" for sub in FOLLOWED]

    def accepts(self, topic: str) -> bool:
        head, _, sub = topic.rpartition("/")
        base, _, device = head.rpartition("/")
        return base == self.base and sub in FOLLOWED and device not in ("", HOUSE)

    def on_message(self, topic: str, payload: bytes) -> None:
        """A retained topic of a room (ours included). A payload that is not what a daemon sends is ignored."""
        head, _, sub = topic.rpartition("/")
        device = head.rpartition("/")[2]
        text = payload.decode("utf-8", "replace").strip()
        with self._lock:
            room = self._rooms.get(device)
            if room is None:
                if len(self._rooms) >= MAX_ROOMS or not text:
                    return
                room = self._rooms[device] = Room(device)
            if sub == "availability":
                room.online = text == "online"
                return
            if sub == "handoff" and not text:  # a retained offer cleared
                room.handoff = None
                return
            try:
                data = json.loads(text) if text else None
            except ValueError:
                log.debug("house: %s is not JSON; ignored", topic)
                return
            if isinstance(data, dict):
                self._take(room, sub, data)

    def _take(self, room: Room, sub: str, data: dict[str, Any]) -> None:
        if sub == "instance":
            room.room = str(data.get("room") or "")[:64]
        elif sub == "state":
            room.state = data
            conf = data.get("confidence")
            if data.get("emotion") not in (None, "unknown") and isinstance(conf, int | float) and conf >= self.sure:
                room.sure_at = self.clock()
        elif sub == "player":
            room.player = data
        elif sub == "handoff":
            room.handoff = data | {"device": room.device}

    def rooms(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in sorted(self._rooms.values(), key=lambda r: r.device)]

    def leader(self) -> str | None:
        """The online daemon with the lowest device id: the one that publishes the house mood."""
        with self._lock:
            online = [d for d, r in self._rooms.items() if r.online]
        return min(online) if online else None

    def mood(self) -> dict[str, Any] | None:
        """The state of the online room whose listener was seen most recently with a sure state."""
        with self._lock:
            seen = [r for r in self._rooms.values() if r.online and r.state is not None and r.sure_at > -math.inf]
            if not seen:
                return None
            r = max(seen, key=lambda r: r.sure_at)
            s = r.state or {}
            return {"emotion": s.get("emotion"), "confidence": s.get("confidence"), "valence": s.get("valence"),
                    "arousal": s.get("arousal"), "room": r.room, "device": r.device,
                    "seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.sure_at))}

    def handoffs(self) -> list[dict[str, Any]]:
        """Every room's offer of its music, or the mark that another room took it (house/follow.py)."""
        with self._lock:
            return [dict(r.handoff) for r in self._rooms.values() if r.handoff is not None]

    def snapshot(self) -> dict[str, Any]:
        """``GET /api/house``."""
        return {"rooms": self.rooms(), "mood": self.mood(), "published_by": self.leader()}
