"""
OCI Distribution Spec 1.1, Workflow Categories / Push: pushing blobs (POST
then PUT, single POST, chunked), upload status, mounting, and pushing
manifests (with C{subject}).

Every push is pulled back: bytes and digests are compared with what was sent.
"""

import json
import os
import re
from urllib.parse import urlsplit

import pytest

from tests.conformance.client import (
    EMPTY_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    digestOf,
    imageIndex,
    imageManifest,
    subjectOf,
    withQuery,
)

pytestmark = pytest.mark.conformance

UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
OCTETS = {"Content-Type": "application/octet-stream"}


def startUpload(registry, name):
    response = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    assert response.status == 202, response
    return response


def patchChunk(registry, location, chunk, first):
    return registry.request(
        "PATCH",
        location,
        body=chunk,
        headers={**OCTETS, "Content-Range": f"{first}-{first + len(chunk) - 1}"},
    )


def assertPulls(registry, url, data):
    """C{url} (a blob URL the registry gave out) serves exactly C{data}."""
    response = registry.get(url)
    assert response.status == 200, response
    assert response.body == data


# Pushing a blob monolithically: POST then PUT.
def test_postReturns202WithLocation(registry, name):
    """
    Pushing blobs / POST then PUT: "Upon success, the response MUST have a
    code of 202 Accepted, and MUST include the following header: Location".
    """
    response = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    assert response.status == 202, response
    assert response.header("Location")


def test_sessionLocationContainsUniqueUUID(registry, name):
    """
    Pushing blobs / POST then PUT: "The <location> MUST contain a UUID
    representing a unique session ID for the upload to follow."
    """
    first = UUID.findall(startUpload(registry, name).header("Location"))
    second = UUID.findall(startUpload(registry, name).header("Location"))
    assert first and second
    assert set(first).isdisjoint(second)


def test_putToSessionLocationReturns201WithBlobLocation(registry, name):
    """
    Pushing blobs / POST then PUT: "Upon successful completion of the request,
    the response MUST have code 201 Created and MUST have the following header:
    Location: <blob-location>", "With <blob-location> being a pullable blob URL".
    """
    data = os.urandom(20_000)
    session = startUpload(registry, name)
    response = registry.request(
        "PUT", withQuery(session.location, digest=digestOf(data)), body=data, headers=OCTETS
    )
    assert response.status == 201, response
    assertPulls(registry, response.location, data)
    assertPulls(registry, f"/v2/{name}/blobs/{digestOf(data)}", data)


def test_relativeSessionLocationIsFollowed(relativeRegistry, name):
    """
    Pushing blobs / POST then PUT: "the location MAY be absolute ... or it MAY
    be relative (containing just the URL path)": a registry handing out
    relative Locations takes the upload at the resolved URL, and its relative
    blob Location pulls the blob.
    """
    data = os.urandom(5000)
    session = startUpload(relativeRegistry, name)
    assert session.header("Location").startswith("/"), session
    response = relativeRegistry.request(
        "PUT", withQuery(session.location, digest=digestOf(data)), body=data, headers=OCTETS
    )
    assert response.status == 201, response
    assert response.header("Location").startswith("/"), response
    assertPulls(relativeRegistry, response.location, data)


def test_absoluteLocationMayBeMadeRelative(registry, name):
    """
    Pushing blobs / POST then PUT: the <location> "SHOULD NOT be assembled
    manually by clients except where absolute/relative conversion is
    necessary": the path (and query) of an absolute Location, used relative
    to the registry, completes the upload.
    """
    data = os.urandom(5000)
    session = startUpload(registry, name)
    parts = urlsplit(session.location)
    relative = parts.path + (f"?{parts.query}" if parts.query else "")
    response = registry.request(
        "PUT", withQuery(relative, digest=digestOf(data)), body=data, headers=OCTETS
    )
    assert response.status == 201, response
    assertPulls(registry, response.location, data)


