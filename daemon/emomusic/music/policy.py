"""Which tracks to queue: match the mood, regulate it (iso principle), a fixed mood, or nothing.

Everything happens on the valence/arousal plane where both emotions and tracks live.
- match: the tracks nearest the listener's current position.
- regulate: the iso principle from music therapy: the first track meets the listener where they
  are, each next one steps toward the target by at most ``regulate_step``.
- fixed: the tracks nearest the chosen mood. off: nothing.
Recently played tracks are left out (while enough others remain); disliked ones always. The
listener's opinion of a track moves it at most ``PREFERENCE_REACH`` nearer (liked) or farther
(skipped early): likes make a track more likely *near its mood*, never far from it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from emomusic.music.library import Track

Point = tuple[float, float]
PREFERENCE_REACH = 0.15  # valence/arousal distance a full like (+1) is worth


@dataclass(frozen=True)
class Plan:
    tracks: list[Track]
    waypoints: list[Point]
    reason: str


def distance(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def iso_path(start: Point, target: Point, step: float, n: int) -> list[Point]:
    """``n`` waypoints from ``start`` toward ``target``, at most ``step`` apart, stopping at the target."""
    d = distance(start, target)
    out = []
    for k in range(n):
        f = min(1.0, k * step / d) if d > 0 else 1.0
        out.append((start[0] + f * (target[0] - start[0]), start[1] + f * (target[1] - start[1])))
    return out


def pick(waypoints: Sequence[Point], tracks: Sequence[Track], avoid: set[int],
         prefer: Mapping[int, float] | None = None, banned: Collection[int] = ()) -> list[Track]:
    """For each waypoint, the nearest track not yet used (nor recently played, if others remain),
    distances shortened by the listener's preference; banned tracks never."""
    prefer = prefer or {}
    chosen: list[Track] = []
    used: set[int] = set(banned)
    for w in waypoints:
        pool = [t for t in tracks if t.id not in used and t.id not in avoid]
        if not pool:
            pool = [t for t in tracks if t.id not in used]
        if not pool:
            break
        best = min(pool, key=lambda t: (distance((t.valence, t.arousal), w) - PREFERENCE_REACH * prefer.get(t.id, 0.0),
                                        t.id))
        chosen.append(best)
        used.add(best.id)
    return chosen


def plan(mode: str, position: Point, tracks: Sequence[Track], recent: set[int], *, n: int,
         target: Point, step: float, fixed: Point, prefer: Mapping[int, float] | None = None,
         banned: Collection[int] = ()) -> Plan:
    """The upcoming queue for ``mode`` with the listener at ``position``."""
    if mode == "off" or not tracks:
        return Plan([], [], "player off" if mode == "off" else "library is empty")
    if mode == "match":
        waypoints = [position] * n
        reason = f"match: nearest to the listener at v={position[0]:+.2f} a={position[1]:+.2f}"
    elif mode == "regulate":
        waypoints = iso_path(position, target, step, n)
        reason = (f"regulate: from v={position[0]:+.2f} a={position[1]:+.2f} toward v={target[0]:+.2f} "
                  f"a={target[1]:+.2f} in steps of {step:.2f}")
    elif mode == "fixed":
        waypoints = [fixed] * n
        reason = f"fixed: nearest to v={fixed[0]:+.2f} a={fixed[1]:+.2f}"
    else:
        raise ValueError(f"unknown mode {mode!r}")
    if banned:
        reason += f"; {len(banned)} disliked left out"
    return Plan(pick(waypoints, tracks, recent, prefer, banned), waypoints, reason)
