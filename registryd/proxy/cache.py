"""
The pull-through cache: an L{IRegistry} serving what the local registry
holds and fetching the rest from the upstream, storing it on the way.

  - Blobs: a miss streams the upstream's bytes to the client while they are
    written into a local upload session.  The session's commit checks the
    digest before anything is linked, and the client's reader holds back the
    latest chunk until that check has passed: a corrupt blob reaches no
    client whole (its connection is cut short) and is not stored.
  - Manifests by digest: fetched, checked against the digest, and stored
    without a push's blob checks (their blobs come later, on demand).
  - Tags: served from the local link while the upstream confirmed them
    within C{ttl}, then checked again with a C{HEAD}; an upstream that is
    down or slow leaves the cached tag in service, with a warning.
  - Concurrent misses of one blob, manifest or tag share one upstream fetch.
  - Pushes and deletes: UNSUPPORTED.

What the cache stored has a record under its repository's C{_proxy}
directory (L{Records}): when it was last used and, for a tag, when the
upstream last confirmed it.  L{ProxyRegistry.expire} removes what was not
used within C{ttl}.
"""

import collections
import dataclasses
import json

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from registryd import errors
from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.interfaces import (
    BlobInfo,
    IBlobReader,
    IBlobStore,
    IManifestService,
    IReferrersIndex,
    IRegistry,
    IRepository,
    ITagService,
)
from registryd.manifest import OCI_INDEX, parseManifest
from registryd.proxy.upstream import UpstreamError
from registryd.reference import Digest, sortedLexically
from registryd.storage import paths
from registryd.storage.links import writeLink

log = Logger()

BLOBS = "blobs"
MANIFESTS = "manifests"
TAGS = "tags"
REVALIDATE_TIMEOUT = 5.0
READER_TIMEOUT = 30.0
HIGH_WATER = 8 * 1024 * 1024  # bytes a blob fetch holds before it pauses the upstream
LOW_WATER = 2 * 1024 * 1024
REFUSAL = "this registry is a pull-through cache: pushes and deletes are not supported"

# Failures after which a cached copy is served instead.
_UPSTREAM_DOWN = (UpstreamError, errors.TooManyRequests, DeferredTimeout)


def _refused(self, *args, **kwargs):
    return fail(errors.Unsupported(message=REFUSAL))


class InFlight:
    """
    Work in progress by key: a request for a key already being worked on
    waits for that work's result instead of repeating it.  Each caller gets
    its own Deferred, so one caller giving up does not cancel the others.
    """

    def __init__(self):
        self._waiters = {}

    def __contains__(self, key):
        return key in self._waiters

    def keys(self):
        """The keys being worked on now."""
        return list(self._waiters)

    def join(self, key):
        """@return: A Deferred of the result of the work on C{key}, or None if there is none."""
        waiters = self._waiters.get(key)
        if waiters is None:
            return None
        waiter = Deferred()
        waiters.append(waiter)
        return waiter

    def run(self, key, function, *args):
        """Join the work on C{key}, starting C{function(*args)} if there is none."""
        joined = self.join(key)
        if joined is not None:
            return joined
        self._waiters[key] = []
        waiter = self.join(key)
        maybeDeferred(function, *args).addBoth(self._finished, key)
        return waiter

    def _finished(self, result, key):
        for waiter in self._waiters.pop(key):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


