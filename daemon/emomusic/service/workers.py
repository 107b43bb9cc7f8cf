"""The analyzer interface and the thread that runs one analyzer between two queues.

An analyzer turns source items (frames, audio chunks) into :class:`Observation` s. The worker
isolates it: an exception rebuilds the analyzer from its factory; repeated failures disable it
and say so, while the rest of the daemon keeps running.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib import import_module
from typing import Protocol, runtime_checkable

from emomusic.audio import PlaybackGuard
from emomusic.config import Config
from emomusic.config.modalities import MODALITIES
from emomusic.messages import AudioChunk, Observation, Sensed
from emomusic.queues import DropOldestQueue
from emomusic.sources.base import StatusCallback


class Analyzer(Protocol):
    """Turns one source item into an observation (or None when there is nothing to say)."""

    modality: str
    # How far before the end of the item just processed an observation may still be stamped: the voice
    # stamps a window's end, which the VAD may close a little after later audio arrived. A replay merges
    # observations in stream-time order up to each worker's progress minus this (so none comes late).
    latency_s: float

    def process(self, item: Sensed) -> Observation | None:
        """Only items of the source the modality names arrive here (its registry entry)."""
        ...


@runtime_checkable
class Teachable(Protocol):
    """An analyzer that learns from the listener's "I feel …" (the voice: voice/personal.py)."""

    def teach(self, label: str, t: float) -> None:
        """Called on the worker's own thread, between two items."""
        ...


def item_end(item: Sensed) -> float:
    """Stream time at the end of a source item (a frame is instantaneous; a chunk lasts)."""
    if isinstance(item, AudioChunk):
        return item.t + len(item.samples) / item.sample_rate
    return item.t


class AnalyzerWorker(threading.Thread):
    """Runs ``factory()``'s analyzer on items from ``inbox``, observations to ``outbox``."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], Analyzer],
        inbox: DropOldestQueue[Sensed],
        outbox: DropOldestQueue[Observation],
        *,
        max_failures: int = 5,
        failure_window_s: float = 60.0,
        block_output: bool = False,
        on_status: StatusCallback | None = None,
        first: Analyzer | None = None,
    ) -> None:
        super().__init__(name=f"analyzer-{name}", daemon=True)
        self.analyzer_name = name
        self.factory = factory
        self.first = first  # built by the caller, so a missing model fails at start-up, not in a thread
        self.inbox = inbox
        self.outbox = outbox
        self.max_failures = max_failures
        self.failure_window_s = failure_window_s
        self.block_output = block_output
        self.on_status = on_status
        self.stop_event = threading.Event()
        self.failures: list[float] = []
        self.processed = 0
        self.handled = 0  # items finished, successfully or not (compared with inbox.taken)
        self.disabled = False
        self.progress_t = -math.inf  # stream time up to which every item has been analysed
        self._told: deque[tuple[str, float]] = deque(maxlen=16)  # statements for the analyzer, in order
        self.log = logging.getLogger(f"emomusic.analyzer.{name}")

    def stop(self) -> None:
        self.stop_event.set()
        self.inbox.interrupt()

    def tell(self, label: str, t: float) -> None:
        """The listener says they feel ``label`` at stream time ``t``: handed to a Teachable analyzer on
        its own thread, before its next item (no lock shared with the command thread)."""
        self._told.append((label, t))
        self.inbox.interrupt()

    def _teach(self, analyzer: Analyzer) -> None:
        while self._told:
            label, t = self._told.popleft()
            if isinstance(analyzer, Teachable):
                try:
                    analyzer.teach(label, t)
                except Exception as e:  # learning from a statement must never stop the analysis
                    self.log.warning("could not learn from 'I feel %s': %s: %s", label, type(e).__name__, e)

    @property
    def idle(self) -> bool:
        """Nothing queued and everything taken from the queue finished."""
        return len(self.inbox) == 0 and self.inbox.taken == self.handled

    def _status(self, status: str, detail: str = "") -> None:
        if self.on_status:
            self.on_status(self.analyzer_name, status, detail)

    def run(self) -> None:
        analyzer = self.first if self.first is not None else self.factory()
        while not self.stop_event.is_set():
            self._teach(analyzer)
            item = self.inbox.get()  # an item, close, or interrupt (stop, a statement) wakes it
            if item is None:
                if self.inbox.closed:
                    break
                continue
            try:
                obs = analyzer.process(item)
                self.processed += 1
                if obs is not None:
                    self.outbox.put(obs, block=self.block_output)
                self.progress_t = item_end(item) - analyzer.latency_s
            except Exception as e:  # an analyzer bug must not take the daemon down
                now = time.monotonic()
                self.failures = [f for f in self.failures if now - f < self.failure_window_s] + [now]
                if len(self.failures) >= self.max_failures:
                    self._disable(f"{len(self.failures)} failures in {self.failure_window_s:.0f} s, disabled: "
                                  f"{type(e).__name__}: {e}")
                    break
                self.log.warning("failed (%s: %s); restarting the analyzer", type(e).__name__, e, exc_info=True)
                self._status("restarted", f"{type(e).__name__}: {e}")
                try:
                    analyzer = self.factory()
                except Exception as rebuild:  # e.g. its model file vanished since start-up
                    self._disable(f"cannot be rebuilt, disabled: {type(rebuild).__name__}: {rebuild}")
                    break
            finally:
                self.handled += 1
        close = getattr(analyzer, "close", None)
        if close is not None:  # e.g. the voice analyzer keeps what it learned about the voices
            try:
                close()
            except Exception as e:
                self.log.warning("closing failed: %s: %s", type(e).__name__, e)

    def _disable(self, msg: str) -> None:
        self.disabled = True
        self.log.error("%s", msg, exc_info=True)
        self._status("disabled", msg)


# An analyzer factory: the whole config (each analyzer takes its own sections from it), the playback
# guard (what the player says it plays, so the voice does not take the daemon's music for a voice),
# and whether it may keep what it learns (a replayed recording must not change it).
AnalyzerFactory = Callable[[Config, PlaybackGuard, bool], Analyzer]


def registered_analyzers() -> dict[str, AnalyzerFactory]:
    """Each registered modality's analyzer factory (``config.modalities``), imported now."""
    out: dict[str, AnalyzerFactory] = {}
    for m in MODALITIES.values():
        if m.analyzer is not None:
            module, _, name = m.analyzer.partition(":")
            out[m.name] = getattr(import_module(module), name)
    return out


class Tee:
    """One source feeding several modalities' analyzers: each gets every item in its own queue."""

    def __init__(self, queues: list[DropOldestQueue[Sensed]]) -> None:
        self.queues = queues

    def put(self, item: Sensed, block: bool = False) -> None:
        for q in self.queues:
            q.put(item, block)
