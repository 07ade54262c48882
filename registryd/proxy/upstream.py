"""
The upstream registry, as the pull-through cache sees it.

Requests go through an injected treq L{HTTPClient}.  Authentication follows
the upstream's challenges as docker does: a C{WWW-Authenticate: Basic}
answer gets the configured credentials; C{Bearer realm=..,service=..,scope=..}
gets a token from the realm (with the credentials if there are any, else
anonymously), kept per scope until it expires.  Every wait is bounded: the
connection (the agent's connect timeout), the response headers and each
pause in a body (C{idleTimeout}), so an upstream that is down or stalls
turns into an error, never a hang.

Upstream failures become registry errors a client can read: a 404 is the
spec's own unknown code, a 429 is TOOMANYREQUESTS, anything else is
L{UpstreamError} (502 with code UNKNOWN, the spec having no code for a bad
gateway) whose message says what the upstream did.
"""

import base64
import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH
from treq.client import HTTPClient

from registryd import __version__, errors
from registryd.concurrency import deferred
from registryd.manifest import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registryd.reference import Digest

CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # manifests, token answers, tag list pages
MAX_ERROR_BYTES = 64 * 1024
MAX_TAG_PAGES = 100
MAX_TOKENS = 1024
DEFAULT_TOKEN_LIFETIME = 60  # seconds, as the token specification says
USER_AGENT = f"registryd/{__version__} (pull-through cache)".encode()


class UpstreamError(errors.RegistryError):
    """The upstream registry failed or misbehaved; the message says how."""

    code = "UNKNOWN"
    status = 502
    message = "the upstream registry failed"


class UpstreamUnavailable(UpstreamError):
    """The upstream registry could not be reached, or stopped answering."""

    message = "the upstream registry is unavailable"


