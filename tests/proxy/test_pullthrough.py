"""
The real C{twistd -n registryd} in proxy mode in front of a real upstream:
Debian's Distribution (anonymous and behind htpasswd) or registryd with its
built-in token issuer (Bearer challenges).  A L{TCPProxy} between them counts,
throttles and stalls the upstream's answers.  Clients are plain HTTP, and
skopeo for an image and a multi-platform index.
"""

import hashlib
import http.client
import json
import os
import threading
import time

import pytest

from tests.interop.conftest import (  # noqa: F401 (fixtures)
    clientEnvironment,
    ociLayout,
    policyFile,
    registryd,
    skopeo,
)
from tests.interop.layouts import assertSameImage, assertSameIndex, readImage, readIndex
from tests.proxy import (
    OCI_MANIFEST,
    TCPProxy,
    bearerToken,
    blobPath,
    call,
    pushBlob,
    pushImage,
    sha256,
    upstreamDistribution,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.interop

MiB = 1024 * 1024
ACCEPT = [("Accept", OCI_MANIFEST)]


@pytest.fixture
def proxies():
    made = []

    def make(host):
        proxy = TCPProxy(host)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def cacheOf(registryd, remote, **proxy):  # noqa: F811
    return registryd(config={"proxy": {"remoteurl": remote, **proxy}})


def linked(root, name, digest):
    """Whether the cache under C{root} links C{digest} into C{name} as a layer."""
    algorithm, hex = digest.split(":")
    return os.path.exists(os.path.join(root, "docker/registry/v2/repositories", name, "_layers", algorithm, hex, "link"))


def errorOf(body):
    return json.loads(body)["errors"][0]


def assertPulls(cache, name, reference, pushed):
    """The manifest at C{reference} and every blob, byte for byte, with their digests."""
    status, headers, body = cache.call("GET", f"/v2/{name}/manifests/{reference}", ACCEPT)
    assert status == 200, body
    assert body == pushed.manifest
    assert headers["Docker-Content-Digest"] == pushed.digest
    assert headers["Content-Type"] == OCI_MANIFEST
    for digest, data in pushed.blobs().items():
        status, headers, _ = cache.call("HEAD", f"/v2/{name}/blobs/{digest}")
        assert status == 200 and int(headers["Content-Length"]) == len(data)
        status, headers, body = cache.call("GET", f"/v2/{name}/blobs/{digest}")
        assert status == 200 and body == data and headers["Docker-Content-Digest"] == digest


# Pulling through ----------------------------------------------------------------


def test_pullByTagAndDigestThenServedWithTheUpstreamStopped(upstreamDistribution, registryd):  # noqa: F811
    upstream = upstreamDistribution()
    pushed = pushImage(upstream.host, "lib/app", "v1", [os.urandom(300000), b"small layer"])
    cache = cacheOf(registryd, f"http://{upstream.host}")
    assertPulls(cache, "lib/app", "v1", pushed)
    assertPulls(cache, "lib/app", pushed.digest, pushed)
    for digest in pushed.blobs():
        assert linked(cache.root, "lib/app", digest)
        assert os.path.exists(blobPath(cache.root, digest))
    fresh = cacheOf(registryd, f"http://{upstream.host}")  # by digest first, no tag known
    assertPulls(fresh, "lib/app", pushed.digest, pushed)

    upstream.stop()
    assertPulls(cache, "lib/app", "v1", pushed)
    assertPulls(cache, "lib/app", pushed.digest, pushed)
    # Nothing of another repository was ever fetched: a clear error, not a hang.
    status, _, body = cache.call("GET", "/v2/lib/other/manifests/v1", ACCEPT, timeout=20)
    assert status == 502 and errorOf(body)["code"] == "UNKNOWN"
    assert "unreachable" in errorOf(body)["message"]


def test_htpasswdUpstream(upstreamDistribution, registryd):  # noqa: F811
    upstream = upstreamDistribution(users={"alice": "alice-secret"})
    pushed = pushImage(upstream.host, "lib/app", "v1", [b"private layer"], authorization=upstream.authorization)
    cache = cacheOf(registryd, f"http://{upstream.host}", username="alice", password="alice-secret")
    assertPulls(cache, "lib/app", "v1", pushed)

    anonymous = cacheOf(registryd, f"http://{upstream.host}")
    status, _, body = anonymous.call("GET", "/v2/lib/app/manifests/v1", ACCEPT)
    assert status == 502 and "requires credentials" in errorOf(body)["message"]
    wrong = cacheOf(registryd, f"http://{upstream.host}", username="alice", password="wrong")
    status, _, body = wrong.call("GET", f"/v2/lib/app/blobs/{sha256(b'private layer')}")
    assert status == 502 and "refused access (401" in errorOf(body)["message"]


POLICY = """
groups:
  team: [alice]
rules:
  - repositories: ["public/**"]
    anonymous: [pull]
  - repositories: ["team/**", "public/**"]
    groups: {team: [pull, push]}
"""


def test_bearerChallengeUpstream(registryd, tmp_path):  # noqa: F811
    from registryd.auth.htpasswd import addUser

    users = str(tmp_path / "htpasswd")
    addUser(users, "alice", "alice-secret", rounds=4)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "keys").mkdir()
    upstream = registryd(
        config={
            "auth": {
                "issuer": {
                    "service": "upstream.test",
                    "htpasswd": users,
                    "policy": str(policy),
                    "key": str(tmp_path / "keys" / "signing.key"),
                }
            }
        }
    )
    status, headers, _ = upstream.request("GET", "/v2/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer realm=")
    images = {}
    for name in ("team/app", "public/app"):
        token = bearerToken(upstream.host, "upstream.test", f"repository:{name}:pull,push", "alice", "alice-secret")
        images[name] = pushImage(upstream.host, name, "v1", [os.urandom(50000)], seed=name, authorization=token)

    cache = cacheOf(registryd, f"http://{upstream.host}", username="alice", password="alice-secret")
    assertPulls(cache, "team/app", "v1", images["team/app"])
    anonymous = cacheOf(registryd, f"http://{upstream.host}")
    assertPulls(anonymous, "public/app", "v1", images["public/app"])
    status, _, body = anonymous.call("GET", "/v2/team/app/manifests/v1", ACCEPT)
    assert status == 502 and "refused access" in errorOf(body)["message"]


