"""
Pulls and manifest PUTs answered below twisted.web (L{registryd.web.hotpath}):
the same answers as the Klein routes give, byte for byte but the Date, and
the connection handed to twisted.web at the first request they do not take.
"""

import base64
import json
import socket
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher

from registryd.auth.controllers import htpasswdController, tokenController
from registryd.auth.htpasswd import Htpasswd, addUser
from registryd.auth.token import TokenVerifier
from registryd.driver.deferred import DeferredDriver
from registryd.driver.memory import BlockingMemoryDriver, MemoryDriver
from registryd.manifest import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registryd.service import makeResource
from registryd.storage.registry import Registry
from registryd.web.api import RegistryAPI
from registryd.web.hotpath import MAX_BODY, NOT_TAKEN, parseHead
from registryd.web.site import RegistryRequest, RegistrySite
from tests.auth.test_registry_tokens import ISSUER, KEY, REALM, SERVICE, token
from tests.support import SocketClient, configWith, digestOf
from tests.web.manifestkit import ALL_TYPES, imageManifest, index, pushImage


# Request heads.


def test_parseHeadTakesPlainPulls():
    data = (
        b"GET /v2/a/b/manifests/v1 HTTP/1.1\r\nHost: r\r\nAccept: x/y\r\naccept:  z/w \r\n"
        b"Connection: Keep-Alive\r\n\r\nGET /v2/ HTTP/1.1\r\n\r\n"
    )
    head, size = parseHead(data)
    assert (head.method, head.path, head.close) == (b"GET", b"/v2/a/b/manifests/v1", False)
    assert head.headers[b"accept"] == [b"x/y", b"z/w"]
    assert data[size:] == b"GET /v2/ HTTP/1.1\r\n\r\n"
    head, _ = parseHead(b"HEAD /v2/a/blobs/sha256:00 HTTP/1.1\r\nConnection: te, close\r\n\r\n")
    assert (head.method, head.close, head.query) == (b"HEAD", True, None)
    head, _ = parseHead(b"GET /v2/a/tags/list?n=10&last=v1 HTTP/1.1\r\nHost: r\r\nhost: s\r\n\r\n")
    assert (head.path, head.query, head.getHeader(b"Host")) == (b"/v2/a/tags/list", b"n=10&last=v1", b"s")


def test_parseHeadWaitsForTheWholeHead():
    data = b"GET /v2/a/manifests/v1 HTTP/1.1\r\nHost: r\r\n\r\n"
    for cut in range(len(data) - 1):
        assert parseHead(data[:cut]) == (None, 0)
    assert parseHead(data)[1] == len(data)


def test_parseHeadTakesManifestPutsWithTheirBody():
    """A manifest PUT's head spans its body, and waits for all of it."""
    put = b"PUT /v2/a/b/manifests/v1 HTTP/1.1\r\nContent-Type: x/y\r\ncontent-length: 5\r\n\r\nabcde"
    head, size = parseHead(put + b"GET /v2/ HTTP/1.1\r\n\r\n")
    assert (head.method, head.path, head.body, size) == (b"PUT", b"/v2/a/b/manifests/v1", b"abcde", len(put))
    assert head.getHeader(b"Content-Type") == b"x/y"
    for cut in range(len(put)):
        assert parseHead(put[:cut]) == (None, 0)
    empty = b"PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
    assert parseHead(empty)[0].body == b""
    large = b"PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % MAX_BODY
    assert parseHead(large + b"x" * MAX_BODY)[0].body == b"x" * MAX_BODY
    head, _ = parseHead(b"GET /v2/a/manifests/v1 HTTP/1.1\r\n\r\n")
    assert head.body is None


