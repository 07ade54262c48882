"""
htpasswd files of bcrypt entries, re-read when they change.

Only bcrypt (C{$2y$}, C{$2b$}, C{$2a$}) entries are used; others (MD5, SHA1,
crypt) are ignored with a warning, as Distribution does, because they are
too cheap to brute-force.  Checking runs bcrypt in constant time for known
and unknown users alike, so timing does not tell which names exist.
"""

import os
import tempfile

import bcrypt
from twisted.logger import Logger

log = Logger()

_BCRYPT_PREFIXES = (b"$2y$", b"$2b$", b"$2a$")
# Checked against for unknown users, so they cost what known users cost.
_DECOY = bcrypt.hashpw(b"decoy", bcrypt.gensalt(rounds=10))


def parse(content, source="htpasswd"):
    """The C{{user: bcrypt hash}} entries of an htpasswd file's bytes."""
    entries = {}
    for number, line in enumerate(content.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        user, sep, hashed = line.partition(b":")
        if not sep or not user:
            log.warn("{source}:{number}: not a user:hash line, ignored", source=source, number=number)
            continue
        if not hashed.startswith(_BCRYPT_PREFIXES):
            log.warn(
                "{source}:{number}: entry for {user} is not bcrypt, ignored",
                source=source,
                number=number,
                user=user.decode("utf-8", "replace"),
            )
            continue
        entries[user.decode("utf-8", "replace")] = hashed
    return entries


class Htpasswd:
    """The users of an htpasswd file, reloaded whenever its mtime or size changes."""

    def __init__(self, path):
        self.path = path
        self._stamp = None
        self._entries = {}

    def _current(self):
        try:
            st = os.stat(self.path)
        except OSError as e:
            log.error("cannot read {path}: {error}", path=self.path, error=e.strerror)
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            with open(self.path, "rb") as f:
                self._entries = parse(f.read(), self.path)
            self._stamp = stamp
        return self._entries

    def users(self):
        return set(self._current())

    def check(self, user, password):
        """Whether C{password} (str or bytes) is C{user}'s."""
        if isinstance(password, str):
            password = password.encode("utf-8")
        hashed = self._current().get(user)
        try:
            valid = bcrypt.checkpw(password, hashed or _DECOY)
        except ValueError:
            return False
        return valid and hashed is not None


def addUser(path, user, password, rounds=12):
    """
    Add or replace C{user}'s bcrypt entry in the file at C{path} (created if
    missing), atomically.
    """
    if not user or ":" in user or "\n" in user:
        raise ValueError(f"invalid user name {user!r}")
    hashed = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds))
    lines = []
    if os.path.exists(path):
        with open(path, "rb") as f:
            lines = [l for l in f.read().splitlines() if l.partition(b":")[0] != user.encode()]
    lines.append(user.encode() + b":" + hashed)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".htpasswd-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o640)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
