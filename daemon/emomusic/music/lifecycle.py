"""A stage thread that keeps trying: open with backoff until it works, then step until stopped.

A read-only or full state dir, or a player that is not there yet, must not switch a stage off
until someone restarts the daemon; and an error inside the loop (a full disk, an SDL hiccup) is
logged once per interval, not four times a second, and never ends the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from emomusic.queues import RateLimiter

log = logging.getLogger("emomusic.music")

START_RETRY_MIN_S = 5.0
START_RETRY_MAX_S = 300.0
STEP_ERROR_REPORT_S = 300.0  # the same error in the loop is logged once per this many seconds
STEP_S = 0.25


class RetryingStage(threading.Thread):
    """Subclasses give ``_open`` (raises while it cannot start; InterruptedError to give up),
    ``step`` and ``_close``; ``_fault`` and ``_publish`` say why it is not running yet."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # set after the first attempt to open, whatever its outcome
        self.start_error: str | None = None  # why the stage is not running yet, while it retries
        self._step_errors = RateLimiter(burst=1, interval_s=STEP_ERROR_REPORT_S, clock=clock)

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def _fault(self, error: str) -> None:
        """A problem a person must know about."""

    def _publish(self) -> None:
        """The stage's status, now that it changed."""

    def _start(self) -> bool:
        delay = START_RETRY_MIN_S
        while not self.stop_event.is_set():
            try:
                self._open()
                if self.start_error is not None:
                    log.info("%s stage started after: %s", self.name, self.start_error)
                self.start_error = None
                return True
            except InterruptedError:
                return False
            except Exception as e:
                self._close_quietly()
                error = f"{type(e).__name__}: {e}"
                log.error("%s stage could not start (%s); retrying in %.0f s", self.name, error, delay)
                log.debug("start failure", exc_info=True)
                if error != self.start_error:
                    self._fault(f"could not start: {error}")
                self.start_error = error
                self._publish()
            finally:
                self.ready.set()
            if self.stop_event.wait(delay):
                return False
            delay = min(delay * 2, START_RETRY_MAX_S)
        return False

    def _close_quietly(self) -> None:
        """Undo a half-done ``_open`` before the next attempt."""

    def run(self) -> None:
        try:
            if not self._start():
                return
            while not self.stop_event.wait(STEP_S):
                try:
                    self.step()
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
                    if self._step_errors.allow(error):
                        log.warning("%s step failed: %s (the same error is logged again in %.0f s at most)",
                                    self.name, error, STEP_ERROR_REPORT_S)
                        log.debug("step failure", exc_info=True)
        finally:
            self._close()