def test_skopeoCopiesAnImageAndAnIndexThroughTheCache(upstreamDistribution, registryd, skopeo, ociLayout, tmp_path):  # noqa: F811
    upstream = upstreamDistribution()
    layout = ociLayout()
    image = layout.addImage("v1", seed="skopeo")
    index = layout.addIndex("multi")
    skopeo.copy(layout.reference("v1"), upstream.docker("lib/app", "v1"))
    skopeo.copy(layout.reference("multi"), upstream.docker("lib/multi", "multi"), "--all")
    cache = cacheOf(registryd, f"http://{upstream.host}")
    out = tmp_path / "out"
    skopeo.copy(cache.docker("lib/app", "v1"), f"oci:{out}:v1")
    assertSameImage(readImage(out, "v1"), image)
    skopeo.copy(cache.docker("lib/multi", "multi"), f"oci:{out}:multi", "--all")
    assertSameIndex(readIndex(out, "multi"), index)
    upstream.stop()
    skopeo.copy(cache.docker("lib/multi", "multi"), f"oci:{out}:again", "--all")
    assertSameIndex(readIndex(out, "again"), index)


# Sharing and streaming ------------------------------------------------------------


def test_concurrentPullsShareOneUpstreamGet(upstreamDistribution, registryd, proxies):  # noqa: F811
    upstream = upstreamDistribution()
    data = os.urandom(8 * MiB)
    digest = pushBlob(upstream.host, "lib/app", data)
    proxy = proxies(upstream.host)
    proxy.rate = 16 * MiB  # half a second for the blob: the pulls overlap
    cache = cacheOf(registryd, proxy.url)
    results = [None] * 8

    def pull(i):
        results[i] = cache.call("GET", f"/v2/lib/app/blobs/{digest}")

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [(status, body == data) for status, _, body in results] == [(200, True)] * 8
    assert proxy.count("GET", f"/blobs/{digest}") == 1


