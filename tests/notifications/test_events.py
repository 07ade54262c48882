"""
Events: Distribution's envelope field by field, the filters, and which
requests of the web layer emit which events (and which emit none).
"""

import json
import re
import socket
import time
import uuid
from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv6Address
from twisted.logger import capturedLogs
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel
from treq.testing import StubTreq

from registryd.auth.interfaces import IGrant, Grant
from registryd.config import NotificationEndpoint
from registryd.interfaces import BlobInfo
from registryd.manifest import OCI_MANIFEST, parseManifest
from registryd.notifications.events import (
    BLOB_MEDIA_TYPE,
    DELETE,
    INSTANCE_ID,
    MOUNT,
    PULL,
    PUSH,
    blobEvent,
    deleteEvent,
    envelope,
    manifestEvent,
    notify,
    rfc3339,
)
from registryd.service import makeRegistry
from registryd.web.api import RegistryAPI
from tests.support import Response, configWith, digestOf, settle
from tests.web.manifestkit import imageManifest

DIGEST = digestOf(b"hello")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SOURCE = {"addr": f"{socket.gethostname()}:80", "instanceID": INSTANCE_ID}


def makeRequest(method=b"PUT", host=b"registry.example:5000", userAgent=b"docker/24.0", user=None):
    """A request as the web layer has it: from DummyChannel, peer 192.168.1.1:12344, local port 80."""
    request = Request(DummyChannel(), False)
    request.method = method
    if host is not None:
        request.requestHeaders.setRawHeaders(b"host", [host])
    if userAgent is not None:
        request.requestHeaders.setRawHeaders(b"user-agent", [userAgent])
    if user is not None:
        request.setComponent(IGrant, Grant(user=user))
    return request


def requestRecord(rendered, method="PUT"):
    """The request record expected for L{makeRequest}'s defaults (its id checked separately)."""
    uuid.UUID(rendered["request"]["id"])
    return {
        "id": rendered["request"]["id"],
        "addr": "192.168.1.1:12344",
        "host": "registry.example:5000",
        "method": method,
        "useragent": "docker/24.0",
    }


def test_blobPushEnvelope():
    before = time.time()
    event = blobEvent(PUSH, makeRequest(), "lib/app", BlobInfo(DIGEST, 5), "http://r/v2/lib/app/blobs/x")
    after = time.time()
    rendered = event.toJSON()
    assert rendered == {
        "id": event.id,
        "timestamp": rfc3339(event.timestamp),
        "action": "push",
        "target": {
            "mediaType": "application/octet-stream",
            "size": 5,
            "digest": DIGEST,
            "length": 5,
            "repository": "lib/app",
            "url": "http://r/v2/lib/app/blobs/x",
        },
        "request": requestRecord(rendered),
        "actor": {},
        "source": SOURCE,
    }
    # Distribution's field order, which a receiver's logs show.
    assert list(rendered) == ["id", "timestamp", "action", "target", "request", "actor", "source"]
    assert list(rendered["target"]) == ["mediaType", "size", "digest", "length", "repository", "url"]
    uuid.UUID(event.id)
    assert before <= event.timestamp <= after
    assert RFC3339.match(rendered["timestamp"])
    assert rendered["request"]["id"] != event.id
    json.dumps(rendered)  # plain JSON types only


def test_eventsHaveTheirOwnIds():
    request = makeRequest()
    events = [blobEvent(PULL, request, "a", BlobInfo(DIGEST, 5), "u") for _ in range(3)]
    assert len({e.id for e in events}) == 3


def test_rfc3339():
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339(1700000000.25) == "2023-11-14T22:13:20.250000Z"


def test_mountNamesItsSource():
    event = blobEvent(MOUNT, makeRequest(b"POST"), "b", BlobInfo(DIGEST, 5), "u", fromRepository="a")
    target = event.toJSON()["target"]
    assert (event.action, target["repository"], target["fromRepository"]) == ("mount", "b", "a")
    assert target["mediaType"] == BLOB_MEDIA_TYPE


