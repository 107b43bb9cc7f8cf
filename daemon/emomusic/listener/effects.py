"""What each song actually does to this listener, learned from the fused state around its plays.

A track's placement says where it sits on the valence/arousal plane; the iso principle assumes the
listener is drawn toward it. People differ: a song placed as calming can agitate one listener. Each
play that the listener heard while the state was confident gives one observed move from ``start``
to ``end``. The model: a track draws the listener toward its *response point*,

    end − start = PULL · (response − start) + noise,   response = placement + drift + effect(track)

so each play shows ``start + (end − start) / PULL``: where the track really drew the listener.
``PULL`` is fixed: fitting it per listener by least squares over the plays made regulation slower in
the simulator (docs/PROOF.md) — dividing by a smaller pull amplifies the noise of every play.
``drift`` is the part every track shares (what the listener does anyway, whatever plays: the mean
over all plays); ``effect`` is what this track does beyond it: the mean of its own plays shrunk
toward its neighbours' (tracks placed nearby or by the same artist), so a new track starts from what
similar ones did. With no play at all the prediction is exactly the open-loop one (drawn toward the
placement). Only sums are kept (a few numbers per track), at most ``MAX_TRACKS`` tracks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PULL = 0.5  # the open-loop model: a track moves the listener half-way to its placement
PRIOR_PLAYS = 2.0  # a track's own plays outweigh its neighbours' after this many
NEIGHBOUR_RADIUS = 0.35  # placements this close share what they learned (same artist: always)
NOISE_SD = 0.25  # the spread of one play's move around its expectation (valence/arousal units)
MAX_SHIFT = 0.6  # the farthest learning moves a track from its placement, after many plays
MAX_TRACKS = 5000


def shift_bound(plays: int) -> float:
    """How far from its placement plays may move a track: grows with the evidence, never past MAX_SHIFT."""
    return MAX_SHIFT * plays / (plays + PRIOR_PLAYS)


def arrival(position: tuple[float, float], response: np.ndarray) -> np.ndarray:
    """Where one play of a track drawing toward ``response`` is expected to leave the listener."""
    return np.clip(np.asarray(position) + PULL * (response - np.asarray(position)), -1, 1)


def _zeros() -> list[float]:
    return [0.0, 0.0]


@dataclass
class TrackRecord:
    """Sums over a track's plays: where they started, how the listener moved, and the track's placement."""

    n: int = 0
    start: list[float] = field(default_factory=_zeros)
    move: list[float] = field(default_factory=_zeros)
    placement: list[float] = field(default_factory=_zeros)
    t: float = 0.0  # wall time of the last play (the oldest records go first at the cap)

    def add(self, start: np.ndarray, move: np.ndarray, placement: np.ndarray) -> None:
        self.n += 1
        self.start = (np.array(self.start) + start).round(5).tolist()
        self.move = (np.array(self.move) + move).round(5).tolist()
        self.placement = (np.array(self.placement) + placement).round(5).tolist()

    def shift(self, pull: float) -> np.ndarray:
        """Mean of ``start + move / pull − placement`` over the plays."""
        return (np.array(self.start) + np.array(self.move) / pull - np.array(self.placement)) / max(self.n, 1)


@dataclass(frozen=True)
class Candidate:
    """A track as the planner sees it."""

    key: str  # its path
    placement: tuple[float, float]
    artist: str = ""


class Effects:
    def __init__(self) -> None:
        self.tracks: dict[str, TrackRecord] = {}
        self.total = TrackRecord()  # every play, whichever the track

    @property
    def plays(self) -> int:
        return self.total.n

    @property
    def drift(self) -> np.ndarray:
        return self.total.shift(PULL) if self.plays else np.zeros(2)

    def observe(self, c: Candidate, start: tuple[float, float], end: tuple[float, float], wall: float = 0.0) -> None:
        """One play of ``c``: the listener went from ``start`` to ``end``."""
        s, p = np.asarray(start, dtype=float), np.asarray(c.placement, dtype=float)
        # the response point this play shows, kept on the plane (a large move over a short play would
        # put it far outside): the move is the one that points there
        move = (np.clip(s + (np.asarray(end, dtype=float) - s) / PULL, -1, 1) - s) * PULL
        rec = self.tracks.pop(c.key, None) or TrackRecord()
        rec.add(s, move, p)
        rec.t = wall
        self.tracks[c.key] = rec  # newest last: the oldest go first at the cap
        self.total.add(s, move, p)
        while len(self.tracks) > MAX_TRACKS:
            self.tracks.pop(next(iter(self.tracks)))

    def _effect(self, c: Candidate, known: list[tuple[Candidate, TrackRecord]], drift: np.ndarray) -> tuple[
            np.ndarray, float]:
        """The track's learned shift of its response point beyond the drift, and the uncertainty
        (sd) of the move it causes: its own plays shrunk toward its neighbours' (``known``: the
        catalogue's tracks that have plays)."""
        num, weight = np.zeros(2), 0.0
        for other, rec in known:
            if other.key == c.key:
                continue
            if math.dist(other.placement, c.placement) < NEIGHBOUR_RADIUS or (c.artist and other.artist == c.artist):
                num += rec.n * (rec.shift(PULL) - drift)
                weight += rec.n
        prior = num / weight if weight else np.zeros(2)
        own = self.tracks.get(c.key)
        n = own.n if own else 0
        est = ((n * (own.shift(PULL) - drift) if own else 0.0) + PRIOR_PLAYS * prior) / (n + PRIOR_PLAYS)
        seen = n + PRIOR_PLAYS * min(1.0, weight / PRIOR_PLAYS)  # neighbours count as much as they know
        return est, NOISE_SD / math.sqrt(1.0 + seen)

    def responses(self, catalogue: Sequence[Candidate]) -> dict[str, tuple[np.ndarray, float]]:
        """Per track of ``catalogue`` (by key): where it draws this listener (its placement, until
        plays say otherwise) and the sd of the move it causes. Neighbours are looked for among the
        tracks that have plays only, so a re-plan costs the library times the tracks heard."""
        if not self.plays:
            return {c.key: (np.asarray(c.placement, dtype=float), NOISE_SD) for c in catalogue}
        drift = self.drift
        known = [(c, self.tracks[c.key]) for c in catalogue if c.key in self.tracks]
        bound = shift_bound(self.plays)
        out = {}
        for c in catalogue:
            effect, sd = self._effect(c, known, drift)
            shift = drift + effect
            size = float(np.hypot(*shift))
            if size > bound:
                shift = shift * (bound / size)
            out[c.key] = (np.asarray(c.placement) + shift, sd)
        return out

    # -- persistence ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        def rec(r: TrackRecord) -> dict[str, Any]:
            return {"n": r.n, "start": r.start, "move": r.move, "placement": r.placement, "t": r.t}

        return {"total": rec(self.total), "tracks": {k: rec(r) for k, r in self.tracks.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Effects:
        def rec(d: dict[str, Any]) -> TrackRecord:
            vec = [[float(x) for x in d[k]][:2] for k in ("start", "move", "placement")]
            if any(len(v) != 2 for v in vec):
                raise ValueError("expected pairs of numbers")
            return TrackRecord(int(d["n"]), vec[0], vec[1], vec[2], float(d.get("t", 0.0)))

        e = cls()
        if data:
            e.total = rec(data["total"])
            e.tracks = {str(k): rec(r) for k, r in data.get("tracks", {}).items()}
        return e
