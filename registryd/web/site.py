"""
The HTTP site: upload bodies streamed, not spooled, and an access log.

Twisted's L{Request} spools a whole body before any resource runs.  For blob
uploads and manifest pushes, L{RegistryRequest} instead dispatches as soon as the headers
are in and feeds the body to a L{StreamedBody} as it arrives.  To know the
route at that point it needs the request line, which L{StreamingChannel}
hands each request it creates.
"""

import io
import re
import time

from twisted.logger import Logger
from twisted.web import http, server

from registryd.web.body import BATCH, StreamedBody
from registryd.web.hotpath import MAX_HEAD, NOT_TAKEN, parseHead

_STREAMED_METHODS = (b"POST", b"PUT", b"PATCH")
_STREAMED_PATH = re.compile(rb"^/v2/.+/(?:blobs/uploads/|manifests/)")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
READ_SIZE = 64 * 1024  # Twisted's own socket read size
LINGER = 30  # seconds an answered request may go on sending its body
_NOT_HTTP_BODY = b"this is an HTTP port; the client sent no HTTP request"


def _closingAnswer(status, body):
    return (
        b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (status, len(body), body)
    )


_NOT_HTTP = _closingAnswer(b"400 Bad Request", _NOT_HTTP_BODY)
_REQUEST_LINE = re.compile(rb"^[A-Z]+ ")
_URI_TOO_LONG = _closingAnswer(b"414 URI Too Long", b"the request line is too long")
_FIELDS_TOO_LARGE = _closingAnswer(b"431 Request Header Fields Too Large", b"a header line is too long")

accessLog = Logger(namespace="registryd.access")


def originForm(target):
    """
    A request target in origin-form (C{/v2/...?query}) and the authority it
    named, or None.  A server must accept the absolute-form
    (C{http://host/v2/...}, RFC 9112 section 3.2.2), which twisted.web would
    take for a path and route nowhere.
    """
    scheme, separator, rest = target.partition(b"://")
    if not separator or scheme.lower() not in (b"http", b"https"):
        return target, None
    ends = [i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0]
    end = min(ends, default=len(rest))
    path = rest[end:]
    return (path if path.startswith(b"/") else b"/" + path), rest[:end]


class StreamingChannel(http.HTTPChannel):
    """
    An L{HTTPChannel} that answers pulls itself while it can (see
    L{registryd.web.hotpath}), tells each request its request line early, and
    turns away at once a connection that does not start like HTTP (clients
    such as podman and skopeo try TLS first and wait for an answer).
    """

    _started = False
    _hotPath = None  # the site's HotPath, until twisted.web takes the connection
    _unread = b""  # received, not yet answered by the hot path
    _answering = False  # an answer from the hot path is on its way
    _waiting = False  # ... and did not come at once
    _transportFull = False  # the transport asked us to stop producing

    def connectionMade(self):
        super().connectionMade()
        self._hotPath = getattr(self.site, "hotPath", None)

    # Both are asked several times a request (Klein alone asks isSecure
    # twice), and neither changes on a connection: isSecure is an adapter
    # lookup and getHost a getsockname(2) each time.
    _secure = None
    _host = None

    def isSecure(self):
        if self._secure is None:
            self._secure = super().isSecure()
        return self._secure

    def getHost(self):
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def dataReceived(self, data):
        if not self._started and data:
            self._started = True
            if not data[:1].isalpha():
                self.transport.write(_NOT_HTTP)
                self.transport.loseConnection()
                return
        if self._hotPath is None:
            super().dataReceived(data)
            return
        self.resetTimeout()
        self._unread += data
        if self._answering:
            if len(self._unread) > MAX_HEAD:
                self.transport.pauseProducing()  # resumed with the answer
            return
        self._answerOnHotPath()

    def _answerOnHotPath(self):
        while self._hotPath is not None and self._unread and not self._transportFull:
            head, size = parseHead(self._unread)
            if head is None:
                return
            if head is not NOT_TAKEN:
                head.channel = self
            answer = None if head is NOT_TAKEN else self._hotPath.answer(head)
            if answer is None:
                self._handOver()
                return
            self._answering = True
            answer.addCallback(self._answered, head, size, time.monotonic())
            if self._answering:
                self._waiting = True
                return  # answered later, and the loop goes on from there

    def _answered(self, answer, head, size, started):
        waited, self._waiting, self._answering = self._waiting, False, False
        if self._hotPath is None:
            return  # the connection is gone
        if answer is None:
            self._handOver()
            return
        self._unread = self._unread[size:]
        self.transport.write(answer.data)
        if self.site.accessLogEnabled:
            self.site.logAccess(
                self.transport.getPeer(),
                head.method,
                head.path,
                answer.status,
                answer.size,
                started,
                head.headers.get(b"user-agent", [b""])[0],
            )
        if head.close:
            self._hotPath = None
            self.loseConnection()  # the channel's: it lets go of the transport first
        elif waited:
            if not self._transportFull:
                self.transport.resumeProducing()
            self._answerOnHotPath()

    def _handOver(self):
        """Give this connection, from the first unanswered byte, to twisted.web."""
        data, self._unread, self._hotPath = self._unread, b"", None
        if data:
            super().dataReceived(data)

    def pauseProducing(self):
        self._transportFull = True
        super().pauseProducing()

    def resumeProducing(self):
        self._transportFull = False
        super().resumeProducing()
        if self._hotPath is not None and not self._answering:
            self._answerOnHotPath()

    def lineLengthExceeded(self, line):
        # Twisted's own closes the connection without a word.
        self.transport.write(_URI_TOO_LONG if _REQUEST_LINE.match(line) else _FIELDS_TOO_LARGE)
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self._hotPath = None
        super().connectionLost(reason)

    def lineReceived(self, line):
        count = len(self.requests)
        super().lineReceived(line)
        if len(self.requests) > count:
            self.requests[-1].requestLine = line


