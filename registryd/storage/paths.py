"""
The one module that knows the storage layout: CNCF Distribution's.

Keeping the exact layout means registryd serves a root that Distribution
wrote and the other way round.  Names and tags reaching here are already
validated by L{registryd.reference}; digests are parsed here, so callers may
pass plain strings.
"""

from registryd.reference import Digest

ROOT = "/docker/registry/v2"
REPOSITORIES = f"{ROOT}/repositories"


def blobData(digest):
    """Where the bytes of a blob (layer, config or manifest) live."""
    digest = Digest.parse(digest)
    return f"{ROOT}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"


def repository(name):
    return f"{REPOSITORIES}/{name}"


def layerLink(name, digest):
    """The link that makes a blob visible in repository C{name}."""
    digest = Digest.parse(digest)
    return f"{repository(name)}/_layers/{digest.algorithm}/{digest.hex}/link"


def manifestsDirectory(name):
    return f"{repository(name)}/_manifests"


def manifestRevisionLink(name, digest):
    digest = Digest.parse(digest)
    return f"{repository(name)}/_manifests/revisions/{digest.algorithm}/{digest.hex}/link"


def tags(name):
    return f"{repository(name)}/_manifests/tags"


# registryd's own: Distribution reads only revisions/ and tags/ here.
def tagListCache(name):
    """The sorted tag list as one process listed it, for the others (see L{tags})."""
    return f"{manifestsDirectory(name)}/registryd-tags.json"


def tag(name, tag):
    return f"{tags(name)}/{tag}"


def tagCurrentLink(name, tag):
    return f"{tags(name)}/{tag}/current/link"


def uploads(name):
    return f"{repository(name)}/_uploads"


# registryd's own: Distribution keeps a directory per session (startedat,
# data, Go-encoded hash states).  One file per session, the start time in its
# ID, means a monolithic push neither creates nor frees a session inode beyond
# the data, which becomes the blob: on ext4 every freed inode is skipped, for
# a while, by each new allocation.
def uploadData(name, uploadID):
    """The bytes of an upload session; the session exists while this file does."""
    return f"{uploads(name)}/{uploadID}"


def uploadHashState(name, uploadID, offset):
    """The saved hash state (OpenSSL's SHA256_CTX) of the first C{offset} bytes of an upload."""
    return f"{uploadData(name, uploadID)}.sha256-{offset}"


# registryd's own addition: Distribution skips directories starting with "_"
# that it does not know, so this index does not disturb it.
def referrers(name, subject):
    """The directory of links to manifests whose subject is C{subject}."""
    subject = Digest.parse(subject)
    return f"{repository(name)}/_referrers/{subject.algorithm}/{subject.hex}"


def referrerLink(name, subject, digest):
    subject = Digest.parse(subject)
    digest = Digest.parse(digest)
    return f"{referrers(name, subject)}/{digest.algorithm}/{digest.hex}/link"
