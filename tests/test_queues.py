from __future__ import annotations

import threading
import time

import pytest

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


def test_interrupt_wakes_a_waiting_get_or_the_next_one_once() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(2)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(q.get()))  # no timeout: only an event wakes it
    t.start()
    time.sleep(0.05)
    q.interrupt()
    t.join(2)
    assert result == [None] and not t.is_alive()
    q.interrupt()  # nobody waits: the next get returns at once, the one after waits again
    assert q.get() is None
    assert q.get(0.05) is None and not q._interrupted
    q.put(7)
    q.interrupt()
    assert q.get() == 7  # an item goes first


def test_an_idle_analyzer_thread_sleeps_until_an_item_a_statement_or_stop() -> None:
    """No polling: on a small VM each wakeup costs about 0.1 ms of CPU, several a second per stage."""
    from emomusic.messages import Observation, Sensed
    from emomusic.service.workers import AnalyzerWorker

    class Counting(DropOldestQueue[Sensed]):
        gets = 0

        def get(self, timeout: float | None = None) -> Sensed | None:
            Counting.gets += 1
            return super().get(timeout)

    class Learner:
        modality, latency_s = "voice", 0.0
        taught: list[str] = []

        def process(self, item: Sensed) -> Observation | None:
            return None

        def teach(self, label: str, t: float) -> None:
            self.taught.append(label)

    learner = Learner()
    inbox = Counting(4, "in")
    worker = AnalyzerWorker("voice", lambda: learner, inbox, DropOldestQueue(4, "out"), first=learner)
    worker.start()
    time.sleep(0.6)  # three wakeups before, polling every 0.2 s
    assert Counting.gets == 1
    worker.tell("calm", 1.0)
    deadline = time.monotonic() + 5
    while not learner.taught and time.monotonic() < deadline:
        time.sleep(0.01)
    assert learner.taught == ["calm"]
    worker.stop()
    worker.join(5)
    assert not worker.is_alive() and Counting.gets <= 3


def test_stream_gate_keeps_fast_sources_in_step_and_releases_on_done() -> None:
    from emomusic.queues import StreamGate

    gate = StreamGate(slack_s=1.0)
    gate.register("audio")
    gate.register("video")
    stop = threading.Event()
    reached: list[float] = []

    def audio() -> None:
        for k in range(100):  # 0.3 s chunks: would reach 30 s if nothing held it back
            gate.advance("audio", k * 0.3, stop)
            reached.append(k * 0.3)

    t = threading.Thread(target=audio)
    t.start()
    gate.advance("video", 2.0, stop)
    time.sleep(0.3)
    assert max(reached) <= 3.0 + 1e-9  # at most slack ahead of the video at 2 s
    gate.done("video")  # the video ended: the audio may run to its end
    t.join(5)
    assert not t.is_alive() and max(reached) == pytest.approx(29.7)
