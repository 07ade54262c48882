"""The blob producers read only as fast as the client takes bytes."""

import hashlib
import os

import pytest_twisted
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone

from registryd.web import producers
from registryd.web.producers import CHUNK, ReaderProducer, isLoopback
from tests.support import makeClient, pushBlob


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
    original = producers.CHUNK
    producers.CHUNK = 16
    try:
        done = ReaderProducer(Instant(), size, consumer).start()
    finally:
        producers.CHUNK = original
    assert done.called and consumer.written == size


async def _pullsWhole(client, sent):
    """A 12 MiB blob pushed and pulled whole and by range, with C{sent} counting socket writes."""
    data = os.urandom(12 * 1024 * 1024 + 7)
    digest = await pushBlob(client, "s", data)
    r = await client.request("GET", f"/v2/s/blobs/{digest}")
    assert r.status == 200
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest()
    assert sum(sent) > len(data) // 2  # most of it straight to the socket
    sent.clear()
    r = await client.request("GET", f"/v2/s/blobs/{digest}", headers={"Range": "bytes=1000000-5000000"})
    assert (r.status, r.body) == (206, data[1000000:5000001])


def _counting(monkeypatch, target, name):
    sent = []
    real = getattr(target, name)

    def counting(*args):
        n = real(*args)
        sent.append(n)
        return n

    monkeypatch.setattr(target, name, counting)
    return sent


@pytest_twisted.ensureDeferred
async def test_remotePeersGetBlobsBySendfile(monkeypatch):
    """A filesystem blob over plain TCP to another host is sent with sendfile(2), whole and exact, ranges too."""
    sent = _counting(monkeypatch, producers.os, "sendfile")
    monkeypatch.setattr(producers, "isLoopback", lambda address: False)
    client = await makeClient("filesystem")
    try:
        await _pullsWhole(client, sent)
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_loopbackPeersGetLargeBlobsByCopies(monkeypatch):
    """
    Over loopback a large body goes by preadv and send to the socket, not
    sendfile; a short one (a 4 MB range) by sendfile.
    """
    sendfiles = _counting(monkeypatch, producers.os, "sendfile")
    reads = []
    real = producers.os.preadv
    monkeypatch.setattr(producers.os, "preadv", lambda fd, buffers, offset: reads.append(real(fd, buffers, offset)) or reads[-1])
    client = await makeClient("filesystem")
    try:
        data = os.urandom(12 * 1024 * 1024 + 7)
        digest = await pushBlob(client, "s", data)
        r = await client.request("GET", f"/v2/s/blobs/{digest}")
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest()
        assert sum(reads) > len(data) // 2 and max(reads) == producers.CHUNK
        assert sendfiles == []
        reads.clear()
        r = await client.request("GET", f"/v2/s/blobs/{digest}", headers={"Range": "bytes=1000000-5000000"})
        assert (r.status, r.body) == (206, data[1000000:5000001])
        assert reads == [] and sum(sendfiles) > 2_000_000
    finally:
        await client.close()
    assert producers.SocketProducer.streaming == 0  # every stream counted out


@pytest_twisted.ensureDeferred
async def test_loopbackPeersGetSendfileWhileOtherStreamsRun(monkeypatch):
    """A copy costs processor time that concurrent streams need: with another running, sendfile."""
    sent = _counting(monkeypatch, producers.os, "sendfile")
    monkeypatch.setattr(producers.SocketProducer, "streaming", 1)
    client = await makeClient("filesystem")
    try:
        await _pullsWhole(client, sent)
    finally:
        await client.close()
    assert producers.SocketProducer.streaming == 1


def test_isLoopback():
    assert isLoopback(IPv4Address("TCP", "127.0.0.1", 1))
    assert isLoopback(IPv4Address("TCP", "127.3.2.1", 1))
    assert isLoopback(IPv6Address("TCP", "::1", 1))
    assert isLoopback(IPv6Address("TCP", "::ffff:127.0.0.1", 1))
    assert not isLoopback(IPv4Address("TCP", "10.0.0.1", 1))
    assert not isLoopback(IPv6Address("TCP", "fe80::1", 1))
    assert not isLoopback(UNIXAddress(b"/tmp/sock"))


class _FullSocket:
    """A non-blocking socket that takes C{room} bytes onto C{wire}, then would block."""

    def __init__(self, wire, room):
        self.wire = wire
        self.room = room
        self.taken = 0

    def send(self, data):
        if not self.room:
            raise BlockingIOError()
        n = min(self.room, len(data))
        self.wire += data[:n]
        self.room -= n
        self.taken += n
        return n


class _Request(Consumer):
    """
    A request whose transport pauses its producer past 64 KiB, as Twisted's
    does; what it buffers reaches C{wire} before the producer is resumed.
    """

    def __init__(self, wire):
        super().__init__()
        self.wire = wire
        self.sentLength = 0
        self.buffered = 0

    def write(self, data):
        self.wire += data
        self.buffered += len(data)
        if self.buffered > 64 * 1024:
            self.producer.pauseProducing()

    def drain(self):
        self.buffered = 0
        self.producer.resumeProducing()


def test_copiesTheSocketDoesNotTakeGoThroughTheTransport(tmp_path):
    """
    What the socket leaves of a copy is written through the transport, in
    order, and the producer waits to be resumed: every byte arrives once.
    """
    data = os.urandom(5 * CHUNK + 123)
    path = tmp_path / "blob"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        wire = bytearray()
        request = _Request(wire)
        sock = _FullSocket(wire, room=0)
        done = producers.SocketProducer(fd, 10, len(data) - 10, request, sock, copy=True).start()
        assert len(wire) == 64 * 1024 + 1  # through the transport, until it paused
        rounds = 0
        while not done.called:
            sock.room = CHUNK // 3  # the socket takes part of a copy
            request.drain()
            rounds += 1
        assert request.producer is None
        assert bytes(wire) == data[10:]
        assert rounds < 20  # a copy at a time, not 64 KiB
        # The access log's count of bytes the transport did not see.
        assert request.sentLength == sock.taken > len(data) // 4
    finally:
        os.close(fd)
