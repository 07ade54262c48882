"""
Upload purging: sessions older than an age are deleted, as Distribution's
C{storage.maintenance.uploadpurging} does, so abandoned uploads do not pile up.
"""

import re
import time
from datetime import datetime

from twisted.logger import Logger

from registryd.concurrency import deferred
from registryd.driver.interfaces import PathNotFoundError
from registryd.storage import paths
from registryd.storage.uploads import startedAtOf

log = Logger()


@deferred
async def purgeUploads(driver, age, now=None, dryrun=False):
    """
    Delete upload sessions started more than C{age} seconds before C{now}:
    a session's file and its saved hash states, dated by the session ID.  A
    session directory as Distribution (and earlier registryd) left it
    counts from its C{startedat}, or else from its modification time.

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
        for entry in await driver.list(uploads):
            startedAt = await _startedAt(driver, entry)
            if startedAt is not None and now - startedAt > age:
                purged.append(entry)
                if not dryrun:
                    try:
                        await driver.delete(entry)
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


async def _startedAt(driver, entry):
    """When the session C{entry} (a file of one, or a legacy directory) started; None if gone."""
    startedAt = startedAtOf(entry.rsplit("/", 1)[1].split(".", 1)[0])
    if startedAt is not None:
        return startedAt
    try:
        startedAt = _parseStartedAt(await driver.getContent(entry + "/startedat"))
    except PathNotFoundError:
        pass
    if startedAt is None:
        try:
            startedAt = (await driver.stat(entry)).modTime
        except PathNotFoundError:
            pass  # finished meanwhile
    return startedAt


def _parseStartedAt(content):
    """Seconds since the epoch from a C{startedat} file (RFC 3339), or None if unreadable."""
    text = content.decode("ascii", "replace").strip()
    # Go writes nanoseconds; Python's parser takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
