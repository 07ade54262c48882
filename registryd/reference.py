"""
The grammar of repository names, tags and digests (OCI Distribution 1.1).

Everything that comes from a URL passes through here before it is used to
build a storage path, so these checks are the first wall against traversal.
"""

import hashlib
import re

from registryd import errors

NAME_MAX_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_NAME = re.compile(rf"^{NAME_PATTERN}$")
TAG_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
_TAG = re.compile(rf"^{TAG_PATTERN}$")
_ALGORITHM = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*$")

# Supported algorithms: the length of their hex encoding and their hash.
ALGORITHMS = {"sha256": (64, hashlib.sha256), "sha512": (128, hashlib.sha512)}
_HEX = {alg: re.compile(rf"^[a-f0-9]{{{n}}}$") for alg, (n, _) in ALGORITHMS.items()}


def validateName(name):
    """Return C{name} if it is a valid repository name, else raise NameInvalid."""
    if len(name) > NAME_MAX_LENGTH or not _NAME.match(name):
        raise errors.NameInvalid(
            detail={"name": name[:NAME_MAX_LENGTH], "pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH},
        )
    return name


def lexicalKey(name):
    """
    The spec's order for listings: case-insensitive alphanumeric ("lexical
    order (i.e. case-insensitive alphanumeric order)"), ties broken by case.
    """
    return name.lower(), name


def sortedLexically(names):
    """
    C{names} in L{lexicalKey} order, as a new list: sorted by name, then
    (stably) case-insensitively, which for 10,000 tags takes a third of the
    time of sorting by the key's tuples.
    """
    result = list(names)
    result.sort()
    result.sort(key=str.lower)
    return result


def isTag(reference):
    """Whether C{reference} is a syntactically valid tag."""
    return bool(_TAG.match(reference))


def validateTag(tag):
    """Return C{tag} if valid, else raise TagInvalid."""
    if not isTag(tag):
        raise errors.TagInvalid(
            detail={"tag": tag[:256]}, message=f"invalid tag (must match {TAG_PATTERN})"
        )
    return tag


class Digest(str):
    """
    A validated content digest, C{algorithm:hex}, of a supported algorithm.

    It is a C{str} so it can be used as a key and serialised as it is.
    """

    __slots__ = ()

    @property
    def algorithm(self):
        return self.partition(":")[0]

    @property
    def hex(self):
        return self.partition(":")[2]

    def hasher(self):
        """A new hash object of this digest's algorithm."""
        return ALGORITHMS[self.algorithm][1]()

    @classmethod
    def parse(cls, value):
        """Parse and validate C{value}; raise DigestInvalid if it is not a digest."""
        if isinstance(value, bytes):
            try:
                value = value.decode("ascii")
            except UnicodeDecodeError:
                raise errors.DigestInvalid(message="invalid digest") from None
        if isinstance(value, Digest):
            return value
        algorithm, sep, encoded = value.partition(":")
        if not sep or not _ALGORITHM.match(algorithm):
            raise errors.DigestInvalid(
                detail={"digest": value[:200]}, message="invalid digest format"
            )
        if algorithm not in ALGORITHMS:
            raise errors.DigestInvalid(
                detail={"digest": value[:200]},
                message=f"unsupported digest algorithm {algorithm[:32]!r}",
            )
        if not _HEX[algorithm].match(encoded):
            raise errors.DigestInvalid(
                detail={"digest": value[:200]},
                message=f"invalid {algorithm} digest: expected "
                f"{ALGORITHMS[algorithm][0]} lowercase hex characters",
            )
        return cls(value)

    @classmethod
    def of(cls, data, algorithm="sha256"):
        """The digest of C{data} bytes."""
        return cls(f"{algorithm}:{ALGORITHMS[algorithm][1](data).hexdigest()}")

    @classmethod
    def fromHasher(cls, hasher):
        """The digest a finished hash object describes."""
        return cls(f"{hasher.name}:{hasher.hexdigest()}")


def parseReference(reference):
    """
    Split a manifest reference into C{(tag, digest)}, one of them None.

    A reference with a colon is a digest (tags cannot contain one) and must be a
    valid one; anything else must be a valid tag.
    """
    if ":" in reference:
        return None, Digest.parse(reference)
    return validateTag(reference), None