def test_putWithWrongDigestIsRefused(registry, name):
    """
    Pushing blobs / POST then PUT: "<digest> is the digest of the blob being
    uploaded"; a PUT whose digest is not its content's fails (end-6: 400) and
    stores nothing under that digest.
    """
    data = os.urandom(100)
    wrong = digestOf(b"something else entirely")
    session = startUpload(registry, name)
    response = registry.request("PUT", withQuery(session.location, digest=wrong), body=data, headers=OCTETS)
    assert response.status == 400, response
    assert registry.head(f"/v2/{name}/blobs/{wrong}").status == 404
    assert registry.head(f"/v2/{name}/blobs/{digestOf(data)}").status == 404


# Pushing a blob monolithically: single POST.
def test_singlePostReturns201WithBlobLocation(registry, name):
    """
    Pushing blobs / Single POST (MAY): "Successful completion of the request
    MUST return a 201 Created and MUST include the following header: Location:
    <blob-location>", "<blob-location> is a pullable blob URL".
    """
    data = os.urandom(30_000)
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(data)}", body=data, headers=OCTETS
    )
    assert response.status == 201, response
    assertPulls(registry, response.location, data)


def test_singlePostWithWrongDigestIsRefused(registry, name):
    """
    Pushing blobs / Single POST: "the <digest> MUST match the blob's digest";
    one that does not is refused (end-4b: 400) and nothing is stored.
    """
    data = os.urandom(100)
    wrong = digestOf(b"not this")
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?digest={wrong}", body=data, headers=OCTETS
    )
    assert response.status == 400, response
    assert registry.head(f"/v2/{name}/blobs/{wrong}").status == 404
    assert registry.head(f"/v2/{name}/blobs/{digestOf(data)}").status == 404


# Pushing a blob in chunks.
def test_chunkedPostWithContentLengthZeroReturns202(registry, name):
    """
    Pushing a blob in chunks: the POST "MUST include the following header:
    Content-Length: 0"; it obtains a session as for POST then PUT: 202 with a
    Location.
    """
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/", body=None, headers={"Content-Length": "0"}
    )
    assert response.status == 202, response
    assert UUID.search(response.header("Location"))


def test_patchChunkReturns202WithLocationAndRange(registry, name):
    """
    Pushing a blob in chunks: "Each successful chunk upload MUST have a 202
    Accepted response code, and MUST have the following headers: Location:
    <location>, Range: 0-<end-of-range>", "<end-of-range> ... is the position
    of the last uploaded byte".
    """
    session = startUpload(registry, name)
    response = patchChunk(registry, session.location, os.urandom(1000), 0)
    assert response.status == 202, response
    assert response.header("Location")
    assert response.header("Range") == "0-999"
    response = patchChunk(registry, response.location, os.urandom(24), 1000)
    assert response.status == 202, response
    assert response.header("Range") == "0-1023"


def test_chunksInOrderThenPutMakeTheBlob(registry, name):
    """
    Pushing a blob in chunks: chunks PATCHed in order, each to the Location of
    the previous answer ("Each consecutive chunk upload SHOULD use the
    <location> provided in the response to the previous chunk upload"), then
    "the session MUST be closed with a PUT request": "201 Created" with a
    pullable "Location: <blob-location>".
    """
    data = os.urandom(250_000)
    location = startUpload(registry, name).location
    for first in range(0, len(data), 64 * 1024):
        response = patchChunk(registry, location, data[first : first + 64 * 1024], first)
        assert response.status == 202, response
        location = response.location
    response = registry.request("PUT", withQuery(location, digest=digestOf(data)), body=b"")
    assert response.status == 201, response
    assertPulls(registry, response.location, data)


def test_finalChunkInClosingPut(registry, name):
    """
    Pushing a blob in chunks: "The final chunk MAY be uploaded using a PATCH
    request or it MAY be uploaded in the closing PUT request", with its
    Content-Length and Content-Range.
    """
    data = os.urandom(10_000)
    response = patchChunk(registry, startUpload(registry, name).location, data[:6000], 0)
    assert response.status == 202, response
    response = registry.request(
        "PUT",
        withQuery(response.location, digest=digestOf(data)),
        body=data[6000:],
        headers={**OCTETS, "Content-Range": "6000-9999"},
    )
    assert response.status == 201, response
    assertPulls(registry, response.location, data)


