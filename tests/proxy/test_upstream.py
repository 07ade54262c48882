"""
The upstream client: challenges parsed, Basic and Bearer authentication
followed (against registryd's own token issuer through StubTreq, and Debian's
Distribution with htpasswd for real), tokens kept until they expire, and
every upstream failure turned into a clear registry error without hanging.
"""

import json
import socket
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from treq.testing import StubTreq

from registryd import errors
from registryd.auth.htpasswd import addUser
from registryd.config import parseConfig
from registryd.manifest import OCI_MANIFEST, parseManifest
from registryd.proxy.upstream import (
    MANIFEST_ACCEPT,
    Challenge,
    Upstream,
    UpstreamError,
    UpstreamUnavailable,
    makeClient,
    parseChallenges,
)
from registryd.reference import Digest
from registryd.service import makeRegistry, makeResource
from tests.proxy import ShiftedClock, basic, imageManifest, pushImage, sha256, upstreamDistribution  # noqa: F401 (a fixture)

POLICY = """
groups:
  team: [alice]
rules:
  - repositories: ["public/**"]
    anonymous: [pull]
  - repositories: ["team/**"]
    groups: {team: [pull, push]}
"""


# Challenges -----------------------------------------------------------------------


def test_parseBearerChallenge():
    value = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/ubuntu:pull"'
    )
    assert parseChallenges([value]) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/ubuntu:pull",
            },
        )
    ]


def test_parseSeveralChallengesQuotingAndCase():
    values = ['Basic Realm="a, \\"quoted\\" realm", BEARER realm=http://x/token , error="insufficient_scope"', "Negotiate"]
    assert parseChallenges(values) == [
        Challenge("basic", {"realm": 'a, "quoted" realm'}),
        Challenge("bearer", {"realm": "http://x/token", "error": "insufficient_scope"}),
        Challenge("negotiate", {}),
    ]


def test_parseGarbage():
    assert parseChallenges(["", "   ", ",,", "=x"]) == []


# A registryd upstream with its token issuer, through StubTreq ----------------------


class CountingResource(Resource):
    """Notes each request's method and path, then hands it on."""

    isLeaf = True

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.seen = []

    def render(self, request):
        self.seen.append((request.method.decode(), request.path.decode()))
        return self.inner.render(request)

    def count(self, path):
        return sum(1 for _, p in self.seen if p == path)


class Stubbed:
    """An L{Upstream} of C{resource} through StubTreq, pumped while the test runs."""

    def __init__(self, resource):
        self.resource = CountingResource(resource)
        self.stub = StubTreq(self.resource)
        self.clock = ShiftedClock()
        self._pump = LoopingCall(self.stub.flush)
        self._pump.start(0.002)

    def upstream(self, username=None, password=None, idleTimeout=5.0):
        return Upstream("http://registry.test", self.stub, self.clock, username, password, idleTimeout=idleTimeout)

    def stop(self):
        self._pump.stop()


async def storeImage(registry, name, tag, layers):
    """Put an image straight into C{registry}; return the manifest's bytes."""
    config = b'{"architecture":"amd64","os":"linux"}'
    repository = registry.repository(name)
    for blob in [config, *layers]:
        upload = await repository.blobs.createUpload()
        await upload.write(blob)
        await upload.commit(Digest.of(blob))
    payload = imageManifest(config, layers)
    await repository.manifests.put(parseManifest(payload, OCI_MANIFEST))
    await repository.tags.tag(tag, Digest.of(payload))
    return payload


@pytest.fixture
def issuerConfig(tmp_path):
    users = str(tmp_path / "htpasswd")
    addUser(users, "alice", "alice-secret", rounds=4)
    addUser(users, "bob", "bob-secret", rounds=4)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return parseConfig(
        {
            "storage": {"inmemory": {}},
            "auth": {"issuer": {"service": "registry.test", "htpasswd": users, "policy": str(policy)}},
        }
    )


@pytest_twisted.async_yield_fixture
async def issuer(issuerConfig):
    """A registryd with its built-in issuer behind StubTreq, holding team/app:v1 and public/app:v1."""
    registry = makeRegistry(issuerConfig, reactor)
    stubbed = Stubbed(makeResource(issuerConfig, registry, reactor))
    stubbed.team = await storeImage(registry, "team/app", "v1", [b"team layer"])
    stubbed.public = await storeImage(registry, "public/app", "v1", [b"public layer"])
    yield stubbed
    stubbed.stop()


