"""Watches the listener across each play, so the profile learns what each track does to them.

A play counts when the fused state was sure of the listener (someone there, read clearly) when the
track started and when it stopped, and it played long enough to have had an effect: at least
``EFFECT_MIN_S`` or half the track. Skipped and disliked tracks count too (they did what they did).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from emomusic.listener.effects import Candidate
from emomusic.listener.profile import ListenerProfile
from emomusic.messages import FusedState
from emomusic.music.library import Track
from emomusic.music.policy import Point

log = logging.getLogger("emomusic.music")

EFFECT_MIN_S = 30.0
EFFECT_CONFIDENCE = 0.3  # the state must be this sure, at the start and at the end


def listener_at(state: FusedState | None) -> Point | None:
    """The listener's position if the state is sure of it, else None."""
    if state is None or state.emotion == "unknown" or state.confidence < EFFECT_CONFIDENCE:
        return None
    return (state.valence, state.arousal)


class PlayObserver:
    def __init__(self, profile: ListenerProfile, clock: Callable[[], float]) -> None:
        self.profile = profile
        self.clock = clock
        self.track: Track | None = None
        self.start: Point | None = None
        self.since = 0.0

    def started(self, track: Track, state: FusedState | None) -> None:
        self.track, self.start, self.since = track, listener_at(state), self.clock()

    def ended(self, state: FusedState | None) -> None:
        """The track stops (ended, skipped, replaced): record its effect if the play counts."""
        track, start, self.track, self.start = self.track, self.start, None, None
        end = listener_at(state)
        if track is None or start is None or end is None:
            return
        played = self.clock() - self.since
        if played < min(EFFECT_MIN_S, 0.5 * track.duration_s):
            return
        self.profile.observe_effect(Candidate(track.path, (track.valence, track.arousal), track.artist), start, end)
        log.info("'%s' played %.0f s: the listener went from v=%+.2f a=%+.2f to v=%+.2f a=%+.2f", track.title,
                 played, *start, *end)
