"""Group commit: concurrent writers share flushes, each waits for one that began after it."""

import threading
import time

from registryd.driver import durability
from registryd.driver.durability import GroupSync


def test_syncWaitsForAFlushStartedAfterTheCall(tmp_path, monkeypatch):
    group = GroupSync(str(tmp_path))
    flushes = []
    gate = threading.Event()

    def slowFlush():
        flushes.append(time.monotonic())
        gate.wait(5)

    monkeypatch.setattr(group, "_flush", slowFlush)
    first = threading.Thread(target=group.sync)
    first.start()
    while not flushes:
        time.sleep(0.001)
    # A flush is running; a writer arriving now needs the next one.
    arrived = time.monotonic()
    second = threading.Thread(target=group.sync)
    third = threading.Thread(target=group.sync)
    second.start()
    third.start()
    time.sleep(0.05)
    assert len(flushes) == 1
    gate.set()
    for thread in (first, second, third):
        thread.join(5)
    # The two late writers shared one more flush, begun after they arrived.
    assert len(flushes) == 2
    assert flushes[1] > arrived
    group.close()


def test_realFlush(tmp_path):
    group = GroupSync(str(tmp_path))
    (tmp_path / "f").write_bytes(b"x")
    group.sync()
    group.close()
    assert durability._syncfs is not None  # Linux: syncfs(2), not a global sync