class RegistryRequest(server.Request):
    """
    A request whose upload bodies are streamed to the route handling them.

    @ivar streamedBody: The L{StreamedBody} of a streamed request, else None.
    """

    defaultContentType = None
    requestLine = b""
    streamedBody = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.startTime = time.monotonic()
        self._expectsContinue = False
        self._finishDeferred = False
        self._lingering = None

    def _origin(self, target):
        # The authority of an absolute-form target stands for the Host header.
        target, authority = originForm(target)
        if authority:
            self.requestHeaders.setRawHeaders(b"host", [authority])
        return target

    def gotLength(self, length):
        parts = self.requestLine.split()
        if len(parts) == 3:
            parts[1] = self._origin(parts[1])
        if (
            length == 0
            or len(parts) != 3
            or parts[0] not in _STREAMED_METHODS
            or not _STREAMED_PATH.match(parts[1].split(b"?", 1)[0])
        ):
            super().gotLength(length)
            return
        self.streamedBody = StreamedBody(self.transport, length, self._acceptBody, self.channel.callLater)
        if length is None or length > BATCH:
            self._setReadSize(BATCH)
        # The route answers 100-continue itself, once it accepts the body.
        expect = self.requestHeaders.getRawHeaders(b"expect", [b""])[0]
        if expect.lower() == b"100-continue":
            self._expectsContinue = True
            self.requestHeaders.removeHeader(b"expect")
        self.content = io.BytesIO()
        # Parse the URI and dispatch now, with Twisted's own code.
        server.Request.requestReceived(self, parts[0], parts[1], parts[2])

    def _setReadSize(self, size):
        """
        Read the socket C{size} bytes at a time: a large body then passes
        through the HTTP parser in batches, not 64 KiB pieces.  (A socket's
        own transport reads C{bufferSize} at a time; on a wrapper such as
        TLS the setting is the wrapper's, and changes nothing.)
        """
        if isinstance(getattr(self.transport, "bufferSize", None), int):
            self.transport.bufferSize = size

    def _acceptBody(self):
        """Tell a client waiting on C{Expect: 100-continue} to send the body."""
        if self._expectsContinue and not self.startedWriting:
            self._expectsContinue = False
            self.transport.write(_CONTINUE)

    def handleContentChunk(self, data):
        if self.streamedBody is None:
            super().handleContentChunk(data)
        else:
            self.streamedBody.dataReceived(data)

    def requestReceived(self, command, path, version):
        if self.streamedBody is None:
            super().requestReceived(command, self._origin(path), version)
            return
        self._setReadSize(READ_SIZE)
        self.streamedBody.finished()
        if self._finishDeferred:
            self._finishDeferred = False
            self._stopLingering()
            self.transport.loseConnection()
            super().finish()

    def write(self, data):
        if not self.startedWriting and self._bodyPending():
            # Answered before the body is in: the connection cannot be reused.
            self.setHeader(b"Connection", b"close")
        super().write(data)

    def finish(self):
        if self._bodyPending():
            # Answered before the whole body came: the channel still expects
            # body bytes, so finish once they are in (discarded) or the
            # connection is gone.  Closing only our sending side lets the
            # client read the answer: a full close with unread bytes would
            # reset the connection and destroy it.  LINGER bounds the wait.
            self.streamedBody.discard()
            self._finishDeferred = True
            halfClose = getattr(self.transport, "loseWriteConnection", None)
            if halfClose is None:
                self.transport.loseConnection()
            else:
                halfClose()
                self._lingering = self.channel.callLater(LINGER, self.transport.abortConnection)
            return
        super().finish()

    def _bodyPending(self):
        return self.streamedBody is not None and not self.streamedBody.complete

    def _stopLingering(self):
        if self._lingering is not None and self._lingering.active():
            self._lingering.cancel()
        self._lingering = None

    def connectionLost(self, reason):
        self._stopLingering()
        if self.streamedBody is not None:
            self.streamedBody.failed(reason)
        super().connectionLost(reason)


class RegistrySite(server.Site):
    """A L{Site} of L{RegistryRequest}s on L{StreamingChannel}s, logging each request."""

    protocol = StreamingChannel
    requestFactory = RegistryRequest
    displayTracebacks = False
    timeOut = 300  # idle connections (not requests being answered) are closed

    def __init__(self, resource, accessLogEnabled=True, **kwargs):
        super().__init__(resource, **kwargs)
        self.accessLogEnabled = accessLogEnabled
        self.hotPath = getattr(resource, "hotPath", None)

    def log(self, request):
        if not self.accessLogEnabled:
            return
        address = request.getClientAddress()
        self.logAccess(
            address,
            request.method,
            request.uri,
            request.code,
            request.sentLength,
            request.startTime,
            request.getHeader(b"user-agent") or b"",
        )

    def logAccess(self, address, method, uri, status, size, started, userAgent):
        """Log one answered request."""
        accessLog.info(
            "{client} {method} {uri} {status} {bytes} {duration:.4f}s",
            client=getattr(address, "host", "-"),
            method=method.decode("ascii", "replace"),
            uri=uri.decode("ascii", "replace"),
            status=status,
            bytes=size,
            duration=time.monotonic() - started,
            userAgent=userAgent.decode("ascii", "replace"),
        )
