"""
The registry: the namespace of repositories and what they share.

This is the object the storage services get as their context: the driver,
the options, and the per-process state (caches, locks, live hash states).
"""

import re
import time

from zope.interface import implementer

from registryd.concurrency import KeyedLocks, inline
from registryd.interfaces import IRegistry, IRepository
from registryd.storage.blobs import BlobStore
from registryd.storage.cache import BoundedCache
from registryd.storage.catalog import CatalogCache
from registryd.storage.manifests import ManifestService
from registryd.storage.referrers import ReferrersIndex
from registryd.storage.tags import TagService
from registryd.storage.uploads import HasherCache


def urlPolicy(allow=(), deny=(), disabled=False):
    """
    Distribution's rule for foreign-layer URLs: with validation disabled any
    URL passes; with neither list set none does; otherwise a URL must match
    some C{allow} pattern (if any are set) and no C{deny} pattern.
    """
    if disabled:
        return lambda url: True
    if not allow and not deny:
        return lambda url: False
    allowed = re.compile("|".join(f"(?:{a})" for a in allow)) if allow else None
    denied = re.compile("|".join(f"(?:{d})" for d in deny)) if deny else None

    def check(url):
        if allowed is not None and not allowed.search(url):
            return False
        return denied is None or not denied.search(url)

    return check


@implementer(IRepository)
class Repository:
    def __init__(self, registry, name):
        self.name = name
        self.blobs = BlobStore(registry, name)
        self.tags = TagService(registry, name)
        self.referrers = ReferrersIndex(registry, name, self.tags)
        self.manifests = ManifestService(registry, name, self.referrers, self.tags)


@implementer(IRegistry)
class Registry:
    """
    An L{IRegistry} over an L{IStorageDriver}.

    @param compute: A runner (C{run(function, *args) -> Deferred}) for CPU-heavy
        work such as hashing, e.g. a thread pool's; inline by default.
    @param urlPolicy: A predicate on foreign-layer URLs (see L{urlPolicy}).
    @param clock: Has C{time()}; ages the catalog cache.
    """

    def __init__(
        self,
        driver,
        deleteEnabled=False,
        compute=inline,
        urlPolicy=urlPolicy(),
        manifestCacheBytes=64 * 1024 * 1024,
        listCacheBytes=32 * 1024 * 1024,
        clock=time,
    ):
        self.driver = driver
        self.deleteEnabled = deleteEnabled
        self.compute = compute
        self.urlPolicy = urlPolicy
        self.hashers = HasherCache()
        self.uploadLocks = KeyedLocks()
        self.tagLocks = KeyedLocks()
        self.manifestCache = BoundedCache(
            manifestCacheBytes, size=lambda manifest: len(manifest.payload) + 1024
        )
        self.tagLists = BoundedCache(
            listCacheBytes, size=lambda entry: 64 * (len(entry[1]) + 1)
        )
        self.catalogCache = CatalogCache(self.driver, clock)

    def repository(self, name):
        return Repository(self, name)

    def catalog(self, n=None, last=None):
        return self.catalogCache.page(n, last)
