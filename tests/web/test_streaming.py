"""
The streaming request path: upload bodies reach storage while they arrive,
with backpressure, 100-continue, early errors and disconnects handled.
These go through real sockets, since StubTreq spools bodies itself.
"""

import http.client
import os
import socket

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.threads import deferToThread

from registryd import memory
from registryd.storage import paths
from registryd.testing import startRegistry
from registryd.config import defaultConfig
from registryd.driver.memory import MemoryDriver
from registryd.storage.registry import Registry
from registryd.service import makeResource
from registryd.web.body import BATCH, HIGH_WATER, PARTIAL_DELAY, StreamedBody
from registryd.web.site import READ_SIZE, RegistrySite
from tests.support import SocketClient, digestOf


class FakeProducer:
    def __init__(self):
        self.paused = False
        self.pauses = 0

    def pauseProducing(self):
        assert not self.paused
        self.paused = True
        self.pauses += 1

    def resumeProducing(self):
        assert self.paused
        self.paused = False


def test_streamedBodyBackpressure():
    """A slow sink pauses the transport; memory stays near HIGH_WATER; order is kept."""
    producer = FakeProducer()
    body = StreamedBody(producer, None)
    pending = []
    written = []

    def write(data):
        written.append(data)
        d = Deferred()
        pending.append(d)
        return d

    done = body.deliver(write)
    chunk = os.urandom(64 * 1024)
    sent = []
    maxBuffered = 0
    for i in range(400):  # 25 MiB
        if producer.paused:
            # The transport is paused: the sink catches up first.
            while pending:
                pending.pop(0).callback(None)
        body.dataReceived(chunk + bytes([i % 256]))
        sent.append(chunk + bytes([i % 256]))
        maxBuffered = max(maxBuffered, body._buffered)
    while pending:
        pending.pop(0).callback(None)
    body.finished()
    while pending:
        pending.pop(0).callback(None)
    assert done.called
    assert b"".join(written) == b"".join(sent)
    assert producer.pauses > 0
    assert not producer.paused
    assert maxBuffered <= HIGH_WATER + len(chunk) + 1