def test_manifestPushEnvelope():
    payload = imageManifest(b"config", [b"layer"])
    manifest = parseManifest(payload, OCI_MANIFEST)
    digest = digestOf(payload)
    event = manifestEvent(PUSH, makeRequest(user="alice"), "lib/app", manifest, digest, "http://r/m", "v1")
    rendered = event.toJSON()
    assert rendered["target"] == {
        "mediaType": OCI_MANIFEST,
        "size": len(payload),
        "digest": digest,
        "length": len(payload),
        "repository": "lib/app",
        "url": "http://r/m",
        "tag": "v1",
    }
    assert rendered["actor"] == {"name": "alice"}
    assert rendered["request"] == requestRecord(rendered)
    references = event.toJSON(includeReferences=True)["target"]["references"]
    assert references == [d.toJSON() for d in manifest.blobReferences()]
    assert [r["digest"] for r in references] == [digestOf(b"config"), digestOf(b"layer")]


def test_deleteEnvelopes():
    byDigest = deleteEvent(makeRequest(b"DELETE"), "lib/app", digest=DIGEST).toJSON()
    assert byDigest["action"] == "delete"
    assert byDigest["target"] == {"digest": DIGEST, "repository": "lib/app"}
    assert byDigest["request"] == requestRecord(byDigest, "DELETE")
    byTag = deleteEvent(makeRequest(b"DELETE"), "lib/app", tag="v1").toJSON()
    assert byTag["target"] == {"repository": "lib/app", "tag": "v1"}


def test_requestWithoutOptionalHeaders():
    request = makeRequest(b"GET", host=None, userAgent=None, user=None)
    request.setComponent(IGrant, Grant(user=None))  # authenticated anonymously
    request.client = IPv6Address("TCP", "::1", 4321)
    rendered = blobEvent(PULL, request, "a", BlobInfo(DIGEST, 5), "u").toJSON()
    assert rendered["request"] == {
        "id": rendered["request"]["id"],
        "addr": "[::1]:4321",
        "method": "GET",
        "useragent": "",
    }
    assert rendered["actor"] == {}


def test_envelopeKeepsOrder():
    records = [json.dumps({"n": n}).encode() for n in range(3)]
    assert json.loads(envelope(records)) == {"events": [{"n": 0}, {"n": 1}, {"n": 2}]}
    assert json.loads(envelope([])) == {"events": []}


@pytest.mark.parametrize(
    "action, mediaType, ignoredActions, ignoredMediaTypes, ignored",
    [
        (PUSH, BLOB_MEDIA_TYPE, (), (), False),
        (PULL, BLOB_MEDIA_TYPE, ("pull",), (), True),
        (PUSH, BLOB_MEDIA_TYPE, ("pull",), (), False),
        (PUSH, BLOB_MEDIA_TYPE, (), (BLOB_MEDIA_TYPE,), True),
        (PUSH, OCI_MANIFEST, (), (BLOB_MEDIA_TYPE,), False),
        (DELETE, None, (), (BLOB_MEDIA_TYPE,), False),
        (DELETE, None, ("delete",), (), True),
    ],
)
def test_filters(action, mediaType, ignoredActions, ignoredMediaTypes, ignored):
    endpoint = NotificationEndpoint(
        name="e", url="http://x/", ignoredActions=ignoredActions, ignoredMediaTypes=ignoredMediaTypes
    )
    if action == DELETE:
        event = deleteEvent(makeRequest(), "a", digest=DIGEST)
    else:
        event = blobEvent(action, makeRequest(), "a", BlobInfo(DIGEST, 5), "u")
        event = replace(event, target=replace(event.target, mediaType=mediaType))
    assert event.ignoredBy(endpoint) is ignored


def test_notifyWithoutListenerBuildsNothing():
    notify(None, lambda: pytest.fail("built an event nobody listens to"))


def test_notifyNeverRaises():
    class Broken:
        def emit(self, event):
            raise OSError("disk on fire")

    with capturedLogs() as logs:
        notify(Broken(), lambda: "event")
    assert logs[0]["log_failure"].check(OSError)


# -- What the web layer emits ------------------------------------------------


class Recorder:
    """The C{events} of a L{RegistryAPI}: keeps what it is told."""

    def __init__(self, broken=False):
        self.events = []
        self._broken = broken

    def emit(self, event):
        self.events.append(event)
        if self._broken:
            raise RuntimeError("listener failed")

    def take(self):
        """The events so far, rendered, and forget them."""
        taken, self.events = [e.toJSON() for e in self.events], []
        return taken


