"""The repository catalog: every directory holding a C{_manifests} directory."""

import bisect

from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.storage import paths


@deferred
async def listRepositories(driver):
    """Every repository name, in lexical order: a walk of the whole tree."""
    prefix = paths.REPOSITORIES + "/"
    names = []

    def visit(info):
        base = info.path.rsplit("/", 1)[1]
        if base == "_manifests":
            names.append(info.path[len(prefix) : -len("/_manifests")])
        # Nothing below a "_" directory is a repository.
        return info.isDir and not base.startswith("_")

    try:
        await driver.walk(paths.REPOSITORIES, visit)
    except PathNotFoundError:
        return []
    names.sort()
    return names


class CatalogCache:
    """
    The catalog, walked at most once per C{TTL} seconds so that paging
    through it does not walk the tree for every page.  This process forgets
    it when it creates a repository; another process's new repository shows
    within C{TTL}.
    """

    TTL = 3.0

    def __init__(self, driver, clock):
        self._driver = driver
        self._clock = clock
        self._names = None
        self._walkedAt = None

    def forget(self):
        self._names = None

    @deferred
    async def page(self, n=None, last=None):
        """Names after C{last}, at most C{n}."""
        now = self._clock.time()
        if self._names is None or now - self._walkedAt > self.TTL:
            self._walkedAt = now
            self._names = await listRepositories(self._driver)
        names = self._names
        start = 0 if last is None else bisect.bisect_right(names, last)
        return names[start:] if n is None else names[start : start + n]
