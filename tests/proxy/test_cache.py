"""
The pull-through cache through its Python API, in front of a real registryd
upstream on a loopback socket (often behind a L{TCPProxy} that counts,
throttles or stalls): fetch on miss, verification, sharing, streaming, tag
revalidation, refusals and expiry.
"""

import json
import os
import socket
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface.verify import verifyObject

from registryd import errors
from registryd.driver.memory import MemoryDriver
from registryd.interfaces import (
    IBlobStore,
    IManifestService,
    IReferrersIndex,
    IRegistry,
    IRepository,
    ITagService,
)
from registryd.proxy.cache import ProxyRegistry
from registryd.proxy.upstream import Upstream, UpstreamError, UpstreamUnavailable, makeClient
from registryd.reference import Digest
from registryd.storage import paths
from registryd.storage.registry import Registry
from registryd.testing import startRegistry
from tests.proxy import OCI_MANIFEST, ShiftedClock, TCPProxy, imageManifest, pushBlob, pushImage, pushManifest, sha256

MiB = 1024 * 1024
TTL = 3600.0


class Server:
    """A registryd upstream in this process, which a test may stop early."""

    def __init__(self, running):
        self.running = running
        self.host = running.host
        self.url = running.url
        self.registry = running.registry
        self._stopped = False

    async def stop(self):
        if not self._stopped:
            self._stopped = True
            await self.running.stop()


@pytest_twisted.async_yield_fixture
async def upstream():
    server = Server(await startRegistry())
    yield server
    await server.stop()


@pytest.fixture
def proxies():
    """C{proxies(server)}: a L{TCPProxy} in front of it; all closed at teardown."""
    made = []

    def make(server):
        proxy = TCPProxy(server.host)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest_twisted.async_yield_fixture
