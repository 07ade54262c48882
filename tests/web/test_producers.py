"""The blob producers read only as fast as the client takes bytes."""

import contextlib
import errno
import hashlib
import mmap
import os
import socket

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
    Over loopback a large body is sent from the file mapped into memory,
    not with sendfile; a short one (a 4 MB range) with sendfile.
    """
    sendfiles = _counting(monkeypatch, producers.os, "sendfile")
    mappings = []  # (offset, length) of each blob file mapped
    real = mmap.mmap

    def mapping(fd, length, **options):
        if fd != -1:  # not the storage's anonymous staging buffers
            mappings.append((options.get("offset", 0), length))
        return real(fd, length, **options)

    monkeypatch.setattr(producers.mmap, "mmap", mapping)
    client = await makeClient("filesystem")
    try:
        data = os.urandom(12 * 1024 * 1024 + 7)
        digest = await pushBlob(client, "s", data)
        mappings.clear()
        r = await client.request("GET", f"/v2/s/blobs/{digest}")
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest()
        # Mapped once, from an aligned offset near the start to the body's end.
        [(offset, length)] = mappings
        assert offset % mmap.ALLOCATIONGRANULARITY == 0 and offset + length == len(data)
        assert length > len(data) // 2
        assert sendfiles == []
        mappings.clear()
        r = await client.request("GET", f"/v2/s/blobs/{digest}", headers={"Range": "bytes=1000000-5000000"})
        assert (r.status, r.body) == (206, data[1000000:5000001])
        assert mappings == [] and sum(sendfiles) > 2_000_000
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
    with _copying(tmp_path, data, 10) as (_, wire, request, sock, done):
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


@contextlib.contextmanager
def _copying(tmp_path, data, offset=0):
    """
    A copying L{producers.SocketProducer} of a file holding C{data}, from
    C{offset}, started on a socket with no room: yields the file's path, the
    wire, the request, the socket and the Deferred of the stream's end.
    """
    path = tmp_path / "blob"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        wire = bytearray()
        request = _Request(wire)
        sock = _FullSocket(wire, room=0)
        done = producers.SocketProducer(fd, offset, len(data) - offset, request, sock, copy=True).start()
        yield path, wire, request, sock, done
    finally:
        os.close(fd)


def _residentKiB(path):
    """KiB of C{path}'s mappings in this process resident now (from /proc/self/smaps), or None if unmapped."""
    resident, inside = None, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields[0]) > 8 and ":" not in fields[0]:  # a mapping's first line
                inside = fields[-1] == str(path)
            elif inside and fields[0] == "Rss:":
                resident = (resident or 0) + int(fields[1])
    return resident


def test_copiesLetGoOfWhatTheySent(tmp_path):
    """
    A copy unmaps what it has sent every DROP_EVERY bytes, so a large blob
    holds at most about that much mapped; the mapping goes at the end.
    """
    data = os.urandom(5 * producers.DROP_EVERY + 123)
    with _copying(tmp_path, data) as (path, wire, request, sock, done):
        peak = 0
        while not done.called:
            sock.room = CHUNK
            request.drain()
            peak = max(peak, _residentKiB(path) or 0)
        assert bytes(wire) == data
        assert 0 < peak <= (producers.DROP_EVERY + 2 * CHUNK) // 1024
        assert _residentKiB(path) is None  # unmapped


def test_aFileCutShortDuringACopyFailsTheStream(tmp_path):
    """
    A blob file cut short while it is sent fails the stream and lets go of
    the mapping: before it is mapped, as a short blob; after, the mapped
    bytes being touched only by the kernel, as EFAULT from send, not a
    SIGBUS that would kill the process.
    """
    for cutAfterMapping in (False, True):
        data = os.urandom(12 * CHUNK)
        path = tmp_path / "blob"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        ours, theirs = socket.socketpair()
        try:
            ours.setblocking(False)
            request = _Request(bytearray())
            producer = producers.SocketProducer(fd, 0, len(data), request, ours, copy=True)
            done = producer.start()  # the first bytes through the transport, until it pauses
            if cutAfterMapping:
                request.drain()  # the socket fills from the mapping
                assert _residentKiB(path) and not done.called
                _emptySocket(theirs)  # so that the next send copies
            os.truncate(path, 4096)
            request.drain()
            failure = _failureOf(done)
            assert failure.check(OSError)
            if cutAfterMapping:
                assert failure.value.errno == errno.EFAULT
            else:
                assert "ended" in str(failure.value)
            assert _residentKiB(path) is None and request.producer is None
        finally:
            ours.close()
            theirs.close()
            os.close(fd)


def _emptySocket(sock):
    sock.setblocking(False)
    try:
        while sock.recv(1 << 20):
            pass
    except BlockingIOError:
        pass


def _failureOf(d):
    failures = []
    d.addErrback(failures.append)
    assert len(failures) == 1, "the stream did not fail"
    return failures[0]