class Records:
    """
    The cache's records, one small JSON file per cached blob, manifest and
    tag under C{<repository>/_proxy/} (Distribution ignores C{_} directories
    it does not know), so they outlive the process.

    A use updates memory at once but storage only when the stored time is
    more than C{granularity} seconds old, so a busy blob costs no write per
    pull; the expiry, in this process, sees the exact time.
    """

    def __init__(self, driver, clock, granularity):
        self._driver = driver
        self._clock = clock
        self._granularity = granularity
        self._records = {}  # (name, kind, key) -> dict, or None when there is none
        self._stored = {}  # (name, kind, key) -> "used" as last written

    @staticmethod
    def path(name, kind, key):
        if kind == TAGS:
            return f"{paths.repository(name)}/_proxy/tags/{key}"
        digest = Digest.parse(key)
        return f"{paths.repository(name)}/_proxy/{kind}/{digest.algorithm}/{digest.hex}"

    @deferred
    async def get(self, name, kind, key):
        """@return: Deferred firing with the record (a dict), or None."""
        entry = (name, kind, key)
        if entry in self._records:
            return self._records[entry]
        try:
            record = _parseRecord(await self._driver.getContent(self.path(name, kind, key)))
        except PathNotFoundError:
            record = None
        if record is not None:
            self._stored[entry] = record.get("used", 0.0)
        self._records.setdefault(entry, record)
        return self._records[entry]

    @deferred
    async def put(self, name, kind, key, **fields):
        """Create or update a record and store it now."""
        entry = (name, kind, key)
        record = dict(await self.get(name, kind, key) or {})
        record.update(fields)
        self._records[entry] = record
        await self._driver.putContent(self.path(name, kind, key), json.dumps(record).encode())
        self._stored[entry] = record.get("used", 0.0)

    @deferred
    async def touch(self, name, kind, key):
        """Note a use of something cached; a failure to store it is only logged."""
        record = await self.get(name, kind, key)
        if record is None:
            return  # not the cache's (or already expired)
        now = self._clock.seconds()
        record["used"] = max(record.get("used", 0.0), now)
        if now - self._stored.get((name, kind, key), 0.0) > self._granularity:
            try:
                await self.put(name, kind, key)
            except Exception:
                log.failure("proxy cache: could not record a use of {kind} {key}", kind=kind, key=key)

    @deferred
    async def remove(self, name, kind, key):
        entry = (name, kind, key)
        self._records[entry] = None
        self._stored.pop(entry, None)
        try:
            await self._driver.delete(self.path(name, kind, key))
        except PathNotFoundError:
            pass

    @deferred
    async def scan(self):
        """@return: Deferred firing with every stored C{(name, kind, key, record)}."""
        prefix = paths.REPOSITORIES + "/"
        roots = []

        def visit(info):
            base = info.path.rsplit("/", 1)[1]
            if base == "_proxy" and info.isDir:
                roots.append(info.path)
                return False
            return info.isDir and not base.startswith("_")

        try:
            await self._driver.walk(paths.REPOSITORIES, visit)
        except PathNotFoundError:
            return []
        found = []
        for root in roots:
            name = root[len(prefix) : -len("/_proxy")]
            for kind in (BLOBS, MANIFESTS, TAGS):
                for key in await self._keys(root, kind):
                    record = await self.get(name, kind, key)
                    if record is not None:
                        found.append((name, kind, key, record))
        return found

    @deferred
    async def _keys(self, root, kind):
        try:
            children = await self._driver.list(f"{root}/{kind}")
        except PathNotFoundError:
            return []
        if kind == TAGS:
            return [child.rsplit("/", 1)[1] for child in children]
        keys = []
        for algorithm in children:
            try:
                for child in await self._driver.list(algorithm):
                    keys.append(f"{algorithm.rsplit('/', 1)[1]}:{child.rsplit('/', 1)[1]}")
            except PathNotFoundError:
                pass
        return keys


def _parseRecord(content):
    try:
        record = json.loads(content)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


# Blobs ------------------------------------------------------------------------


