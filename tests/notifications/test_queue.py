"""The per-endpoint queue: order, bound, spool, restore, and what a crash leaves."""

import errno
import json
import os

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs

from registryd.notifications.queue import EventQueue


def record(n):
    return json.dumps({"n": n}).encode()


def drain(queue, batch=1000):
    """Everything the queue holds, in order, acknowledged."""
    taken = []
    while len(queue):
        records = queue.peek(batch)
        assert records, "the queue holds records it does not hand out"
        taken += records
        queue.ack(len(records))
    return [json.loads(r)["n"] for r in taken]


def segments(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith("segment-"))


def warnings(logs):
    return [e for e in logs if e.get("log_level") == LogLevel.warn]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "spooled"])
def queue(request, tmp_path, clock):
    directory = None if request.param == "memory" else str(tmp_path / "spool")
    return EventQueue("test", 100, clock, directory)


def test_order(queue):
    for n in range(10):
        assert queue.put(record(n))
    assert len(queue) == 10
    assert queue.peek(3) == [record(0), record(1), record(2)]
    queue.ack(2)
    assert queue.peek(2) == [record(2), record(3)]
    assert drain(queue) == list(range(2, 10))
    assert len(queue) == 0


def test_waitFiresAfterPut(queue, clock):
    d = queue.wait()
    queue.put(record(1))
    assert not d.called  # not while the caller of put() waits
    clock.advance(0)
    assert d.called
    assert queue.wait().called  # already something to take


def test_waitCancelled(queue, clock):
    d = queue.wait()
    failures = []
    d.addErrback(failures.append)
    d.cancel()
    assert failures[0].check(CancelledError)
    queue.put(record(1))
    clock.advance(0)  # no callback on the cancelled waiter


@pytest.mark.parametrize("spooled", [False, True])
def test_limitCountsAndLogsDrops(tmp_path, spooled):
    queue = EventQueue("hook", 3, Clock(), str(tmp_path / "spool") if spooled else None)
    with capturedLogs() as logs:
        accepted = [queue.put(record(n)) for n in range(6)]
    assert accepted == [True, True, True, False, False, False]
    assert queue.dropped == 3
    [first] = warnings(logs)
    assert first["name"] == "hook"
    assert "full (3 events)" in first["reason"]
    queue.ack(1)
    with capturedLogs() as logs:
        assert queue.put(record(6))
    [summary] = warnings(logs)
    assert summary["count"] == 3
    assert drain(queue) == [1, 2, 6]


def test_dropsPendingAtCloseAreLogged(tmp_path):
    queue = EventQueue("hook", 1, Clock(), str(tmp_path / "spool"))
    queue.put(record(0))
    queue.put(record(1))
    queue.put(record(2))
    with capturedLogs() as logs:
        queue.close()
    assert [e["count"] for e in warnings(logs)] == [2]


def test_spooledSurvivesRestart(tmp_path):
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 100, Clock(), directory)
    for n in range(5):
        queue.put(record(n))
    queue.ack(2)
    queue.close()
    again = EventQueue("hook", 100, Clock(), directory)
    assert len(again) == 3
    again.put(record(5))
    assert drain(again) == [2, 3, 4, 5]
    again.close()
    assert len(EventQueue("hook", 100, Clock(), directory)) == 0


def test_restoreWithoutClose(tmp_path):
    """A process killed without closing the queue loses nothing it accepted."""
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 100, Clock(), directory)
    for n in range(4):
        queue.put(record(n))
    queue.ack(1)
    # No close(): the files are as a kill -9 would leave them.
    assert drain(EventQueue("hook", 100, Clock(), directory)) == [1, 2, 3]


def test_memoryHoldsOnlyTheWindow(tmp_path):
    queue = EventQueue("hook", 1000, Clock(), str(tmp_path / "spool"), window=4)
    for n in range(50):
        queue.put(record(n))
    assert len(queue) == 50
    assert queue.peek(100) == [record(n) for n in range(4)]
    queue.ack(3)
    assert queue.peek(100) == [record(n) for n in range(3, 7)]
    assert drain(queue) == list(range(3, 50))


