"""
Upload sessions, kept in storage so any process can continue them.

A session is one file, C{_uploads/<id>}, holding the bytes received so far;
its ID (a UUID version 7) records when it started.  Bytes are hashed as they
arrive.  The hash state is kept in a bounded in-process cache keyed by
session and size, and saved beside the data whenever the session is closed
(L{hashstate}), so another process resumes hashing where this one stopped; a
session whose state cannot be restored is re-hashed from storage at commit.
One process lets one request at a time work on a session.
"""

import collections
import re
import secrets
import time
import uuid

from twisted.internet.defer import gatherResults
from zope.interface import implementer

from registryd import errors
from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError, WriterBusyError
from registryd.interfaces import BlobInfo, IBlobUpload
from registryd.reference import ALGORITHMS, Digest
from registryd.storage import paths
from registryd.storage.hashstate import ResumableSHA256, newHasher, resumable, resumableSupported
from registryd.storage.links import writeLink

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REHASH_CHUNK = 1024 * 1024
INLINE_HASH = 64 * 1024  # hashing less costs less than a trip to a thread


class HasherCache:
    """Live hash states of sessions this process worked on, least recent evicted."""

    def __init__(self, capacity=4096):
        self._capacity = capacity
        self._entries = collections.OrderedDict()

    def take(self, uploadID, size):
        """The hash object of C{uploadID} if it covers exactly C{size} bytes."""
        entry = self._entries.pop(uploadID, None)
        if entry is not None and entry[0] == size:
            return entry[1]
        return None

    def put(self, uploadID, size, hasher):
        self._entries[uploadID] = (size, hasher)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget(self, uploadID):
        self._entries.pop(uploadID, None)


def newUploadID(now):
    """A UUID version 7 (RFC 9562): its first 48 bits are C{now} in milliseconds."""
    value = (int(now * 1000) << 80) | (7 << 76) | (secrets.randbits(12) << 64) | (2 << 62) | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def startedAtOf(uploadID):
    """When an upload ID of L{newUploadID} was made (seconds since the epoch), else None."""
    if _UUID.match(uploadID) and uploadID[14] == "7":
        return int(uploadID[:8] + uploadID[9:13], 16) / 1000
    return None


def _unknown(uploadID):
    return errors.BlobUploadUnknown(detail={"uuid": uploadID[:64]})


