"""
The registry's hot path: requests answered below twisted.web.

Most of a registry's requests are pulls without a body: GET and HEAD of
manifests, HEAD of blobs, pages of tag lists, the C{/v2/} probe.  Building
a twisted.web L{Request} and routing it through Klein costs more than
answering it, so a connection of a L{registryd.web.site.RegistrySite} reads
request heads itself first (L{parseHead}) and hands the ones it recognises
to L{HotPath}.  L{HotPath} answers with the routes' own C{resolve} methods (one
place decides what a pull is answered, errors included) and formats the
response bytes itself.  Manifest PUTs with a short body are taken the same
way (the route's C{store}), once the whole body is in: through twisted.web
and Klein, a third of a PUT's processor time went outside the route's code.
The first request it does not take (a longer body, a blob download or upload, a query string other
than a tag list's, HTTP/1.0, ...) and everything after it on that
connection go to twisted.web as usual.

Authentication, when configured, is the routes' own access controller,
asked with the head.  Manifest GETs are left to the routes when pulls are
notified, and manifest PUTs when pushes are notified or manifest classes
are restricted (the event and the caller's grant belong to the request).
"""

import functools
import re
import time

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.web.http import RESPONSES, datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.server import version as SERVER

from registryd import errors
from registryd.auth import access
from registryd.reference import validateName
from registryd.web.responses import errorParts, jsonBody

MAX_HEAD = 16384  # larger heads are left to twisted.web's limits
MAX_BODY = 65536  # larger manifests are streamed in by twisted.web

_METHODS = (b"GET", b"HEAD", b"PUT")
_PUT = b"PUT"
# Absolute paths of printable ASCII without escapes or fragments, and plain
# queries: anything else is routed by twisted.web and Klein.
_PLAIN = re.compile(rb"^/[!$&'()*+,\-./0-9:;=@A-Z_a-z~]*(?:\?[\-.0-9=&A-Z_a-z~]*)?$")
_MANIFEST = re.compile(rb"^/v2/(.+?)/manifests/([^/]+)$")
_BLOB = re.compile(rb"^/v2/(.+?)/blobs/([^/]+)$")
_TAGS = re.compile(rb"^/v2/(.+?)/tags/list$")
_PAGE_ARGUMENTS = (b"n", b"last")
_BASE = b"/v2/"
# Heads with these are for twisted.web: a body (but a PUT's length), or a
# change of protocol.
_NOT_TAKEN = frozenset([b"content-length", b"transfer-encoding", b"expect", b"upgrade"])
_LENGTH = b"content-length"


class Head:
    """
    A parsed request head.

    @ivar path: The path, without the query.
    @ivar query: What follows the C{?}, or None.
    @ivar headers: Lower-cased name -> list of raw values.
    @ivar close: The client asked to close the connection after the answer.
    @ivar body: A PUT's body (bytes), or None.
    @ivar channel: The connection it came on (set by the connection).

    It answers what L{URLs} and the access controllers ask of a request:
    C{getHeader}, C{isSecure}, C{getClientAddress}.
    """

    __slots__ = ("method", "path", "query", "headers", "close", "body", "channel")

    def __init__(self, method, path, query, headers, close, body=None):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.close = close
        self.body = body
        self.channel = None

    def getHeader(self, name):
        """The last value of header C{name} (bytes), as twisted.web's requests give it."""
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    def isSecure(self):
        return self.channel is not None and self.channel.isSecure()

    def getClientAddress(self):
        return None if self.channel is None else self.channel.transport.getPeer()


NOT_TAKEN = object()


