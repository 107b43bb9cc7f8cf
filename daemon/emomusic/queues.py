"""A bounded queue that drops the oldest item when full, so a slow stage never stalls capture."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


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
        """Next item, or None after ``timeout`` seconds or once the queue is closed and empty."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self.taken += 1
            self._cond.notify_all()
            return item

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