def test_clientGetsTheFirstBytesBeforeTheUpstreamHasSentThemAll(upstreamDistribution, registryd, proxies):  # noqa: F811
    upstream = upstreamDistribution()
    size = 64 * MiB
    data = os.urandom(size)
    digest = pushBlob(upstream.host, "lib/app", data)
    proxy = proxies(upstream.host)
    proxy.rate = 32 * MiB  # two seconds for the blob
    cache = cacheOf(registryd, proxy.url)

    connection = http.client.HTTPConnection(cache.host, timeout=60)
    try:
        connection.request("GET", f"/v2/lib/app/blobs/{digest}")
        response = connection.getresponse()
        assert response.status == 200 and int(response.headers["Content-Length"]) == size
        first = response.read(64 * 1024)
        forwarded = proxy.forwarded
        assert first == data[: len(first)]
        assert forwarded < size / 2, f"the upstream had sent {forwarded} bytes before the client saw any"
        hasher = hashlib.sha256(first)
        while chunk := response.read(MiB):
            hasher.update(chunk)
        assert "sha256:" + hasher.hexdigest() == digest
    finally:
        connection.close()
    assert linked(cache.root, "lib/app", digest)


# Failures of the upstream ----------------------------------------------------------


def test_staleTagServedWithAWarningWhenTheUpstreamIsDown(upstreamDistribution, registryd):  # noqa: F811
    upstream = upstreamDistribution()
    pushed = pushImage(upstream.host, "lib/app", "v1", [b"layer"])
    cache = cacheOf(registryd, f"http://{upstream.host}", ttl="4s")
    assertPulls(cache, "lib/app", "v1", pushed)
    started = time.monotonic()
    time.sleep(2.5)
    assertPulls(cache, "lib/app", "v1", pushed)  # in use: not expired
    time.sleep(max(0.0, 4.5 - (time.monotonic() - started)))
    upstream.stop()
    assertPulls(cache, "lib/app", "v1", pushed)
    log = cache.log()
    assert "serving cached lib/app:v1" in log and "unreachable" in log


def test_upstreamDownWithoutACachedCopy(registryd):  # noqa: F811
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = cacheOf(registryd, f"http://127.0.0.1:{port}")
    started = time.monotonic()
    for method, path in [
        ("GET", "/v2/lib/app/manifests/v1"),
        ("GET", f"/v2/lib/app/manifests/{sha256(b'x')}"),
        ("GET", f"/v2/lib/app/blobs/{sha256(b'x')}"),
    ]:
        status, headers, body = cache.call(method, path, ACCEPT, timeout=20)
        assert status == 502, body
        error = errorOf(body)
        assert error["code"] == "UNKNOWN"
        assert f"the upstream registry at 127.0.0.1:{port} is unreachable" in error["message"]
    status, _, body = cache.call("HEAD", f"/v2/lib/app/blobs/{sha256(b'x')}", timeout=20)
    assert status == 502
    assert time.monotonic() - started < 5


def test_upstreamStalledMidBlob(upstreamDistribution, registryd, proxies):  # noqa: F811
    upstream = upstreamDistribution()
    size = 4 * MiB
    data = os.urandom(size)
    digest = pushBlob(upstream.host, "lib/app", data)
    proxy = proxies(upstream.host)
    proxy.stall(f"/blobs/{digest}", after=MiB)
    cache = cacheOf(registryd, proxy.url)

    started = time.monotonic()
    connection = http.client.HTTPConnection(cache.host, timeout=120)
    received = b""
    try:
        connection.request("GET", f"/v2/lib/app/blobs/{digest}")
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as raised:
            response.read()
        received = raised.value.partial
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    assert 25 < elapsed < 45, elapsed  # the idle timeout is 30 s
    assert 0 < len(received) < MiB and received == data[: len(received)]
    assert not linked(cache.root, "lib/app", digest)
    assert not os.path.exists(blobPath(cache.root, digest))
    assert "stopped sending blob" in cache.log()

    # The proxy stalls once: with the upstream healthy again, the pull works.
    status, _, body = cache.call("GET", f"/v2/lib/app/blobs/{digest}")
    assert status == 200 and body == data
    assert linked(cache.root, "lib/app", digest)