class Client:
    """Requests through StubTreq to a registry whose events a L{Recorder} keeps."""

    def __init__(self, recorder):
        config = replace(configWith(), storage=replace(configWith().storage, driver="inmemory"))
        self._stub = StubTreq(RegistryAPI(makeRegistry(config, reactor), events=recorder).resource())

    async def request(self, method, path, headers=None, body=b""):
        headers = {"User-Agent": "test-client/1", **(headers or {})}
        response = await self._settle(
            self._stub.request(method, "http://registry.test" + path, headers=headers, data=body or None)
        )
        content = await self._settle(self._stub.content(response))
        return Response(response.code, response.headers, content)

    def _settle(self, d):
        return settle(self._stub, d)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def client(recorder):
    return Client(recorder)


async def pushBlob(client, name, data):
    r = await client.request("POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(data)}", body=data)
    assert r.status == 201, r.body
    return digestOf(data)


def blobTarget(name, data, **extra):
    digest = digestOf(data)
    return {
        "mediaType": BLOB_MEDIA_TYPE,
        "size": len(data),
        "digest": digest,
        "length": len(data),
        "repository": name,
        **extra,
        "url": f"http://registry.test/v2/{name}/blobs/{digest}",
    }


@pytest_twisted.ensureDeferred
async def test_monolithicPush(client, recorder):
    await pushBlob(client, "lib/app", b"blob")
    [event] = recorder.take()
    assert (event["action"], event["target"]) == ("push", blobTarget("lib/app", b"blob"))
    assert event["request"]["method"] == "POST"
    assert event["request"]["host"] == "registry.test"
    assert event["request"]["useragent"] == "test-client/1"
    assert event["source"]["instanceID"] == INSTANCE_ID


@pytest_twisted.ensureDeferred
async def test_chunkedPushEmitsOnceCommitted(client, recorder):
    r = await client.request("POST", "/v2/a/blobs/uploads/")
    location = r.header("Location").decode().replace("http://registry.test", "")
    r = await client.request("PATCH", location, body=b"part one ")
    assert r.status == 202
    assert recorder.take() == []
    location = r.header("Location").decode().replace("http://registry.test", "")
    data = b"part one part two"
    r = await client.request("PUT", f"{location}?digest={digestOf(data)}", body=b"part two")
    assert r.status == 201
    [event] = recorder.take()
    assert (event["action"], event["target"], event["request"]["method"]) == ("push", blobTarget("a", data), "PUT")


@pytest_twisted.ensureDeferred
async def test_failedPushEmitsNothing(client, recorder):
    r = await client.request("POST", f"/v2/a/blobs/uploads/?digest={digestOf(b'other')}", body=b"blob")
    assert r.status == 400
    assert recorder.take() == []


@pytest_twisted.ensureDeferred
async def test_blobPullOnlyForGET(client, recorder):
    digest = await pushBlob(client, "a", b"blob")
    recorder.take()
    assert (await client.request("HEAD", f"/v2/a/blobs/{digest}")).status == 200
    assert (await client.request("GET", f"/v2/a/blobs/{digest}", {"If-None-Match": f'"{digest}"'})).status == 304
    assert (await client.request("GET", f"/v2/a/blobs/sha256:{'0' * 64}")).status == 404
    assert recorder.take() == []
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert r.body == b"blob"
    [event] = recorder.take()
    assert (event["action"], event["target"]) == ("pull", blobTarget("a", b"blob"))
    assert (await client.request("GET", f"/v2/a/blobs/{digest}", {"Range": "bytes=1-2"})).status == 206
    assert [e["action"] for e in recorder.take()] == ["pull"]


@pytest_twisted.ensureDeferred
async def test_emptyBlobPull(client, recorder):
    digest = await pushBlob(client, "a", b"")
    recorder.take()
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert (r.status, r.body) == (200, b"")
    [event] = recorder.take()
    assert (event["action"], event["target"]["size"]) == ("pull", 0)


@pytest_twisted.ensureDeferred
async def test_blobDelete(client, recorder):
    digest = await pushBlob(client, "a", b"blob")
    recorder.take()
    assert (await client.request("DELETE", f"/v2/a/blobs/{digest}")).status == 202
    [event] = recorder.take()
    assert (event["action"], event["target"]) == ("delete", {"digest": digest, "repository": "a"})
    assert (await client.request("DELETE", f"/v2/a/blobs/{digest}")).status == 404
    assert recorder.take() == []


