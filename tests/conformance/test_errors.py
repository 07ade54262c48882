"""
OCI Distribution Spec 1.1, API: determining support (C{/v2/}), the
endpoint table (end-1 .. end-13) and the error codes (the JSON envelope and
the code table, code-1 .. code-13 as far as an unauthenticated registry
without rate limits can produce them).
"""

import os
import re

import pytest

from tests.conformance.client import (
    EMPTY_CONFIG,
    OCI_INDEX,
    digestOf,
    imageIndex,
    imageManifest,
    subjectOf,
    withQuery,
)

pytestmark = pytest.mark.conformance

MISSING = "sha256:" + "0" * 64
NO_SESSION = "00000000-0000-4000-8000-000000000000"
OCTETS = {"Content-Type": "application/octet-stream"}
CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
}
# Legacy Docker support error codes: "The client MAY encounter error codes
# targeting Docker schema1 manifests, such as TAG_INVALID, or
# MANIFEST_UNVERIFIED."
LEGACY_CODES = {"TAG_INVALID", "MANIFEST_UNVERIFIED"}


# Determining support: end-1.
def test_baseEndpointReturns200(registry):
    """
    Determining Support: "perform a GET request to the following endpoint:
    /v2/ (end-1). If the response is 200 OK, then the registry implements this
    specification."
    """
    response = registry.get("/v2/")
    assert response.status == 200, response


# The endpoint table: each endpoint's success code, and a failure code from
# its column.
def test_end2BlobGetAndHead(registry, name):
    """Endpoints: end-2, GET / HEAD /v2/<name>/blobs/<digest>: 200 success, 404 failure."""
    data = os.urandom(100)
    digest = registry.pushBlob(name, data)
    response = registry.get(f"/v2/{name}/blobs/{digest}")
    assert (response.status, response.body) == (200, data)
    assert registry.head(f"/v2/{name}/blobs/{digest}").status == 200
    assert registry.get(f"/v2/{name}/blobs/{MISSING}").status == 404
    assert registry.head(f"/v2/{name}/blobs/{MISSING}").status == 404


def test_end3ManifestGetAndHead(registry, name):
    """Endpoints: end-3, GET / HEAD /v2/<name>/manifests/<reference>: 200 success, 404 failure."""
    payload, digest = registry.pushImage(name, "v1")
    for reference in ("v1", digest):
        assert registry.getManifest(name, reference).body == payload
        assert registry.getManifest(name, reference, method="HEAD").status == 200
    assert registry.getManifest(name, "v0").status == 404
    assert registry.getManifest(name, MISSING, method="HEAD").status == 404


def test_end4aPostUploadReturns202(registry, name):
    """Endpoints: end-4a, POST /v2/<name>/blobs/uploads/: 202 success."""
    response = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    assert response.status == 202, response
    data = os.urandom(64)
    done = registry.request("PUT", withQuery(response.location, digest=digestOf(data)), body=data, headers=OCTETS)
    assert registry.get(done.location).body == data


def test_end4bSinglePost(registry, name):
    """
    Endpoints: end-4b, POST /v2/<name>/blobs/uploads/?digest=<digest>: 201
    (or 202) success, 400 failure (a digest that is not one).
    """
    data = os.urandom(64)
    response = registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(data)}", body=data, headers=OCTETS
    )
    assert response.status in (201, 202), response
    if response.status == 202:
        response = registry.request(
            "PUT", withQuery(response.location, digest=digestOf(data)), body=data, headers=OCTETS
        )
    assert registry.get(response.location).body == data
    bad = registry.request("POST", f"/v2/{name}/blobs/uploads/?digest=sha256:zz", body=data, headers=OCTETS)
    assert bad.status == 400, bad


