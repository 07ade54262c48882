"""
Upload purging: sessions older than an age are deleted, as Distribution's
C{storage.maintenance.uploadpurging} does, so abandoned uploads do not pile up.
"""

import time

from twisted.logger import Logger

from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.storage import paths
from registryd.storage.uploads import parseStartedAt

log = Logger()


@deferred
async def purgeUploads(driver, age, now=None, dryrun=False):
    """
    Delete upload sessions started more than C{age} seconds before C{now}.
    A session without a readable C{startedat} counts from its directory's
    modification time.

    @return: Deferred firing with the list of session paths deleted (or, with
        C{dryrun}, that would be).
    """
    now = time.time() if now is None else now
    sessions = []

    def visit(info):
        base = info.path.rsplit("/", 1)[1]
        if base == "_uploads":
            sessions.append(info.path)
            return False
        return info.isDir and not base.startswith("_")

    try:
        await driver.walk(paths.REPOSITORIES, visit)
    except PathNotFoundError:
        return []
    purged = []
    for uploads in sessions:
        for session in await driver.list(uploads):
            try:
                startedAt = parseStartedAt(await driver.getContent(session + "/startedat"))
            except PathNotFoundError:
                startedAt = None
            if startedAt is None:
                try:
                    startedAt = (await driver.stat(session)).modTime
                except PathNotFoundError:
                    continue  # finished meanwhile
            if now - startedAt > age:
                purged.append(session)
                if not dryrun:
                    try:
                        await driver.delete(session)
                    except PathNotFoundError:
                        pass
    if purged:
        log.info(
            "{verb} {count} upload(s) older than {age}s",
            verb="would purge" if dryrun else "purged",
            count=len(purged),
            age=age,
        )
    return purged