@implementer(IBlobReader)
class _FetchReader:
    """
    The bytes of a blob fetch as they arrive, for the request that started
    it.  The latest chunk is held back until the fetch has verified the
    digest, so a client never has the whole of a blob that fails the check.
    """

    def __init__(self, fetch, skip):
        self._fetch = fetch
        self._skip = skip
        self._chunks = collections.deque()
        self._held = None
        self.buffered = 0
        self._ended = False
        self._failure = None
        self._closed = False
        self._waiting = None

    def offer(self, chunk):
        if self._closed or self._failure is not None:
            return
        if self._held is not None:
            self._release(self._held)
        self._held = chunk
        self.buffered += len(chunk)
        self._wake()

    def finish(self):
        """The digest is verified: release everything."""
        if self._held is not None:
            self._release(self._held)
            self._held = None
        self._ended = True
        self._wake()

    def fail(self, failure):
        self._failure = failure
        self._chunks.clear()
        self._held = None
        self.buffered = 0
        self._wake()

    def _release(self, chunk):
        if self._skip:
            dropped = min(self._skip, len(chunk))
            self._skip -= dropped
            self.buffered -= dropped
            chunk = chunk[dropped:]
        if chunk:
            self._chunks.append(chunk)

    def read(self, size):
        if self._waiting is not None:
            return fail(RuntimeError("one read at a time"))
        if self._chunks:
            return succeed(self._take(size))
        if self._failure is not None:
            return fail(self._failure)
        if self._ended or self._closed:
            return succeed(b"")
        waiting = Deferred(lambda _: self._forget())
        self._waiting = (waiting, size)
        return waiting

    def _forget(self):
        self._waiting = None

    def _wake(self):
        if self._waiting is None:
            return
        waiting, size = self._waiting
        if self._chunks:
            self._waiting = None
            waiting.callback(self._take(size))
        elif self._failure is not None:
            self._waiting = None
            waiting.errback(self._failure)
        elif self._ended or self._closed:
            self._waiting = None
            waiting.callback(b"")

    def _take(self, size):
        out = []
        taken = 0
        while self._chunks and taken < size:
            chunk = self._chunks.popleft()
            if taken + len(chunk) > size:
                cut = size - taken
                self._chunks.appendleft(chunk[cut:])
                chunk = chunk[:cut]
            out.append(chunk)
            taken += len(chunk)
        self.buffered -= taken
        self._fetch.taken()
        return b"".join(out)

    def fileno(self):
        return None  # bytes arriving from the upstream, not a local file

    def close(self):
        """The client is gone: the fetch goes on to fill the cache, without it."""
        if self._closed:
            return
        self._closed = True
        self._chunks.clear()
        self._held = None
        self.buffered = 0
        self._wake()
        self._fetch.throttle()