def parseHead(buffer):
    """
    The first request head in C{buffer}, if it is one L{HotPath} may answer.

    @return: C{(head, size)}: a L{Head} and the bytes it spans, a PUT's
        body included; C{(None, 0)} while the head or that body is
        incomplete; C{(NOT_TAKEN, 0)} for a request twisted.web must handle.
    """
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
    if end < 0:
        return (None, 0) if len(buffer) < MAX_HEAD else (NOT_TAKEN, 0)
    lines = buffer[:end].split(b"\r\n")
    request = lines[0].split(b" ")
    if len(request) != 3 or request[2] != b"HTTP/1.1" or request[0] not in _METHODS:
        return NOT_TAKEN, 0
    if not _PLAIN.match(request[1]):
        return NOT_TAKEN, 0
    headers = {}
    close = False
    put = request[0] == _PUT
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            return NOT_TAKEN, 0
        name = name.lower()
        if name in _NOT_TAKEN and not (put and name == _LENGTH):
            return NOT_TAKEN, 0
        value = value.strip(b" \t")
        if name == b"connection":
            close = close or b"close" in value.lower().replace(b",", b" ").split()
        headers.setdefault(name, []).append(value)
    path, question, query = request[1].partition(b"?")
    size = end + 4
    if not put:
        return Head(request[0], path, query if question else None, headers, close), size
    length = headers.get(_LENGTH)
    if question or not _MANIFEST.match(path) or length is None or len(length) != 1:
        return NOT_TAKEN, 0
    if not length[0].isdigit() or int(length[0]) > MAX_BODY:
        return NOT_TAKEN, 0
    size += int(length[0])
    if len(buffer) < size:
        return None, 0
    return Head(_PUT, path, None, headers, close, bytes(buffer[end + 4 : size])), size


class Answer:
    """A formatted response: its bytes, and its status and body size for the access log."""

    __slots__ = ("data", "status", "size")

    def __init__(self, data, status, size):
        self.data = data
        self.status = status
        self.size = size


@functools.lru_cache(maxsize=64)
def _canonical(name):
    """A header name capitalised as twisted.web writes it."""
    headers = Headers()
    headers.setRawHeaders(name, [b""])
    return next(headers.getAllRawHeaders())[0]


class _Clock:
    """The C{Date} header's value, formatted once a second."""

    def __init__(self, now=time.time):
        self._now = now
        self._second = None
        self._value = b""

    def __call__(self):
        second = int(self._now())
        if second != self._second:
            self._second = second
            self._value = datetimeToString(second)
        return self._value


