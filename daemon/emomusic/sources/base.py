"""The loop every capture source shares: open, read until failure, back off, reopen.

A camera unplugged or a microphone error must never end the daemon: the source reports what
happened through ``on_status`` (so MQTT and the log can say it) and keeps trying, with a
capped exponential backoff so a missing device does not spin the CPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from emomusic.messages import redact
from emomusic.queues import StreamGate

StatusCallback = Callable[[str, str, str], None]  # (source name, status, detail)


class SourceEnded(Exception):
    """The input is finished for good (a file played once); not an error."""


def check_still_there(path: str, what: str) -> None:
    """Before a looping file source rewinds: its open handle would replay a deleted file forever,
    so a file that vanished is an error (the loop then reopens it with backoff until it is back)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} file {path} vanished")


class Source(threading.Thread):
    """Base for capture threads. Subclasses implement ``open``, ``read_once`` and ``close``."""

    backoff_min_s = 0.5
    backoff_max_s = 30.0
    retry_errors = True  # a file played once sets False: retrying it changes nothing, so it fails for good

    def __init__(self, name: str, on_status: StatusCallback | None = None, stall_s: float = 5.0) -> None:
        super().__init__(name=f"source-{name}", daemon=True)
        self.source_name = name
        self.stop_event = threading.Event()
        self.on_status = on_status
        self.stall_s = stall_s
        self.status = "starting"
        self.detail = ""
        self._status_lock = threading.Lock()
        self.last_item_at = time.monotonic()
        self.errors = 0
        self.log = logging.getLogger(f"emomusic.source.{name}")
        self.gate: StreamGate | None = None  # set when files are replayed fast, to keep sources in step

    # -- to implement -------------------------------------------------------------------------
    def open(self) -> None:
        raise NotImplementedError

    def read_once(self) -> None:
        """Read and emit one item; raise on failure, SourceEnded at the end of the input."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- shared loop --------------------------------------------------------------------------
    def _set_status(self, status: str, detail: str = "", only_from: str | None = None) -> None:
        with self._status_lock:
            if only_from is not None and self.status != only_from:
                return
            if status == self.status and not detail:
                return
            detail = redact(detail)
            self.status, self.detail = status, detail
        log = self.log.warning if status in ("error", "stalled", "failed") else self.log.info
        log("%s%s", status, f": {detail}" if detail else "")
        if self.on_status:
            self.on_status(self.source_name, status, detail)

    def check_stall(self, now: float) -> None:
        """Called by the supervisor: a running source that delivered nothing for ``stall_s`` is
        reported as stalled (its own read timeout then makes it reopen the input)."""
        if self.gate is None and now - self.last_item_at > self.stall_s:
            self._set_status("stalled", f"nothing delivered for {now - self.last_item_at:.0f} s", only_from="running")

    def stop(self) -> None:
        self.stop_event.set()

    def pace(self, t: float) -> None:
        """In fast replay, wait while this source is too far ahead of the others."""
        if self.gate is not None:
            self.gate.advance(self.source_name, t, self.stop_event)

    def _read_one(self) -> None:
        self.read_once()
        self.last_item_at = time.monotonic()
        if self.status == "stalled":
            self._set_status("running", "delivering again", only_from="stalled")

    def run(self) -> None:
        delay = self.backoff_min_s
        while not self.stop_event.is_set():
            try:
                self.open()
                self._set_status("running")
                self.last_item_at = time.monotonic()
                while not self.stop_event.is_set():
                    self._read_one()
                    delay = self.backoff_min_s  # only a source that delivers earns a fast retry
            except SourceEnded:
                self._set_status("ended")
                break
            except Exception as e:  # a device may fail in any way; the daemon must outlive it
                self.errors += 1
                if not self.retry_errors:
                    self._set_status("failed", f"{type(e).__name__}: {e}")
                    break
                self._set_status("error", f"{type(e).__name__}: {e}; retrying in {delay:.1f} s")
            finally:
                try:
                    self.close()
                except Exception:  # closing a broken device can fail too
                    self.log.debug("close failed", exc_info=True)
            if self.stop_event.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max_s)
        if self.gate is not None:
            self.gate.done(self.source_name)
        if self.status not in ("ended", "failed"):
            self._set_status("stopped")
