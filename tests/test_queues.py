from __future__ import annotations

import threading
import time

from emomusic.queues import DropOldestQueue


def test_full_queue_drops_the_oldest_and_counts() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    for i in range(5):
        q.put(i)
    assert q.dropped == 2
    assert [q.get(0), q.get(0), q.get(0), q.get(0)] == [2, 3, 4, None]


def test_blocking_put_waits_for_room_and_loses_nothing() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(2)
    got: list[int] = []

    def consume() -> None:
        while len(got) < 50:
            item = q.get(1.0)
            if item is not None:
                got.append(item)
                time.sleep(0.001)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(50):
        q.put(i, block=True)
    t.join(5)
    assert got == list(range(50)) and q.dropped == 0


def test_close_wakes_a_waiting_consumer() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(2)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(q.get(10)))
    t.start()
    time.sleep(0.05)
    q.close()
    t.join(2)
    assert result == [None] and not t.is_alive()
