"""
A repository's tags: C{<tag>/current/link} names the manifest.

Distribution also keeps each tag's history, a link per digest it ever named
under C{<tag>/index/}.  Nothing reads it (Distribution looks tags up through
C{current}, and its garbage collector skips missing entries), and it made a
new tag four more inodes (three directories and a link), so registryd does
not write it.
"""

import json
import time

from twisted.logger import Logger
from zope.interface import implementer

from registryd import errors
from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.interfaces import ITagService
from registryd.storage import paths
from registryd.reference import sortedLexically
from registryd.storage.links import readLink, writeLink


SETTLE = 1.0
SHARED_AT_LEAST = 1000  # tags; shorter lists cost less to list than to share

log = Logger()


def _unknown(tag):
    return errors.ManifestUnknown(detail={"tag": tag}, message="manifest tagged by this tag is not known")


@implementer(ITagService)
class TagService:
    """L{ITagService} of repository C{name}."""

    def __init__(self, context, name):
        self._context = context
        self._driver = context.driver
        self._name = name

    @deferred
    async def get(self, tag):
        digest = await readLink(self._driver, paths.tagCurrentLink(self._name, tag))
        if digest is None:
            raise _unknown(tag)
        return digest

    def tag(self, tag, digest):
        return self._context.tagLocks.run((self._name, tag), self._tag, tag, digest)

    @deferred
    async def _tag(self, tag, digest):
        await writeLink(self._driver, paths.tagCurrentLink(self._name, tag), digest)
        self._context.tagLists.discard(self._name)

    @deferred
    async def untag(self, tag):
        if not self._context.deleteEnabled:
            # The spec: "If tag deletion is disabled, the registry MUST respond
            # with either a 400 Bad Request or a 405 Method Not Allowed".
            raise errors.Unsupported(message="deletes are disabled on this registry")
        try:
            await self._driver.delete(paths.tag(self._name, tag))
        except PathNotFoundError:
            raise _unknown(tag) from None
        finally:
            self._context.tagLists.discard(self._name)

    @deferred
    async def list(self):
        """
        The sorted tags, from a cache while the tags directory's modification
        time says nothing changed.  A directory changed less than
        C{SETTLE} seconds ago is listed afresh: timestamps are coarse, and
        another process may change it again within the same tick.

        A long list is also shared with the other processes on the root
        (workers, and this one after a restart) through a file beside the
        directory, stamped with the same modification time: listing and
        sorting 5,000 names costs a process meeting them cold about 4 ms,
        reading the file a tenth of that.
        """
        directory = paths.tags(self._name)
        try:
            info = await self._driver.stat(directory)
        except PathNotFoundError:
            try:
                await self._driver.stat(paths.manifestsDirectory(self._name))
            except PathNotFoundError:
                raise errors.NameUnknown(detail={"name": self._name}) from None
            return []
        cached = self._context.tagLists.get(self._name)
        if cached is not None and cached[0] == info.modTime:
            return cached[1]
        settled = time.time() - info.modTime > SETTLE
        tags = await self._sharedList(info.modTime) if settled else None
        if tags is None:
            tags = sortedLexically(child.rsplit("/", 1)[1] for child in await self._driver.list(directory))
            if settled and len(tags) >= SHARED_AT_LEAST:
                await self._share(info.modTime, tags)
        if settled:
            self._context.tagLists.put(self._name, (info.modTime, tags))
        return tags

    async def _sharedList(self, modTime):
        """The shared list if it was made of the directory as it is now, else None."""
        try:
            document = json.loads(await self._driver.getContent(paths.tagListCache(self._name)))
        except (PathNotFoundError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("modTime") != modTime:
            return None
        tags = document.get("tags")
        return tags if isinstance(tags, list) else None

    async def _share(self, modTime, tags):
        # Not flushed: a cache lost in a crash is listed again.  A root this
        # process may not write (read-only) just goes without.
        try:
            await self._driver.putContent(
                paths.tagListCache(self._name),
                json.dumps({"modTime": modTime, "tags": tags}, separators=(",", ":")).encode(),
                durable=False,
            )
        except Exception as e:
            log.warn("could not share the tag list of {name}: {error}", name=self._name, error=e)

    @deferred
    async def lookup(self, digest):
        found = []
        for tag in await self.list():
            try:
                if await self.get(tag) == digest:
                    found.append(tag)
            except errors.ManifestUnknown:
                pass  # untagged while we looked
        return found