def makeClient(reactor, connectTimeout=CONNECT_TIMEOUT, persistent=8):
    """
    A treq client with a connection pool of its own, for one L{Upstream}.

    @return: C{(client, pool)}; close the pool with the upstream.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = persistent
    return HTTPClient(Agent(reactor, connectTimeout=connectTimeout, pool=pool)), pool


# Challenges -------------------------------------------------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = re.compile(rf"[\s,]*({_TOKEN})")
# Values: quoted strings, or (leniently: servers send unquoted URLs) anything up to a comma.
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s",]+))\s*(?:,|$)')


@dataclass(frozen=True)
class Challenge:
    """One C{WWW-Authenticate} challenge: a lower-case scheme and its parameters."""

    scheme: str
    params: dict


def parseChallenges(values):
    """
    The challenges in C{WWW-Authenticate} header values (str), in order;
    parameter names lower-cased, quoted values unescaped.  Unparsable rests
    are dropped.
    """
    challenges = []
    for value in values:
        position = 0
        while True:
            scheme = _SCHEME.match(value, position)
            if scheme is None:
                break
            position = scheme.end()
            params = {}
            while (param := _PARAM.match(value, position)) is not None:
                quoted, plain = param.group(2), param.group(3)
                params[param.group(1).lower()] = (
                    re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
                )
                position = param.end()
            challenges.append(Challenge(scheme.group(1).lower(), params))
    return challenges


def _cancelled(exception):
    """Whether a request failed because it was cancelled (the agent wraps the cancellation)."""
    if isinstance(exception, CancelledError):
        return True
    return isinstance(exception, ResponseFailed) and any(
        reason.check(CancelledError) for reason in exception.reasons
    )


def _describe(exception):
    """A short reason for a connection-level failure."""
    if isinstance(exception, ResponseFailed) and exception.reasons:
        return "; ".join(reason.getErrorMessage() for reason in exception.reasons)
    return str(exception) or type(exception).__name__


# Bodies -----------------------------------------------------------------------


class _BodyReceiver(Protocol):
    """Hands a response body to C{sink} chunk by chunk; fails after C{idle} silent seconds."""

    def __init__(self, clock, idle, sink, what):
        self.done = Deferred(self._cancel)
        self._clock = clock
        self._idle = idle
        self._sink = sink
        self._what = what
        self._timer = None
        self._paused = False
        self._timedOut = False
        self._cancelled = False
        self._sinkFailure = None

    def _cancel(self, done):
        self._cancelled = True
        self.abort()

    def connectionMade(self):
        self._arm()

    def _arm(self):
        self._disarm()
        if not self._paused:
            self._timer = self._clock.callLater(self._idle, self._timeout)

    def _disarm(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timeout(self):
        self._timer = None
        self._timedOut = True
        self.transport.stopProducing()

    def dataReceived(self, data):
        self._arm()
        try:
            self._sink(data)
        except Exception as e:
            self._sinkFailure = e
            self.transport.stopProducing()

    def connectionLost(self, reason):
        self._disarm()
        if self._cancelled:
            self.done.errback(CancelledError())
        elif self._sinkFailure is not None:
            self.done.errback(self._sinkFailure)
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(None)
        elif self._timedOut:
            self.done.errback(
                UpstreamUnavailable(
                    message=f"the upstream registry stopped sending {self._what} "
                    f"for {self._idle:g} s"
                )
            )
        else:
            self.done.errback(
                UpstreamUnavailable(
                    message=f"the upstream registry's connection broke while sending "
                    f"{self._what}: {_describe(reason.value)}"
                )
            )

    def pause(self):
        if not self._paused:
            self._paused = True
            self._disarm()
            self.transport.pauseProducing()

    def resume(self):
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
            self._arm()

    def abort(self):
        self.transport.stopProducing()


class UpstreamBody:
    """
    A response body still arriving from the upstream.

    @ivar length: Its C{Content-Length}, or None when not announced.
    """

    def __init__(self, response, clock, idle, what):
        self._response = response
        self._clock = clock
        self._idle = idle
        self._what = what
        self._receiver = None
        self.length = None if response.length is UNKNOWN_LENGTH else response.length

    def deliver(self, sink):
        """
        Call C{sink(chunk)} for each chunk as it arrives; an exception in
        the sink aborts the transfer and fails the result with it.

        @return: Deferred firing when the body is complete.
        @raise UpstreamUnavailable: The upstream stalled or the connection broke.
        """
        self._receiver = _BodyReceiver(self._clock, self._idle, sink, self._what)
        self._response.deliverBody(self._receiver)
        return self._receiver.done

    def pause(self):
        """Stop reading from the upstream (backpressure); the idle timer stops too."""
        if self._receiver is not None:
            self._receiver.pause()

    def resume(self):
        if self._receiver is not None:
            self._receiver.resume()

    def abort(self):
        """Drop the connection; a delivery in progress fails."""
        if self._receiver is None:
            self.deliver(lambda data: None).addErrback(lambda _: None)
        self._receiver.abort()


@dataclass(frozen=True)
class FetchedManifest:
    """
    A manifest as the upstream served it.

    @ivar digest: Its C{Docker-Content-Digest}, or None if absent or invalid.
    """

    payload: bytes
    mediaType: str | None
    digest: Digest | None


@dataclass(frozen=True)
class ManifestHead:
    """What a C{HEAD} of a manifest says: the digest (or None), type and size."""

    digest: Digest | None
    mediaType: str | None
    size: int | None


class _TooLarge(Exception):
    """A body went past its limit."""


@dataclass
class _Token:
    value: str
    expiresAt: float


# The client -------------------------------------------------------------------


class Upstream:
    """
    The registry at C{url} (e.g. C{https://registry-1.docker.io}).

    @param client: A treq L{HTTPClient} (or a L{treq.testing.StubTreq}).
    @param clock: Times out waits and ages tokens.
    @param username: Credentials for Basic auth and the token server, or None.
    @param idleTimeout: Seconds to wait for response headers, and for each
        chunk of a body.
    @param pool: The client's connection pool, closed by L{close}.
    """

    def __init__(
        self, url, client, clock, username=None, password=None, idleTimeout=IDLE_TIMEOUT, pool=None
    ):
        self.url = url.rstrip("/")
        self._client = client
        self._clock = clock
        self._idle = idleTimeout
        self._pool = pool
        self._basic = None
        if username is not None:
            pair = f"{username}:{password or ''}".encode("utf-8")
            self._basic = b"Basic " + base64.b64encode(pair)
        self._scheme = None  # "basic" or "bearer", once the upstream asked
        self._realm = None  # (realm, service) of its bearer challenge
        self._tokens = {}

    def close(self):
        """Close idle upstream connections.  @return: Deferred."""
        if self._pool is None:
            return succeed(None)
        return self._pool.closeCachedConnections()

    # Operations.

    @deferred
    async def getManifest(self, name, reference):
        """
        @return: Deferred firing with a L{FetchedManifest}.
        @raise ManifestUnknown: The upstream does not have it.
        """
        response = await self._request("GET", name, f"/manifests/{reference}", MANIFEST_ACCEPT)
        await self._check(response, errors.ManifestUnknown(detail={"name": name, "reference": reference}))
        payload = await self._readAll(response, MAX_DOCUMENT_BYTES, f"manifest {name}:{reference}")
        return FetchedManifest(payload, _contentType(response), _digestHeader(response))

    @deferred
    async def headManifest(self, name, reference):
        """
        @return: Deferred firing with a L{ManifestHead}.
        @raise ManifestUnknown: The upstream does not have it.
        """
        response = await self._request("HEAD", name, f"/manifests/{reference}", MANIFEST_ACCEPT)
        await self._check(response, errors.ManifestUnknown(detail={"name": name, "reference": reference}))
        return ManifestHead(_digestHeader(response), _contentType(response), _headLength(response))

    @deferred
    async def headBlob(self, name, digest):
        """
        @return: Deferred firing with the blob's size.
        @raise BlobUnknown: The upstream does not have it.
        """
        response = await self._request("HEAD", name, f"/blobs/{digest}")
        await self._check(response, errors.BlobUnknown(detail={"digest": digest}))
        size = _headLength(response)
        if size is None:
            raise UpstreamError(
                detail={"digest": digest}, message="the upstream registry did not say how large a blob is"
            )
        return size

    @deferred
    async def getBlob(self, name, digest):
        """
        Start downloading a blob; its bytes are read from the result.

        @return: Deferred firing with an L{UpstreamBody} once the headers are in.
        @raise BlobUnknown: The upstream does not have it.
        """
        response = await self._request("GET", name, f"/blobs/{digest}")
        await self._check(response, errors.BlobUnknown(detail={"digest": digest}))
        return UpstreamBody(response, self._clock, self._idle, f"blob {digest}")

    @deferred
    async def tags(self, name):
        """
        Every tag of C{name}, following C{Link} pages.

        @return: Deferred firing with a list of str.
        @raise NameUnknown: The upstream does not have the repository.
        """
        found = []
        path = "/tags/list"
        for _ in range(MAX_TAG_PAGES):
            response = await self._request("GET", name, path)
            await self._check(response, errors.NameUnknown(detail={"name": name}))
            document = await self._readJSON(response, f"the tags of {name}")
            tags = document.get("tags") if isinstance(document, dict) else None
            found += [tag for tag in tags or () if isinstance(tag, str)]
            path = self._nextPage(response, name)
            if path is None:
                break
        return found

    @deferred
    async def referrers(self, name, subject, artifactType=None):
        """
        The upstream's OCI 1.1 referrers index of C{subject}.

        @return: Deferred firing with the index bytes, or None when the
            upstream has no referrers API (it answers 404).
        """
        path = f"/referrers/{subject}"
        if artifactType is not None:
            path += "?" + urlencode({"artifactType": artifactType})
        response = await self._request("GET", name, path, OCI_INDEX)
        if response.code == 404:
            await self._readAll(response, MAX_ERROR_BYTES, "an error", strict=False)
            return None
        await self._check(response, None)
        return await self._readAll(response, MAX_DOCUMENT_BYTES, f"the referrers of {subject}")

    # HTTP and authentication.

    @deferred
    async def _request(self, method, name, path, accept=None):
        """
        A request for repository C{name}'s C{/v2/<name><path>}, authenticated
        as the upstream asks; one retry after a challenge.
        """
        url = f"{self.url}/v2/{name}{path}"
        scope = f"repository:{name}:pull"
        challengeScope = None
        for attempt in range(2):
            headers = Headers({b"User-Agent": [USER_AGENT]})
            if accept is not None:
                headers.setRawHeaders(b"Accept", [accept.encode()])
            authorization = await self._authorization(scope, challengeScope)
            if authorization is not None:
                headers.setRawHeaders(b"Authorization", [authorization])
            response = await self._send(method, url, headers)
            if response.code not in (401, 403) or attempt:
                return response
            challenge = self._challengeOf(response)
            if challenge is None:
                return response
            await self._readAll(response, MAX_ERROR_BYTES, "an error", strict=False)
            challengeScope = self._learn(challenge, scope)
        return response

    def _challengeOf(self, response):
        values = [v.decode("latin-1") for v in response.headers.getRawHeaders(b"www-authenticate", [])]
        for challenge in parseChallenges(values):
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                return challenge
            if challenge.scheme == "basic":
                return challenge
        return None

    def _learn(self, challenge, scope):
        """Adopt the upstream's scheme; return the scope its challenge names."""
        if challenge.scheme == "basic":
            if self._basic is None:
                raise UpstreamError(
                    message="the upstream registry requires credentials: "
                    "set proxy.username and proxy.password"
                )
            self._scheme = "basic"
            return None
        self._scheme = "bearer"
        self._realm = (challenge.params["realm"], challenge.params.get("service"))
        self._tokens.pop(scope, None)
        return challenge.params.get("scope") or scope

    @deferred
    async def _authorization(self, scope, challengeScope=None):
        if self._scheme == "basic":
            return self._basic
        if self._scheme != "bearer":
            return None
        token = self._tokens.get(scope)
        if token is None or challengeScope is not None or token.expiresAt <= self._clock.seconds():
            token = await self._fetchToken(challengeScope or scope)
            if len(self._tokens) >= MAX_TOKENS:
                now = self._clock.seconds()
                self._tokens = {s: t for s, t in self._tokens.items() if t.expiresAt > now}
                if len(self._tokens) >= MAX_TOKENS:
                    self._tokens.clear()
            self._tokens[scope] = token
        return b"Bearer " + token.value.encode("latin-1")

    @deferred
    async def _fetchToken(self, scope):
        realm, service = self._realm
        query = ([("service", service)] if service else []) + [
            ("scope", s) for s in scope.split(" ") if s
        ]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        headers = Headers({b"User-Agent": [USER_AGENT]})
        if self._basic is not None:
            headers.setRawHeaders(b"Authorization", [self._basic])
        response = await self._send("GET", url, headers, "the upstream's token server")
        if response.code != 200:
            reason = await self._errorSummary(response)
            if response.code in (401, 403):
                who = "the configured credentials" if self._basic is not None else "anonymous access"
                raise UpstreamError(
                    message=f"the upstream's token server refused {who} ({reason})"
                )
            raise UpstreamError(message=f"the upstream's token server answered {reason}")
        document = await self._readJSON(response, "a token")
        token = (document.get("token") or document.get("access_token")) if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError(message="the upstream's token server answered without a token")
        lifetime = document.get("expires_in")
        if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        # Renew a little early: the clock of the token server is not ours.
        return _Token(token, self._clock.seconds() + lifetime * 0.9)

    @deferred
    async def _send(self, method, url, headers, who="the upstream registry"):
        d = self._client.request(method, url, headers=headers, unbuffered=True)
        timedOut = []
        timer = self._clock.callLater(self._idle, lambda: (timedOut.append(True), d.cancel()))
        try:
            return await d
        except errors.RegistryError:
            raise
        except Exception as e:
            if timedOut:
                raise UpstreamUnavailable(
                    message=f"{who} did not answer {method} {urlsplit(url).path} within {self._idle:g} s"
                ) from None
            if _cancelled(e):
                raise CancelledError() from None  # our caller gave up
            host = urlsplit(url).netloc
            raise UpstreamUnavailable(message=f"{who} at {host} is unreachable: {_describe(e)}") from e
        finally:
            if timer.active():
                timer.cancel()

    @deferred
    async def _check(self, response, notFound):
        """Raise the registry error for a response that is not a success."""
        if 200 <= response.code < 300:
            return
        if response.code == 404 and notFound is not None:
            await self._readAll(response, MAX_ERROR_BYTES, "an error", strict=False)
            raise notFound
        reason = await self._errorSummary(response)
        if response.code == 429:
            retry = response.headers.getRawHeaders(b"retry-after")
            raise errors.TooManyRequests(
                message=f"the upstream registry is rate limiting this cache ({reason})",
                headers={"Retry-After": retry[0].decode("latin-1")} if retry else None,
            )
        if response.code in (401, 403):
            raise UpstreamError(message=f"the upstream registry refused access ({reason})")
        raise UpstreamError(message=f"the upstream registry answered {reason}")

    @deferred
    async def _errorSummary(self, response):
        """C{"<status> <CODE>: <message>"} from an error answer, as far as it says."""
        summary = str(response.code)
        try:
            body = await self._readAll(response, MAX_ERROR_BYTES, "an error", strict=False)
            first = json.loads(body)["errors"][0]
            summary += f" {first['code']}: {first['message']}"[:300]
        except Exception:
            pass
        return summary

    @deferred
    async def _readAll(self, response, limit, what, strict=True):
        """
        The whole body, at most C{limit} bytes: beyond it, L{UpstreamError}
        (or with C{strict} false, the first C{limit} bytes).
        """
        chunks = []
        received = 0

        def collect(data):
            nonlocal received
            received += len(data)
            if received > limit:
                raise _TooLarge()
            chunks.append(data)

        try:
            await UpstreamBody(response, self._clock, self._idle, what).deliver(collect)
        except _TooLarge:
            if strict:
                raise UpstreamError(message=f"{what} from the upstream registry exceeds {limit} bytes") from None
        return b"".join(chunks)

    @deferred
    async def _readJSON(self, response, what):
        body = await self._readAll(response, MAX_DOCUMENT_BYTES, what)
        try:
            return json.loads(body)
        except ValueError:
            raise UpstreamError(message=f"the upstream registry sent {what} that is not JSON") from None

    def _nextPage(self, response, name):
        """The path (after C{/v2/<name>}) of the C{Link: rel="next"} page, or None."""
        for value in response.headers.getRawHeaders(b"link", []):
            match = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', value.decode("latin-1"))
            if match:
                target = urlsplit(urljoin(self.url + "/", match.group(1)))
                base = urlsplit(self.url)
                if target.path == f"{base.path}/v2/{name}/tags/list" and target.netloc == base.netloc:
                    return "/tags/list" + (f"?{target.query}" if target.query else "")
        return None


def _contentType(response):
    value = response.headers.getRawHeaders(b"content-type")
    return value[0].decode("latin-1").split(";", 1)[0].strip() if value else None


def _digestHeader(response):
    value = response.headers.getRawHeaders(b"docker-content-digest")
    if not value:
        return None
    try:
        return Digest.parse(value[0].decode("latin-1").strip())
    except errors.RegistryError:
        return None


def _headLength(response):
    """A HEAD's C{Content-Length} (Twisted keeps it among the headers)."""
    value = response.headers.getRawHeaders(b"content-length")
    if value and value[0].strip().isdigit():
        return int(value[0])
    if response.length is not UNKNOWN_LENGTH and response.length:
        return response.length
    return None