def test_end5Patch(registry, name):
    """Endpoints: end-5, PATCH /v2/<name>/blobs/uploads/<reference>: 202 success, 404 / 416 failure."""
    session = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    chunk = {**OCTETS, "Content-Range": "0-9"}
    assert registry.request("PATCH", session.location, body=os.urandom(10), headers=chunk).status == 202
    assert registry.request("PATCH", session.location, body=os.urandom(10), headers=chunk).status == 416
    unknown = f"/v2/{name}/blobs/uploads/{NO_SESSION}"
    assert registry.request("PATCH", unknown, body=os.urandom(10), headers=chunk).status == 404


def test_end6PutUpload(registry, name):
    """
    Endpoints: end-6, PUT /v2/<name>/blobs/uploads/<reference>?digest=<digest>:
    201 success, 404 (no such session) / 400 (wrong digest) failure.
    """
    data = os.urandom(64)
    session = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    wrong = registry.request("PUT", withQuery(session.location, digest=digestOf(b"x")), body=data, headers=OCTETS)
    assert wrong.status == 400, wrong
    session = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    done = registry.request("PUT", withQuery(session.location, digest=digestOf(data)), body=data, headers=OCTETS)
    assert done.status == 201, done
    assert registry.get(done.location).body == data
    unknown = registry.request(
        "PUT", f"/v2/{name}/blobs/uploads/{NO_SESSION}?digest={digestOf(data)}", body=data, headers=OCTETS
    )
    assert unknown.status == 404, unknown


def test_end7PutManifest(registry, name):
    """Endpoints: end-7, PUT /v2/<name>/manifests/<reference>: 201 success."""
    registry.pushBlob(name, EMPTY_CONFIG)
    payload = imageManifest()
    response = registry.pushManifest(name, "v1", payload)
    assert response.status == 201, response
    assert registry.getManifest(name, "v1").body == payload


def test_end8aTagsList(registry, name):
    """Endpoints: end-8a, GET /v2/<name>/tags/list: 200 success, 404 failure."""
    assert registry.get(f"/v2/{name}/tags/list").status == 404
    registry.pushImage(name, "v1")
    response = registry.get(f"/v2/{name}/tags/list")
    assert response.status == 200, response
    assert response.json()["tags"] == ["v1"]


def test_end8bTagsListPaginated(registry, name):
    """Endpoints: end-8b, GET /v2/<name>/tags/list?n=<integer>&last=<tagname>: 200 success, 404 failure."""
    assert registry.get(f"/v2/{name}/tags/list?n=1&last=a").status == 404
    registry.pushBlob(name, EMPTY_CONFIG)
    for tag in ("a", "b", "c"):
        registry.pushManifest(name, tag, imageManifest(annotations={"t": tag}))
    response = registry.get(f"/v2/{name}/tags/list?n=1&last=a")
    assert response.status == 200, response
    assert response.json()["tags"] == ["b"]


def test_end9DeleteManifest(registry, noDeleteRegistry, name):
    """
    Endpoints: end-9, DELETE /v2/<name>/manifests/<reference>: 202 success,
    404 / 400 / 405 failure.
    """
    payload, digest = registry.pushImage(name, "v1")
    assert registry.request("DELETE", f"/v2/{name}/manifests/{digest}").status == 202
    assert registry.request("DELETE", f"/v2/{name}/manifests/{digest}").status == 404
    payload, digest = noDeleteRegistry.pushImage(name, "v1")
    assert noDeleteRegistry.request("DELETE", f"/v2/{name}/manifests/{digest}").status in (400, 405)


def test_end10DeleteBlob(registry, noDeleteRegistry, name):
    """Endpoints: end-10, DELETE /v2/<name>/blobs/<digest>: 202 success, 404 / 400 / 405 failure."""
    digest = registry.pushBlob(name, os.urandom(10))
    assert registry.request("DELETE", f"/v2/{name}/blobs/{digest}").status == 202
    assert registry.request("DELETE", f"/v2/{name}/blobs/{digest}").status == 404
    digest = noDeleteRegistry.pushBlob(name, os.urandom(10))
    assert noDeleteRegistry.request("DELETE", f"/v2/{name}/blobs/{digest}").status in (400, 405)