def test_segmentsRollAndDeliveredOnesAreDeleted(tmp_path):
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 1000, Clock(), directory, window=2, segmentRecords=3)
    for n in range(10):
        queue.put(record(n))
    assert len(segments(directory)) == 4
    queue.ack(2)
    queue.ack(2)
    # Records 0-3 delivered: the first segment (0-2) is gone.
    assert len(segments(directory)) == 3
    queue.close()
    again = EventQueue("hook", 1000, Clock(), directory, window=2, segmentRecords=3)
    assert drain(again) == list(range(4, 10))
    assert len(segments(directory)) == 1  # the last one, holding the cursor


def test_eachStartWritesANewSegment(tmp_path):
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 100, Clock(), directory)
    queue.put(record(0))
    queue.close()
    again = EventQueue("hook", 100, Clock(), directory)
    assert len(segments(directory)) == 1  # created on the first put, not before
    again.put(record(1))
    assert len(segments(directory)) == 2
    assert drain(again) == [0, 1]


def test_crashDuringWriteLeavesTheReadablePrefix(tmp_path):
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 100, Clock(), directory)
    for n in range(3):
        queue.put(record(n))
    [segment] = segments(directory)
    with open(os.path.join(directory, segment), "ab") as f:
        f.write(b'{"n": 3, "trunc')  # the process died mid-write
    with capturedLogs() as logs:
        again = EventQueue("hook", 100, Clock(), directory)
        assert len(again) == 3
        again.put(record(4))
        assert drain(again) == [0, 1, 2, 4]
    assert any("torn" in e["log_format"] for e in warnings(logs))


def test_corruptLineIsSkipped(tmp_path):
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 100, Clock(), directory)
    queue.put(record(0))
    queue.close()
    [segment] = segments(directory)
    with open(os.path.join(directory, segment), "ab") as f:
        f.write(b"\0\0\0\0\n" + record(1) + b"\n")
    with capturedLogs() as logs:
        again = EventQueue("hook", 100, Clock(), directory)
        assert drain(again) == [0, 1]
    assert any("corrupt" in e["log_format"] for e in warnings(logs))
    assert len(again) == 0


def test_unreadableCursorSendsEverythingAgain(tmp_path):
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 100, Clock(), directory)
    for n in range(3):
        queue.put(record(n))
    queue.ack(2)
    queue.close()
    with open(os.path.join(directory, "cursor"), "wb") as f:
        f.write(b"garbage")
    with capturedLogs() as logs:
        again = EventQueue("hook", 100, Clock(), directory)
    assert drain(again) == [0, 1, 2]  # at least once, never lost
    assert warnings(logs)


def test_spoolIsSyncedSoonAfterAWrite(tmp_path, monkeypatch):
    clock = Clock()
    queue = EventQueue("hook", 100, clock, str(tmp_path / "spool"), syncDelay=0.5)
    queue.put(record(0))
    synced = []
    monkeypatch.setattr(os, "fsync", synced.append)
    queue.put(record(1))
    clock.advance(0.4)
    assert synced == []
    clock.advance(0.1)
    assert len(synced) == 1
    clock.advance(10)
    assert len(synced) == 1  # nothing written since


def test_spoolWriteFailureIsCountedAndLogged(tmp_path, monkeypatch):
    directory = str(tmp_path / "spool")
    queue = EventQueue("hook", 100, Clock(), directory)
    queue.put(record(0))
    realWrite = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with capturedLogs() as logs:
        assert not queue.put(record(1))
    assert queue.dropped == 1
    assert "No space left on device" in warnings(logs)[0]["reason"]
    monkeypatch.setattr(os, "write", realWrite)
    assert queue.put(record(2))
    assert drain(queue) == [0, 2]
    assert drain(EventQueue("hook", 100, Clock(), directory)) == []