@pytest.mark.parametrize(
    "data",
    [
        b"PUT /v2/a/manifests/v1 HTTP/1.1\r\n\r\n",
        b"PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
        b"PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
        b"PUT /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
        b"PUT /v2/a/manifests/v1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        b"PUT /v2/a/manifests/v1?x=1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        b"PUT /v2/a/manifests/v1 HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
        b"PUT /v2/a/blobs/uploads/u?digest=sha256:00 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        b"POST /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        b"DELETE /v2/a/manifests/v1 HTTP/1.1\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.0\r\n\r\n",
        b"GET /v2/a/tags/list?last=a%2Fb HTTP/1.1\r\n\r\n",
        b"GET /v2/a/tags/list?last=a+b HTTP/1.1\r\n\r\n",
        b"GET /v2/a/tags/list?n=1#x HTTP/1.1\r\n\r\n",
        b"GET /v2/a%2Fb/manifests/v1 HTTP/1.1\r\n\r\n",
        b"GET http://r/v2/a/manifests/v1 HTTP/1.1\r\n\r\n",
        b"GET /v2/\xc3\xa9/manifests/v1 HTTP/1.1\r\n\r\n",
        b"GET  /v2/a/manifests/v1 HTTP/1.1\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nHost : r\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nAccept: a/b\r\n  folded\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nno colon\r\n\r\n",
        b"\r\nGET /v2/a/manifests/v1 HTTP/1.1\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n",
        b"GET /v2/a/manifests/v1 HTTP/1.1\r\nX: " + b"y" * 20000,
    ],
)
def test_parseHeadLeavesTheRestToTwisted(data):
    """Bodies, other methods and versions, queries, escapes, odd syntax, huge heads."""
    assert parseHead(data) == (NOT_TAKEN, 0)


# The same answers as the routes.


def readResponse(file, method):
    """One response off C{file}: (status, sorted headers as sent but Date, body)."""
    status = int(file.readline().split(b" ", 2)[1])
    headers = []
    while (line := file.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name, value.strip()))
    length = int(dict(headers).get("Content-Length", 0))
    body = b"" if method == "HEAD" or status == 304 else file.read(length)
    return status, sorted(h for h in headers if h[0] != "Date"), body