def test_closingPutTakesTheWholeBlobDigest(registry, name):
    """
    Pushing a blob in chunks: "The closing PUT request MUST include the
    <digest> of the whole blob (not the final chunk)": the final chunk's own
    digest does not close the session; the whole blob's still does.
    """
    data = os.urandom(4000)
    response = patchChunk(registry, startUpload(registry, name).location, data[:3000], 0)
    location = response.location
    refused = registry.request(
        "PUT",
        withQuery(location, digest=digestOf(data[3000:])),
        body=data[3000:],
        headers={**OCTETS, "Content-Range": "3000-3999"},
    )
    assert refused.status == 400, refused
    assert registry.head(f"/v2/{name}/blobs/{digestOf(data[3000:])}").status == 404
    # Start over: the refused close may have ended the session.
    response = patchChunk(registry, startUpload(registry, name).location, data[:3000], 0)
    response = registry.request(
        "PUT",
        withQuery(response.location, digest=digestOf(data)),
        body=data[3000:],
        headers={**OCTETS, "Content-Range": "3000-3999"},
    )
    assert response.status == 201, response
    assertPulls(registry, response.location, data)


def test_outOfOrderChunkReturns416(registry, name):
    """
    Pushing a blob in chunks: "Chunks MUST be uploaded in order, with the
    first byte of a chunk being the last chunk's <end-of-range> plus one. If a
    chunk is uploaded out of order, the registry MUST respond with a 416
    Requested Range Not Satisfiable code."
    """
    data = os.urandom(3000)
    response = patchChunk(registry, startUpload(registry, name).location, data[:1000], 0)
    assert response.status == 202, response
    skipped = patchChunk(registry, response.location, data[2000:], 2000)
    assert skipped.status == 416, skipped
    repeated = patchChunk(registry, response.location, data[500:1500], 500)
    assert repeated.status == 416, repeated


def test_firstChunkNotAtZeroReturns416(registry, name):
    """
    Pushing a blob in chunks: "The first chunk's range MUST begin with 0"; a
    first chunk starting elsewhere is out of order: "the registry MUST respond
    with a 416 Requested Range Not Satisfiable code".
    """
    response = patchChunk(registry, startUpload(registry, name).location, os.urandom(10), 5)
    assert response.status == 416, response


def test_uploadStatusReturns204WithLocationAndRange(registry, name):
    """
    Pushing a blob in chunks / upload status (end-13): "The response to an
    active upload <location> MUST be a 204 No Content response code, and MUST
    have the following headers: Location: <location>, Range:
    0-<end-of-range>".
    """
    response = patchChunk(registry, startUpload(registry, name).location, os.urandom(777), 0)
    status = registry.get(response.location)
    assert status.status == 204, status
    assert status.body == b""
    assert status.header("Location")
    assert status.header("Range") == "0-776"


def test_pushResumesFromStatusAfter416(registry, name):
    """
    Pushing a blob in chunks: "To get the current status after a 416 error,
    issue a GET request to a URL <location>"; "The following chunk upload
    SHOULD use the <location> provided in the response", from the offset its
    Range reports (Use Cases / Resumable Push).  The blob is whole.
    """
    data = os.urandom(9000)
    response = patchChunk(registry, startUpload(registry, name).location, data[:4000], 0)
    stale = response.location
    assert patchChunk(registry, stale, data[6000:], 6000).status == 416
    status = registry.get(stale)
    assert status.status == 204, status
    offset = int(status.header("Range").split("-")[1]) + 1
    assert offset == 4000
    response = patchChunk(registry, status.location, data[offset:], offset)
    assert response.status == 202, response
    response = registry.request("PUT", withQuery(response.location, digest=digestOf(data)), body=b"")
    assert response.status == 201, response
    assertPulls(registry, response.location, data)


def test_patchUnknownSessionReturns404(registry, name):
    """Endpoints: end-5 (PATCH /v2/<name>/blobs/uploads/<reference>) fails with 404 for an unknown session."""
    startUpload(registry, name)
    response = patchChunk(
        registry, f"/v2/{name}/blobs/uploads/00000000-0000-4000-8000-000000000000", b"x", 0
    )
    assert response.status == 404, response


