"""
A repository's manifests: blobs linked as revisions, verified on the way in.
"""

from urllib.parse import urlsplit

from zope.interface import implementer

from registryd import errors
from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.interfaces import IManifestService
from registryd.manifest import parseManifest
from registryd.storage import paths
from registryd.storage.blobs import BlobStore
from registryd.storage.links import readLink, writeLink


def _unknown(digest):
    return errors.ManifestUnknown(detail={"digest": digest})


@implementer(IManifestService)
class ManifestService:
    """L{IManifestService} of repository C{name}."""

    def __init__(self, context, name, referrers, tags):
        self._context = context
        self._driver = context.driver
        self._name = name
        self._referrers = referrers
        self._tags = tags

    @deferred
    async def exists(self, digest):
        return await self._exists(digest)

    async def _exists(self, digest):
        link = paths.manifestRevisionLink(self._name, digest)
        return await readLink(self._driver, link) == digest

    @deferred
    async def get(self, digest):
        if not await self._exists(digest):
            raise _unknown(digest)
        return await loadManifest(self._context, digest)

    @deferred
    async def put(self, manifest, tag=None):
        await self._verify(manifest)
        digest = manifest.digest
        data = paths.blobData(digest)
        try:
            existing = await self._driver.stat(data)
        except PathNotFoundError:
            existing = None
        if existing is None or existing.size != len(manifest.payload):
            await self._driver.putContent(data, manifest.payload, durable=False)
        if manifest.subject is not None:
            await self._referrers.add(manifest.subject.digest, digest, durable=False)
        # The last write flushes the ones before it: the tag's, if there is one.
        await writeLink(
            self._driver, paths.manifestRevisionLink(self._name, digest), digest, durable=tag is None
        )
        self._context.catalogCache.forget()
        self._context.manifestCache.put(digest, manifest)
        if tag is not None:
            await self._tags.tag(tag, digest)
        return digest

    @deferred
    async def _verify(self, manifest):
        blobs = BlobStore(self._context, self._name)
        for descriptor in manifest.blobReferences():
            if descriptor.urls:
                self._checkForeignURLs(descriptor)
                continue
            try:
                await blobs.stat(descriptor.digest)
            except errors.BlobUnknown:
                raise errors.ManifestBlobUnknown(detail={"digest": descriptor.digest}) from None
        for descriptor in manifest.manifestReferences():
            if not await self._exists(descriptor.digest):
                raise errors.ManifestBlobUnknown(detail={"digest": descriptor.digest})

    def _checkForeignURLs(self, descriptor):
        """Distribution's rule: http(s) URLs without fragment, past the allow/deny lists."""
        policy = self._context.urlPolicy
        for url in descriptor.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or parts.fragment or not policy(url):
                raise errors.ManifestBlobUnknown(
                    detail={"digest": descriptor.digest, "url": url},
                    message="foreign layer URL not allowed by this registry",
                )

    @deferred
    async def delete(self, digest):
        if not self._context.deleteEnabled:
            raise errors.Unsupported(message="deletes are disabled on this registry")
        if not await self._exists(digest):
            raise _unknown(digest)
        try:
            manifest = await loadManifest(self._context, digest)
        except errors.RegistryError:
            manifest = None  # unparsable content still gets deleted
        link = paths.manifestRevisionLink(self._name, digest)
        await self._driver.delete(link.rsplit("/", 1)[0])
        if manifest is not None and manifest.subject is not None:
            await self._referrers.remove(manifest.subject.digest, digest)


async def loadManifest(context, digest):
    """
    The parsed manifest stored under C{digest}, from the shared cache when it
    is there (a digest's content never changes).  A plain coroutine, awaited
    on every manifest request.
    """
    manifest = context.manifestCache.get(digest)
    if manifest is not None:
        return manifest
    try:
        payload = await context.driver.getContent(paths.blobData(digest))
    except PathNotFoundError:
        raise _unknown(digest) from None
    manifest = parseManifest(payload, None)
    context.manifestCache.put(digest, manifest)
    return manifest
