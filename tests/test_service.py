"""The daemon's listeners, below what the process tests reach."""

import socket

from twisted.internet import protocol, tcp
from twisted.internet.testing import MemoryReactor

from registryd.config import parseConfig
from registryd.service import acceptOneAtATime, makeRegistry


def test_aSharedPortAcceptsOneConnectionPerWakeUp():
    """
    Twisted's port takes more connections per wake-up each time it used up
    its count; a port that processes share must stay at one, or the first
    to wake takes a whole burst and the others serve none of it.
    """
    factory = protocol.ServerFactory.forProtocol(protocol.Protocol)
    port = tcp.Port(0, factory, interface="127.0.0.1", reactor=MemoryReactor())
    port.startListening()
    acceptOneAtATime(port)
    clients = [socket.create_connection(("127.0.0.1", port.getHost().port)) for _ in range(4)]
    try:
        accepted = []
        for _ in range(4):
            before = port.sessionno
            port.doRead()
            accepted.append(port.sessionno - before)
        assert accepted == [1, 1, 1, 1]
        assert port.numberAccepts == 1
    finally:
        for client in clients:
            client.close()
        port.socket.close()


def test_directWritesFollowTheConfiguration(tmp_path):
    """storage.filesystem.directwrites reaches the filesystem driver (on by default)."""
    for configured, expected in [({}, True), ({"directwrites": False}, False)]:
        config = parseConfig({"storage": {"filesystem": {"rootdirectory": str(tmp_path), **configured}}})
        assert makeRegistry(config).driver._blocking.directWrites is expected