def test_putUnknownSessionReturns404(registry, name):
    """Endpoints: end-6 (PUT /v2/<name>/blobs/uploads/<reference>?digest=) fails with 404 for an unknown session."""
    startUpload(registry, name)
    response = registry.request(
        "PUT",
        f"/v2/{name}/blobs/uploads/00000000-0000-4000-8000-000000000000?digest={digestOf(b'x')}",
        body=b"x",
        headers=OCTETS,
    )
    assert response.status == 404, response


def test_statusOfUnknownSessionReturns404(registry, name):
    """Endpoints: end-13 (GET /v2/<name>/blobs/uploads/<reference>) fails with 404 for an unknown session."""
    startUpload(registry, name)
    response = registry.get(f"/v2/{name}/blobs/uploads/00000000-0000-4000-8000-000000000000")
    assert response.status == 404, response


def test_finishedSessionIsGone(registry, name):
    """
    Pushing blobs: a session closed by its PUT is no longer "an active
    upload <location>": its status is 404 (end-13 failure), and the blob stays.
    """
    data = os.urandom(300)
    session = startUpload(registry, name)
    done = registry.request("PUT", withQuery(session.location, digest=digestOf(data)), body=data, headers=OCTETS)
    assert done.status == 201, done
    assert registry.get(session.location).status == 404
    assertPulls(registry, done.location, data)


# Mounting a blob from another repository.
def test_mountWithFromReturns201WithLocation(registry, name, otherName):
    """
    Mounting a blob from another repository: "The response to a successful
    mount MUST be 201 Created, and MUST contain the following header:
    Location: <blob-location>"; the blob is then pullable in <name>.
    """
    data = os.urandom(2000)
    digest = registry.pushBlob(otherName, data)
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from={otherName}", body=b""
    )
    assert response.status == 201, response
    assertPulls(registry, response.location, data)
    assertPulls(registry, f"/v2/{name}/blobs/{digest}", data)


def test_mountDockerContentDigestIsTheBlobDigest(registry, name, otherName):
    """
    Mounting a blob from another repository: "The Docker-Content-Digest header
    returns the canonical digest of the uploaded blob"; if used, "the client
    SHOULD verify the value against the uploaded blob data".
    """
    data = os.urandom(2000)
    digest = registry.pushBlob(otherName, data)
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from={otherName}", body=b""
    )
    assert response.status == 201, response
    assert response.header("Docker-Content-Digest") == digest
    assert digestOf(registry.get(response.location).body) == digest


def test_mountWithoutFrom(registry, name, otherName):
    """
    Mounting a blob from another repository (MAY): "The registry MAY treat the
    from parameter as optional, and it MAY cross-mount the blob if it can be
    found" (registryd does: 201 and a pullable Location).
    """
    data = os.urandom(2000)
    digest = registry.pushBlob(otherName, data)
    response = registry.request("POST", f"/v2/{name}/blobs/uploads/?mount={digest}", body=b"")
    assert response.status == 201, response
    assertPulls(registry, response.location, data)


def test_unmountableBlobStartsSession(registry, name):
    """
    Mounting a blob from another repository (SHOULD): "if a registry ... is
    unable to mount the requested blob, it SHOULD return a 202. This indicates
    that the upload session has begun and that the client MAY proceed with the
    upload."
    """
    data = os.urandom(1500)
    digest = digestOf(data)
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from={name}-nowhere", body=b""
    )
    assert response.status == 202, response
    done = registry.request("PUT", withQuery(response.location, digest=digest), body=data, headers=OCTETS)
    assert done.status == 201, done
    assertPulls(registry, done.location, data)


def test_mountFromRepositoryWithoutTheBlobStartsSession(registry, name, otherName):
    """
    Mounting a blob from another repository (SHOULD): a blob the registry holds,
    but not in the repository named by C{from}, cannot be mounted from there:
    "it SHOULD return a 202" (an upload session), not 201.
    """
    data = os.urandom(1500)
    digest = registry.pushBlob(otherName, data)
    registry.pushBlob(f"{otherName}-empty", os.urandom(10))
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from={otherName}-empty", body=b""
    )
    assert response.status == 202, response
    assert registry.head(f"/v2/{name}/blobs/{digest}").status == 404


