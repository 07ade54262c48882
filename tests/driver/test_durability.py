"""Group commit: concurrent writers share flushes, each waits for one that began after it."""

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from registryd.driver import durability
from registryd.concurrency import inline
from registryd.driver.deferred import DeferredDriver
from registryd.driver.durability import GroupCommit
from registryd.driver.filesystem import BlockingFilesystemDriver


class _Flushes:
    """A runner whose flushes finish when the test says so."""

    def __init__(self):
        self.running = []

    def __call__(self, function):
        d = Deferred()
        self.running.append(d)
        return d


def test_writersArrivingDuringAFlushShareTheNext():
    flushes = _Flushes()
    group = GroupCommit(lambda: None, flushes)
    fired = []
    group.sync().addCallback(fired.append)
    assert len(flushes.running) == 1
    # A flush is running; writers arriving now need the next one.
    second, third = group.sync(), group.sync()
    second.addCallback(lambda _: fired.append("second"))
    third.addCallback(lambda _: fired.append("third"))
    assert len(flushes.running) == 1
    flushes.running[0].callback(None)
    assert fired == [None]
    assert len(flushes.running) == 2  # one flush for both late writers
    flushes.running[1].callback(None)
    assert fired == [None, "second", "third"]
    # Idle again: the next writer starts a flush at once.
    group.sync()
    assert len(flushes.running) == 3


def test_aFailedFlushFailsItsWriters():
    flushes = _Flushes()
    group = GroupCommit(lambda: None, flushes)
    first, second, third = group.sync(), group.sync(), group.sync()
    flushes.running[0].errback(OSError(5, "EIO"))
    failure = []
    first.addErrback(failure.append)
    assert failure[0].check(OSError)
    # The group goes on with the writers that were waiting.
    flushes.running[1].errback(OSError(5, "EIO"))
    for d in (second, third):
        failure = []
        d.addErrback(failure.append)
        assert failure[0].check(OSError)
    fourth = group.sync()
    flushes.running[2].callback(None)
    assert fourth.called


class _Counting(BlockingFilesystemDriver):
    flushes = 0

    def flush(self):
        self.flushes += 1
        super().flush()


@pytest.mark.parametrize("durable, flushes", [(True, 1), (False, 0)])
@pytest_twisted.ensureDeferred
async def test_durableWritesFlush(tmp_path, durable, flushes):
    blocking = _Counting(str(tmp_path))
    driver = DeferredDriver(blocking, inline)
    await driver.putContent("/a/b", b"x", durable=durable)
    assert blocking.flushes == flushes
    await driver.move("/a/b", "/c/d", durable=durable)
    assert blocking.flushes == 2 * flushes
    assert (tmp_path / "c/d").read_bytes() == b"x"


def test_realFlush(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    BlockingFilesystemDriver(str(tmp_path)).flush()
    assert durability._syncfs is not None  # Linux: syncfs(2), not a global sync
