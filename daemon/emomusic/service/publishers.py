"""The daemon's outward side: every publisher gets every message, one broken one silences none; and
the log as a publisher (each change of the fused label, faults, commands that cannot act)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from emomusic.messages import FusedState, PlayerStatus, Publisher, Quiet
from emomusic.queues import RateLimiter

log = logging.getLogger("emomusic")


class Fanout:
    """Publishes to each of ``publishers`` in turn; an exception in one is logged, the rest still hear it."""

    def __init__(self, publishers: Sequence[Publisher]) -> None:
        self.publishers = list(publishers)

    def _each(self, call: Callable[[Publisher], None]) -> None:
        for p in self.publishers:
            try:
                call(p)
            except Exception:
                log.exception("publisher %s failed", type(p).__name__)

    def on_state(self, state: FusedState) -> None:
        self._each(lambda p: p.on_state(state))

    def on_modality_status(self, modality: str, status: str, detail: str) -> None:
        self._each(lambda p: p.on_modality_status(modality, status, detail))

    def on_player(self, status: PlayerStatus) -> None:
        self._each(lambda p: p.on_player(status))

    def on_controls(self, mode: str, volume: int, mood: str) -> None:
        self._each(lambda p: p.on_controls(mode, volume, mood))

    def on_fault(self, part: str, error: str) -> None:
        self._each(lambda p: p.on_fault(part, error))

    def on_refusal(self, topic: str, error: str) -> None:
        self._each(lambda p: p.on_refusal(topic, error))


class LogPublisher(Quiet):
    """What a terminal (or journald) shows of the daemon's perception and its problems."""

    def __init__(self) -> None:
        self.label = ""
        self._refusals = RateLimiter(burst=5, interval_s=10.0)

    def on_state(self, state: FusedState) -> None:
        if state.emotion != self.label:
            self.label = state.emotion
            mods = ", ".join(f"{m.modality}={m.emotion}" for m in state.modalities.values()) or "no evidence"
            log.info("emotion: %s (confidence %.2f, valence %+.2f, arousal %+.2f; %s)",
                     state.emotion, state.confidence, state.valence, state.arousal, mods)

    def on_fault(self, part: str, error: str) -> None:
        log.error("%s: %s", part, error)

    def on_refusal(self, topic: str, error: str) -> None:
        if self._refusals.allow(topic):
            log.warning("%s: %s", topic, error)
