"""
Streaming a blob reader into a response, at the pace the client reads.

L{ReaderProducer} is a push producer: it keeps one read in flight while the
transport takes data and stops asking when the transport says pause, so a
slow client holds at most one chunk plus the transport's buffer in memory.
"""

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

CHUNK = 1024 * 1024


@implementer(IPushProducer)
class ReaderProducer:
    def __init__(self, reader, length, consumer):
        self._reader = reader
        self._remaining = length
        self._consumer = consumer
        self._paused = False
        self._reading = False
        self._stopped = False
        self._pumping = False
        self.done = Deferred(lambda _: self.stopProducing())

    def start(self):
        """@return: Deferred firing when all C{length} bytes are written."""
        self._consumer.registerProducer(self, True)
        self._pump()
        return self.done

    def _pump(self):
        if self._pumping:
            return
        self._pumping = True
        try:
            while not (self._paused or self._reading or self._stopped):
                if self._remaining <= 0:
                    self._finish(None)
                    return
                self._reading = True
                d = self._reader.read(min(CHUNK, self._remaining))
                d.addCallbacks(self._gotChunk, self._finish)
        finally:
            self._pumping = False

    def _gotChunk(self, chunk):
        self._reading = False
        if self._stopped:
            return
        if not chunk:
            self._finish(Failure(IOError(f"blob ended {self._remaining} bytes early")))
            return
        self._remaining -= len(chunk)
        self._consumer.write(chunk)
        self._pump()

    def _finish(self, failure):
        self._reading = False
        if self._stopped:
            return
        self._stopped = True
        self._reader.close()
        if self._consumer.producer is self:
            self._consumer.unregisterProducer()
        if failure is None:
            self.done.callback(None)
        else:
            self.done.errback(failure)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._pump()

    def stopProducing(self):
        self._finish(Failure(ConnectionDone("the client stopped reading")))
