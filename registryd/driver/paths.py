"""
The driver path grammar, checked before any driver touches a path.

Only absolute, slash-separated segments of letters, digits, C{.}, C{_} and C{-}
pass; C{.} and C{..} segments, empty segments and NUL never do, so a valid
path cannot name anything outside a driver's root.
"""

import re

from registryd.driver.interfaces import InvalidPathError

SEGMENT_MAX_LENGTH = 255
PATH_MAX_LENGTH = 4096
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


def checkPath(path):
    """Return C{path} if it is a valid driver path, else raise InvalidPathError."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > PATH_MAX_LENGTH:
        raise InvalidPathError(repr(path)[:200])
    if path == "/":
        return path
    for segment in path[1:].split("/"):
        if (
            len(segment) > SEGMENT_MAX_LENGTH
            or segment in (".", "..")
            or not _SEGMENT.match(segment)
        ):
            raise InvalidPathError(repr(path)[:200])
    return path


def segments(path):
    """The segments of a checked path; C{[]} for the root."""
    return [s for s in path.split("/") if s]


def parent(path):
    """The directory holding C{path}."""
    head = path.rsplit("/", 1)[0]
    return head or "/"