# Pushing manifests.
def test_putManifestByTagReturns201WithLocation(registry, name):
    """
    Pushing Manifests: "Upon a successful upload, the registry MUST return
    response code 201 Created, and MUST have the following header: Location:
    <location>", "The <location> is a pullable manifest URL."
    """
    layer = os.urandom(300)
    registry.pushBlob(name, EMPTY_CONFIG)
    registry.pushBlob(name, layer)
    payload = imageManifest([layer])
    response = registry.pushManifest(name, "v1", payload)
    assert response.status == 201, response
    pulled = registry.request("GET", response.location, headers={"Accept": OCI_MANIFEST})
    assert pulled.status == 200, pulled
    assert pulled.body == payload
    assert registry.getManifest(name, "v1").body == payload


def test_putManifestByDigestReturns201(registry, name):
    """
    Pushing Manifests: "the <reference> MUST be either a) a digest or b) a
    tag"; pushed by digest: 201, pulled back by that digest.
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    payload = imageManifest()
    digest = digestOf(payload)
    response = registry.pushManifest(name, digest, payload)
    assert response.status == 201, response
    pulled = registry.getManifest(name, digest)
    assert pulled.body == payload
    assert digestOf(pulled.body) == digest


def test_manifestIsStoredInItsExactBytes(registry, name):
    """
    Pushing Manifests: "The registry MUST store the manifest in the exact byte
    representation provided by the client."  Odd spacing, key order and a
    trailing newline all come back as they were.
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    document = json.loads(imageManifest())
    payload = (
        b'{"layers":[],\n\t"config" : '
        + json.dumps(document["config"], indent=7).encode()
        + b',"schemaVersion":2,   "mediaType":"'
        + OCI_MANIFEST.encode()
        + b'","annotations":{"z":"\\u00e9","a":"1"}}\r\n\r\n'
    )
    response = registry.pushManifest(name, "odd", payload)
    assert response.status == 201, response
    for reference in ("odd", digestOf(payload)):
        pulled = registry.getManifest(name, reference)
        assert pulled.body == payload


def test_putManifestDockerContentDigestIsTheClientDigest(registry, name):
    """
    Pushing Manifests: "The Docker-Content-Digest header returns the canonical
    digest of the uploaded blob, and MUST be equal to the client provided
    digest."
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    payload = imageManifest(annotations={"n": os.urandom(8).hex()})
    byTag = registry.pushManifest(name, "v1", payload)
    byDigest = registry.pushManifest(name, digestOf(payload), payload)
    assert byTag.header("Docker-Content-Digest") == digestOf(payload)
    assert byDigest.header("Docker-Content-Digest") == digestOf(payload)


def test_contentTypeParametersAreIgnored(registry, name):
    """
    Pushing Manifests (SHOULD): "The registry SHOULD ignore parameters on the
    Content-Type header."
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    payload = imageManifest(annotations={"n": os.urandom(8).hex()})
    response = registry.pushManifest(name, "v1", payload, f"{OCI_MANIFEST}; charset=utf-8")
    assert response.status == 201, response
    pulled = registry.getManifest(name, "v1")
    assert pulled.body == payload
    assert pulled.header("Content-Type") == OCI_MANIFEST


def test_putImageIndexReturns201(registry, name):
    """
    Pushing Manifests: an image index (Content-Type
    application/vnd.oci.image.index.v1+json) referencing pushed manifests:
    201 with a pullable Location.
    """
    first, _ = registry.pushImage(name, None, [os.urandom(40)])
    second, _ = registry.pushImage(name, None, [os.urandom(40)])
    index = imageIndex([first, second])
    response = registry.pushManifest(name, "all", index, OCI_INDEX)
    assert response.status == 201, response
    pulled = registry.request("GET", response.location, headers={"Accept": OCI_INDEX})
    assert pulled.body == index
    assert pulled.header("Content-Type") == OCI_INDEX