@pytest_twisted.ensureDeferred
async def test_bearerTokenFetchedOncePerScopeAndKept(issuer):
    upstream = issuer.upstream("alice", "alice-secret")
    fetched = await upstream.getManifest("team/app", "v1")
    assert fetched.payload == issuer.team
    assert fetched.digest == sha256(issuer.team) and fetched.mediaType == OCI_MANIFEST
    head = await upstream.headManifest("team/app", "v1")
    assert (head.digest, head.mediaType, head.size) == (sha256(issuer.team), OCI_MANIFEST, len(issuer.team))
    assert await upstream.headBlob("team/app", sha256(b"team layer")) == len(b"team layer")
    # One challenge, one token for the repository, then no more challenges.
    assert issuer.resource.count("/token") == 1
    assert [m for m, p in issuer.resource.seen if p.startswith("/v2/")].count("GET") == 2  # the refused one and the retry
    await upstream.getManifest("public/app", "v1")
    assert issuer.resource.count("/token") == 2  # another scope, another token
    # Past its lifetime (300 s), a token is fetched anew.
    issuer.clock.offset = 301
    await upstream.getManifest("team/app", "v1")
    assert issuer.resource.count("/token") == 3


@pytest_twisted.ensureDeferred
async def test_bearerTokenRequestCarriesServiceScopeAndCredentials(issuer):
    seen = []
    original = issuer.resource.render

    def render(request):
        if request.path == b"/token":
            seen.append((request.args, request.getHeader(b"authorization")))
        return original(request)

    issuer.resource.render = render
    await issuer.upstream("alice", "alice-secret").getManifest("team/app", "v1")
    (args, authorization), = seen
    assert args == {b"service": [b"registry.test"], b"scope": [b"repository:team/app:pull"]}
    assert authorization == basic("alice", "alice-secret").encode()


@pytest_twisted.ensureDeferred
async def test_anonymousBearerWhereThePolicyAllows(issuer):
    upstream = issuer.upstream()
    assert (await upstream.getManifest("public/app", "v1")).payload == issuer.public
    with pytest.raises(UpstreamError) as raised:
        await upstream.getManifest("team/app", "v1")
    assert raised.value.status == 502 and raised.value.code == "UNKNOWN"
    assert "refused access (401 UNAUTHORIZED" in raised.value.message


@pytest_twisted.ensureDeferred
async def test_wrongCredentialsAtTheTokenServer(issuer):
    with pytest.raises(UpstreamError) as raised:
        await issuer.upstream("alice", "wrong").getManifest("team/app", "v1")
    assert "token server refused the configured credentials" in raised.value.message


@pytest_twisted.ensureDeferred
async def test_unknownContentIsTheSpecsOwnError(issuer):
    upstream = issuer.upstream("alice", "alice-secret")
    with pytest.raises(errors.ManifestUnknown):
        await upstream.getManifest("team/app", "nope")
    with pytest.raises(errors.ManifestUnknown):
        await upstream.headManifest("team/app", sha256(b"nope"))
    with pytest.raises(errors.BlobUnknown):
        await upstream.headBlob("team/app", sha256(b"nope"))
    with pytest.raises(errors.BlobUnknown):
        await upstream.getBlob("team/app", sha256(b"nope"))


# Canned answers -------------------------------------------------------------------


class Canned(Resource):
    """Answers every request with C{answer(request) -> (status, headers, body)}."""

    isLeaf = True

    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def render(self, request):
        status, headers, body = self.answer(request)
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name, value)
        return body


def stubbed(answer):
    return Stubbed(Canned(answer))


def envelope(code, message):
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


@pytest_twisted.ensureDeferred
async def test_rateLimitedIsTooManyRequests():
    stub = stubbed(lambda request: (429, {"Retry-After": "17"}, envelope("TOOMANYREQUESTS", "slow down")))
    try:
        with pytest.raises(errors.TooManyRequests) as raised:
            await stub.upstream().getManifest("lib/app", "v1")
        assert raised.value.status == 429 and raised.value.headers == {"Retry-After": "17"}
        assert "rate limiting" in raised.value.message and "slow down" in raised.value.message
    finally:
        stub.stop()


