"""The repository catalog: every directory holding a C{_manifests} directory."""

from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.storage import paths


@deferred
async def listRepositories(driver, n=None, last=None):
    """Repository names in lexical order, after C{last}, at most C{n}."""
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
    if last is not None:
        names = [name for name in names if name > last]
    return names if n is None else names[:n]