def test_end11Mount(registry, name, otherName):
    """Endpoints: end-11, POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other_name>: 201 / 202 success."""
    data = os.urandom(50)
    digest = registry.pushBlob(otherName, data)
    response = registry.request("POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from={otherName}", body=b"")
    assert response.status in (201, 202), response
    if response.status == 201:
        assert registry.get(response.location).body == data


def test_end12aReferrers(registry, name):
    """Endpoints: end-12a, GET /v2/<name>/referrers/<digest>: 200 success, 400 failure."""
    subject, subjectDigest = registry.pushImage(name, "v1")
    response = registry.get(f"/v2/{name}/referrers/{subjectDigest}")
    assert response.status == 200, response
    assert registry.get(f"/v2/{name}/referrers/sha256:zz").status == 400


def test_end12bReferrersFiltered(registry, name):
    """Endpoints: end-12b, GET /v2/<name>/referrers/<digest>?artifactType=<artifactType>: 200 success, 400 failure."""
    subject, subjectDigest = registry.pushImage(name, "v1")
    referrer = imageIndex([], subject=subjectOf(subject), artifactType="application/vnd.example.x")
    assert registry.pushManifest(name, digestOf(referrer), referrer, OCI_INDEX).status == 201
    response = registry.get(f"/v2/{name}/referrers/{subjectDigest}?artifactType=application/vnd.example.x")
    assert response.status == 200, response
    assert [e["digest"] for e in response.json()["manifests"]] == [digestOf(referrer)]
    assert registry.get(f"/v2/{name}/referrers/sha256:zz?artifactType=a/b").status == 400


def test_end13UploadStatus(registry, name):
    """Endpoints: end-13, GET /v2/<name>/blobs/uploads/<reference>: 204 success, 404 failure."""
    session = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    assert registry.get(session.location).status == 204
    assert registry.get(f"/v2/{name}/blobs/uploads/{NO_SESSION}").status == 404


# Error codes.
def _blobUnknown(registry, name):
    registry.pushBlob(name, os.urandom(10))
    return registry.get(f"/v2/{name}/blobs/{MISSING}")


def _blobUploadInvalid(registry, name):
    session = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    return registry.request(
        "PATCH", session.location, body=b"0123456789", headers={**OCTETS, "Content-Range": "5-14"}
    )


def _blobUploadUnknown(registry, name):
    registry.pushBlob(name, os.urandom(10))
    return registry.get(f"/v2/{name}/blobs/uploads/{NO_SESSION}")


def _digestInvalid(registry, name):
    data = os.urandom(10)
    return registry.request(
        "POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(b'other')}", body=data, headers=OCTETS
    )


def _manifestBlobUnknown(registry, name):
    registry.pushBlob(name, EMPTY_CONFIG)
    return registry.pushManifest(name, "v1", imageManifest([os.urandom(10)]))


def _manifestInvalid(registry, name):
    return registry.pushManifest(name, "v1", b'{"schemaVersion": 2, "mediaType": ')


def _manifestUnknown(registry, name):
    registry.pushImage(name, "v1")
    return registry.getManifest(name, "v2")


def _nameInvalid(registry, name):
    return registry.get(f"/v2/{name}/UPPER--case/tags/list")


def _nameUnknown(registry, name):
    return registry.get(f"/v2/{name}/tags/list")


def _sizeInvalid(registry, name):
    session = registry.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
    # Content-Range declares 20 bytes; the Content-Length (10) is what is sent.
    return registry.request(
        "PATCH", session.location, body=b"0123456789", headers={**OCTETS, "Content-Range": "0-19"}
    )


def _unsupported(registry, name):
    return registry.request("DELETE", f"/v2/{name}/blobs/{MISSING}")