@pytest.mark.parametrize(
    "status, headers, body, expected",
    [
        (503, {}, envelope("UNAVAILABLE", "maintenance"), "answered 503 UNAVAILABLE: maintenance"),
        (500, {}, b"<html>oops</html>", "answered 500"),
        (401, {}, b"", "refused access (401)"),
        (403, {}, envelope("DENIED", "no"), "refused access (403 DENIED: no)"),
        (401, {"WWW-Authenticate": 'Basic realm="x"'}, b"", "requires credentials: set proxy.username and proxy.password"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_upstreamFailuresAreBadGateway(status, headers, body, expected):
    stub = stubbed(lambda request: (status, headers, body))
    try:
        with pytest.raises(UpstreamError) as raised:
            await stub.upstream().getManifest("lib/app", "v1")
        assert raised.value.status == 502 and raised.value.code == "UNKNOWN"
        assert expected in raised.value.message
    finally:
        stub.stop()


@pytest_twisted.ensureDeferred
async def test_manifestAcceptTypesAndSizeLimit():
    accepted = []

    def answer(request):
        accepted.append(request.getHeader(b"accept").decode())
        return 200, {"Content-Type": OCI_MANIFEST}, b" " * (4 * 1024 * 1024 + 1)

    stub = stubbed(answer)
    try:
        with pytest.raises(UpstreamError) as raised:
            await stub.upstream().getManifest("lib/app", "v1")
        assert "exceeds" in raised.value.message
        assert accepted == [MANIFEST_ACCEPT]
        assert set(MANIFEST_ACCEPT.split(", ")) == {
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    finally:
        stub.stop()


@pytest_twisted.ensureDeferred
async def test_tagListFollowsLinkPages():
    def answer(request):
        if request.args.get(b"last") == [b"b"]:
            return 200, {}, json.dumps({"name": "lib/app", "tags": ["c"]}).encode()
        link = '</v2/lib/app/tags/list?last=b&n=2>; rel="next"'
        return 200, {"Link": link}, json.dumps({"name": "lib/app", "tags": ["a", "b"]}).encode()

    stub = stubbed(answer)
    try:
        assert await stub.upstream().tags("lib/app") == ["a", "b", "c"]
    finally:
        stub.stop()


# Real sockets: refused, silent, stalled -------------------------------------------


def realUpstream(url, idleTimeout=5.0, username=None, password=None):
    client, pool = makeClient(reactor, connectTimeout=2)
    return Upstream(url, client, reactor, username, password, idleTimeout=idleTimeout, pool=pool)


@pytest_twisted.ensureDeferred
async def test_refusedConnectionIsUnavailableAtOnce():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    upstream = realUpstream(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as raised:
        await upstream.getManifest("lib/app", "v1")
    assert time.monotonic() - started < 2
    assert raised.value.status == 502
    assert f"the upstream registry at 127.0.0.1:{port} is unreachable" in raised.value.message
    await upstream.close()


@pytest_twisted.ensureDeferred
async def test_silentUpstreamTimesOutWaitingForHeaders():
    listener = socket.create_server(("127.0.0.1", 0))
    upstream = realUpstream(f"http://127.0.0.1:{listener.getsockname()[1]}", idleTimeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as raised:
            await upstream.headBlob("lib/app", sha256(b"x"))
        assert time.monotonic() - started < 2
        assert "did not answer HEAD /v2/lib/app/blobs/" in raised.value.message and "0.3 s" in raised.value.message
    finally:
        await upstream.close()
        listener.close()


def _stallingServer(listener, sent):
    connection, _ = listener.accept()
    connection.recv(65536)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
    sent.append(connection)  # kept open, silent


@pytest_twisted.ensureDeferred
async def test_stalledBodyFailsAfterTheIdleTimeout():
    listener = socket.create_server(("127.0.0.1", 0))
    sent = []
    serving = deferToThread(_stallingServer, listener, sent)
    upstream = realUpstream(f"http://127.0.0.1:{listener.getsockname()[1]}", idleTimeout=0.5)
    try:
        body = await upstream.getBlob("lib/app", sha256(b"x"))
        assert body.length == 1000000
        chunks = []
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as raised:
            await body.deliver(chunks.append)
        assert 0.4 < time.monotonic() - started < 2
        assert b"".join(chunks) == b"x" * 1000
        assert "stopped sending blob" in raised.value.message
    finally:
        await serving
        for connection in sent:
            connection.close()
        listener.close()
        await upstream.close()


# Distribution with htpasswd, for real ----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_basicAuthAgainstDistribution(upstreamDistribution):  # noqa: F811
    registry = upstreamDistribution(users={"alice": "alice-secret"})
    pushed = await deferToThread(
        pushImage, registry.host, "lib/app", "v1", [b"distribution layer"], "d", registry.authorization
    )
    upstream = realUpstream(f"http://{registry.host}", username="alice", password="alice-secret")
    try:
        fetched = await upstream.getManifest("lib/app", "v1")
        assert fetched.payload == pushed.manifest and fetched.digest == pushed.digest
        body = await upstream.getBlob("lib/app", sha256(b"distribution layer"))
        chunks = []
        await body.deliver(chunks.append)
        assert b"".join(chunks) == b"distribution layer"
    finally:
        await upstream.close()

    for username, password, expected in [
        (None, None, "requires credentials"),
        ("alice", "wrong", "refused access (401 UNAUTHORIZED"),
    ]:
        upstream = realUpstream(f"http://{registry.host}", username=username, password=password)
        try:
            with pytest.raises(UpstreamError) as raised:
                await upstream.getManifest("lib/app", "v1")
            assert expected in raised.value.message
        finally:
            await upstream.close()