def exchange(host, data, methods, pieces=1, checkClosed=False):
    """
    Send C{data} (in C{pieces} writes) and read one response per method;
    with C{checkClosed}, also whether the server then closed the connection.
    """

    def run():
        address, port = host.split(":")
        sock = socket.create_connection((address, int(port)), timeout=30)
        try:
            size = -(-len(data) // pieces)
            for start in range(0, len(data), size):
                sock.sendall(data[start : start + size])
            file = sock.makefile("rb")
            answers = [readResponse(file, method) for method in methods]
            if not checkClosed:
                return answers, None
            sock.settimeout(1)
            try:
                closed = file.read(1) == b""
            except OSError:
                closed = False
            return answers, closed
        finally:
            sock.close()

    return deferToThread(run)


def head(method, path, **headers):
    lines = [f"{method} {path} HTTP/1.1", "Host: registry"]
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{name.replace('_', '-')}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RecordingRequest(RegistryRequest):
    """Counts the requests twisted.web builds."""

    made = 0

    def __init__(self, *args, **kwargs):
        type(self).made += 1
        super().__init__(*args, **kwargs)


class Sites:
    """One registry served twice: with the hot path below twisted.web, and without."""

    def __init__(self, registry, config=None, **api):
        config = config or configWith()
        self.registry = registry
        self.ports = []
        if api:
            resource = RegistryAPI(registry, **api).resource()
            slowResource = RegistryAPI(registry, **api).resource()
        else:
            resource, slowResource = makeResource(config, registry), makeResource(config, registry)
        self.fast = self._listen(RegistrySite(resource, accessLogEnabled=False))
        slow = RegistrySite(slowResource, accessLogEnabled=False)
        slow.hotPath = None
        self.slow = self._listen(slow)

    def _listen(self, site):
        site.requestFactory = type("Recording", (RecordingRequest,), {"made": 0})
        self.ports.append(reactor.listenTCP(0, site, interface="127.0.0.1"))
        self.ports[-1].site = site
        return f"127.0.0.1:{self.ports[-1].getHost().port}"

    def twistedRequests(self, host):
        return next(p.site.requestFactory.made for p in self.ports if host.endswith(f":{p.getHost().port}"))

    async def stop(self):
        await DeferredList([p.stopListening() for p in self.ports])


@pytest_twisted.async_yield_fixture
async def sites():
    s = Sites(Registry(MemoryDriver(), deleteEnabled=True))
    yield s
    await s.stop()


class Authorized:
    def __init__(self, client, authorization):
        self._client = client
        self._authorization = authorization

    def request(self, method, path, headers=None, body=b""):
        return self._client.request(method, path, {**(headers or {}), "Authorization": self._authorization}, body)


def throughSlow(sites):
    """A client pushing content through the site without the hot path."""
    return SocketClient(SimpleNamespace(host=sites.slow, registry=sites.registry, url=f"http://{sites.slow}"))


async def content(sites, authorization=None):
    client = throughSlow(sites)
    if authorization is not None:
        client = Authorized(client, authorization)
    digest, payload = await pushImage(client, "lib/img", tag="v1")
    docker, _ = await pushImage(client, "lib/img", tag="d1", mediaType=DOCKER_MANIFEST, seed=b"d")
    listPayload = index([(_, DOCKER_MANIFEST, {"os": "linux", "architecture": "amd64"})], mediaType=DOCKER_LIST)
    r = await client.request("PUT", "/v2/lib/img/manifests/list", {"Content-Type": DOCKER_LIST}, listPayload)
    assert r.status == 201, r.body
    layer = digestOf(b"layer one ")
    return digest, payload, docker, layer


PULLS = [  # method, path, headers, status
    ("GET", "/v2/", {}, 200),
    ("HEAD", "/v2/", {}, 200),
    ("GET", "/v2/lib/img/manifests/v1", {"Accept": ALL_TYPES}, 200),
    ("HEAD", "/v2/lib/img/manifests/v1", {"Accept": ALL_TYPES}, 200),
    ("GET", "/v2/lib/img/manifests/{digest}", {}, 200),
    ("GET", "/v2/lib/img/manifests/v1", {"Accept": [DOCKER_MANIFEST, OCI_MANIFEST]}, 200),
    ("GET", "/v2/lib/img/manifests/v1", {"Accept": DOCKER_MANIFEST}, 404),  # gated
    ("GET", "/v2/lib/img/manifests/list", {"Accept": DOCKER_MANIFEST}, 200),  # amd64 fallback
    ("GET", "/v2/lib/img/manifests/d1", {"If-None-Match": '"{docker}"'}, 304),
    ("HEAD", "/v2/lib/img/manifests/nope", {}, 404),
    ("GET", "/v2/lib/img/manifests/nope", {}, 404),
    ("GET", "/v2/lib/img/manifests/sha256:abc", {}, 400),
    ("GET", "/v2/Bad_Name/manifests/v1", {}, 400),
    ("GET", "/v2/other/manifests/{digest}", {}, 404),
    ("HEAD", "/v2/lib/img/blobs/{layer}", {}, 200),
    ("HEAD", "/v2/lib/img/blobs/{layer}", {"If-None-Match": "{layer}"}, 304),
    ("HEAD", "/v2/lib/img/blobs/{layer}", {"Range": "bytes=2-4"}, 206),
    ("HEAD", "/v2/lib/img/blobs/{layer}", {"Range": "bytes=900-"}, 416),
    ("HEAD", "/v2/other/blobs/{layer}", {}, 404),
    ("HEAD", "/v2/lib/img/blobs/sha256:zz", {}, 400),
    ("GET", "/v2/lib/img/tags/list", {}, 200),
    ("GET", "/v2/lib/img/tags/list?n=1", {}, 200),  # with a Link to the next page
    ("GET", "/v2/lib/img/tags/list?n=1&last=d1", {}, 200),
    ("GET", "/v2/lib/img/tags/list?last=d1&n=", {}, 200),
    ("HEAD", "/v2/lib/img/tags/list?n=2", {}, 200),
    ("GET", "/v2/lib/img/tags/list?n=x1", {}, 400),
    ("GET", "/v2/nothing/tags/list?n=1", {}, 404),
]


@pytest_twisted.ensureDeferred
async def test_sameAnswersAsTheRoutes(sites):
    """Each pull, in one pipelined burst: status, every header but Date, and body as the routes give them."""
    digest, payload, docker, layer = await content(sites)
    data, methods = b"", []
    for method, path, headers, _ in PULLS:
        path = path.format(digest=digest, layer=layer)
        headers = {k: v.format(docker=docker, layer=layer) if isinstance(v, str) else v for k, v in headers.items()}
        data += head(method, path, **headers)
        methods.append(method)
    before = sites.twistedRequests(sites.slow)
    fast, fastClosed = await exchange(sites.fast, data, methods, checkClosed=True)
    slow, _ = await exchange(sites.slow, data, methods)
    assert sites.twistedRequests(sites.fast) == 0  # none of them went through twisted.web
    assert sites.twistedRequests(sites.slow) - before == len(PULLS)
    for pull, mine, theirs in zip(PULLS, fast, slow):
        assert mine == theirs, pull
    assert [status for status, _, _ in fast] == [status for _, _, _, status in PULLS]
    assert fast[2][2] == payload and fast[4][2] == payload
    assert dict(fast[3][1])["Content-Length"] == str(len(payload)) and fast[3][2] == b""
    assert json.loads(fast[21][2]) == {"name": "lib/img", "tags": ["d1"]}
    assert dict(fast[21][1])["Link"] == '<http://registry/v2/lib/img/tags/list?last=d1&n=1>; rel="next"'
    assert json.loads(fast[22][2]) == {"name": "lib/img", "tags": ["list"]}
    assert not fastClosed


@pytest_twisted.ensureDeferred
async def test_handsTheConnectionToTwisted(sites):
    """A blob download and a push in the pipeline: answered in order, from there on by twisted.web."""
    digest, payload, _, layer = await content(sites)
    blob = b"layer one "
    pushed = b"pushed bytes"
    data = (
        head("GET", "/v2/lib/img/manifests/v1", Accept=OCI_MANIFEST)
        + head("GET", f"/v2/lib/img/blobs/{layer}")
        + head("HEAD", "/v2/lib/img/manifests/v1", Accept=OCI_MANIFEST)
        + (
            f"POST /v2/lib/img/blobs/uploads/?digest={digestOf(pushed)} HTTP/1.1\r\nHost: r\r\n"
            f"Content-Length: {len(pushed)}\r\n\r\n"
        ).encode()
        + pushed
        + head("GET", f"/v2/lib/img/blobs/{digestOf(pushed)}")
    )
    answers, _ = await exchange(sites.fast, data, ["GET", "GET", "HEAD", "POST", "GET"])
    assert [a[0] for a in answers] == [200, 200, 200, 201, 200]
    assert (answers[0][2], answers[1][2], answers[4][2]) == (payload, blob, pushed)
    assert sites.twistedRequests(sites.fast) == 4  # all but the first


@pytest_twisted.ensureDeferred
async def test_unusualQueriesGoToTwisted(sites):
    """Queries the routes read in ways of their own (repeats, other arguments) are Klein's to parse."""
    await content(sites)
    paths = ["/v2/lib/img/tags/list?n=1&n=2", "/v2/lib/img/tags/list?x=1", "/v2/lib/img/manifests/v1?x=1"]
    for path in paths:
        fast, _ = await exchange(sites.fast, head("GET", path), ["GET"])
        slow, _ = await exchange(sites.slow, head("GET", path), ["GET"])
        assert fast == slow
    assert sites.twistedRequests(sites.fast) == len(paths)


@pytest_twisted.ensureDeferred
async def test_headArrivingInPieces(sites):
    digest, payload, _, _ = await content(sites)
    data = head("GET", f"/v2/lib/img/manifests/{digest}") + head("GET", "/v2/lib/img/manifests/v1", Accept=OCI_MANIFEST)

    answers, _ = await exchange(sites.fast, data, ["GET", "GET"], pieces=len(data))
    assert [(a[0], a[2]) for a in answers] == [(200, payload), (200, payload)]
    assert sites.twistedRequests(sites.fast) == 0


@pytest_twisted.ensureDeferred
async def test_connectionClose(sites):
    digest, payload, _, _ = await content(sites)
    data = head("GET", f"/v2/lib/img/manifests/{digest}", Connection="close") + head("GET", "/v2/")
    answers, closed = await exchange(sites.fast, data, ["GET"], checkClosed=True)
    assert answers[0][0] == 200 and ("Connection", "close") in answers[0][1]
    assert answers[0][2] == payload
    assert closed
    slow, _ = await exchange(sites.slow, data, ["GET"])
    assert slow == answers


def put(path, body, mediaType=OCI_MANIFEST, **headers):
    return head("PUT", path, Content_Type=mediaType, Content_Length=len(body), **headers) + body


# A manifest of blobs content() pushed, and one of blobs nobody pushed.
ONE_LAYER = imageManifest(b'{"architecture":"amd64","os":"linux","seed":""}', [b"layer one "])
MISSING = imageManifest(b"no such config", [b"no such layer"])

PUTS = [  # method, path, body, status
    ("PUT", "/v2/lib/img/manifests/v2", ONE_LAYER, 201),
    ("GET", "/v2/lib/img/manifests/v2", None, 200),
    ("PUT", f"/v2/lib/img/manifests/{digestOf(ONE_LAYER)}", ONE_LAYER, 201),
    ("PUT", "/v2/lib/img/manifests/v2", ONE_LAYER, 201),  # again: the same answer
    ("PUT", "/v2/lib/img/manifests/sha256:" + "0" * 64, ONE_LAYER, 400),
    ("PUT", "/v2/lib/img/manifests/-v3", ONE_LAYER, 400),
    ("PUT", "/v2/Bad_Name/manifests/v3", ONE_LAYER, 400),
    ("PUT", "/v2/lib/img/manifests/v3", b"{", 400),
    ("PUT", "/v2/lib/img/manifests/v3", b"", 400),
    ("PUT", "/v2/lib/img/manifests/v3", MISSING, 404),
    ("PUT", "/v2/other/manifests/v3", ONE_LAYER, 404),  # its blobs are not in other
    ("GET", "/v2/lib/img/manifests/v3", None, 404),
]


def puts(requests, mediaType=OCI_MANIFEST, **headers):
    """C{requests} (method, path, body, ...) as pipelined bytes, and their methods."""
    data = b"".join(
        head(method, path, Accept=mediaType, **headers) if body is None else put(path, body, mediaType, **headers)
        for method, path, body, *_ in requests
    )
    return data, [method for method, *_ in requests]


def keptOpen(answer):
    """
    An answer as it would be had the connection been kept open: the routes
    refuse a PUT whose name, tag or mode is wrong before they read its
    body, and then close the connection; below twisted.web the body is read.
    """
    status, headers, body = answer
    return status, [h for h in headers if h != ("Connection", "close")], body


@pytest_twisted.ensureDeferred
async def test_manifestPutsSameAsTheRoutes(sites):
    """
    Manifest PUTs stored and refused, pipelined with pulls: status, every
    header but Date, and body as the routes give them, and stored as they
    store them; none of them built by twisted.web.
    """
    await content(sites)
    data, methods = puts(PUTS)
    fast, fastClosed = await exchange(sites.fast, data, methods, checkClosed=True)
    assert sites.twistedRequests(sites.fast) == 0
    for request, mine in zip(PUTS, fast):
        [theirs], _ = await exchange(sites.slow, *puts([request]))
        assert mine == keptOpen(theirs), request[:2]
    assert [status for status, _, _ in fast] == [status for *_, status in PUTS]
    stored = dict(fast[0][1])
    assert stored["Docker-Content-Digest"] == digestOf(ONE_LAYER)
    assert stored["Location"] == f"http://registry/v2/lib/img/manifests/{digestOf(ONE_LAYER)}"
    assert fast[1][2] == ONE_LAYER
    codes = [json.loads(body)["errors"][0]["code"] for status, _, body in fast[4:-1]]
    assert codes == ["DIGEST_INVALID", "TAG_INVALID", "NAME_INVALID"] + ["MANIFEST_INVALID"] * 2 + ["MANIFEST_BLOB_UNKNOWN"] * 2
    assert not fastClosed


@pytest_twisted.ensureDeferred
async def test_longManifestPutsGoToTwisted(sites):
    """A manifest longer than MAX_BODY is streamed in by twisted.web, which keeps the connection."""
    digest, payload, _, _ = await content(sites)
    long = index([(payload, OCI_MANIFEST, None)], annotations={"pad": "x" * MAX_BODY})
    requests = [("PUT", "/v2/lib/img/manifests/long", long), ("GET", "/v2/lib/img/manifests/long", None)]
    answers, _ = await exchange(sites.fast, *puts(requests, OCI_INDEX))
    assert [a[0] for a in answers] == [201, 200] and answers[1][2] == long
    assert sites.twistedRequests(sites.fast) == 2


@pytest_twisted.ensureDeferred
async def test_manifestPutsInReadOnlyMode():
    registry = Registry(MemoryDriver())
    s = Sites(registry, readOnly=True)
    try:
        data, methods = puts(PUTS[:1])
        fast, _ = await exchange(s.fast, data, methods)
        slow, _ = await exchange(s.slow, data, methods)
        assert fast == [keptOpen(slow[0])] and fast[0][0] == 405
        assert json.loads(fast[0][2])["errors"][0]["code"] == "UNSUPPORTED"
        assert s.twistedRequests(s.fast) == 0
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_manifestPutsGoThroughTheRoutesWhenTheyNeedTheRequest():
    """Notified pushes (the event) and manifest classes (the caller's grant) need the request."""
    events = []
    for api in [{"events": Listener(events)}, {"repositoryClasses": ["image"]}]:
        s = Sites(Registry(MemoryDriver()), **api)
        try:
            await content(s)
            data, methods = puts(PUTS[:2])
            answers, _ = await exchange(s.fast, data, methods)
            assert [a[0] for a in answers] == [201, 200], api
            assert s.twistedRequests(s.fast) == 2, api
            if "events" in api:
                assert [e.action for e in events[-2:]] == ["push", "pull"]
        finally:
            await s.stop()


@pytest_twisted.ensureDeferred
async def test_accessLogged():
    registry = Registry(MemoryDriver())
    site = RegistrySite(makeResource(configWith(), registry), accessLogEnabled=True)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    events = []
    observer = lambda event: events.append(event) if event.get("log_namespace") == "registryd.access" else None
    globalLogPublisher.addObserver(observer)
    try:
        host = f"127.0.0.1:{port.getHost().port}"
        answers, _ = await exchange(host, head("HEAD", "/v2/a/manifests/v1", User_Agent="tester/1"), ["HEAD"])
        assert answers[0][0] == 404
    finally:
        globalLogPublisher.removeObserver(observer)
        await port.stopListening()
    assert [(e["method"], e["uri"], e["status"], e["userAgent"]) for e in events] == [
        ("HEAD", "/v2/a/manifests/v1", 404, "tester/1")
    ]


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest_twisted.ensureDeferred
async def test_answeredAsTheRoutesAuthorise(tmp_path):
    """With htpasswd and with tokens: challenges, refusals and answers as the routes give them."""
    htpasswd = tmp_path / "htpasswd"
    addUser(str(htpasswd), "alice", "secret", rounds=4)
    verifier = TokenVerifier(ISSUER, SERVICE, certificates=[KEY.certificate])
    controllers = {
        "basic": htpasswdController("registry", Htpasswd(str(htpasswd))),
        "token": tokenController(REALM, SERVICE, verifier),
    }
    readA = token([("repository", "lib/img", ["pull"])])
    credentials = {
        "basic": [None, basic("alice", "secret"), basic("alice", "wrong"), "Bearer x"],
        "token": [None, f"Bearer {readA}", f"Bearer {token([])}", "Bearer not.a.token", basic("a", "b")],
    }
    registry = Registry(MemoryDriver())
    for kind, controller in controllers.items():
        s = Sites(registry, accessController=controller)
        try:
            if kind == "basic":
                digest, payload, _, layer = await content(s, basic("alice", "secret"))
            pulls = [
                ("GET", "/v2/"),
                ("GET", "/v2/lib/img/manifests/v1"),
                ("HEAD", f"/v2/lib/img/blobs/{layer}"),
                ("GET", "/v2/lib/img/tags/list?n=1"),
                ("GET", "/v2/other/manifests/v1"),
                ("GET", "/v2/Bad_Name/manifests/v1"),
            ]
            data, methods = b"", []
            for authorization in credentials[kind]:
                for method, path in pulls:
                    extra = {} if authorization is None else {"Authorization": authorization}
                    data += head(method, path, Accept=OCI_MANIFEST, **extra)
                    methods.append(method)
            fast, _ = await exchange(s.fast, data, methods)
            slow, _ = await exchange(s.slow, data, methods)
            assert fast == slow
            assert s.twistedRequests(s.fast) == 0
            statuses = [status for status, _, _ in fast]
            refused = [401] * 5 + [400]  # the name is checked before the caller
            if kind == "basic":
                assert statuses == refused + [200, 200, 200, 200, 404, 400] + refused + refused
            else:
                assert statuses == refused + [200, 200, 200, 200, 403, 400] + [200, 403, 403, 403, 403, 400] + refused + refused
            assert fast[7][2] == payload
            challenges = {dict(h).get("WWW-Authenticate") for status, h, _ in fast if status in (401, 403)}
            assert None not in challenges
        finally:
            await s.stop()


@pytest_twisted.ensureDeferred
async def test_manifestPutsAuthorisedAsByTheRoutes(tmp_path):
    """A manifest PUT needs push: challenged, refused and stored as the routes do, with either controller."""
    htpasswd = tmp_path / "htpasswd"
    addUser(str(htpasswd), "alice", "secret", rounds=4)
    verifier = TokenVerifier(ISSUER, SERVICE, certificates=[KEY.certificate])
    pullOnly, push = token([("repository", "lib/img", ["pull"])]), token([("repository", "lib/img", ["pull", "push"])])
    cases = [  # controller, authorization, status
        (htpasswdController("registry", Htpasswd(str(htpasswd))), None, 401),
        (htpasswdController("registry", Htpasswd(str(htpasswd))), basic("alice", "wrong"), 401),
        (htpasswdController("registry", Htpasswd(str(htpasswd))), basic("alice", "secret"), 201),
        (tokenController(REALM, SERVICE, verifier), None, 401),
        (tokenController(REALM, SERVICE, verifier), f"Bearer {pullOnly}", 403),
        (tokenController(REALM, SERVICE, verifier), f"Bearer {push}", 201),
    ]
    registry = Registry(MemoryDriver())
    s = Sites(registry, accessController=cases[0][0])
    try:
        await content(s, basic("alice", "secret"))
    finally:
        await s.stop()
    for controller, authorization, status in cases:
        s = Sites(registry, accessController=controller)
        try:
            extra = {} if authorization is None else {"Authorization": authorization}
            request = [("PUT", "/v2/lib/img/manifests/v2", ONE_LAYER)]
            [fast], _ = await exchange(s.fast, *puts(request, **extra))
            [slow], _ = await exchange(s.slow, *puts(request, **extra))
            assert fast == keptOpen(slow) and fast[0] == status, authorization
            assert s.twistedRequests(s.fast) == 0
            if status != 201:
                assert "WWW-Authenticate" in dict(fast[1])
        finally:
            await s.stop()


@pytest_twisted.ensureDeferred
async def test_notifiedPullsGoThroughTheRoutes():
    """Manifest GETs are notified (the event needs the request); HEADs are not, and stay fast."""
    events = []
    registry = Registry(MemoryDriver())
    s = Sites(registry, events=Listener(events))
    try:
        client = throughSlow(s)
        digest, payload = await pushImage(client, "a", tag="v1")
        pushes = len(events)
        before = s.twistedRequests(s.fast)
        answers, _ = await exchange(s.fast, head("HEAD", "/v2/a/manifests/v1") + head("GET", "/v2/a/manifests/v1"), ["HEAD", "GET"])
        assert [a[0] for a in answers] == [200, 200] and answers[1][2] == payload
        assert s.twistedRequests(s.fast) - before == 1
        assert [e.action for e in events[pushes:]] == ["pull"]
    finally:
        await s.stop()


class Listener:
    def __init__(self, events):
        self.emit = events.append


class LaterDriver(DeferredDriver):
    """Storage whose every call answers on a later reactor turn (as a remote store would)."""

    def __init__(self):
        super().__init__(BlockingMemoryDriver(), lambda function, *args: deferLater(reactor, 0.001, function, *args))


@pytest_twisted.ensureDeferred
async def test_answersThatTakeTime():
    """Storage answering later: pipelined pulls are still answered, in order."""
    s = Sites(Registry(LaterDriver()))
    try:
        client = throughSlow(s)
        one, payloadOne = await pushImage(client, "a", tag="v1")
        two, payloadTwo = await pushImage(client, "a", tag="v2", seed=b"2")
        data = b"".join(head("GET", f"/v2/a/manifests/{t}") for t in ["v1", "v2", "v3", one, two] * 4)
        answers, closed = await exchange(s.fast, data, ["GET"] * 20, checkClosed=True)
        assert [(a[0], a[2]) for a in answers] == [
            (200, payloadOne), (200, payloadTwo), (404, answers[2][2]), (200, payloadOne), (200, payloadTwo)
        ] * 4
        assert s.twistedRequests(s.fast) == 0
        assert not closed
    finally:
        await s.stop()


def test_stopsAnsweringWhileTheTransportIsFull():
    """The transport asks the channel to pause: pipelined pulls wait for it to drain."""
    registry = Registry(MemoryDriver())
    site = RegistrySite(makeResource(configWith(), registry), accessLogEnabled=False)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.pauseProducing()
    channel.dataReceived(head("GET", "/v2/") * 3)
    assert transport.value() == b""
    channel.resumeProducing()
    assert transport.value().count(b"HTTP/1.1 200 OK\r\n") == 3
    channel.connectionLost(None)
