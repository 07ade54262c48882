"""
OCI 1.1 referrers: per subject, links to the manifests naming it.

Clients talking to registries without the referrers API kept the list in an
image index tagged C{<alg>-<hex>} (the spec's fallback tag); such entries are
imported into the index when the subject is queried, so a root written by
another registry shows its signatures.
"""

from zope.interface import implementer

from registryd import errors
from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.interfaces import IReferrersIndex
from registryd.reference import Digest
from registryd.storage import paths
from registryd.storage.links import readLink, writeLink
from registryd.storage.manifests import ManifestService, loadManifest


def fallbackTag(subject):
    """The spec's tag schema for a subject's referrers: C{<alg>-<hex>}."""
    return f"{subject.algorithm}-{subject.hex}"[:128]


@implementer(IReferrersIndex)
class ReferrersIndex:
    """L{IReferrersIndex} of repository C{name}."""

    def __init__(self, context, name, tags):
        self._context = context
        self._driver = context.driver
        self._name = name
        self._tags = tags

    def _manifests(self):
        # Made when used: holding the repository's own would make the two a
        # reference cycle, left for the garbage collector on every request.
        return ManifestService(self._context, self._name, self, self._tags)

    def add(self, subject, digest, durable=True):
        return writeLink(
            self._driver, paths.referrerLink(self._name, subject, digest), digest, durable
        )

    @deferred
    async def remove(self, subject, digest):
        link = paths.referrerLink(self._name, subject, digest)
        try:
            await self._driver.delete(link.rsplit("/", 1)[0])
        except PathNotFoundError:
            pass

    @deferred
    async def _indexed(self, subject):
        digests = []
        try:
            algorithms = await self._driver.list(paths.referrers(self._name, subject))
        except PathNotFoundError:
            return digests
        for algorithm in algorithms:
            for entry in await self._driver.list(algorithm):
                digest = await readLink(self._driver, entry + "/link")
                if digest is not None:
                    digests.append(digest)
        return digests

    @deferred
    async def _importFallback(self, subject, known):
        manifests = self._manifests()
        try:
            tagged = await self._tags.get(fallbackTag(subject))
            index = await manifests.get(tagged)
        except errors.RegistryError:
            return []
        imported = []
        for descriptor in index.manifestReferences():
            if descriptor.digest not in known and await manifests.exists(descriptor.digest):
                await self.add(subject, descriptor.digest)
                imported.append(descriptor.digest)
        return imported

    @deferred
    async def referrers(self, subject, artifactType=None):
        digests = await self._indexed(subject)
        digests += await self._importFallback(subject, set(digests))
        descriptors = []
        manifests = self._manifests()
        for digest in sorted(set(digests)):
            if not await manifests.exists(digest):
                continue
            try:
                manifest = await loadManifest(self._context, Digest(digest))
            except errors.RegistryError:
                continue
            if manifest.subject is None or manifest.subject.digest != subject:
                continue
            descriptor = manifest.descriptor()
            if artifactType is None or descriptor.artifactType == artifactType:
                descriptors.append(descriptor)
        return descriptors
