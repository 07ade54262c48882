"""The listeners' TCP connections: short writes sent at once, order kept."""

import socket
import time
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor, tcp, unix
from twisted.internet.testing import MemoryReactor

from registryd.config import parseConfig
from registryd.service import RegistryService
from registryd.transport import AT_ONCE, WriteAtOnceServer, writeAtOnce
from tests.support import SocketClient


@pytest.fixture
def connection():
    """A real accepted connection on a port no reactor runs: (server transport, client socket)."""
    factory = protocol.ServerFactory.forProtocol(protocol.Protocol)
    port = writeAtOnce(tcp.Port(0, factory, interface="127.0.0.1", reactor=MemoryReactor()))
    port.startListening()
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    client.settimeout(5)
    port.numberAccepts = 1
    port.doRead()
    (server,) = [p for p in port.reactor.readers if isinstance(p, tcp.Server)]
    yield server, client
    client.close()
    server.socket.close()
    port.socket.close()


def receive(client, size):
    data = b""
    while len(data) < size:
        data += client.recv(size - len(data))
    return data


def test_aShortWriteLeavesBeforeTheReactorRuns(connection):
    """
    Twisted's own connection only buffers the write until the reactor finds
    the socket writable; here no reactor runs, so the bytes can only have
    come from the write itself.
    """
    server, client = connection
    assert type(server) is WriteAtOnceServer
    server.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert client.recv(100) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert not server.dataBuffer and not server._tempDataBuffer


def test_aShortSequenceLeavesAtOnceAsOneWrite(connection):
    """twisted.web writes an answer's head as a sequence."""
    server, client = connection
    server.writeSequence([b"HTTP/1.1 ", b"204 No Content", b"\r\n\r\n"])
    assert client.recv(100) == b"HTTP/1.1 204 No Content\r\n\r\n"
    server.writeSequence([b"y" * AT_ONCE, b"z"])
    assert server._tempDataLen == AT_ONCE + 1


def test_aLargeWriteIsBuffered(connection):
    """Blob bodies keep Twisted's path, whose buffer paces their producers."""
    server, client = connection
    server.write(b"x" * (AT_ONCE + 1))
    assert server._tempDataLen == AT_ONCE + 1
    server.doWrite()
    assert receive(client, AT_ONCE + 1) == b"x" * (AT_ONCE + 1)


def test_writesKeepTheirOrderBehindBufferedBytes(connection):
    """
    A short write behind bytes still buffered (a large write, or the part of
    a short one the full socket did not take) waits its turn.
    """
    server, client = connection
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    pieces = [b"a" * AT_ONCE] * 40 + [b"b" * (AT_ONCE + 5), b"tail"]
    for piece in pieces:
        server.write(piece)
    assert server._tempDataBuffer  # the socket filled up
    expected = b"".join(pieces)
    received = b""
    client.setblocking(False)
    deadline = time.monotonic() + 30
    while len(received) < len(expected) and time.monotonic() < deadline:
        server.doWrite()  # what the reactor does while the socket has room
        try:
            received += client.recv(1 << 20)
        except BlockingIOError:
            time.sleep(0.001)  # the peer's window update is on its way
    assert received == expected


def test_otherPortsKeepTheirTransport():
    port = unix.Port("/nonexistent", protocol.ServerFactory(), reactor=MemoryReactor())
    assert writeAtOnce(port).transport is unix.Server


@pytest_twisted.ensureDeferred
async def test_theServiceListensWithIt():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = parseConfig(
        {
            "storage": {"inmemory": {}, "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": f"127.0.0.1:{port}"},
        }
    )
    service = RegistryService(config, reactor)
    service.startService()
    try:
        ports = [child.port for child in service if getattr(child, "port", None) is not None]
        assert [p.transport for p in ports] == [WriteAtOnceServer]
        client = SocketClient(SimpleNamespace(host=f"127.0.0.1:{port}", registry=None, url=None))
        response = await client.request("GET", "/v2/")
        assert response.status == 200
        assert response.body == b"{}"
    finally:
        await service.stopService()
