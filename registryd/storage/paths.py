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


def tag(name, tag):
    return f"{tags(name)}/{tag}"


def tagCurrentLink(name, tag):
    return f"{tags(name)}/{tag}/current/link"


def tagIndexLink(name, tag, digest):
    digest = Digest.parse(digest)
    return f"{tags(name)}/{tag}/index/{digest.algorithm}/{digest.hex}/link"


def uploads(name):
    return f"{repository(name)}/_uploads"


def upload(name, uploadID):
    return f"{uploads(name)}/{uploadID}"


def uploadData(name, uploadID):
    return f"{upload(name, uploadID)}/data"


def uploadStartedAt(name, uploadID):
    return f"{upload(name, uploadID)}/startedat"


# registryd's own: Distribution keeps Go-encoded states in hashstates/, which
# these (OpenSSL's SHA256_CTX) are not.
def uploadHashStates(name, uploadID):
    return f"{upload(name, uploadID)}/registryd-hashstates/sha256"


def uploadHashState(name, uploadID, offset):
    """The saved hash state of the first C{offset} bytes of an upload."""
    return f"{uploadHashStates(name, uploadID)}/{offset}"


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
