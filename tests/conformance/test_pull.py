"""
OCI Distribution Spec 1.1, Workflow Categories / Pull: pulling manifests,
pulling blobs (with C{Range}), and checking if content exists (C{HEAD}).

Every test pushes its own content into its own repository, pulls it back and
compares bytes and digests with what it pushed.
"""

import os

import pytest

from tests.conformance.client import (
    OCI_INDEX,
    OCI_MANIFEST,
    digestOf,
    imageIndex,
)

pytestmark = pytest.mark.conformance

MISSING = "sha256:" + "0" * 64


# Pulling manifests.
def test_getManifestByTagReturnsItWith200(registry, name):
    """
    Pulling manifests: "A GET request to an existing manifest URL MUST provide
    the expected manifest, with a response code that MUST be 200 OK" (by tag).
    """
    payload, digest = registry.pushImage(name, "v1", [os.urandom(64)])
    response = registry.getManifest(name, "v1")
    assert response.status == 200, response
    assert response.body == payload
    assert digestOf(response.body) == digest


def test_getManifestByDigestReturnsItWith200(registry, name):
    """
    Pulling manifests: "<reference> MUST be either (a) the digest of the
    manifest or (b) a tag" and "A GET request to an existing manifest URL MUST
    provide the expected manifest, with a response code that MUST be 200 OK"
    (by digest).
    """
    payload, digest = registry.pushImage(name, None, [os.urandom(64)])
    response = registry.getManifest(name, digest)
    assert response.status == 200, response
    assert response.body == payload
    assert digestOf(response.body) == digest


def test_getImageIndexReturnsItWith200(registry, name):
    """
    Pulling manifests: an image index is a manifest too; "A GET request to an
    existing manifest URL MUST provide the expected manifest ... 200 OK".
    """
    first, _ = registry.pushImage(name, None, [os.urandom(32)])
    second, _ = registry.pushImage(name, None, [os.urandom(32)])
    index = imageIndex([first, second])
    assert registry.pushManifest(name, "multi", index, OCI_INDEX).status == 201
    response = registry.getManifest(name, "multi")
    assert response.status == 200, response
    assert response.body == index
    assert response.header("Content-Type") == OCI_INDEX


def test_getManifestContentTypeIsThePushedType(registry, name):
    """
    Pulling manifests (SHOULD): "The registry SHOULD NOT include parameters on
    the Content-Type header" and "The Content-Type header SHOULD match what the
    client pushed as the manifest's Content-Type".
    """
    registry.pushImage(name, "v1")
    response = registry.getManifest(name, "v1")
    assert response.status == 200, response
    assert response.header("Content-Type") == OCI_MANIFEST
    assert response.json()["mediaType"] == response.header("Content-Type")


def test_getManifestDockerContentDigestMatchesManifest(registry, name):
    """
    Pulling manifests (SHOULD): "A successful response SHOULD contain the
    digest of the uploaded blob in the header Docker-Content-Digest"; a client
    using it "MUST verify the value matches the returned manifest".
    """
    payload, digest = registry.pushImage(name, "v1", [os.urandom(16)])
    response = registry.getManifest(name, "v1")
    assert response.header("Docker-Content-Digest") == digest == digestOf(response.body)


def test_getManifestWithLongestTag(registry, name):
    """
    Pulling manifests: "<reference> as a tag MUST be at most 128 characters in
    length and MUST match ... [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}": a 128
    character tag using every allowed character class is served.
    """
    tag = ("_Ab9.-" * 22)[:128]
    payload, digest = registry.pushImage(name, tag, [os.urandom(16)])
    response = registry.getManifest(name, tag)
    assert response.status == 200, response
    assert response.body == payload


def test_nameMatchingTheGrammarIsServed(registry, name):
    """
    Pulling manifests: "<name> MUST match the following regular expression
    [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*":
    a name using every separator the grammar allows is pushed and pulled.
    """
    deep = f"{name}/a.b/c_d/e__f/g---h/0"
    payload, digest = registry.pushImage(deep, "v1", [os.urandom(16)])
    response = registry.getManifest(deep, digest)
    assert response.status == 200, response
    assert response.body == payload


def test_getUnknownTagReturns404(registry, name):
    """
    Pulling manifests: "If the manifest is not found in the repository, the
    response code MUST be 404 Not Found" (a tag never pushed).
    """
    registry.pushImage(name, "v1")
    assert registry.getManifest(name, "v2").status == 404