# code-ID, code, the request that provokes it, and on which registry.
SCENARIOS = [
    ("code-1", "BLOB_UNKNOWN", _blobUnknown, "registry"),
    ("code-2", "BLOB_UPLOAD_INVALID", _blobUploadInvalid, "registry"),
    ("code-3", "BLOB_UPLOAD_UNKNOWN", _blobUploadUnknown, "registry"),
    ("code-4", "DIGEST_INVALID", _digestInvalid, "registry"),
    ("code-5", "MANIFEST_BLOB_UNKNOWN", _manifestBlobUnknown, "registry"),
    ("code-6", "MANIFEST_INVALID", _manifestInvalid, "registry"),
    ("code-7", "MANIFEST_UNKNOWN", _manifestUnknown, "registry"),
    ("code-8", "NAME_INVALID", _nameInvalid, "registry"),
    ("code-9", "NAME_UNKNOWN", _nameUnknown, "registry"),
    ("code-10", "SIZE_INVALID", _sizeInvalid, "registry"),
    ("code-13", "UNSUPPORTED", _unsupported, "noDeleteRegistry"),
]


def provoke(request, scenario, name):
    _, _, make, fixture = scenario
    return make(request.getfixturevalue(fixture), name)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_errorBodyIsTheErrorsEnvelope(request, scenario, name):
    """
    Error Codes: "A 4XX response code from the registry MAY return a body in
    any format. If the response body is in JSON format, it MUST have the
    following format: {"errors": [{"code": ..., "message": ..., "detail":
    ...}, ...]}"; "The message field is OPTIONAL, and if present, it SHOULD be
    a human readable string"; "The detail field is OPTIONAL and MAY contain
    arbitrary JSON data".
    """
    response = provoke(request, scenario, name)
    assert 400 <= response.status < 500, response
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"errors"}, body
    assert isinstance(body["errors"], list) and body["errors"], body
    for error in body["errors"]:
        assert isinstance(error, dict), error
        assert set(error) <= {"code", "message", "detail"}, error
        assert isinstance(error["code"], str), error
        if "message" in error:
            assert isinstance(error["message"], str), error


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_errorCodeIsFromTheCodeTable(request, scenario, name):
    """
    Error Codes: "The code field MUST be a unique identifier, containing only
    uppercase alphabetic characters and underscores", and "The code field
    MUST be one of the following" (the table, code-1 .. code-14); each
    condition gets its code.
    """
    codeID, code, _, _ = scenario
    response = provoke(request, scenario, name)
    for found in response.errorCodes:
        assert re.fullmatch(r"[A-Z_]+", found), found
        assert found in CODES, found
    assert code in response.errorCodes, response


def test_errorCodeOfInvalidPaginationIsFromTheCodeTable(registry, name):
    """
    Error Codes: "The code field MUST be one of the following" (the table):
    also for a tags list request whose C{n} is not a number.
    """
    registry.pushImage(name, "v1")
    response = registry.get(f"/v2/{name}/tags/list?n=many")
    assert 400 <= response.status < 500, response
    for found in response.errorCodes:
        assert found in CODES, found


def test_errorCodeOfUnknownRouteIsFromTheCodeTable(registry):
    """
    Error Codes: "If the response body is in JSON format, it MUST have the
    following format" and its "code field MUST be one of the following": a
    path outside the API is a 4XX whose JSON body is the envelope.
    """
    response = registry.get("/v2/no/such/endpoint")
    assert response.status == 404, response
    assert response.errorCodes
    for found in response.errorCodes:
        assert found in CODES | LEGACY_CODES, found


def test_invalidTagReferenceIsRefusedWithATableCode(registry, name):
    """
    Pushing Manifests: "the <reference> MUST be either a) a digest or b) a
    tag" (a tag matching [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}); a reference that
    is neither is refused with a 4XX whose code is in the table (or the
    legacy TAG_INVALID); nothing is stored under it.
    """
    registry.pushBlob(name, EMPTY_CONFIG)
    payload = imageManifest()
    tooLong = "t" * 129
    response = registry.pushManifest(name, tooLong, payload)
    assert 400 <= response.status < 500, response
    for found in response.errorCodes:
        assert found in CODES | LEGACY_CODES, found
    assert registry.getManifest(name, digestOf(payload)).status == 404
