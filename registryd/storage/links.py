"""Links: small files naming a digest, how Distribution records membership."""

from registryd.driver.interfaces import PathNotFoundError
from registryd.reference import Digest
from registryd import errors


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


def writeLink(driver, path, digest, durable=True):
    """Store C{digest} at C{path}, atomically.  @return: Deferred."""
    return driver.putContent(path, digest.encode("ascii"), durable)
