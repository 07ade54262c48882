"""
Request bodies delivered to a sink as they arrive, with backpressure.

A L{StreamedBody} is fed by the streaming request as bytes come off the
socket and hands them on in batches of C{BATCH} bytes, so the sink's
per-write costs (a thread hop, a hash update, a system call) are paid per
MiB rather than per socket read; bytes that do not make a batch are handed
on after C{PARTIAL_DELAY}, when the body ends, or when the connection is
lost (so a resumed upload keeps them).  When the sink falls behind by more
than C{HIGH_WATER} bytes, the transport is paused until it catches up.  A
L{SpooledBody} wraps a body Twisted has already spooled (ordinary requests,
and L{treq.testing}) behind the same C{deliver} call, so route code does not
care which it gets.
"""

import collections

from twisted.internet.defer import Deferred, maybeDeferred

from registryd import memory
from registryd.concurrency import deferred

BATCH = 1024 * 1024
PARTIAL_DELAY = 0.01  # seconds a short batch waits for more bytes
HIGH_WATER = 4 * 1024 * 1024
SPOOL_CHUNK = 1024 * 1024


class StreamedBody:
    """
    A body still arriving.  C{deliver(write)} hands it, in order, to
    C{write(data) -> Deferred}, one call at a time.

    @ivar length: The declared Content-Length, or None (chunked).
    @ivar received: Bytes received so far.
    """

    def __init__(self, producer, length, accept=lambda: None, callLater=None):
        if callLater is None:
            from twisted.internet import reactor

            callLater = reactor.callLater
        self._producer = producer
        self._accept = accept
        self._callLater = callLater
        self.length = length
        self.received = 0
        self._buffer = collections.deque()
        self._buffered = 0
        self._paused = False
        self._ended = False
        self._error = None
        self._write = None
        self._done = None
        self._writing = False
        self._pumping = False
        self._discarding = False
        self._partial = None  # the call handing on a short batch

    # Fed by the request.
    def dataReceived(self, data):
        if self._discarding:
            return
        self.received += len(data)
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= HIGH_WATER and not self._paused:
            self._paused = True
            self._producer.pauseProducing()
        self._pump()

    def finished(self):
        self._ended = True
        self._pump()

    def failed(self, reason):
        if not self._ended:
            self._error = reason
            self._pump()

    @property
    def complete(self):
        return self._ended

    # Used by routes.
    def deliver(self, write):
        """
        Accept the body (answering C{Expect: 100-continue}) and write it.

        @return: Deferred firing with the number of bytes when the whole body
            has been written, or failing with the first write's or the
            connection's failure (after writing what had arrived).
        """
        self._write = write
        self._done = Deferred(lambda _: self.discard())
        self._done.addBoth(self._released)
        self._accept()
        self._pump()
        return self._done

    def discard(self):
        """Drop what is buffered and whatever arrives later."""
        self._discarding = True
        self._buffer.clear()
        self._buffered = 0
        self._cancelPartial()
        self._resume()

    def _resume(self):
        if self._paused:
            self._paused = False
            self._producer.resumeProducing()

    def _pump(self, partial=False):
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._done is not None and not self._writing and not self._done.called:
                if self._buffer and (partial or self._buffered >= BATCH or self._allIn()):
                    partial = False
                    self._cancelPartial()
                    data = self._takeBatch()
                    if self._buffered < HIGH_WATER:
                        self._resume()
                    self._writing = True
                    maybeDeferred(self._write, data).addCallbacks(self._written, self._writeFailed)
                elif self._error is not None:
                    self._done.errback(self._error)
                elif self._ended:
                    self._done.callback(self.received)
                else:
                    if self._buffer and self._partial is None:
                        self._partial = self._callLater(PARTIAL_DELAY, self._handOnPartial)
                    break
        finally:
            self._pumping = False

    def _released(self, result):
        """A body of several batches has been through: its buffers are freed."""
        if self.received > BATCH:
            memory.releaseFreed()
        return result

    def _takeBatch(self):
        """Up to a batch of what is buffered (more if one piece is larger), in one bytes."""
        pieces = [self._buffer.popleft()]
        size = len(pieces[0])
        while self._buffer and size + len(self._buffer[0]) <= BATCH:
            pieces.append(self._buffer.popleft())
            size += len(pieces[-1])
        self._buffered -= size
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _allIn(self):
        return (
            self._ended
            or self._error is not None
            or (self.length is not None and self.received >= self.length)
        )

    def _handOnPartial(self):
        self._partial = None
        self._pump(partial=True)

    def _cancelPartial(self):
        if self._partial is not None:
            if self._partial.active():
                self._partial.cancel()
            self._partial = None

    def _written(self, _):
        self._writing = False
        self._pump()

    def _writeFailed(self, failure):
        self._writing = False
        self.discard()
        if not self._done.called:
            self._done.errback(failure)


class SpooledBody:
    """A body Twisted already spooled into C{request.content}."""

    def __init__(self, content):
        self._content = content
        self._content.seek(0, 2)
        self.length = self.received = self._content.tell()
        self._content.seek(0)
        self.complete = True

    @deferred
    async def deliver(self, write):
        while chunk := self._content.read(SPOOL_CHUNK):
            await maybeDeferred(write, chunk)
        return self.received

    def discard(self):
        pass


def bodyOf(request):
    """The request's body, streamed if the request streams it."""
    body = getattr(request, "streamedBody", None)
    if body is not None:
        return body
    return SpooledBody(request.content)
