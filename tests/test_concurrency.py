"""The concurrency tools' own behaviour, below the storage that uses them."""

import threading
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults

from registryd.concurrency import SerialThread


def _threadsNamed(name):
    return [t for t in threading.enumerate() if t.name == name]


@pytest_twisted.ensureDeferred
async def test_serialThreadRunsCallsInOrderOffTheReactor():
    serial = SerialThread(reactor, "test-serial-order")
    ran = []

    def call(i):
        ran.append((i, threading.current_thread().name))
        time.sleep(0.001)
        return i * 10

    results = await gatherResults([serial(call, i) for i in range(20)])
    assert results == [i * 10 for i in range(20)]
    assert ran == [(i, "test-serial-order") for i in range(20)]


@pytest_twisted.ensureDeferred
async def test_serialThreadDeliversErrorsAsFailures():
    serial = SerialThread(reactor, "test-serial-errors")

    def fails():
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        await serial(fails)
    assert await serial(lambda: "still serving") == "still serving"


@pytest_twisted.ensureDeferred
async def test_serialThreadEndsWhenIdleAndStartsAgain():
    serial = SerialThread(reactor, "test-serial-idle")
    serial.IDLE = 0.05
    assert await serial(lambda: 1) == 1
    deadline = time.monotonic() + 10
    while _threadsNamed("test-serial-idle") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _threadsNamed("test-serial-idle") == []
    assert await serial(lambda: 2) == 2