async def caches():
    """
    C{caches(url, local=None, ttl=TTL, clock=None, idleTimeout=5, **options)}:
    a L{ProxyRegistry} over C{local} (default: a new in-memory registry).
    """
    made = []

    def make(url, local=None, ttl=TTL, clock=None, idleTimeout=5.0, **options):
        client, pool = makeClient(reactor, connectTimeout=2)
        upstream = Upstream(url, client, reactor, idleTimeout=idleTimeout, pool=pool)
        cache = ProxyRegistry(local or Registry(MemoryDriver()), upstream, ttl, clock or reactor, **options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


@pytest.fixture
def warnings():
    """Log lines at warning level and above, as text."""
    seen = []

    def observe(event):
        if event.get("log_level") is not None and event["log_level"].name in ("warn", "error", "critical"):
            seen.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield seen
    globalLogPublisher.removeObserver(observe)


async def readAll(reader, into=None):
    """Every byte of C{reader}; with C{into} (a list), chunks are also collected there as they come."""
    chunks = [] if into is None else into
    try:
        while chunk := await reader.read(MiB):
            chunks.append(chunk)
    finally:
        reader.close()
    return b"".join(chunks)


async def push(server, name, tag, layers, seed="image"):
    return await deferToThread(pushImage, server.host, name, tag, layers, seed)


async def storedBlob(registry, digest):
    try:
        await registry.driver.stat(paths.blobData(digest))
    except Exception:
        return False
    return True


async def uploadSessions(registry, name):
    try:
        return await registry.driver.list(paths.uploads(name))
    except Exception:
        return []


async def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await deferLater(reactor, 0.05, lambda: None)


# Interfaces --------------------------------------------------------------------


def test_providesTheRegistryInterfaces():
    cache = ProxyRegistry(Registry(MemoryDriver()), None, TTL, reactor)
    repository = cache.repository("lib/app")
    assert verifyObject(IRegistry, cache)
    assert verifyObject(IRepository, repository)
    assert verifyObject(IBlobStore, repository.blobs)
    assert verifyObject(IManifestService, repository.manifests)
    assert verifyObject(ITagService, repository.tags)
    assert verifyObject(IReferrersIndex, repository.referrers)


# Fetching on a miss ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_pullThroughThenServedWithoutTheUpstream(upstream, caches):
    big = os.urandom(3 * MiB + 17)
    pushed = await push(upstream, "lib/app", "v1", [b"small layer", big])
    local = Registry(MemoryDriver())
    cache = caches(upstream.url, local=local)
    repository = cache.repository("lib/app")

    assert await repository.tags.get("v1") == pushed.digest
    manifest = await repository.manifests.get(Digest(pushed.digest))
    assert manifest.payload == pushed.manifest and manifest.digest == pushed.digest
    for digest, data in pushed.blobs().items():
        assert (await repository.blobs.stat(digest)).size == len(data)
        assert await readAll(await repository.blobs.open(digest)) == data

    # Stored locally, linked as a push would have linked it.
    stored = local.repository("lib/app")
    assert await stored.tags.get("v1") == pushed.digest
    assert (await stored.manifests.get(Digest(pushed.digest))).payload == pushed.manifest
    for digest, data in pushed.blobs().items():
        assert await readAll(await stored.blobs.open(Digest(digest))) == data

    await upstream.stop()
    assert await repository.tags.get("v1") == pushed.digest
    assert (await repository.manifests.get(Digest(pushed.digest))).payload == pushed.manifest
    for digest, data in pushed.blobs().items():
        assert await readAll(await repository.blobs.open(digest)) == data


@pytest_twisted.ensureDeferred
async def test_manifestByDigestIsStoredWithoutItsBlobs(upstream, caches):
    pushed = await push(upstream, "lib/app", "v1", [b"layer"])
    local = Registry(MemoryDriver())
    repository = caches(upstream.url, local=local).repository("lib/app")
    manifest = await repository.manifests.get(Digest(pushed.digest))
    assert manifest.payload == pushed.manifest
    stored = local.repository("lib/app")
    assert await stored.manifests.exists(Digest(pushed.digest))
    with pytest.raises(errors.BlobUnknown):
        await stored.blobs.stat(Digest(sha256(b"layer")))
    # A manifest by digest tags nothing.
    assert await stored.tags.list() == []


@pytest_twisted.ensureDeferred
async def test_unknownUpstreamContent(upstream, caches):
    await push(upstream, "lib/app", "v1", [b"layer"])
    repository = caches(upstream.url).repository("lib/app")
    with pytest.raises(errors.ManifestUnknown):
        await repository.tags.get("nope")
    missing = Digest(sha256(b"missing"))
    with pytest.raises(errors.ManifestUnknown):
        await repository.manifests.get(missing)
    assert not await repository.manifests.exists(missing)
    with pytest.raises(errors.BlobUnknown):
        await repository.blobs.stat(missing)
    with pytest.raises(errors.BlobUnknown):
        await repository.blobs.open(missing)


@pytest_twisted.ensureDeferred
async def test_rangeOnAMissServesTheTailAndCachesTheWhole(upstream, caches):
    data = os.urandom(2 * MiB)
    digest = await deferToThread(pushBlob, upstream.host, "lib/app", data)
    local = Registry(MemoryDriver())
    repository = caches(upstream.url, local=local).repository("lib/app")
    assert await readAll(await repository.blobs.open(digest, 1000)) == data[1000:]
    assert await readAll(await local.repository("lib/app").blobs.open(Digest(digest))) == data


# Verification ------------------------------------------------------------------


@pytest.mark.parametrize("size", [100, 3 * MiB])
@pytest_twisted.ensureDeferred
async def test_corruptUpstreamBlobIsNeitherServedWholeNorStored(upstream, caches, warnings, size):
    data = os.urandom(size)
    digest = await deferToThread(pushBlob, upstream.host, "lib/app", data)
    corrupt = bytes(b ^ 0xFF for b in data[:10]) + data[10:]
    await upstream.registry.driver.putContent(paths.blobData(digest), corrupt)
    local = Registry(MemoryDriver())
    repository = caches(upstream.url, local=local).repository("lib/app")

    assert (await repository.blobs.stat(digest)).size == size
    received = []
    with pytest.raises(UpstreamError) as raised:
        await readAll(await repository.blobs.open(digest), received)
    assert raised.value.status == 502 and raised.value.code == "UNKNOWN"
    assert "do not match" in raised.value.message
    assert sum(map(len, received)) < size  # the client never has it whole
    with pytest.raises(errors.BlobUnknown):
        await local.repository("lib/app").blobs.stat(Digest(digest))
    assert not await storedBlob(local, digest)
    assert await uploadSessions(local, "lib/app") == []
    assert any("do not match" in line for line in warnings)

    # Once the upstream is right again, the blob is fetched afresh.
    await upstream.registry.driver.putContent(paths.blobData(digest), data)
    assert await readAll(await repository.blobs.open(digest)) == data
    assert await storedBlob(local, digest)


@pytest_twisted.ensureDeferred
async def test_corruptUpstreamManifestIsRefused(upstream, caches):
    pushed = await push(upstream, "lib/app", "v1", [b"layer"])
    other = imageManifest(b"{}", [b"something else"])
    await upstream.registry.driver.putContent(paths.blobData(pushed.digest), other)
    upstream.registry.manifestCache.discard(pushed.digest)
    local = Registry(MemoryDriver())
    repository = caches(upstream.url, local=local).repository("lib/app")
    with pytest.raises(UpstreamError) as raised:
        await repository.manifests.get(Digest(pushed.digest))
    assert raised.value.status == 502 and "does not match" in raised.value.message
    assert not await local.repository("lib/app").manifests.exists(Digest(pushed.digest))


# Sharing and streaming -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_concurrentMissesShareOneUpstreamFetch(upstream, caches, proxies):
    big = os.urandom(4 * MiB)
    pushed = await push(upstream, "lib/app", "v1", [big])
    proxy = proxies(upstream)
    repository = caches(proxy.url).repository("lib/app")
    digest = sha256(big)

    tags = await gatherResults([repository.tags.get("v1") for _ in range(5)])
    assert tags == [pushed.digest] * 5
    manifests = await gatherResults([repository.manifests.get(Digest(pushed.digest)) for _ in range(5)])
    assert {m.payload for m in manifests} == {pushed.manifest}

    async def pull():
        return await readAll(await repository.blobs.open(digest))

    results = await gatherResults([Deferred.fromCoroutine(pull()) for _ in range(6)])
    assert results == [big] * 6
    assert proxy.count("GET", f"/blobs/{digest}") == 1
    assert proxy.count("GET", "/manifests/") == 1  # by tag, once; by digest: already stored


@pytest_twisted.ensureDeferred
async def test_clientSeesBytesBeforeTheUpstreamHasSentThemAll(upstream, caches, proxies):
    size = 24 * MiB
    data = os.urandom(size)
    digest = await deferToThread(pushBlob, upstream.host, "lib/app", data)
    proxy = proxies(upstream)
    proxy.rate = 8 * MiB  # three seconds for the whole blob
    local = Registry(MemoryDriver())
    repository = caches(proxy.url, local=local).repository("lib/app")
    reader = await repository.blobs.open(digest)
    first = await reader.read(MiB)
    assert first == data[: len(first)] and first
    assert proxy.forwarded < size / 2, proxy.forwarded
    rest = await readAll(reader)
    assert first + rest == data
    assert await storedBlob(local, digest)


@pytest_twisted.ensureDeferred
async def test_clientGoingAwayDoesNotStopTheFetch(upstream, caches, proxies):
    data = os.urandom(6 * MiB)
    digest = await deferToThread(pushBlob, upstream.host, "lib/app", data)
    proxy = proxies(upstream)
    proxy.rate = 12 * MiB
    local = Registry(MemoryDriver())
    repository = caches(proxy.url, local=local).repository("lib/app")
    reader = await repository.blobs.open(digest)
    assert await reader.read(1024)
    reader.close()

    async def cached():
        return await storedBlob(local, digest)

    await eventually(cached)
    assert await readAll(await local.repository("lib/app").blobs.open(Digest(digest))) == data


@pytest_twisted.ensureDeferred
async def test_aStuckClientDoesNotHoldUpTheOthers(upstream, caches, warnings):
    data = os.urandom(24 * MiB)
    digest = await deferToThread(pushBlob, upstream.host, "lib/app", data)
    local = Registry(MemoryDriver())
    cache = caches(upstream.url, local=local, readerTimeout=0.5)
    repository = cache.repository("lib/app")
    stuck = await repository.blobs.open(digest)  # and never read
    started = time.monotonic()
    assert await readAll(await repository.blobs.open(digest)) == data
    assert time.monotonic() - started < 10
    with pytest.raises(errors.Unknown):
        await readAll(stuck)
    assert any("stopped reading" in line for line in warnings)
    assert await storedBlob(local, digest)


# Failures of the upstream --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_stalledUpstreamFailsTheReaderWithinTheIdleTimeout(upstream, caches, proxies):
    data = os.urandom(3 * MiB)
    digest = await deferToThread(pushBlob, upstream.host, "lib/app", data)
    proxy = proxies(upstream)
    proxy.stall(f"/blobs/{digest}", after=MiB)
    local = Registry(MemoryDriver())
    repository = caches(proxy.url, local=local, idleTimeout=1.0).repository("lib/app")
    started = time.monotonic()
    received = []
    with pytest.raises(UpstreamUnavailable) as raised:
        await readAll(await repository.blobs.open(digest), received)
    assert time.monotonic() - started < 5
    assert "stopped sending" in raised.value.message
    assert 0 < sum(map(len, received)) < MiB
    assert not await storedBlob(local, digest)
    assert await uploadSessions(local, "lib/app") == []
    with pytest.raises(errors.BlobUnknown):
        await local.repository("lib/app").blobs.stat(Digest(digest))
    # The proxy stalls once: the next pull goes through.
    assert await readAll(await repository.blobs.open(digest)) == data


@pytest_twisted.ensureDeferred
async def test_unreachableUpstreamWithoutACachedCopyIsAClearError(upstream, caches):
    cache = caches(upstream.url)
    await upstream.stop()
    repository = cache.repository("lib/app")
    started = time.monotonic()
    for attempt in (
        lambda: repository.tags.get("v1"),
        lambda: repository.manifests.get(Digest(sha256(b"x"))),
        lambda: repository.blobs.stat(sha256(b"x")),
        lambda: repository.blobs.open(sha256(b"x")),
    ):
        with pytest.raises(UpstreamUnavailable) as raised:
            await attempt()
        assert raised.value.status == 502 and raised.value.code == "UNKNOWN"
        assert "unreachable" in raised.value.message and upstream.host in raised.value.message
    assert time.monotonic() - started < 5


@pytest_twisted.ensureDeferred
async def test_silentUpstreamTimesOut(caches):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        cache = caches(f"http://127.0.0.1:{listener.getsockname()[1]}", idleTimeout=0.5)
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as raised:
            await cache.repository("lib/app").tags.get("v1")
        assert "did not answer" in raised.value.message
        assert time.monotonic() - started < 3
    finally:
        listener.close()


# Tags ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_tagIsRevalidatedOnlyAfterTTL(upstream, caches, proxies):
    first = await push(upstream, "lib/app", "v1", [b"first"], seed="first")
    proxy = proxies(upstream)
    clock = ShiftedClock()
    repository = caches(proxy.url, clock=clock, ttl=100).repository("lib/app")
    assert await repository.tags.get("v1") == first.digest
    second = await push(upstream, "lib/app", "v1", [b"second"], seed="second")

    clock.offset = 99
    assert await repository.tags.get("v1") == first.digest
    assert proxy.count("HEAD", "/manifests/v1") == 0
    clock.offset = 101
    assert await repository.tags.get("v1") == second.digest
    assert proxy.count("HEAD", "/manifests/v1") == 1
    assert (await repository.manifests.get(Digest(second.digest))).payload == second.manifest
    # Confirmed again: trusted for another ttl.
    clock.offset = 150
    assert await repository.tags.get("v1") == second.digest
    assert proxy.count("HEAD", "/manifests/v1") == 1


@pytest_twisted.ensureDeferred
async def test_staleTagServedWithAWarningWhenTheUpstreamIsDown(upstream, caches, warnings):
    pushed = await push(upstream, "lib/app", "v1", [b"layer"])
    clock = ShiftedClock()
    repository = caches(upstream.url, clock=clock, ttl=100).repository("lib/app")
    assert await repository.tags.get("v1") == pushed.digest
    await upstream.stop()
    clock.offset = 1000
    assert await repository.tags.get("v1") == pushed.digest
    assert (await repository.manifests.get(Digest(pushed.digest))).payload == pushed.manifest
    assert any("serving cached lib/app:v1" in line and "unreachable" in line for line in warnings), warnings


@pytest_twisted.ensureDeferred
async def test_staleTagServedWhenTheUpstreamIsSlow(upstream, caches, proxies, warnings):
    pushed = await push(upstream, "lib/app", "v1", [b"layer"])
    proxy = proxies(upstream)
    clock = ShiftedClock()
    repository = caches(proxy.url, clock=clock, ttl=100, revalidateTimeout=0.5).repository("lib/app")
    assert await repository.tags.get("v1") == pushed.digest
    proxy.stall("/manifests/v1", after=0)
    clock.offset = 1000
    started = time.monotonic()
    assert await repository.tags.get("v1") == pushed.digest
    assert time.monotonic() - started < 3
    assert any("serving cached lib/app:v1" in line and "0.5 s" in line for line in warnings), warnings


@pytest_twisted.ensureDeferred
async def test_tagTimesSurviveARestart(upstream, caches, proxies, warnings):
    pushed = await push(upstream, "lib/app", "v1", [b"layer"])
    local = Registry(MemoryDriver())
    assert await caches(upstream.url, local=local).repository("lib/app").tags.get("v1") == pushed.digest
    proxy = proxies(upstream)
    restarted = caches(proxy.url, local=Registry(local.driver))
    assert await restarted.repository("lib/app").tags.get("v1") == pushed.digest
    assert proxy.requests == [] and warnings == []


@pytest_twisted.ensureDeferred
async def test_tagListFromTheUpstreamElseTheCache(upstream, caches):
    await push(upstream, "lib/app", "v1", [b"layer"])
    await push(upstream, "lib/app", "V0", [b"layer"])
    repository = caches(upstream.url).repository("lib/app")
    assert await repository.tags.list() == ["V0", "v1"]
    await repository.tags.get("v1")
    await upstream.stop()
    assert await repository.tags.list() == ["v1"]


@pytest_twisted.ensureDeferred
async def test_referrersFromTheUpstreamElseTheCache(upstream, caches):
    pushed = await push(upstream, "lib/app", "v1", [b"layer"])
    signature = imageManifest(b"{}", [b"signature"])
    document = json.loads(signature)
    document["config"]["mediaType"] = "application/vnd.example.signature"
    document["subject"] = {"mediaType": OCI_MANIFEST, "digest": pushed.digest, "size": len(pushed.manifest)}
    signature = json.dumps(document).encode()
    for blob in (b"{}", b"signature"):
        await deferToThread(pushBlob, upstream.host, "lib/app", blob)
    await deferToThread(pushManifest, upstream.host, "lib/app", sha256(signature), signature)

    repository = caches(upstream.url).repository("lib/app")
    found = await repository.referrers.referrers(Digest(pushed.digest))
    assert [d.digest for d in found] == [sha256(signature)]
    assert found[0].artifactType == "application/vnd.example.signature"
    assert await repository.referrers.referrers(Digest(pushed.digest), "other/type") == []
    # Fetched through the cache, the signature is indexed locally too.
    await repository.manifests.get(Digest(sha256(signature)))
    await upstream.stop()
    assert [d.digest for d in await repository.referrers.referrers(Digest(pushed.digest))] == [sha256(signature)]


# Refusals and expiry ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_writesAndDeletesAreUnsupported(upstream, caches):
    repository = caches(upstream.url).repository("lib/app")
    digest = Digest(sha256(b"x"))
    for attempt in (
        lambda: repository.blobs.createUpload(),
        lambda: repository.blobs.resumeUpload("00000000-0000-4000-8000-000000000001"),
        lambda: repository.blobs.mount(digest, "other"),
        lambda: repository.blobs.link(digest),
        lambda: repository.blobs.delete(digest),
        lambda: repository.manifests.put(None),
        lambda: repository.manifests.delete(digest),
        lambda: repository.tags.tag("v1", digest),
        lambda: repository.tags.untag("v1"),
        lambda: repository.referrers.add(digest, digest),
        lambda: repository.referrers.remove(digest, digest),
    ):
        with pytest.raises(errors.Unsupported) as raised:
            await attempt()
        assert raised.value.status == 405 and "pull-through cache" in raised.value.message


@pytest_twisted.ensureDeferred
async def test_expiryRemovesWhatWasNotUsedWithinTTL(upstream, caches):
    shared, own = b"shared layer", os.urandom(100000)
    a = await push(upstream, "team/a", "v1", [shared, own], seed="a")
    b = await push(upstream, "team/b", "v1", [shared], seed="b")
    clock = ShiftedClock()
    local = Registry(MemoryDriver())
    cache = caches(upstream.url, local=local, clock=clock, ttl=100)

    async def pullAll(name, pushed):
        repository = cache.repository(name)
        await repository.manifests.get(Digest(await repository.tags.get("v1")))
        for digest in pushed.blobs():
            await readAll(await repository.blobs.open(digest))

    await pullAll("team/a", a)
    await pullAll("team/b", b)
    assert await cache.expire() == []

    clock.offset = 60
    await pullAll("team/b", b)  # b stays in use; a does not
    clock.offset = 150
    removed = await cache.expire()
    assert {(name, kind) for name, kind, _ in removed} == {("team/a", "tags"), ("team/a", "manifests"), ("team/a", "blobs")}
    stored = local.repository("team/a")
    with pytest.raises(errors.ManifestUnknown):
        await stored.tags.get("v1")
    assert not await stored.manifests.exists(Digest(a.digest))
    for digest in a.blobs():
        with pytest.raises(errors.BlobUnknown):
            await stored.blobs.stat(Digest(digest))
    # Blobs only a linked are gone; the shared one stays for b.
    assert not await storedBlob(local, sha256(own))
    assert not await storedBlob(local, a.digest)
    assert await storedBlob(local, sha256(shared))
    assert await readAll(await local.repository("team/b").blobs.open(Digest(sha256(shared)))) == shared

    clock.offset = 400
    await cache.expire()
    assert not await storedBlob(local, sha256(shared))
    assert not await storedBlob(local, b.digest)
    # Expired content is fetched again on demand.
    await pullAll("team/a", a)
    assert await storedBlob(local, sha256(own))
