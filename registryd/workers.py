"""
Several processes serving one set of listening sockets (C{--workers N}).

One CPython process uses one core.  The first process (the master) listens
as usual, then starts N-1 copies of itself that adopt its listening
sockets, so the kernel hands each new connection to whichever process
accepts it first.  Everything the processes share lives in storage (upload
sessions, tags, links), so any worker can serve any request.  The master
alone runs the periodic chores; it restarts a worker that dies and stops
them all when it stops.
"""

import os
import signal
import socket

from twisted.application.service import Service
from twisted.internet import protocol
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessExitedAlready
from twisted.logger import Logger

log = Logger()

# A worker's listening sockets are these file descriptors, in the order of
# the configuration's listeners.
FIRST_INHERITED_FD = 3
RESTART_DELAY = 1.0


def familyOf(fd):
    """The address family of the listening socket C{fd}."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        return sock.family
    finally:
        sock.close()


class _WorkerProtocol(protocol.ProcessProtocol):
    def __init__(self, pool, index):
        self._pool = pool
        self._index = index

    def processEnded(self, reason):
        self._pool._ended(self._index, reason)


class WorkerPool(Service):
    """
    Starts and watches the worker processes.

    @param count: Workers besides this process.
    @param ports: This process's listening ports (L{IListeningPort}s with
        C{fileno()}), in configuration order, known once they listen.
    @param arguments: The command line the workers run, to which
        C{--worker N} is added.
    """

    def __init__(self, reactor, count, ports, arguments, environment=None):
        self._reactor = reactor
        self._count = count
        self._ports = ports
        self._arguments = arguments
        self._environment = environment if environment is not None else dict(os.environ)
        self._processes = {}
        self._waiting = {}
        self._stopping = False

    def startService(self):
        super().startService()
        for index in range(1, self._count + 1):
            self._spawn(index)

    def _spawn(self, index):
        fds = [port.fileno() for port in self._ports()]
        childFDs = {1: 1, 2: 2}
        arguments = list(self._arguments) + ["--worker", str(index)]
        for offset, fd in enumerate(fds):
            childFDs[FIRST_INHERITED_FD + offset] = fd
        self._processes[index] = self._reactor.spawnProcess(
            _WorkerProtocol(self, index),
            self._arguments[0],
            arguments,
            env=self._environment,
            childFDs=childFDs,
        )
        log.info("started worker {index} (pid {pid})", index=index, pid=self._processes[index].pid)

    def _ended(self, index, reason):
        self._processes.pop(index, None)
        waiting = self._waiting.pop(index, None)
        if waiting is not None and not waiting.called:
            waiting.callback(None)
        if self._stopping:
            return
        log.warn("worker {index} ended ({reason}); restarting", index=index, reason=reason.value)
        self._reactor.callLater(RESTART_DELAY, self._spawn, index)

    def stopService(self):
        super().stopService()
        self._stopping = True
        ended = []
        for index, process in list(self._processes.items()):
            done = Deferred()
            self._waiting[index] = done
            ended.append(done)
            try:
                process.signalProcess(signal.SIGTERM)
            except (OSError, ProcessExitedAlready):
                done.callback(None)
        return gatherResults(ended)