class _BlobFetch:
    """
    One upstream GET of a blob, written into a local upload session one
    write at a time and offered to the reader of the request that started
    it.  The upstream is paused while the session or the reader lag more
    than L{HIGH_WATER} bytes behind; a reader that takes nothing for
    C{readerTimeout} seconds meanwhile is dropped, so that one stuck client
    does not hold up the others waiting for the blob.
    """

    def __init__(self, proxy, name, digest, blobs, offset):
        self._proxy = proxy
        self._name = name
        self._digest = digest
        self._blobs = blobs
        self._reader = _FetchReader(self, offset)
        self._ready = Deferred(lambda _: self._reader.close())
        self._body = None
        self._upload = None
        self._paused = False
        self._pending = []
        self._pendingBytes = 0
        self._writing = False
        self._writeFailure = None
        self._idle = []
        self._readerActive = proxy.clock.seconds()
        self._watch = None

    def reader(self):
        """@return: Deferred firing with the L{IBlobReader} once the upstream answered."""
        return self._ready

    @deferred
    async def run(self):
        """Fetch, store and verify; the reader learns the outcome from L{settle}."""
        upload = None
        try:
            self._body = await self._proxy.upstream.getBlob(self._name, self._digest)
            upload = self._upload = await self._blobs.createUpload()
            self._ready.callback(self._reader)
            try:
                await self._body.deliver(self._received)
            finally:
                await self._settled()
            if self._writeFailure is not None:
                self._writeFailure.raiseException()
            committing, upload = upload, None
            try:
                await committing.commit(self._digest)
            except errors.DigestInvalid:
                raise UpstreamError(
                    detail={"digest": self._digest},
                    message=f"the upstream registry served bytes that do not match {self._digest}; "
                    "nothing was cached",
                ) from None
            await self._proxy.records.put(self._name, BLOBS, self._digest, used=self._proxy.clock.seconds())
        except BaseException:
            failure = self._writeFailure or Failure()
            if self._body is not None:
                self._body.abort()  # a body still arriving is not wanted any more
            if upload is not None:
                try:
                    await upload.cancel()
                except Exception:
                    log.failure("proxy cache: could not cancel the upload of {digest}", digest=self._digest)
            if not failure.check(errors.BlobUnknown):
                log.warn(
                    "proxy cache: fetching blob {name}@{digest} failed: {reason}",
                    name=self._name,
                    digest=self._digest,
                    reason=failure.getErrorMessage(),
                )
            failure.raiseException()

    def settle(self, result):
        """
        Release the reader's last bytes, or fail it.  Called once the fetch
        is no longer in flight, so that whoever the reader wakes and asks
        again finds the blob stored (or a fresh fetch to start).
        """
        if self._watch is not None and self._watch.active():
            self._watch.cancel()
        if isinstance(result, Failure):
            if not self._ready.called:
                self._ready.errback(result)
            else:
                self._reader.fail(result)
        else:
            self._reader.finish()

    def _received(self, chunk):
        self._reader.offer(chunk)
        if self._writeFailure is not None:
            return
        self._pending.append(chunk)
        self._pendingBytes += len(chunk)
        self._writeNext()
        self.throttle()

    def _writeNext(self):
        if self._writing or not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._writing = True
        self._upload.write(data).addCallbacks(self._wrote, self._writeFailed, callbackArgs=(len(data),))

    def _wrote(self, _, size):
        self._writing = False
        self._pendingBytes -= size
        self._writeNext()
        self.throttle()
        self._notifyIdle()

    def _writeFailed(self, failure):
        self._writing = False
        self._writeFailure = failure
        self._pending.clear()
        self._pendingBytes = 0
        self._body.abort()
        self._notifyIdle()

    def _notifyIdle(self):
        if not self._writing and not self._pending:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def _settled(self):
        """A Deferred firing when no write is in progress or queued."""
        if not self._writing and not self._pending:
            return succeed(None)
        d = Deferred()
        self._idle.append(d)
        return d

    def taken(self):
        """The reader took bytes."""
        self._readerActive = self._proxy.clock.seconds()
        self.throttle()

    def throttle(self):
        """Pause or resume the upstream by what is held in memory."""
        if self._body is None:
            return
        held = self._pendingBytes + self._reader.buffered
        if held > HIGH_WATER and not self._paused:
            self._paused = True
            self._body.pause()
            if self._watch is None:
                self._watch = self._proxy.clock.callLater(self._proxy.readerTimeout, self._watchReader)
        elif held < LOW_WATER and self._paused:
            self._paused = False
            self._body.resume()

    def _watchReader(self):
        self._watch = None
        if not self._paused:
            return
        timeout = self._proxy.readerTimeout
        idle = self._proxy.clock.seconds() - self._readerActive
        if not self._reader.buffered:
            delay = timeout  # waiting for storage, not for the reader
        elif idle >= timeout:
            log.warn(
                "proxy cache: dropping a client that stopped reading {name}@{digest}",
                name=self._name,
                digest=self._digest,
            )
            self._reader.fail(Failure(errors.Unknown(message="the client stopped reading")))
            self.throttle()
            return
        else:
            delay = timeout - idle
        self._watch = self._proxy.clock.callLater(delay, self._watchReader)


@implementer(IBlobStore)
class ProxyBlobStore:
    """The blobs of repository C{name}: local, else fetched from the upstream."""

    def __init__(self, proxy, name, local):
        self._proxy = proxy
        self._name = name
        self._local = local

    @deferred
    async def stat(self, digest):
        digest = Digest.parse(digest)
        try:
            info = await self._local.stat(digest)
        except errors.BlobUnknown:
            return BlobInfo(digest, await self._proxy.upstream.headBlob(self._name, digest))
        await self._proxy.records.touch(self._name, BLOBS, digest)
        return info

    @deferred
    async def open(self, digest, offset=0):
        digest = Digest.parse(digest)
        key = (BLOBS, self._name, digest)
        pending = self._proxy.flights.join(key)
        if pending is None:
            try:
                reader = await self._local.open(digest, offset)
            except errors.BlobUnknown:
                pending = self._proxy.flights.join(key)  # one may have started meanwhile
            else:
                await self._proxy.records.touch(self._name, BLOBS, digest)
                return reader
        if pending is not None:
            await pending
            return await self._local.open(digest, offset)
        fetch = _BlobFetch(self._proxy, self._name, digest, self._local, offset)
        self._proxy.flights.run(key, fetch.run).addBoth(fetch.settle)
        return await fetch.reader()

    delete = link = mount = createUpload = resumeUpload = _refused