@implementer(IBlobUpload)
class Upload:
    """An L{IBlobUpload} held by this process until closed, committed or cancelled."""

    def __init__(self, context, name, uploadID, startedAt, writer, hasher, savedAt=None):
        self._context = context
        self._driver = context.driver
        self.name = name
        self.id = uploadID
        self.startedAt = startedAt
        self._writer = writer
        self._hasher = hasher
        self._failed = None
        self._released = False
        self._savedAt = savedAt  # the size the stored hash state is for
        self.size = writer.size

    @deferred
    async def write(self, data):
        if self._failed is not None:
            raise self._failed
        if not data:
            return
        operations = [self._writer.write(data)]
        if self._hasher is not None:
            if len(data) <= INLINE_HASH:
                self._hasher.update(data)
            else:
                operations.append(self._context.compute(self._hasher.update, data))
        self.size += len(data)
        try:
            await gatherResults(operations, consumeErrors=True)
        except BaseException as e:
            self._failed = errors.BlobUploadInvalid(message="storage write failed")
            self._hasher = None
            raise self._failed from e

    def _release(self):
        if not self._released:
            self._released = True
            self._context.uploadLocks.release(self.id)

    @deferred
    async def close(self):
        try:
            await self._writer.close()
            if self._hasher is not None and self._failed is None:
                self._context.hashers.put(self.id, self.size, self._hasher)
                if resumable(self._hasher) and self.size and self.size != self._savedAt:
                    await self._saveHashState()
        finally:
            self._release()

    async def _saveHashState(self):
        # Not flushed: a state lost in a crash only costs re-hashing.
        await self._driver.putContent(
            paths.uploadHashState(self.name, self.id, self.size), self._hasher.state(), durable=False
        )
        await self._deleteHashState()
        self._savedAt = self.size

    async def _deleteHashState(self):
        if self._savedAt is not None:
            await _deleteQuietly(self._driver, paths.uploadHashState(self.name, self.id, self._savedAt))
            self._savedAt = None

    @deferred
    async def commit(self, digest):
        try:
            # The data, its move and its link are flushed together, by the
            # link's write (a syncfs of the filesystem for the filesystem driver).
            await self._writer.close(durable=False)
            computed = await self._digest(digest.algorithm)
            if computed != digest:
                raise errors.DigestInvalid(
                    detail={"expected": digest, "computed": computed},
                    message="provided digest did not match uploaded content",
                )
            await self._publish(digest)
        except BaseException:
            await self._discard()
            raise
        finally:
            self._context.hashers.forget(self.id)
            self._release()
        return BlobInfo(digest, self.size)

    @deferred
    async def _digest(self, algorithm):
        hasher = self._hasher
        if hasher is None or hasher.name != algorithm or self._failed is not None:
            hasher = ALGORITHMS[algorithm][1]()
            reader = await self._driver.reader(paths.uploadData(self.name, self.id))
            try:
                while chunk := await reader.read(REHASH_CHUNK):
                    await self._context.compute(hasher.update, chunk)
            finally:
                reader.close()
        return Digest.fromHasher(hasher)

    @deferred
    async def _publish(self, digest):
        data = paths.uploadData(self.name, self.id)
        try:
            existing = await self._driver.stat(paths.blobData(digest))
        except PathNotFoundError:
            existing = None
        if existing is None or existing.size != self.size:
            await self._driver.move(data, paths.blobData(digest), durable=False)
        else:
            await _deleteQuietly(self._driver, data)  # stored before
        await writeLink(self._driver, paths.layerLink(self.name, digest), digest)
        await self._deleteHashState()

    @deferred
    async def _discard(self):
        try:
            await self._writer.cancel()
        finally:
            await self._deleteHashState()

    @deferred
    async def cancel(self):
        try:
            await self._discard()
        finally:
            self._context.hashers.forget(self.id)
            self._release()


@deferred
async def createUpload(context, name):
    """Start a new session in repository C{name}."""
    uploadID = newUploadID(time.time())
    await context.uploadLocks.acquire(uploadID)
    try:
        # Not flushed: a session lost in a crash is restarted by its client.
        writer = await context.driver.writer(paths.uploadData(name, uploadID))
    except BaseException:
        context.uploadLocks.release(uploadID)
        raise
    return Upload(context, name, uploadID, startedAtOf(uploadID), writer, newHasher())


@deferred
async def resumeUpload(context, name, uploadID):
    """Continue session C{uploadID} of repository C{name}, waiting for other requests on it."""
    if not isinstance(uploadID, str) or not _UUID.match(uploadID):
        raise _unknown(uploadID)
    await context.uploadLocks.acquire(uploadID)
    try:
        try:
            writer = await context.driver.writer(paths.uploadData(name, uploadID), append=True)
        except PathNotFoundError:
            raise _unknown(uploadID) from None
        except WriterBusyError:
            # Another process is working on the session (one request at a time).
            raise errors.BlobUploadInvalid(
                detail={"uuid": uploadID}, message="the upload is in use by another request"
            ) from None
    except BaseException:
        context.uploadLocks.release(uploadID)
        raise
    hasher = context.hashers.take(uploadID, writer.size)
    savedAt = None
    if writer.size == 0:
        hasher = hasher or newHasher()
    else:
        try:
            state = await context.driver.getContent(paths.uploadHashState(name, uploadID, writer.size))
            savedAt = writer.size
            if hasher is None and resumableSupported():
                hasher = ResumableSHA256(state)
        except (PathNotFoundError, ValueError):
            pass
    return Upload(context, name, uploadID, startedAtOf(uploadID), writer, hasher, savedAt)


async def _deleteQuietly(driver, path):
    try:
        await driver.delete(path)
    except PathNotFoundError:
        pass
