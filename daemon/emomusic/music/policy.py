"""Which tracks to queue: match the mood, regulate it (iso principle), a fixed mood, or nothing.

Everything happens on the valence/arousal plane where both emotions and tracks live.
- match: the tracks nearest the listener's current position.
- regulate: the iso principle from music therapy: the first track meets the listener where they
  are, each next one steps toward the target by at most ``regulate_step``. A re-plan while the
  session goes on (a track has played) starts one step on: the listener has been met already.
- fixed: the tracks nearest the chosen mood. off: nothing.
Recently played tracks are left out (at most half the library: :func:`no_repeat`); disliked ones
always. Match never picks a track more than ``MATCH_TOLERANCE`` farther than the nearest free one;
regulate never steps farther than ``regulate_step`` where a track within it exists. The
listener's opinion of a track moves it at most ``PREFERENCE_REACH`` nearer (liked) or farther
(skipped early): likes make a track more likely *near its mood*, never far from it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emomusic.listener.effects import Candidate, Effects, arrival
from emomusic.music.library import Track

Point = tuple[float, float]
PREFERENCE_REACH = 0.15  # valence/arousal distance a full like (+1) is worth
EXPLORE = 0.25  # closed loop: how much an untried track's uncertainty counts in its favour (sd units)


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


MATCH_TOLERANCE = PREFERENCE_REACH  # match: how much farther than the nearest free track a pick may be


def no_repeat(history: Sequence[int], playable: int, limit: int) -> set[int]:
    """The tracks not to queue again yet: the last ``min(limit, playable // 2)`` played. At most half
    of what is playable, so a small library always leaves a choice near the listener."""
    n = min(limit, playable // 2)
    return set(history[max(0, len(history) - n) :]) if n > 0 else set()


def _pool(tracks: Sequence[Track], used: set[int], avoid: set[int]) -> list[Track]:
    """The tracks still free: not yet used, nor recently played while others remain."""
    return [t for t in tracks if t.id not in used and t.id not in avoid] or [t for t in tracks if t.id not in used]


def _within(pool: list[Track], of: Point, reach: float) -> list[Track]:
    """The tracks placed within ``reach`` of ``of``; where there are none, the nearest (a sparse library)."""
    near = [t for t in pool if distance((t.valence, t.arousal), of) <= reach + 1e-9]
    return near or [min(pool, key=lambda t: (distance((t.valence, t.arousal), of), t.id))]


def pick(waypoints: Sequence[Point], tracks: Sequence[Track], avoid: set[int],
         prefer: Mapping[int, float] | None = None, banned: Collection[int] = (),
         steps_from: Point | None = None, step: float = math.inf) -> list[Track]:
    """For each waypoint, the nearest track not yet used (nor recently played, if others remain),
    distances shortened by the listener's preference; banned tracks never. Never more than
    ``MATCH_TOLERANCE`` farther than the nearest free track. With ``steps_from`` (regulate: the
    listener), each pick lies within ``step`` of where the listener is expected to be when it starts
    (the first: ``steps_from``; the next: the previous waypoint), where any track does."""
    prefer = prefer or {}
    chosen: list[Track] = []
    used: set[int] = set(banned)
    prev = steps_from
    for w in waypoints:
        pool = _pool(tracks, used, avoid)
        if not pool:
            break
        if prev is not None:
            pool = _within(pool, prev, step)
        nearest = min(distance((t.valence, t.arousal), w) for t in pool)
        pool = _within(pool, w, nearest + MATCH_TOLERANCE)
        best = min(pool, key=lambda t: (distance((t.valence, t.arousal), w) - PREFERENCE_REACH * prefer.get(t.id, 0.0),
                                        t.id))
        chosen.append(best)
        used.add(best.id)
        if prev is not None:
            prev = w
    return chosen


def learned_pick(mode: str, position: Point, tracks: Sequence[Track], avoid: set[int], *, n: int,
                 target: Point, step: float, effects: Effects, prefer: Mapping[int, float],
                 banned: Collection[int]) -> tuple[list[Track], list[Point]]:
    """Closed loop: track after track, the one whose *learned* effect is expected to bring the listener
    nearest the target (regulate) or to keep them where they are (match), optimistic about what is
    untried (a contextual bandit with an upper confidence bound). Regulate chooses among the tracks
    that draw *this* listener no farther than the iso principle's step from where they are expected to
    be (or the nearest, where none does); match among those no more than ``MATCH_TOLERANCE`` farther
    than the nearest. With effects exactly as placed this picks what the open loop would, or a track
    that gets as far within the same step."""
    learned = effects.responses([Candidate(t.path, (t.valence, t.arousal), t.artist) for t in tracks])
    heard = {t.id: (float(learned[t.path][0][0]), float(learned[t.path][0][1])) for t in tracks}
    sds = {t.id: learned[t.path][1] for t in tracks}
    goal = target if mode == "regulate" else position
    chosen: list[Track] = []
    path: list[Point] = []
    used: set[int] = set(banned)
    pos = position
    for _ in range(n):
        pool = _pool(tracks, used, avoid)
        if not pool:
            break
        # regulate: a step from where the listener is expected to be; match: near where they are
        anchor = pos if mode == "regulate" else position
        nearest = min(distance(heard[t.id], anchor) for t in pool)
        reach = max(step, nearest) if mode == "regulate" else nearest + MATCH_TOLERANCE
        scored = []
        for t in pool:
            if distance(heard[t.id], anchor) > reach + 1e-9:
                continue
            after = arrival(pos, np.asarray(heard[t.id]))
            cost = distance((float(after[0]), float(after[1])), goal) - EXPLORE * sds[t.id]
            if mode == "match":
                cost += distance(heard[t.id], pos)
            scored.append((cost - PREFERENCE_REACH * prefer.get(t.id, 0.0), t.id, t, after))
        _, _, best, after = min(scored, key=lambda s: (s[0], s[1]))
        chosen.append(best)
        used.add(best.id)
        path.append(pos)
        pos = (float(after[0]), float(after[1]))
    return chosen, path


def plan(mode: str, position: Point, tracks: Sequence[Track], recent: set[int], *, n: int,
         target: Point, step: float, fixed: Point, prefer: Mapping[int, float] | None = None,
         banned: Collection[int] = (), effects: Effects | None = None, continuing: bool = False) -> Plan:
    """The upcoming queue for ``mode`` with the listener at ``position``; with learned ``effects``
    (any play observed) regulate and match plan in closed loop, else on placements alone.
    ``continuing``: a track has played in this session (regulate steps on from the listener)."""
    if effects is not None and effects.plays > 0 and mode in ("match", "regulate") and tracks:
        picked, path = learned_pick(mode, position, tracks, recent, n=n, target=target, step=step,
                                    effects=effects, prefer=prefer or {}, banned=banned)
        goal = f"toward v={target[0]:+.2f} a={target[1]:+.2f}" if mode == "regulate" else "keeping them there"
        return Plan(picked, path, f"{mode} (closed loop, {effects.plays} plays learned): from v={position[0]:+.2f} "
                                  f"a={position[1]:+.2f} {goal}, steps of at most {step:.2f}")
    if mode == "off" or not tracks:
        return Plan([], [], "player off" if mode == "off" else "library is empty")
    if mode == "match":
        waypoints = [position] * n
        reason = f"match: nearest to the listener at v={position[0]:+.2f} a={position[1]:+.2f}"
    elif mode == "regulate":
        waypoints = iso_path(position, target, step, n + 1)[1:] if continuing else iso_path(position, target, step, n)
        reason = (f"regulate: from v={position[0]:+.2f} a={position[1]:+.2f} toward v={target[0]:+.2f} "
                  f"a={target[1]:+.2f} in steps of {step:.2f}{', one step on' if continuing else ''}")
    elif mode == "fixed":
        waypoints = [fixed] * n
        reason = f"fixed: nearest to v={fixed[0]:+.2f} a={fixed[1]:+.2f}"
    else:
        raise ValueError(f"unknown mode {mode!r}")
    if banned:
        reason += f"; {len(banned)} disliked left out"
    steps_from = position if mode == "regulate" else None
    return Plan(pick(waypoints, tracks, recent, prefer, banned, steps_from, step), waypoints, reason)