# Manifests, tags, referrers ---------------------------------------------------


@implementer(IManifestService)
class ProxyManifestService:
    """The manifests of repository C{name}: local, else fetched by digest."""

    def __init__(self, proxy, name, local):
        self._proxy = proxy
        self._name = name
        self._local = local  # the local IRepository

    @deferred
    async def exists(self, digest):
        digest = Digest.parse(digest)
        if await self._local.manifests.exists(digest):
            return True
        try:
            await self._proxy.upstream.headManifest(self._name, digest)
        except errors.ManifestUnknown:
            return False
        return True

    @deferred
    async def get(self, digest):
        digest = Digest.parse(digest)
        if await self._local.manifests.exists(digest):
            try:
                manifest = await self._local.manifests.get(digest)
            except errors.ManifestUnknown:
                pass  # its blob went missing: fetch it again
            else:
                await self._proxy.records.touch(self._name, MANIFESTS, digest)
                return manifest
        return await self._proxy.flights.run((MANIFESTS, self._name, digest), self._fetch, digest)

    @deferred
    async def _fetch(self, digest):
        fetched = await self._proxy.upstream.getManifest(self._name, digest)
        if Digest.of(fetched.payload, digest.algorithm) != digest:
            raise UpstreamError(
                detail={"digest": digest},
                message=f"the upstream registry served a manifest that does not match {digest}",
            )
        manifest = dataclasses.replace(self._parse(fetched), digest=digest)
        await self.store(manifest)
        return manifest

    @deferred
    async def fetchTagged(self, tag):
        """Fetch and store the manifest C{tag} names upstream; return its digest."""
        fetched = await self._proxy.upstream.getManifest(self._name, tag)
        algorithm = fetched.digest.algorithm if fetched.digest is not None else "sha256"
        digest = Digest.of(fetched.payload, algorithm)
        if fetched.digest is not None and fetched.digest != digest:
            raise UpstreamError(
                detail={"tag": tag, "digest": fetched.digest},
                message=f"the upstream registry served a manifest for {tag} that does not match "
                f"its Docker-Content-Digest {fetched.digest}",
            )
        await self.store(dataclasses.replace(self._parse(fetched), digest=digest))
        return digest

    def _parse(self, fetched):
        try:
            return parseManifest(fetched.payload, fetched.mediaType)
        except errors.ManifestInvalid as e:
            raise UpstreamError(
                message=f"the upstream registry served a manifest registryd cannot cache: {e.message}"
            ) from None

    @deferred
    async def store(self, manifest):
        """
        Store a fetched manifest as a push would, without checking that its
        blobs are here: a cache holds only what clients have asked for.
        """
        local = self._proxy.local
        digest = manifest.digest
        data = paths.blobData(digest)
        try:
            await local.driver.stat(data)
        except PathNotFoundError:
            await local.driver.putContent(data, manifest.payload)
        await writeLink(local.driver, paths.manifestRevisionLink(self._name, digest), digest)
        local.catalogCache.forget()
        if manifest.subject is not None:
            await self._local.referrers.add(manifest.subject.digest, digest)
        local.manifestCache.put(digest, manifest)
        await self._proxy.records.put(self._name, MANIFESTS, digest, used=self._proxy.clock.seconds())

    put = delete = _refused