def test_manifestWithUnknownBlobGetsManifestBlobUnknown(registry, name):
    """
    Push: "A registry MAY reject a manifest ... with descriptors in other
    fields that reference a manifest or blob that does not exist in the
    registry. When a manifest is rejected for this reason, it MUST result in
    one or more MANIFEST_BLOB_UNKNOWN errors."
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    payload = imageManifest([os.urandom(100)])  # the layer was never pushed
    response = registry.pushManifest(name, "v1", payload)
    if response.status != 201:
        assert response.status // 100 == 4, response
        assert set(response.errorCodes) == {"MANIFEST_BLOB_UNKNOWN"}
        assert registry.getManifest(name, "v1").status == 404


def test_indexWithUnknownManifestGetsManifestBlobUnknown(registry, name):
    """
    Push: a rejected manifest whose descriptors reference a manifest that does
    not exist "MUST result in one or more MANIFEST_BLOB_UNKNOWN errors" (an
    index naming a manifest never pushed).
    """
    index = imageIndex([imageManifest(annotations={"never": "pushed"})])
    response = registry.pushManifest(name, "v1", index, OCI_INDEX)
    if response.status != 201:
        assert response.status // 100 == 4, response
        assert set(response.errorCodes) == {"MANIFEST_BLOB_UNKNOWN"}


def test_manifestOfFourMegabytesIsAccepted(registry, name):
    """
    Pushing Manifests (SHOULD): "Client and registry implementations SHOULD
    expect to be able to support manifest pushes of at least 4 megabytes."
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    size = 4 * 1024 * 1024
    padding = size - len(imageManifest(annotations={"pad": ""}))
    payload = imageManifest(annotations={"pad": "x" * padding})
    assert len(payload) == size
    response = registry.pushManifest(name, "big", payload)
    assert response.status == 201, response
    assert registry.getManifest(name, "big").body == payload


def test_manifestOverTheLimitReturns413(registry, name):
    """
    Pushing Manifests (SHOULD): "A registry that enforces this limit SHOULD
    respond to a request to push a manifest over this limit with a response
    code 413 Payload Too Large."
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    payload = imageManifest(annotations={"pad": "x" * (5 * 1024 * 1024)})
    response = registry.pushManifest(name, "huge", payload)
    assert response.status == 413, response


# Pushing manifests with subject.
def test_manifestWithMissingSubjectIsAccepted(registry, name):
    """
    Push: "A registry MUST initially accept an otherwise valid manifest with a
    subject field that references a manifest that does not exist in the
    repository, allowing clients to push a manifest and referrers to that
    manifest in either order."
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    subject = imageManifest(annotations={"role": "subject, pushed later"})
    referrer = imageManifest(artifactType="application/vnd.example.sig", subject=subjectOf(subject))
    response = registry.pushManifest(name, digestOf(referrer), referrer)
    assert response.status == 201, response
    assert registry.pushManifest(name, "v1", subject).status == 201
    assert registry.getManifest(name, digestOf(referrer)).body == referrer
    assert registry.getManifest(name, "v1").body == subject


def test_manifestWithSubjectGetsOCISubjectHeader(registry, name):
    """
    Pushing Manifests with Subject: "When processing a request for an image
    manifest with the subject field, a registry implementation that supports
    the referrers API MUST respond with the response header OCI-Subject:
    <subject digest>".
    """
    subject, subjectDigest = registry.pushImage(name, "v1", [os.urandom(64)])
    referrer = imageManifest(artifactType="application/vnd.example.sbom", subject=subjectOf(subject))
    response = registry.pushManifest(name, digestOf(referrer), referrer)
    assert response.status == 201, response
    assert response.header("OCI-Subject") == subjectDigest
    assert registry.getManifest(name, digestOf(referrer)).body == referrer


def test_indexWithSubjectGetsOCISubjectHeader(registry, name):
    """
    Pushing Manifests with Subject: "a registry implementation that supports
    the referrers API MUST respond with the response header OCI-Subject:
    <subject digest>".  The sentence names image manifests; Listing Referrers
    lists "an image manifest or index" with a subject, so an index pushed
    with one is answered the same way.
    """
    subject, subjectDigest = registry.pushImage(name, "v1", [os.urandom(64)])
    referrer = imageIndex([], subject=subjectOf(subject))
    response = registry.pushManifest(name, digestOf(referrer), referrer, OCI_INDEX)
    assert response.status == 201, response
    assert response.header("OCI-Subject") == subjectDigest
    assert registry.getManifest(name, digestOf(referrer)).body == referrer
