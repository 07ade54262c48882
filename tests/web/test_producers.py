"""The blob producer reads only as fast as the client takes bytes."""

import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone

from registryd.web.producers import CHUNK, ReaderProducer


class SlowReader:
    """A reader whose reads complete when the test says so."""

    def __init__(self, size):
        self.size = size
        self.offset = 0
        self.pending = []
        self.closed = False

    def read(self, n):
        d = Deferred()
        self.pending.append((d, n))
        return d

    def complete(self):
        d, n = self.pending.pop(0)
        chunk = b"x" * min(n, self.size - self.offset)
        self.offset += len(chunk)
        d.callback(chunk)

    def close(self):
        self.closed = True


class Consumer:
    def __init__(self, pauseAfter=None):
        self.producer = None
        self.written = 0
        self.pauseAfter = pauseAfter

    def registerProducer(self, producer, streaming):
        assert streaming
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.written += len(data)
        if self.pauseAfter is not None and self.written >= self.pauseAfter:
            self.producer.pauseProducing()


def test_pausedProducerStopsReading():
    """A paused (slow) client: no read is issued until it resumes, so nothing piles up."""
    reader = SlowReader(10 * CHUNK)
    consumer = Consumer(pauseAfter=CHUNK)
    producer = ReaderProducer(reader, 10 * CHUNK, consumer)
    done = producer.start()
    assert len(reader.pending) == 1  # one read in flight, no more
    reader.complete()
    assert consumer.written == CHUNK
    assert reader.pending == []  # paused: the next read waits
    for expected in range(2, 11):
        consumer.pauseAfter = expected * CHUNK
        producer.resumeProducing()
        assert len(reader.pending) == 1
        reader.complete()
        assert consumer.written == expected * CHUNK
    producer.resumeProducing()
    assert done.called and consumer.producer is None and reader.closed


def test_stopProducingClosesReader():
    reader = SlowReader(3 * CHUNK)
    consumer = Consumer()
    producer = ReaderProducer(reader, 3 * CHUNK, consumer)
    done = producer.start()
    failures = []
    done.addErrback(failures.append)
    producer.stopProducing()
    assert reader.closed
    assert failures and failures[0].check(ConnectionDone)
    assert consumer.producer is None


def test_shortBlobFails():
    class Short:
        def read(self, n):
            return succeed(b"")

        def close(self):
            pass

    failures = []
    ReaderProducer(Short(), 10, Consumer()).start().addErrback(failures.append)
    assert failures and failures[0].check(IOError)


def test_synchronousReadsDoNotRecurse():
    """An in-memory reader answers at once: thousands of chunks, no deep recursion."""

    class Instant:
        def read(self, n):
            return succeed(b"y" * n)

        def close(self):
            pass

    consumer = Consumer()
    size = 5000 * 16
    import registryd.web.producers as producers

    original = producers.CHUNK
    producers.CHUNK = 16
    try:
        done = ReaderProducer(Instant(), size, consumer).start()
    finally:
        producers.CHUNK = original
    assert done.called and consumer.written == size


@pytest_twisted.ensureDeferred
async def test_plainTCPFilesystemBlobsGoBySendfile(monkeypatch):
    """A filesystem blob over plain TCP is sent with sendfile(2), whole and exact, ranges too."""
    import hashlib
    import os

    from registryd.web import producers
    from tests.support import makeClient, pushBlob

    sent = []
    real = os.sendfile

    def counting(*args):
        n = real(*args)
        sent.append(n)
        return n

    monkeypatch.setattr(producers.os, "sendfile", counting)
    client = await makeClient("filesystem")
    try:
        data = os.urandom(12 * 1024 * 1024 + 7)
        digest = await pushBlob(client, "s", data)
        r = await client.request("GET", f"/v2/s/blobs/{digest}")
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest()
        assert sum(sent) > len(data) // 2  # most of it without Python copies
        r = await client.request("GET", f"/v2/s/blobs/{digest}", headers={"Range": "bytes=1000000-5000000"})
        assert (r.status, r.body) == (206, data[1000000:5000001])
    finally:
        await client.close()