def test_getUnknownManifestDigestReturns404(registry, name):
    """
    Pulling manifests: "If the manifest is not found in the repository, the
    response code MUST be 404 Not Found" (a digest never pushed).
    """
    registry.pushImage(name, "v1")
    assert registry.getManifest(name, MISSING).status == 404


def test_getManifestOfAnotherRepositoryReturns404(registry, name, otherName):
    """
    Pulling manifests: "If the manifest is not found in the repository, the
    response code MUST be 404 Not Found": a manifest pushed to one repository
    is not found in another.
    """
    payload, digest = registry.pushImage(name, "v1")
    registry.pushImage(otherName, "v1", [os.urandom(8)])
    assert registry.getManifest(otherName, digest).status == 404
    assert registry.getManifest(name, digest).body == payload


def test_pullNonexistentRepositoryReturns404(registry, name):
    """
    Pushing Manifests: "An attempt to pull a nonexistent repository MUST
    return response code 404 Not Found".
    """
    assert registry.getManifest(name, "latest").status == 404
    assert registry.getManifest(name, MISSING).status == 404


# Pulling blobs.
def test_getBlobReturnsItWith200(registry, name):
    """
    Pulling blobs: "A GET request to an existing blob URL MUST provide the
    expected blob, with a response code that MUST be 200 OK".
    """
    data = os.urandom(70_000)
    digest = registry.pushBlob(name, data)
    response = registry.get(f"/v2/{name}/blobs/{digest}")
    assert response.status == 200, response
    assert response.body == data
    assert digestOf(response.body) == digest


def test_getBlobDockerContentDigestMatchesBody(registry, name):
    """
    Pulling blobs (SHOULD): "A successful response SHOULD contain the digest of
    the uploaded blob in the header Docker-Content-Digest. If present, the
    value of this header MUST be a digest matching that of the response body."
    """
    digest = registry.pushBlob(name, os.urandom(1000))
    response = registry.get(f"/v2/{name}/blobs/{digest}")
    assert response.header("Docker-Content-Digest") == digestOf(response.body) == digest


def test_getEmptyBlobReturnsIt(registry, name):
    """
    Pulling blobs: "A GET request to an existing blob URL MUST provide the
    expected blob ... 200 OK", for a blob of zero bytes too.
    """
    digest = registry.pushBlob(name, b"")
    response = registry.get(f"/v2/{name}/blobs/{digest}")
    assert (response.status, response.body) == (200, b"")
    assert digestOf(response.body) == digest


def test_getUnknownBlobReturns404(registry, name):
    """
    Pulling blobs: "If the blob is not found in the repository, the response
    code MUST be 404 Not Found".
    """
    registry.pushBlob(name, os.urandom(10))
    assert registry.get(f"/v2/{name}/blobs/{MISSING}").status == 404


def test_getBlobOfAnotherRepositoryReturns404(registry, name, otherName):
    """
    Pulling blobs: "If the blob is not found in the repository, the response
    code MUST be 404 Not Found": a blob pushed to one repository only is not
    found in another.
    """
    data = os.urandom(100)
    digest = registry.pushBlob(name, data)
    registry.pushBlob(otherName, os.urandom(100))
    assert registry.get(f"/v2/{otherName}/blobs/{digest}").status == 404
    assert registry.get(f"/v2/{name}/blobs/{digest}").body == data


def test_getBlobRangeReturnsThoseBytes(registry, name):
    """
    Pulling blobs (SHOULD): "A registry SHOULD support the Range request
    header in accordance with RFC 9110": C{bytes=first-last} answers 206 with
    exactly those bytes and their C{Content-Range}.
    """
    data = os.urandom(5000)
    digest = registry.pushBlob(name, data)
    response = registry.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=100-1099"})
    assert response.status == 206, response
    assert response.body == data[100:1100]
    assert response.header("Content-Range") == "bytes 100-1099/5000"


def test_getBlobOpenEndedRange(registry, name):
    """
    Pulling blobs (SHOULD): RFC 9110 C{bytes=first-} ranges: the rest of the
    blob from C{first}, as a client resuming a download asks.
    """
    data = os.urandom(3000)
    digest = registry.pushBlob(name, data)
    response = registry.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=2500-"})
    assert response.status == 206, response
    assert response.body == data[2500:]
    assert response.header("Content-Range") == "bytes 2500-2999/3000"


def test_getBlobSuffixRange(registry, name):
    """Pulling blobs (SHOULD): RFC 9110 suffix ranges, C{bytes=-N}: the last N bytes."""
    data = os.urandom(3000)
    digest = registry.pushBlob(name, data)
    response = registry.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=-10"})
    assert response.status == 206, response
    assert response.body == data[-10:]
    assert response.header("Content-Range") == "bytes 2990-2999/3000"