def test_upstreamServingWrongBytes(upstreamDistribution, registryd):  # noqa: F811
    upstream = upstreamDistribution()
    size = 2 * MiB
    data = os.urandom(size)
    digest = pushBlob(upstream.host, "lib/app", data)
    with open(blobPath(upstream.root, digest), "r+b") as f:
        f.seek(size // 2)
        f.write(b"\0" * 100)
    cache = cacheOf(registryd, f"http://{upstream.host}")

    connection = http.client.HTTPConnection(cache.host, timeout=60)
    try:
        connection.request("GET", f"/v2/lib/app/blobs/{digest}")
        response = connection.getresponse()
        assert response.status == 200 and int(response.headers["Content-Length"]) == size
        with pytest.raises(http.client.IncompleteRead) as raised:
            response.read()
        assert len(raised.value.partial) < size
    finally:
        connection.close()
    assert not linked(cache.root, "lib/app", digest)
    assert not os.path.exists(blobPath(cache.root, digest))
    assert not os.listdir(os.path.join(cache.root, "docker/registry/v2/repositories/lib/app/_uploads"))
    assert "do not match" in cache.log()
    # Asked again, the cache fetches again (and fails again): nothing bad was kept.
    status, _, _ = cache.call("HEAD", f"/v2/lib/app/blobs/{digest}")
    assert status == 200
    with pytest.raises(http.client.IncompleteRead):
        connection = http.client.HTTPConnection(cache.host, timeout=60)
        try:
            connection.request("GET", f"/v2/lib/app/blobs/{digest}")
            connection.getresponse().read()
        finally:
            connection.close()
    assert not linked(cache.root, "lib/app", digest)


# Refusals and expiry ------------------------------------------------------------------


def test_pushesAndDeletesAreRefused(upstreamDistribution, registryd):  # noqa: F811
    upstream = upstreamDistribution()
    pushed = pushImage(upstream.host, "lib/app", "v1", [b"layer"])
    cache = registryd(delete=True, config={"proxy": {"remoteurl": f"http://{upstream.host}"}})
    assertPulls(cache, "lib/app", "v1", pushed)
    layer = sha256(b"layer")
    for method, path, body in [
        ("POST", "/v2/lib/app/blobs/uploads/", b""),
        ("POST", f"/v2/lib/app/blobs/uploads/?digest={sha256(b'new')}", b"new"),
        ("POST", f"/v2/lib/other/blobs/uploads/?mount={layer}&from=lib/app", b""),
        ("PUT", "/v2/lib/app/manifests/v2", pushed.manifest),
        ("DELETE", "/v2/lib/app/manifests/v1", None),
        ("DELETE", f"/v2/lib/app/manifests/{pushed.digest}", None),
        ("DELETE", f"/v2/lib/app/blobs/{layer}", None),
    ]:
        headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else {}
        status, _, answer = call(cache.host, method, path, body, headers)
        assert status == 405, (method, path, answer)
        error = errorOf(answer)
        assert error["code"] == "UNSUPPORTED" and "pull-through cache" in error["message"]
    assertPulls(cache, "lib/app", "v1", pushed)


def test_unusedContentExpires(upstreamDistribution, registryd):  # noqa: F811
    upstream = upstreamDistribution()
    pushed = pushImage(upstream.host, "lib/app", "v1", [os.urandom(10000)])
    cache = cacheOf(registryd, f"http://{upstream.host}", ttl="2s")
    assertPulls(cache, "lib/app", "v1", pushed)
    repository = os.path.join(cache.root, "docker/registry/v2/repositories/lib/app")
    assert os.path.exists(os.path.join(repository, "_manifests/tags/v1/current/link"))

    def gone():
        return not any(
            linked(cache.root, "lib/app", digest) or os.path.exists(blobPath(cache.root, digest))
            for digest in [pushed.digest, *pushed.blobs()]
        ) and not os.path.exists(os.path.join(repository, "_manifests/tags/v1"))

    # The sweep logs once it has removed the last file: wait for both.
    deadline = time.monotonic() + 15
    while not (gone() and "expired" in cache.log()):
        assert time.monotonic() < deadline, "unused content was not expired and logged"
        time.sleep(0.2)
    assert not os.path.exists(
        os.path.join(repository, "_manifests/revisions/sha256", pushed.digest.split(":")[1])
    )
    # Expired content comes back on demand.
    assertPulls(cache, "lib/app", "v1", pushed)