def test_streamedBodyBatches():
    """Bytes go on in batches of BATCH; a short batch after PARTIAL_DELAY, and the rest at the end."""
    clock = Clock()
    body = StreamedBody(FakeProducer(), None, callLater=clock.callLater)
    written = []
    done = body.deliver(lambda data: written.append(data) or succeed(None))
    piece = os.urandom(64 * 1024)
    for _ in range(40):  # 2.5 MiB
        body.dataReceived(piece)
    assert [len(w) for w in written] == [BATCH, BATCH]
    clock.advance(PARTIAL_DELAY)
    assert [len(w) for w in written] == [BATCH, BATCH, BATCH // 2]
    body.dataReceived(b"tail")
    assert len(written) == 3
    body.finished()
    assert written[-1] == b"tail"
    assert done.result == 40 * len(piece) + 4
    assert b"".join(written) == piece * 40 + b"tail"
    assert not clock.getDelayedCalls()


def test_streamedBodyWithLengthEndsItsLastBatchAtOnce():
    """A body whose declared length has all arrived is handed on without waiting."""
    clock = Clock()
    body = StreamedBody(FakeProducer(), 5000, callLater=clock.callLater)
    written = []
    body.deliver(lambda data: written.append(data) or succeed(None))
    body.dataReceived(b"x" * 4000)
    assert written == []
    body.dataReceived(b"y" * 1000)
    assert written == [b"x" * 4000 + b"y" * 1000]


def test_streamedBodyKeepsWhatArrivedBeforeTheConnectionFailed():
    clock = Clock()
    body = StreamedBody(FakeProducer(), None, callLater=clock.callLater)
    written, failures = [], []
    body.deliver(lambda data: written.append(data) or succeed(None)).addErrback(failures.append)
    body.dataReceived(b"a" * 100_000)
    body.failed(Failure(ConnectionError("gone")))
    assert written == [b"a" * 100_000]
    assert failures and failures[0].check(ConnectionError)
    assert not clock.getDelayedCalls()


def test_largeBodyReadInBatches():
    """While a large upload body streams in, the socket is read BATCH bytes at a time."""
    registry = Registry(MemoryDriver())
    site = RegistrySite(makeResource(defaultConfig(), registry), accessLogEnabled=False)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    transport.bufferSize = READ_SIZE
    channel.makeConnection(transport)
    data = os.urandom(3_000_000)
    channel.dataReceived(
        b"POST /v2/a/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n\r\n"
        % (digestOf(data).encode(), len(data))
    )
    assert transport.bufferSize == BATCH
    channel.dataReceived(data)
    assert transport.bufferSize == READ_SIZE
    assert transport.value().startswith(b"HTTP/1.1 201 Created\r\n")
    channel.connectionLost(Failure(ConnectionError("done")))


def test_largeBodiesReleaseTheirFreedBuffers(monkeypatch):
    """
    Once a body of more than a batch has been through, written or failed,
    the freed heap is handed back; a small body's is not worth the call.
    """
    released = []
    monkeypatch.setattr(memory, "releaseFreed", lambda: released.append(True))
    ends = {}
    for name, size, end in [
        ("large", BATCH + 1, "finish"),
        ("large, failed", 2 * BATCH, "fail"),
        ("small", BATCH, "finish"),
    ]:
        released.clear()
        body = StreamedBody(FakeProducer(), None)
        done = body.deliver(lambda data: succeed(None))
        done.addErrback(lambda f: None)
        body.dataReceived(b"x" * size)
        assert released == []  # not while the body is still arriving
        body.finished() if end == "finish" else body.failed(Failure(ConnectionError("gone")))
        assert done.called
        ends[name] = len(released)
    assert ends == {"large": 1, "large, failed": 1, "small": 0}


def test_streamedBodyWriteFailureDiscards():
    producer = FakeProducer()
    body = StreamedBody(producer, 10)
    failures = []
    body.deliver(lambda data: (_ for _ in ()).throw(OSError("disk full"))).addErrback(failures.append)
    body.dataReceived(b"0123456789")
    assert failures and failures[0].check(OSError)
    body.dataReceived(b"more")  # ignored from now on
    assert body._buffered == 0


class Raw:
    """A blocking HTTP/1.1 connection driven step by step from threads."""

    def __init__(self, host):
        address, port = host.split(":")
        self.sock = socket.create_connection((address, int(port)), timeout=30)
        self.file = self.sock.makefile("rb")

    def send(self, data):
        return deferToThread(self.sock.sendall, data)

    def readLine(self):
        return deferToThread(self.file.readline)

    def response(self, method):
        def read():
            response = http.client.HTTPResponse(self.sock, method=method)
            response.fp = self.file
            response.begin()
            return response.status, response.headers, response.read()

        return deferToThread(read)

    def closed(self):
        """Whether the server closed the connection (reads EOF)."""

        def check():
            self.sock.settimeout(10)
            try:
                return self.sock.recv(1) == b""
            except (ConnectionResetError, OSError):
                return True

        return deferToThread(check)

    def close(self):
        self.file.close()
        self.sock.close()


def request(method, path, headers):
    lines = [f"{method} {path} HTTP/1.1", "Host: registry"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest_twisted.async_yield_fixture(params=["inmemory", "filesystem"])
async def running(request):
    r = await startRegistry(storage=request.param)
    yield r
    await r.stop()


async def newSession(running, name="a"):
    r = await status(running, f"/v2/{name}/blobs/uploads/", "POST")
    return r.header("Docker-Upload-UUID").decode()


async def status(running, path, method="GET", body=b""):
    """One ordinary request (the fixture owns the registry's lifetime)."""
    return await SocketClient(running).request(method, path, body=body)


async def storedSize(running, name, uploadID):
    info = await running.registry.driver.stat(paths.uploadData(name, uploadID))
    return info.size


@pytest_twisted.ensureDeferred
async def test_bodyReachesStorageBeforeItEnds(running):
    uploadID = await newSession(running)
    data = os.urandom(8 * 1024 * 1024)
    raw = Raw(running.host)
    try:
        await raw.send(
            request("PATCH", f"/v2/a/blobs/uploads/{uploadID}", {"Content-Length": len(data)})
        )
        await raw.send(data[: len(data) // 2])
        for _ in range(200):
            if await storedSize(running, "a", uploadID) > 0:
                break
            await deferLater(reactor, 0.01, lambda: None)
        # Half the body is in storage while the request is still open.
        assert 0 < await storedSize(running, "a", uploadID) <= len(data) // 2
        await raw.send(data[len(data) // 2 :])
        code, headers, _ = await raw.response("PATCH")
        assert code == 202
        assert headers["Range"] == f"0-{len(data) - 1}"
    finally:
        raw.close()
    r = await status(running, f"/v2/a/blobs/uploads/{uploadID}?digest={digestOf(data)}", "PUT")
    assert r.status == 201


@pytest_twisted.ensureDeferred
async def test_disconnectMidUploadIsResumable(running):
    uploadID = await newSession(running)
    data = os.urandom(3 * 1024 * 1024)
    raw = Raw(running.host)
    await raw.send(request("PATCH", f"/v2/a/blobs/uploads/{uploadID}", {"Content-Length": len(data)}))
    await raw.send(data[:1_000_000])
    for _ in range(200):
        if await storedSize(running, "a", uploadID) == 1_000_000:
            break
        await deferLater(reactor, 0.01, lambda: None)
    raw.close()
    # The session is released and reports what it holds.
    for _ in range(200):
        r = await status(running, f"/v2/a/blobs/uploads/{uploadID}")
        if r.status == 204:
            break
        await deferLater(reactor, 0.01, lambda: None)
    assert r.status == 204
    assert r.header("Range") == b"0-999999"
    assert (await status(running, f"/v2/a/blobs/{digestOf(data)}", "HEAD")).status == 404
    r = await status(running, f"/v2/a/blobs/uploads/{uploadID}?digest={digestOf(data)}", "PUT", data[1_000_000:])
    assert r.status == 201, r.body
    r = await status(running, f"/v2/a/blobs/{digestOf(data)}")
    assert r.body == data


@pytest_twisted.ensureDeferred
async def test_expectContinue(running):
    uploadID = await newSession(running)
    data = b"x" * 100_000
    raw = Raw(running.host)
    try:
        await raw.send(
            request(
                "PATCH",
                f"/v2/a/blobs/uploads/{uploadID}",
                {"Content-Length": len(data), "Expect": "100-continue"},
            )
        )
        assert await raw.readLine() == b"HTTP/1.1 100 Continue\r\n"
        assert await raw.readLine() == b"\r\n"
        await raw.send(data)
        code, headers, _ = await raw.response("PATCH")
        assert code == 202
        assert headers["Range"] == f"0-{len(data) - 1}"
    finally:
        raw.close()


@pytest_twisted.ensureDeferred
async def test_refusedBeforeContinue(running):
    """An unknown session is refused without asking for the body, and nothing is stored."""
    raw = Raw(running.host)
    try:
        await raw.send(
            request(
                "PATCH",
                "/v2/a/blobs/uploads/0b8d0e1a-5b1b-4b8e-9d5e-1a2b3c4d5e6f",
                {"Content-Length": 50_000_000, "Expect": "100-continue"},
            )
        )
        code, headers, body = await raw.response("PATCH")
        assert code == 404
        assert b"BLOB_UPLOAD_UNKNOWN" in body
        assert headers.get("Connection") == "close"
        assert await raw.closed()
    finally:
        raw.close()
    # The registry carries on.
    assert (await status(running, "/v2/")).status == 200


@pytest_twisted.ensureDeferred
async def test_earlyErrorWithBodyInFlight(running):
    raw = Raw(running.host)
    try:
        await raw.send(
            request("POST", "/v2/BAD/blobs/uploads/?digest=sha256:" + "0" * 64, {"Content-Length": 10_000_000})
        )
        await raw.send(b"y" * 100_000)
        code, headers, body = await raw.response("POST")
        assert code == 400
        assert b"NAME_INVALID" in body
        assert await raw.closed()
    finally:
        raw.close()
    assert (await status(running, "/v2/")).status == 200


@pytest_twisted.ensureDeferred
async def test_chunkedTransferEncoding(running):
    """python-dxf pushes with Transfer-Encoding: chunked and no Content-Length."""
    uploadID = await newSession(running)
    data = os.urandom(500_000)
    digest = digestOf(data)
    raw = Raw(running.host)
    try:
        await raw.send(
            request(
                "PUT",
                f"/v2/a/blobs/uploads/{uploadID}?digest={digest}",
                {"Transfer-Encoding": "chunked"},
            )
        )
        for start in range(0, len(data), 70_000):
            piece = data[start : start + 70_000]
            await raw.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        await raw.send(b"0\r\n\r\n")
        code, headers, _ = await raw.response("PUT")
        assert code == 201
        assert headers["Docker-Content-Digest"] == digest
    finally:
        raw.close()
    r = await status(running, f"/v2/a/blobs/{digest}")
    assert r.body == data


@pytest_twisted.ensureDeferred
async def test_tlsClientHelloAnsweredAtOnce(running):
    """A client trying TLS first on the plain port gets a 400 and a close, not silence."""
    raw = Raw(running.host)
    try:
        # The start of a TLS ClientHello record: handshake (0x16), TLS 1.0 version.
        await raw.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(100))
        line = await raw.readLine()
        assert line.startswith(b"HTTP/1.1 400")
        assert await raw.closed()
    finally:
        raw.close()
    assert (await status(running, "/v2/")).status == 200


def _answers(channel, transport, request):
    transport.clear()
    channel.dataReceived(request)
    return transport.value()


def test_absoluteFormTargets():
    """
    A request target in absolute-form (http://host/path) is routed as its
    path, streamed or not, with its authority standing for Host; a path
    that merely contains "://" is left alone.
    """
    registry = Registry(MemoryDriver())
    site = RegistrySite(makeResource(defaultConfig(), registry), accessLogEnabled=False)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    data = b"absolute"
    digest = digestOf(data).encode()
    answer = _answers(
        channel,
        transport,
        b"POST http://registry.example:5000/v2/a/blobs/uploads/?digest=%s HTTP/1.1\r\n"
        b"Host: other\r\nContent-Length: %d\r\n\r\n%s" % (digest, len(data), data),
    )
    assert answer.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"\r\nLocation: http://registry.example:5000/v2/a/blobs/%s\r\n" % digest in answer
    answer = _answers(channel, transport, b"GET HTTP://r/v2/a/blobs/%s HTTP/1.1\r\nHost: r\r\n\r\n" % digest)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n" + data)
    answer = _answers(channel, transport, b"GET https://r?n=1 HTTP/1.1\r\nHost: r\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")
    answer = _answers(channel, transport, b"GET http://r/v2/ HTTP/1.1\r\nHost: r\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    answer = _answers(channel, transport, b"GET /v2/a/blobs/http://x HTTP/1.1\r\nHost: r\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ") and b'"path": "/v2/a/blobs/http://x"' in answer
    channel.connectionLost(Failure(ConnectionError("done")))


def test_originForm():
    from registryd.web.site import originForm

    assert originForm(b"/v2/a?x=1") == (b"/v2/a?x=1", None)
    assert originForm(b"http://h:1/v2/a?x=1") == (b"/v2/a?x=1", b"h:1")
    assert originForm(b"https://h?x=1") == (b"/?x=1", b"h")
    assert originForm(b"http://h") == (b"/", b"h")
    assert originForm(b"ftp://h/v2/") == (b"ftp://h/v2/", None)


def test_overlongLinesAreAnsweredBeforeTheConnectionCloses():
    """
    A line longer than twisted.web takes (16 KiB) gets 414 when it is the
    request line and 431 when it is a header; Twisted alone would close the
    connection without an answer.
    """
    registry = Registry(MemoryDriver())
    site = RegistrySite(makeResource(defaultConfig(), registry), accessLogEnabled=False)
    for request, status in [
        (b"GET /v2/a/tags/list?last=" + b"x" * 20000 + b" HTTP/1.1\r\nHost: r\r\n\r\n", b"414 URI Too Long"),
        (b"GET /v2/ HTTP/1.1\r\nHost: r\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n", b"431 Request Header Fields Too Large"),
    ]:
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(request)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 " + status + b"\r\n")
        assert b"\r\nConnection: close" in head and b"\r\nContent-Length: %d" % len(body) in head
        assert transport.disconnecting
        channel.connectionLost(Failure(ConnectionError("done")))