def test_getBlobUnsatisfiableRangeReturns416(registry, name):
    """
    Pulling blobs (SHOULD): RFC 9110: a range starting past the end is not
    satisfiable: 416 with C{Content-Range: bytes */<size>}.
    """
    data = os.urandom(100)
    digest = registry.pushBlob(name, data)
    response = registry.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=100-200"})
    assert response.status == 416, response
    assert response.header("Content-Range") == "bytes */100"


def test_resumedPullReassemblesTheBlob(registry, name):
    """
    Use Cases / Resumable Pull: "The client keeps the partial data and uses
    http Range requests to avoid downloading repeated data": pieces fetched
    by range join into the blob, whose digest is the one pushed.
    """
    data = os.urandom(100_000)
    digest = registry.pushBlob(name, data)
    pieces = []
    for first in range(0, len(data), 30_000):
        last = min(first + 30_000, len(data)) - 1
        response = registry.get(
            f"/v2/{name}/blobs/{digest}", headers={"Range": f"bytes={first}-{last}"}
        )
        assert response.status == 206, response
        pieces.append(response.body)
    assert digestOf(b"".join(pieces)) == digest


# Checking if content exists in the registry.
def test_headExistingManifestReturns200(registry, name):
    """
    Checking if content exists: "A HEAD request to an existing blob or
    manifest URL MUST return 200 OK" (manifest, by tag and by digest).
    """
    payload, digest = registry.pushImage(name, "v1")
    for reference in ("v1", digest):
        response = registry.getManifest(name, reference, method="HEAD")
        assert response.status == 200, response
        assert response.body == b""


def test_headManifestDockerContentDigest(registry, name):
    """
    Checking if content exists (SHOULD): "A successful response SHOULD contain
    the digest of the uploaded blob in the header Docker-Content-Digest"
    (manifest).
    """
    payload, digest = registry.pushImage(name, "v1")
    response = registry.getManifest(name, "v1", method="HEAD")
    assert response.header("Docker-Content-Digest") == digest == digestOf(payload)


def test_headManifestContentLength(registry, name):
    """
    Checking if content exists (SHOULD): "A successful response SHOULD contain
    the size in bytes of the uploaded blob in the header Content-Length"
    (manifest).
    """
    payload, digest = registry.pushImage(name, "v1")
    response = registry.getManifest(name, digest, method="HEAD")
    assert response.header("Content-Length") == str(len(payload))


def test_headExistingBlobReturns200(registry, name):
    """
    Checking if content exists: "A HEAD request to an existing blob or
    manifest URL MUST return 200 OK" (blob).
    """
    digest = registry.pushBlob(name, os.urandom(500))
    response = registry.head(f"/v2/{name}/blobs/{digest}")
    assert response.status == 200, response
    assert response.body == b""


def test_headBlobDockerContentDigest(registry, name):
    """
    Checking if content exists (SHOULD): "A successful response SHOULD contain
    the digest of the uploaded blob in the header Docker-Content-Digest" (blob).
    """
    data = os.urandom(500)
    digest = registry.pushBlob(name, data)
    response = registry.head(f"/v2/{name}/blobs/{digest}")
    assert response.header("Docker-Content-Digest") == digest == digestOf(data)


def test_headBlobContentLength(registry, name):
    """
    Checking if content exists (SHOULD): "A successful response SHOULD contain
    the size in bytes of the uploaded blob in the header Content-Length" (blob).
    """
    data = os.urandom(12_345)
    digest = registry.pushBlob(name, data)
    response = registry.head(f"/v2/{name}/blobs/{digest}")
    assert response.header("Content-Length") == "12345"


def test_headUnknownManifestReturns404(registry, name):
    """
    Checking if content exists: "If the blob or manifest is not found in the
    repository, the response code MUST be 404 Not Found" (manifest).
    """
    registry.pushImage(name, "v1")
    assert registry.getManifest(name, "v2", method="HEAD").status == 404
    assert registry.getManifest(name, MISSING, method="HEAD").status == 404


def test_headUnknownBlobReturns404(registry, name):
    """
    Checking if content exists: "If the blob or manifest is not found in the
    repository, the response code MUST be 404 Not Found" (blob).
    """
    registry.pushBlob(name, os.urandom(10))
    assert registry.head(f"/v2/{name}/blobs/{MISSING}").status == 404