class HotPath:
    """
    Answers pulls from request heads, and short manifest PUTs once their
    body is in, as the routes would.

    @param manifests: The L{registryd.web.manifests.ManifestRoutes}.
    @param blobs: The L{registryd.web.blobs.BlobRoutes}.
    @param listings: The L{registryd.web.listings.ListingRoutes}.
    @param headers: Headers every response carries: C{[(name, [values])]},
        bytes, as the API's root resource sets them.
    @param manifestGets: Whether manifest GETs may be answered here (not
        when their pulls are to be notified, which needs the request).
    @param manifestPuts: Whether manifest PUTs may be answered here (not
        when the route needs the request: see the module's docstring).
    @param authorize: The routes' C{authorize(request, needed)} coroutine
        function (an L{IAccessController}'s), or None to serve everyone.
    """

    def __init__(self, manifests, blobs, listings, headers, manifestGets=True, manifestPuts=True, authorize=None):
        self._manifests = manifests
        self._blobs = blobs
        self._listings = listings
        self._authorize = authorize
        self._manifestGets = manifestGets
        self._manifestPuts = manifestPuts
        fixed = [b"Server: " + SERVER]
        for name, values in headers:
            fixed += [_canonical(name) + b": " + value for value in values]
        self._fixed = b"\r\n".join(fixed) + b"\r\n"
        self._date = _Clock()

    def answer(self, head):
        """
        @return: None if twisted.web is to handle C{head}; else a Deferred
            firing with the L{Answer}, or with None when the request turned
            out to need twisted.web after all (an unexpected failure, which
            the route then meets again and reports).
        """
        route = self._route(head)
        if route is None:
            return None
        name, resolve, format = route
        if self._authorize is None:
            d = maybeDeferred(resolve)
        else:
            d = Deferred.fromCoroutine(self._authorized(head, name)).addCallback(lambda _: resolve())

        def failed(failure):
            if failure.check(errors.RegistryError):
                return self._format(head, *errorParts(failure.value))
            return None

        return d.addCallbacks(lambda answer: format(head, answer), failed)

    def _route(self, head):
        """
        C{(repository name or None, resolve, format)} for a pull these
        answers take: C{resolve()} decides the answer as the route would,
        C{format(head, answer)} makes its bytes.  None for any other request.
        """
        path = head.path
        if head.query is not None:
            match = _TAGS.match(path)
            return None if match is None else self._tagPage(head, match)
        if path == _BASE:
            return None, lambda: None, self._baseAnswer
        match = _MANIFEST.match(path)
        if match is not None:
            if head.method == b"GET" and not self._manifestGets:
                return None
            name, reference = match.group(1).decode("ascii"), match.group(2).decode("ascii")
            if head.method == _PUT:
                if not self._manifestPuts:
                    return None
                body = functools.partial(succeed, head.body)
                return name, functools.partial(self._manifests.store, head, name, reference, body), self._storedAnswer
            accept, ifNoneMatch = head.headers.get(b"accept"), head.headers.get(b"if-none-match")
            return name, lambda: self._manifests.resolve(name, reference, accept, ifNoneMatch), self._manifestAnswer
        match = _BLOB.match(path)
        if match is not None and head.method == b"HEAD":
            name, digest = match.group(1).decode("ascii"), match.group(2).decode("ascii")
            ifNoneMatch, rangeHeader = head.headers.get(b"if-none-match"), _first(head.headers.get(b"range"))
            return name, lambda: self._blobs.resolve(name, digest, ifNoneMatch, rangeHeader), self._blobAnswer
        match = _TAGS.match(path)
        return None if match is None else self._tagPage(head, match)

    async def _authorized(self, head, name):
        """
        As the routes authorise a pull, or a PUT's push, of C{name} (None:
        the API root): the name checked first.
        """
        if name is None:
            await self._authorize(head, [])
        else:
            scope = access.push if head.method == _PUT else access.pull
            await self._authorize(head, scope(validateName(name)))

    def _tagPage(self, head, match):
        arguments = {}
        for part in head.query.split(b"&") if head.query else ():
            key, _, value = part.partition(b"=")
            if key not in _PAGE_ARGUMENTS or key in arguments:
                return None  # anything but one n and one last: Klein's parsing
            arguments[key] = value.decode("ascii")
        name = match.group(1).decode("ascii")
        n, last = arguments.get(b"n"), arguments.get(b"last")
        return name, lambda: self._listings.tagPage(head, name, n, last), self._pageAnswer

    def _pageAnswer(self, head, page):
        document, headers = page
        return self._format(head, 200, {"Content-Type": "application/json", **headers}, jsonBody(document))

    def _storedAnswer(self, head, headers):
        return self._format(head, 201, headers, b"")

    def _baseAnswer(self, head, _):
        return self._format(head, 200, {"Content-Type": "application/json"}, b"{}")

    def _manifestAnswer(self, head, answer):
        payload = answer.manifest.payload if answer.manifest is not None else b""
        return self._format(head, answer.status, answer.headers, payload)

    def _blobAnswer(self, head, answer):
        return self._format(head, answer.status, answer.headers, b"", answer.length)

    def _format(self, head, status, headers, body, length=None):
        """
        The response's bytes, with the headers twisted.web and the API's
        root resource would give it; a HEAD gets the length, not the body.
        """
        if length is None:
            length = len(body)
        lines = [
            b"HTTP/1.1 %d %s\r\n" % (status, RESPONSES[status]),
            self._fixed,
            b"Date: %s\r\n" % (self._date(),),
        ]
        for name, value in headers.items():
            if not isinstance(value, bytes):
                value = str(value).encode("latin-1")
            if b"\r" in value or b"\n" in value:
                value = b" ".join(value.splitlines())  # as twisted.web sanitises
            lines.append(b"%s: %s\r\n" % (_canonical(name.encode("ascii")), value))
        if head.close:
            lines.append(b"Connection: close\r\n")
        lines.append(b"Content-Length: %d\r\n\r\n" % (length,))
        if head.method == b"HEAD":
            body = b""
        lines.append(body)
        return Answer(b"".join(lines), status, len(body))


def _first(values):
    return values[0].decode("latin-1") if values else None
