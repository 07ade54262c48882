"""
A repository's blobs: a content-addressed global store seen through links.

Blob bytes live once, at L{paths.blobData}; a repository sees a blob only
when it holds a link to it, so pushing to C{a} does not reveal it in C{b}.
"""

from zope.interface import implementer

from registryd import errors
from registryd.concurrency import deferred
from registryd.driver.interfaces import InvalidOffsetError, PathNotFoundError
from registryd.interfaces import BlobInfo, IBlobStore
from registryd.storage import paths
from registryd.storage.links import readLink, writeLink
from registryd.storage.uploads import createUpload, resumeUpload


def _unknown(digest):
    return errors.BlobUnknown(detail={"digest": digest})


@implementer(IBlobStore)
class BlobStore:
    """L{IBlobStore} of repository C{name}."""

    def __init__(self, context, name):
        self._context = context
        self._driver = context.driver
        self._name = name

    async def _isLinked(self, digest):
        # Manifests are blobs too, linked as revisions; serve them here as well.
        for link in (
            paths.layerLink(self._name, digest),
            paths.manifestRevisionLink(self._name, digest),
        ):
            if await readLink(self._driver, link) == digest:
                return True
        return False

    @deferred
    async def stat(self, digest):
        if not await self._isLinked(digest):
            raise _unknown(digest)
        return await globalStat(self._driver, digest)

    @deferred
    async def open(self, digest, offset=0):
        if not await self._isLinked(digest):
            raise _unknown(digest)
        try:
            return await self._driver.reader(paths.blobData(digest), offset)
        except PathNotFoundError:
            raise _unknown(digest) from None
        except InvalidOffsetError:
            raise errors.RangeInvalid(detail={"digest": digest, "offset": offset}) from None

    @deferred
    async def delete(self, digest):
        if not self._context.deleteEnabled:
            raise errors.Unsupported(message="deletes are disabled on this registry")
        link = paths.layerLink(self._name, digest)
        if await readLink(self._driver, link) != digest:
            raise _unknown(digest)
        await self._driver.delete(link.rsplit("/", 1)[0])

    @deferred
    async def link(self, digest):
        info = await globalStat(self._driver, digest)
        await writeLink(self._driver, paths.layerLink(self._name, digest), digest)
        return info

    @deferred
    async def mount(self, digest, source=None):
        if source is not None:
            if not await BlobStore(self._context, source)._isLinked(digest):
                raise _unknown(digest)
        return await self.link(digest)

    def createUpload(self):
        return createUpload(self._context, self._name)

    def resumeUpload(self, uploadID):
        return resumeUpload(self._context, self._name, uploadID)


async def globalStat(driver, digest):
    """The L{BlobInfo} of a blob the registry stores, in any repository."""
    try:
        info = await driver.stat(paths.blobData(digest))
    except PathNotFoundError:
        raise _unknown(digest) from None
    return BlobInfo(digest, info.size)