@pytest_twisted.ensureDeferred
async def test_mount(client, recorder):
    digest = await pushBlob(client, "a", b"blob")
    recorder.take()
    r = await client.request("POST", f"/v2/b/blobs/uploads/?mount={digest}&from=a")
    assert r.status == 201
    [event] = recorder.take()
    assert (event["action"], event["target"]) == ("mount", blobTarget("b", b"blob", fromRepository="a"))
    # Nothing to mount: an upload session is opened, nothing is emitted.
    r = await client.request("POST", f"/v2/c/blobs/uploads/?mount={digestOf(b'none')}&from=a")
    assert r.status == 202
    assert recorder.take() == []


async def pushImage(client, name, reference):
    for blob in (b"config", b"layer"):
        await pushBlob(client, name, blob)
    payload = imageManifest(b"config", [b"layer"])
    r = await client.request(
        "PUT", f"/v2/{name}/manifests/{reference or digestOf(payload)}", {"Content-Type": OCI_MANIFEST}, payload
    )
    assert r.status == 201, r.body
    return digestOf(payload), payload


def manifestTarget(name, digest, payload, **extra):
    return {
        "mediaType": OCI_MANIFEST,
        "size": len(payload),
        "digest": digest,
        "length": len(payload),
        "repository": name,
        "url": f"http://registry.test/v2/{name}/manifests/{digest}",
        **extra,
    }


@pytest_twisted.ensureDeferred
async def test_manifestPushByTagAndByDigest(client, recorder):
    digest, payload = await pushImage(client, "a", "v1")
    events = recorder.take()
    assert [(e["action"], e["target"]["mediaType"]) for e in events] == [
        ("push", BLOB_MEDIA_TYPE),
        ("push", BLOB_MEDIA_TYPE),
        ("push", OCI_MANIFEST),
    ]
    assert events[-1]["target"] == manifestTarget("a", digest, payload, tag="v1")
    assert events[-1]["request"]["method"] == "PUT"
    await pushImage(client, "b", None)
    assert recorder.take()[-1]["target"] == manifestTarget("b", digest, payload)


@pytest_twisted.ensureDeferred
async def test_manifestPullOnlyForGET(client, recorder):
    digest, payload = await pushImage(client, "a", "v1")
    recorder.take()
    assert (await client.request("HEAD", "/v2/a/manifests/v1")).status == 200
    assert (await client.request("GET", "/v2/a/manifests/v1", {"If-None-Match": f'"{digest}"'})).status == 304
    assert (await client.request("GET", "/v2/a/manifests/v2")).status == 404
    assert recorder.take() == []
    assert (await client.request("GET", "/v2/a/manifests/v1")).body == payload
    assert (await client.request("GET", f"/v2/a/manifests/{digest}")).body == payload
    byTag, byDigest = recorder.take()
    assert (byTag["action"], byTag["target"]) == ("pull", manifestTarget("a", digest, payload, tag="v1"))
    assert (byDigest["action"], byDigest["target"]) == ("pull", manifestTarget("a", digest, payload))


@pytest_twisted.ensureDeferred
async def test_manifestDeleteAndUntag(client, recorder):
    digest, _ = await pushImage(client, "a", "v1")
    recorder.take()
    assert (await client.request("DELETE", "/v2/a/manifests/v1")).status == 202
    assert (await client.request("DELETE", f"/v2/a/manifests/{digest}")).status == 202
    assert (await client.request("DELETE", f"/v2/a/manifests/{digest}")).status == 404
    untag, delete = recorder.take()
    assert (untag["action"], untag["target"]) == ("delete", {"repository": "a", "tag": "v1"})
    assert (delete["action"], delete["target"]) == ("delete", {"digest": digest, "repository": "a"})
    assert delete["request"]["method"] == "DELETE"


@pytest_twisted.ensureDeferred
async def test_aFailingListenerNeverFailsTheRequest():
    recorder = Recorder(broken=True)
    client = Client(recorder)
    with capturedLogs() as logs:
        digest = await pushBlob(client, "a", b"blob")
        r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert (r.status, r.body) == (200, b"blob")
    assert len(recorder.events) == 2
    assert [e["log_failure"].type for e in logs if "log_failure" in e] == [RuntimeError, RuntimeError]
