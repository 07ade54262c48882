"""Links: small files naming a digest, how Distribution records membership."""

from registryd.driver.interfaces import PathNotFoundError
from registryd.reference import Digest
from registryd import errors
from registryd.concurrency import deferred


async def readLink(driver, path):
    """
    The digest stored at C{path}, or None when there is no link.  (A plain
    coroutine: it is on every request's path and only ever awaited.)
    """
    try:
        content = await driver.getContent(path)
    except PathNotFoundError:
        return None
    try:
        return Digest.parse(content.decode("ascii", "replace").strip())
    except errors.DigestInvalid:
        return None


@deferred
async def writeLink(driver, path, digest, durable=True):
    """
    Store C{digest} at C{path}, atomically.  A write that need not be
    durable yet (a later one in the same operation flushes) is skipped when
    the link already names C{digest}: a manifest pushed again under another
    tag, as CI pipelines do, then makes no new file.

    @return: Deferred.
    """
    if not durable and await readLink(driver, path) == digest:
        return
    await driver.putContent(path, digest.encode("ascii"), durable)
