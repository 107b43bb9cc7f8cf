"""Flow control between stages: a bounded queue that drops the oldest item when full (a slow stage
never stalls capture), the gate that keeps replayed files in step, and a rate limit for floods."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
MAX_KEYS = 256


class Inbox(Protocol[T_contra]):
    """Where a source puts what it captured (a queue, or several through a tee)."""

    def put(self, item: T_contra, block: bool = False) -> None: ...


class DropOldestQueue(Generic[T]):
    """Thread-safe FIFO with a fixed size; ``put`` never blocks and counts what it dropped."""

    def __init__(self, maxsize: int, name: str = "") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.name = name
        self._items: deque[T] = deque(maxlen=maxsize)
        self._cond = threading.Condition()
        self.dropped = 0
        self.taken = 0  # items handed out by get (a consumer compares it with what it has finished)
        self.closed = False
        self._interrupted = False

    def put(self, item: T, block: bool = False) -> None:
        """Append; when full, drop the oldest item, or with ``block`` wait for room (file replay loses nothing)."""
        with self._cond:
            if block:
                while len(self._items) == self._items.maxlen and not self.closed:
                    self._cond.wait(0.1)
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T | None:
        """Next item, or None after ``timeout`` seconds (None: no limit), after :meth:`interrupt`, or once the
        queue is closed and empty."""
        with self._cond:
            if not self._items and not self.closed and not self._interrupted:
                self._cond.wait(timeout)
            if not self._items:
                self._interrupted = False
                return None
            item = self._items.popleft()
            self.taken += 1
            self._cond.notify_all()
            return item

    def interrupt(self) -> None:
        """Make a waiting ``get`` (or the next one, if none waits yet) return None at once: the consumer
        has something else to do (stop, a statement to learn). A consumer that blocks without a timeout
        wakes only for this, an item or close, instead of polling (on a small VM each wakeup costs about
        0.1 ms of CPU by itself)."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter; ``get`` returns what is left, then None."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class StreamGate:
    """Keeps files replayed as fast as possible in step: a source may run at most ``slack_s`` of stream
    time ahead of the slowest other source. Without it, cheap audio would race minutes ahead of video
    and fusion's time-ordered merge would have to hold all of it."""

    def __init__(self, slack_s: float = 2.0) -> None:
        self.slack_s = slack_s
        self._t: dict[str, float] = {}
        self._cond = threading.Condition()

    def register(self, name: str) -> None:
        with self._cond:
            self._t[name] = float("-inf")

    def advance(self, name: str, t: float, stop: threading.Event) -> None:
        """Record that ``name`` reached stream time ``t``; wait while it is too far ahead."""
        with self._cond:
            self._t[name] = t
            self._cond.notify_all()
            while not stop.is_set():
                others = [v for k, v in self._t.items() if k != name]
                if not others or t <= min(others) + self.slack_s:
                    return
                self._cond.wait(0.1)

    def done(self, name: str) -> None:
        """A finished (or stopped) source no longer holds the others back."""
        with self._cond:
            self._t.pop(name, None)
            self._cond.notify_all()


class RateLimiter:
    """At most ``burst`` events per key in each ``interval_s`` window get through; the rest are
    counted, so a flood (20,000 bad commands, a disk error on every pass) costs a few log lines and
    messages, plus one line saying how many were suppressed."""

    def __init__(self, burst: int = 5, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, list[float]] = {}  # key -> [window start, let through, suppressed]

    def allow(self, key: str = "") -> bool:
        now = self.clock()
        with self._lock:
            if len(self._windows) > MAX_KEYS:  # many distinct keys: forget the quiet, finished windows
                for k in [k for k, w in self._windows.items() if not w[2] and now - w[0] >= self.interval_s]:
                    del self._windows[k]
            w = self._windows.setdefault(key, [now, 0, 0])
            if now - w[0] >= self.interval_s:
                w[0], w[1] = now, 0  # a new window; what was suppressed stays counted until drained
            if w[1] < self.burst:
                w[1] += 1
                return True
            w[2] += 1
            return False

    def drain(self) -> dict[str, int]:
        """Suppressed counts of the windows that have ended, reset: call it now and then to report them."""
        now = self.clock()
        out: dict[str, int] = {}
        with self._lock:
            for key, w in self._windows.items():
                if w[2] and now - w[0] >= self.interval_s:
                    out[key] = int(w[2])
                    w[2] = 0
        return out