@implementer(ITagService)
class ProxyTagService:
    """The tags of repository C{name}, checked with the upstream after C{ttl}."""

    def __init__(self, proxy, name, local, manifests):
        self._proxy = proxy
        self._name = name
        self._local = local  # the local ITagService
        self._manifests = manifests

    def get(self, tag):
        return self._proxy.flights.run((TAGS, self._name, tag), self._resolve, tag)

    @deferred
    async def _resolve(self, tag):
        proxy = self._proxy
        try:
            cached = await self._local.get(tag)
        except errors.ManifestUnknown:
            cached = None
        if cached is None:
            return await self._remember(tag, await self._manifests.fetchTagged(tag))
        record = await proxy.records.get(self._name, TAGS, tag)
        if record is not None and proxy.clock.seconds() - record.get("validated", 0.0) < proxy.ttl:
            await proxy.records.touch(self._name, TAGS, tag)
            return cached
        check = proxy.upstream.headManifest(self._name, tag)
        try:
            head = await check.addTimeout(proxy.revalidateTimeout, proxy.clock)
        except _UPSTREAM_DOWN as e:
            reason = (
                f"no answer within {proxy.revalidateTimeout:g} s"
                if isinstance(e, DeferredTimeout)
                else getattr(e, "message", str(e))
            )
            log.warn(
                "proxy cache: serving cached {name}:{tag} ({digest}) unchecked: {reason}",
                name=self._name,
                tag=tag,
                digest=cached,
                reason=reason,
            )
            await proxy.records.touch(self._name, TAGS, tag)
            return cached
        if head.digest is None:  # an upstream that does not say: ask for the manifest
            return await self._remember(tag, await self._manifests.fetchTagged(tag))
        return await self._remember(tag, head.digest)

    @deferred
    async def _remember(self, tag, digest):
        now = self._proxy.clock.seconds()
        await self._local.tag(tag, digest)
        await self._proxy.records.put(self._name, TAGS, tag, validated=now, used=now)
        return digest

    @deferred
    async def list(self):
        """The upstream's tags; the cached ones while it cannot be asked."""
        try:
            return sortedLexically(await self._proxy.upstream.tags(self._name))
        except _UPSTREAM_DOWN as e:
            log.warn(
                "proxy cache: listing the cached tags of {name}: {reason}",
                name=self._name,
                reason=getattr(e, "message", str(e)),
            )
        return await self._local.list()

    def lookup(self, digest):
        return self._local.lookup(digest)

    tag = untag = _refused


@implementer(IReferrersIndex)
class ProxyReferrersIndex:
    """The upstream's referrers; the local index while it cannot be asked or has no such API."""

    def __init__(self, proxy, name, local):
        self._proxy = proxy
        self._name = name
        self._local = local

    @deferred
    async def referrers(self, subject, artifactType=None):
        try:
            payload = await self._proxy.upstream.referrers(self._name, subject, artifactType)
        except _UPSTREAM_DOWN as e:
            log.warn(
                "proxy cache: listing cached referrers of {name}@{subject}: {reason}",
                name=self._name,
                subject=subject,
                reason=getattr(e, "message", str(e)),
            )
            payload = None
        if payload is None:
            return await self._local.referrers(subject, artifactType)
        try:
            index = parseManifest(payload, OCI_INDEX)
        except errors.ManifestInvalid as e:
            raise UpstreamError(
                message=f"the upstream registry served a referrers index that is invalid: {e.message}"
            ) from None
        found = [d for d in index.manifests if artifactType is None or d.artifactType == artifactType]
        return sorted(found, key=lambda d: d.digest)

    add = remove = _refused


@implementer(IRepository)
class ProxyRepository:
    def __init__(self, proxy, name):
        local = proxy.local.repository(name)
        self.name = name
        self.blobs = ProxyBlobStore(proxy, name, local.blobs)
        self.manifests = ProxyManifestService(proxy, name, local)
        self.tags = ProxyTagService(proxy, name, local.tags, self.manifests)
        self.referrers = ProxyReferrersIndex(proxy, name, local.referrers)


# The registry -----------------------------------------------------------------


