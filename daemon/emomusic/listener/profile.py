"""The listener profile: what the listener told the daemon, and what it learned from that.

Kept in ``<state_dir>/listener.json`` (written atomically on every change): the feedback events
("I feel sad", like, dislike, early skip), each modality's calibration with the (model output,
stated emotion) pairs it was fitted on, an opinion per track, and what each track was seen to do
to the listener (listener/effects.py). Labels and numbers only: no frame, no audio, no embedding.

The file is the truth: ``emomusic profile --reset`` deletes it while the daemon runs, and the daemon,
which checks the file's stamp before every change and every few seconds, starts afresh too.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emomusic.config.modalities import MODALITIES
from emomusic.labels import ALL_LABELS
from emomusic.listener.calibration import Calibration, fit
from emomusic.listener.effects import Candidate, Effects
from emomusic.listener.store import file_stamp, write_json
from emomusic.messages import Observation

log = logging.getLogger("emomusic.listener")

PROFILE_FILE = "listener.json"
VERSION = 1

PAIR_WINDOW_S = 20.0  # a statement is paired with each modality's raw output of this many seconds before it
MAX_PAIRS = 200  # per modality, newest kept
MAX_EVENTS = 500
MAX_TRACKS = 5000
TRACK_KINDS = ("like", "dislike", "skip", "pick")  # skip: an early skip, a mild dislike; pick: chosen by hand
#                                                   on another player (MPD), a mild like


@dataclasses.dataclass
class TrackOpinion:
    likes: int = 0
    dislikes: int = 0
    skips: int = 0
    picks: int = 0
    banned: bool = False  # disliked and not liked since: never queued
    t: float = 0.0  # wall time of the last event

    def preference(self) -> float:
        """-1 (avoid) .. +1 (prefer) for planning near the track's mood; a ban is separate."""
        return float(np.clip(self.likes + 0.5 * self.picks - self.dislikes - 0.5 * self.skips, -2, 2) / 2)


@dataclasses.dataclass
class _Pairs:
    labels: tuple[str, ...]
    probs: list[list[float]] = dataclasses.field(default_factory=list)
    truth: list[int] = dataclasses.field(default_factory=list)


