"""
Streaming a blob into a response, at the pace the client reads.

L{ReaderProducer} is a push producer: it keeps one read in flight while the
transport takes data and stops asking when the transport says pause, so a
slow client holds at most one chunk plus the transport's buffer in memory.
L{SocketProducer} does the same for a local file on a plain TCP
connection, writing to the socket itself rather than through the
transport's buffer.
"""

import ipaddress
import mmap
import os

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


# A write this much larger than the transport's buffer (Twisted's is 64 KiB)
# makes it pause its producer, and resume it once everything has gone out.
_WAKE = 64 * 1024 + 1
_SENDFILE_MAX = 16 * 1024 * 1024
COPY_AT_LEAST = 8 * CHUNK  # shorter bodies gain nothing from a copy's warm cache
# A copy lets go of the pages it has sent every this many bytes: mapped
# pages count as the process's memory while they stay mapped.
DROP_EVERY = 2 * CHUNK


@implementer(IPushProducer)
class SocketProducer:
    """
    A blob in a local file, written to a plain TCP socket directly: with
    C{sendfile(2)}, no copy through Python, or, when C{copy} is true, with
    C{send} from the file mapped into memory, up to L{CHUNK} bytes at a
    time: the kernel copies the page cache into the socket once (C{preadv}
    into a buffer and then C{send} made two copies, and one stream ran
    about 19% slower).  The mapped bytes are touched only by the kernel, so
    a file cut short meanwhile makes C{send} fail (C{EFAULT}) rather than
    raise C{SIGBUS}.  What has been sent is let go of (C{MADV_DONTNEED})
    every L{DROP_EVERY} bytes, so the mapping holds little memory (drops
    every 2, 4 or 8 MiB measured alike); mapping the file in windows of 8
    MiB instead (unmapped and mapped again) cost more than the copy saved.

    Which is faster depends on the peer and on spare processor time.  Over
    a network card C{sendfile} saves the sender its copy.  Over loopback the
    receiver's copy is the only one left, and it reads the page cache cold;
    a sender's copy leaves the bytes in the cache the two processors share,
    and one stream runs about 1.5 times as fast (3,650 against 2,300 MiB/s
    measured here).  But the copy costs the sender processor time, which
    concurrent streams need: with 16 range reads at once, copies answered a
    fifth fewer.  So L{streamBlob}
    copies for a loopback peer only a body of at least L{COPY_AT_LEAST}
    bytes, and only while no other blob stream is running in this process.

    The socket is written only while the transport's own buffer is empty,
    which it tells by resuming this producer after pausing it: a write
    larger than its buffer (headers and the first bytes, then a little more
    whenever the socket is full) provokes the pause.
    """

    streaming = 0  # producers of this process that have not finished

    def __init__(self, fd, offset, length, request, sock, copy=False):
        self._fd = fd
        self._offset = offset  # of the next byte to read from the file
        self._remaining = length  # not yet given to the socket or the transport
        self._request = request
        self._sock = sock
        self._send = self._sendCopy if copy else self._sendfile
        self._map = None  # the copies' mapping of the file, from _mapStart
        self._view = None
        self._mapStart = self._dropped = 0  # what is below _dropped is let go of
        self._paused = False
        self._stopped = False
        self.done = Deferred(lambda _: self.stopProducing())

    def start(self):
        """@return: Deferred firing when all bytes are sent."""
        SocketProducer.streaming += 1
        self._request.registerProducer(self, True)
        self._writeThroughTransport()
        return self.done

    def _writeThroughTransport(self):
        while self._remaining and not self._paused and not self._stopped:
            data = os.pread(self._fd, min(_WAKE, self._remaining), self._offset)
            if not data:
                self._finish(Failure(IOError(f"blob ended {self._remaining} bytes early")))
                return
            self._offset += len(data)
            self._remaining -= len(data)
            self._request.write(data)
        if not self._remaining:
            self._finish(None)

    def _sendfile(self):
        sent = os.sendfile(self._sock.fileno(), self._fd, self._offset, min(self._remaining, _SENDFILE_MAX))
        self._offset += sent
        return sent

    def _sendCopy(self):
        if self._map is None:
            self._mapFile()
        start = self._offset - self._mapStart
        sent = self._sock.send(self._view[start : start + min(self._remaining, CHUNK)])
        self._offset += sent
        if self._offset - self._dropped >= DROP_EVERY:
            upto = self._offset - self._offset % mmap.PAGESIZE
            self._map.madvise(mmap.MADV_DONTNEED, self._dropped - self._mapStart, upto - self._dropped)
            self._dropped = upto
        return sent

    def _mapFile(self):
        """Map the file from the next byte to send (rounded down as mmap wants) to the body's end."""
        start = self._offset - self._offset % mmap.ALLOCATIONGRANULARITY
        try:
            self._map = mmap.mmap(
                self._fd, self._offset + self._remaining - start, prot=mmap.PROT_READ, offset=start
            )
        except ValueError:  # the file is shorter than the body (Python checks)
            raise OSError(f"blob ended {self._remaining} bytes early") from None
        self._view = memoryview(self._map)
        self._mapStart = self._dropped = start

    def _unmap(self):
        if self._map is not None:
            self._view.release()
            self._map.close()
            self._map = self._view = None

    def resumeProducing(self):
        # The transport's buffer is empty: the socket is ours.
        self._paused = False
        while self._remaining and not self._stopped:
            try:
                sent = self._send()
            except BlockingIOError:
                break
            except OSError as e:
                self._finish(Failure(e))
                return
            if not sent:
                self._finish(Failure(IOError(f"blob ended {self._remaining} bytes early")))
                return
            self._remaining -= sent
            self._request.sentLength += sent
        if not self._stopped:
            self._writeThroughTransport()

    def pauseProducing(self):
        self._paused = True

    def stopProducing(self):
        self._finish(Failure(ConnectionDone("the client stopped reading")))

    def _finish(self, failure):
        if self._stopped:
            return
        self._stopped = True
        self._unmap()
        SocketProducer.streaming -= 1
        if self._request.producer is self:
            self._request.unregisterProducer()
        if failure is None:
            self.done.callback(None)
        else:
            self.done.errback(failure)


def streamBlob(request, reader, offset, length):
    """
    Send C{length} bytes of C{reader} (positioned at C{offset}) as the
    response body: straight to the socket when both ends allow it (see
    L{SocketProducer}), else through a L{ReaderProducer}.

    @return: Deferred firing when all are sent; the reader is closed.
    """
    fd = reader.fileno()
    transport = request.transport
    if fd is not None and not request.isSecure() and hasattr(transport, "getHandle"):
        sock = transport.getHandle()
        if hasattr(sock, "fileno"):
            copy = length >= COPY_AT_LEAST and not SocketProducer.streaming and isLoopback(transport.getPeer())
            d = SocketProducer(fd, offset, length, request, sock, copy).start()
            return d.addBoth(lambda result: (reader.close(), result)[1])
    return ReaderProducer(reader, length, request).start()


def isLoopback(address):
    """Whether a Twisted address is this host's loopback (IPv4-mapped included)."""
    try:
        ip = ipaddress.ip_address(getattr(address, "host", ""))
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