@implementer(IRegistry)
class ProxyRegistry:
    """
    A pull-through cache of C{upstream} over the local registry.

    @param local: The L{registryd.storage.registry.Registry} content is
        cached in.
    @param upstream: An L{registryd.proxy.upstream.Upstream}.
    @param ttl: Seconds a tag is trusted before the upstream is asked
        again, and after which unused content is removed by L{expire}.
    @param clock: Has C{seconds()} (wall-clock: records outlive the
        process) and C{callLater}.
    @param revalidateTimeout: Seconds a tag check may take before the cached
        tag is served anyway.
    @param readerTimeout: Seconds the client whose pull started a blob fetch
        may take no bytes while the fetch waits for it, before it is dropped.
    """

    def __init__(
        self,
        local,
        upstream,
        ttl,
        clock,
        revalidateTimeout=REVALIDATE_TIMEOUT,
        readerTimeout=READER_TIMEOUT,
    ):
        self.local = local
        self.upstream = upstream
        self.ttl = ttl
        self.clock = clock
        self.revalidateTimeout = revalidateTimeout
        self.readerTimeout = readerTimeout
        self.records = Records(local.driver, clock, granularity=ttl / 8)
        self.flights = InFlight()

    def repository(self, name):
        return ProxyRepository(self, name)

    def catalog(self, n=None, last=None):
        return self.local.catalog(n, last)

    def close(self):
        """Close the upstream's idle connections.  @return: Deferred."""
        return self.upstream.close()

    @deferred
    async def expire(self, now=None):
        """
        Remove what the cache stored and nobody used within C{ttl}: tags,
        manifests and blob links, then the blobs no repository links any more.

        @return: Deferred firing with the C{(name, kind, key)} removed.
        """
        now = self.clock.seconds() if now is None else now
        driver = self.local.driver
        removed = []
        unlinked = set()
        for name, kind, key, record in await self.records.scan():
            if now - record.get("used", 0.0) <= self.ttl or (kind, name, key) in self.flights:
                continue
            try:
                if kind == TAGS:
                    await _delete(driver, paths.tag(name, key))
                    self.local.tagLists.discard(name)
                elif kind == MANIFESTS:
                    await self._unlinkManifest(name, Digest.parse(key))
                    unlinked.add(key)
                else:
                    await _delete(driver, paths.layerLink(name, key).rsplit("/", 1)[0])
                    unlinked.add(key)
                await self.records.remove(name, kind, key)
            except Exception:
                log.failure("proxy cache: could not expire {kind} {key} of {name}", kind=kind, key=key, name=name)
                continue
            removed.append((name, kind, key))
        if unlinked:
            linked = await linkedDigests(driver)
            fetching = {key[2] for key in self.flights.keys() if key[0] == BLOBS}
            for digest in unlinked - linked - fetching:
                await _delete(driver, paths.blobData(digest).rsplit("/", 1)[0])
                self.local.manifestCache.discard(digest)
        if removed:
            log.info("proxy cache: expired {count} unused item(s)", count=len(removed))
        return removed

    @deferred
    async def _unlinkManifest(self, name, digest):
        repository = self.local.repository(name)
        try:
            subject = (await repository.manifests.get(digest)).subject
        except errors.RegistryError:
            subject = None
        await _delete(self.local.driver, paths.manifestRevisionLink(name, digest).rsplit("/", 1)[0])
        if subject is not None:
            await repository.referrers.remove(subject.digest, digest)


@deferred
async def _delete(driver, path):
    try:
        await driver.delete(path)
    except PathNotFoundError:
        pass


@deferred
async def linkedDigests(driver):
    """Every digest some repository links as a layer or a manifest revision."""
    found = set()

    def visit(info):
        parts = info.path.split("/")
        if not info.isDir:
            if parts[-1] == "link" and len(parts) >= 5:
                if parts[-4] == "_layers" or (parts[-4] == "revisions" and parts[-5] == "_manifests"):
                    found.add(f"{parts[-3]}:{parts[-2]}")
            return None
        if parts[-1] in ("_uploads", "_proxy", "_referrers"):
            return False
        return not (parts[-1] == "tags" and parts[-2] == "_manifests")

    try:
        await driver.walk(paths.REPOSITORIES, visit)
    except PathNotFoundError:
        pass
    return found