class ListenerProfile:
    """Thread-safe: commands arrive on the main thread, observations on the fusion thread, track
    feedback on the music thread."""

    def __init__(self, path: Path | None, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.wall = wall
        self._lock = threading.RLock()
        self._stamp: tuple[int, int] | None = None
        self._recent: dict[str, deque[tuple[float, np.ndarray, float]]] = {}
        self._labels: dict[str, tuple[str, ...]] = {}  # each modality's labels, as its model emits them
        self._clear()
        self.load()

    def _clear(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.pairs: dict[str, _Pairs] = {}
        self.calibration: dict[str, Calibration] = {}
        self.tracks: dict[str, TrackOpinion] = {}
        self.effects = Effects()

    # -- the flow of observations -----------------------------------------------------------------
    def calibrate(self, obs: Observation) -> Observation:
        """The observation with this listener's correction applied; its raw output is remembered for
        the next statement."""
        m = MODALITIES.get(obs.modality)
        if m is None or not m.calibrated:  # only the registry's calibrated modalities are corrected per listener
            return obs
        labels = tuple(obs.probabilities)
        with self._lock:
            if self._labels.get(obs.modality) != labels:
                self._labels[obs.modality] = labels
                self._recent[obs.modality] = deque(maxlen=200)
            raw = np.array([obs.probabilities[k] for k in labels], dtype=np.float64)
            self._recent[obs.modality].append((obs.t, raw / max(raw.sum(), 1e-12), obs.confidence))
            cal = self.calibration.get(obs.modality)
        if cal is None or cal.labels != labels:
            return obs
        return dataclasses.replace(obs, probabilities=cal.apply(obs.probabilities))

    # -- feedback ---------------------------------------------------------------------------------
    def feel(self, label: str, t: float) -> dict[str, int]:
        """The listener says they feel ``label`` at pipeline time ``t``: pair it with each modality's
        recent output, refit that modality's calibration, save. Returns the pairs per modality now."""
        if label not in ALL_LABELS:
            raise ValueError(f"unknown emotion {label!r}")
        with self._lock:
            self.refresh()
            counts: dict[str, int] = {}
            for modality, recent in self._recent.items():
                rows = [(p, c) for ts, p, c in recent if t - PAIR_WINDOW_S <= ts <= t + 1.0]
                labels = self._labels[modality]
                if not rows or label not in labels:
                    continue
                weights = np.array([max(c, 1e-3) for _, c in rows])
                mean = (np.stack([p for p, _ in rows]) * weights[:, None]).sum(0) / weights.sum()
                pairs = self.pairs.get(modality)
                if pairs is None or pairs.labels != labels:
                    pairs = self.pairs[modality] = _Pairs(labels)
                pairs.probs = [*pairs.probs, [round(float(x), 5) for x in mean]][-MAX_PAIRS:]
                pairs.truth = [*pairs.truth, labels.index(label)][-MAX_PAIRS:]
                self.calibration[modality] = fit(labels, np.array(pairs.probs), pairs.truth)
                counts[modality] = len(pairs.truth)
            self._event({"kind": "feel", "emotion": label, "paired": sorted(counts)})
            self.save()
        return counts

    def track_feedback(self, path: str, kind: str) -> TrackOpinion:
        """Like, dislike (bans the track), an early skip or a hand pick, for the track at ``path``; saved."""
        if kind not in TRACK_KINDS:
            raise ValueError(f"expected one of {', '.join(TRACK_KINDS)}, got {kind!r}")
        with self._lock:
            self.refresh()
            op = self.tracks.pop(path, None) or TrackOpinion()
            if kind == "like":
                op.likes, op.banned = op.likes + 1, False
            elif kind == "dislike":
                op.dislikes, op.banned = op.dislikes + 1, True
            elif kind == "skip":
                op.skips += 1
            else:
                op.picks += 1
            op.t = round(self.wall(), 3)
            self.tracks[path] = op  # newest last: the oldest opinions go first when the cap is reached
            while len(self.tracks) > MAX_TRACKS:
                self.tracks.pop(next(iter(self.tracks)))
            self._event({"kind": kind, "track": path})
            self.save()
            return op

    def observe_effect(self, track: Candidate, start: tuple[float, float], end: tuple[float, float]) -> None:
        """The listener went from ``start`` to ``end`` while ``track`` played; saved."""
        with self._lock:
            self.refresh()
            self.effects.observe(track, start, end, round(self.wall(), 3))
            self.save()

    def banned(self) -> set[str]:
        with self._lock:
            return {p for p, op in self.tracks.items() if op.banned}

    def preferences(self) -> dict[str, float]:
        with self._lock:
            return {p: pref for p, op in self.tracks.items() if (pref := op.preference()) != 0}

    def _event(self, event: dict[str, Any]) -> None:
        self.events = [*self.events, {"t": round(self.wall(), 3), **event}][-MAX_EVENTS:]

    # -- what the CLI shows -----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        with self._lock:
            stored = self.to_json()
            feelings: dict[str, int] = {}
            for e in self.events:
                if e["kind"] == "feel":
                    feelings[e["emotion"]] = feelings.get(e["emotion"], 0) + 1
            return {
                "path": str(self.path) if self.path else None,
                "feedback": sum(feelings.values()),
                "feelings": feelings,
                "track_feedback": {k: sum(e["kind"] == k for e in self.events) for k in TRACK_KINDS},
                "calibration": stored["calibration"],
                "tracks": stored["tracks"],
                "effects": {"plays": self.effects.plays, "drift": [round(float(x), 4) for x in self.effects.drift],
                            "tracks": {p: {"plays": r.n, "mean_move": [round(x / r.n, 4) for x in r.move]}
                                       for p, r in self.effects.tracks.items()}},
                "events": self.events[-20:],
            }

    # -- persistence --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "events": self.events,
            "pairs": {m: {"labels": list(p.labels), "probs": p.probs, "truth": p.truth} for m, p in self.pairs.items()},
            "calibration": {m: c.to_json() for m, c in self.calibration.items()},
            "tracks": {path: dataclasses.asdict(op) for path, op in self.tracks.items()},
            "effects": self.effects.to_json(),
        }

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            try:
                write_json(self.path, self.to_json())
                self._stamp = file_stamp(self.path)
            except OSError as e:  # read-only or full state dir: keep working from memory
                log.warning("listener profile not saved to %s (%s); kept in memory", self.path, e.strerror or e)

    def load(self) -> None:
        """Read the file (a missing one is an empty profile). An unusable file is moved aside, said in
        one line, and the profile starts empty: nothing is lost."""
        if self.path is None:
            return
        import json

        with self._lock:
            self._clear()
            self._stamp = file_stamp(self.path)
            if self._stamp is None:
                return
            try:
                data = json.loads(self.path.read_text())
                if not isinstance(data, dict) or data.get("version") != VERSION:
                    raise ValueError(f"expected a JSON object with version {VERSION}")
                self.events = [dict(e) for e in data.get("events", [])][-MAX_EVENTS:]
                for m, p in data.get("pairs", {}).items():
                    self.pairs[m] = _Pairs(tuple(p["labels"]), [list(map(float, r)) for r in p["probs"]],
                                           [int(i) for i in p["truth"]])
                self.calibration = {m: Calibration.from_json(c) for m, c in data.get("calibration", {}).items()}
                self.tracks = {str(path): TrackOpinion(**op) for path, op in data.get("tracks", {}).items()}
                self.effects = Effects.from_json(data.get("effects", {}))
            except (OSError, ValueError, KeyError, TypeError) as e:
                aside = self.path.with_name(f"{self.path.name}.unusable-{int(self.wall())}")
                log.warning("%s: listener profile unusable (%s); moved aside to %s, starting afresh",
                            self.path, e, aside.name)
                self._clear()
                try:
                    self.path.replace(aside)
                except OSError:
                    pass
                self._stamp = file_stamp(self.path)

    def refresh(self) -> bool:
        """Reload if someone else changed or deleted the file (``emomusic profile --reset``)."""
        if self.path is None:
            return False
        with self._lock:
            if file_stamp(self.path) == self._stamp:
                return False
            log.info("listener profile %s changed on disk: reloaded", self.path)
            self.load()
            return True

    def reset(self) -> None:
        """Forget everything: the file is deleted (a running daemon notices and starts afresh too)."""
        with self._lock:
            self._clear()
            if self.path is not None:
                self.path.unlink(missing_ok=True)
                self._stamp = None
