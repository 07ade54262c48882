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
# One match for the whole path (it is checked on every storage call):
# segments of the allowed characters, none of them "." or "..".
_PATH = re.compile(rf"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9._-]{{1,{SEGMENT_MAX_LENGTH}}})+\Z")


def checkPath(path):
    """Return C{path} if it is a valid driver path, else raise InvalidPathError."""
    if path == "/":
        return path
    if not isinstance(path, str) or len(path) > PATH_MAX_LENGTH or not _PATH.match(path):
        raise InvalidPathError(repr(path)[:200])
    return path


def segments(path):
    """The segments of a checked path; C{[]} for the root."""
    return [s for s in path.split("/") if s]

