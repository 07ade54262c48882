"""
OCI Distribution Spec 1.1, Workflow Categories / Content Management: deleting
tags, manifests and blobs, on a registry with deletes enabled and on one
with them disabled.

What a delete leaves behind is pulled back and compared with what was pushed.
"""

import os

import pytest

from tests.conformance.client import (
    EMPTY_CONFIG,
    OCI_MANIFEST,
    digestOf,
    imageManifest,
    subjectOf,
)

pytestmark = pytest.mark.conformance

MISSING = "sha256:" + "0" * 64


def delete(registry, target):
    return registry.request("DELETE", target)


# Deleting tags.
def test_deleteTagReturns202(registry, name):
    """
    Deleting tags: "Upon success, the registry MUST respond with a 202
    Accepted code."  The manifest it pointed to is still there by digest.
    """
    payload, digest = registry.pushImage(name, "v1", [os.urandom(32)])
    response = delete(registry, f"/v2/{name}/manifests/v1")
    assert response.status == 202, response
    assert registry.getManifest(name, digest).body == payload


def test_deletedTagReturns404(registry, name):
    """
    Deleting tags: "Once deleted, a GET to /v2/<name>/manifests/<tag> will
    return a 404."  Other tags of the same manifest still pull it.
    """
    payload, digest = registry.pushImage(name, "v1", [os.urandom(32)])
    assert registry.pushManifest(name, "v2", payload).status == 201
    assert delete(registry, f"/v2/{name}/manifests/v1").status == 202
    assert registry.getManifest(name, "v1").status == 404
    assert registry.getManifest(name, "v1", method="HEAD").status == 404
    assert registry.getManifest(name, "v2").body == payload
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["v2"]


def test_deleteTagWhenDisabledReturns400Or405(noDeleteRegistry, name):
    """
    Deleting tags: "If tag deletion is disabled, the registry MUST respond
    with either a 400 Bad Request or a 405 Method Not Allowed."  The tag
    still pulls its manifest.
    """
    payload, digest = noDeleteRegistry.pushImage(name, "v1", [os.urandom(32)])
    response = delete(noDeleteRegistry, f"/v2/{name}/manifests/v1")
    assert response.status in (400, 405), response
    assert noDeleteRegistry.getManifest(name, "v1").body == payload


# Deleting manifests.
def test_deleteManifestReturns202(registry, name):
    """
    Deleting Manifests: "Upon success, the registry MUST respond with a 202
    Accepted code."
    """
    payload, digest = registry.pushImage(name, None, [os.urandom(32)])
    response = delete(registry, f"/v2/{name}/manifests/{digest}")
    assert response.status == 202, response


def test_deletedManifestAndItsTagsReturn404(registry, name):
    """
    Deleting Manifests: "Once deleted, a GET to /v2/<name>/manifests/<digest>
    and any tag pointing to that digest will return a 404."  A manifest not
    deleted still pulls.
    """
    payload, digest = registry.pushImage(name, "v1", [os.urandom(32)])
    assert registry.pushManifest(name, "v2", payload).status == 201
    kept, keptDigest = registry.pushImage(name, "kept", [os.urandom(32)])
    assert delete(registry, f"/v2/{name}/manifests/{digest}").status == 202
    for reference in (digest, "v1", "v2"):
        assert registry.getManifest(name, reference).status == 404, reference
    assert registry.getManifest(name, "kept").body == kept
    assert registry.getManifest(name, keptDigest).body == kept


def test_deleteManifestOfUnknownRepositoryReturns404(registry, name):
    """
    Deleting Manifests: "If the repository does not exist, the response MUST
    return 404 Not Found."
    """
    response = delete(registry, f"/v2/{name}/manifests/{MISSING}")
    assert response.status == 404, response


def test_deleteUnknownManifestReturns404(registry, name):
    """
    Endpoints: end-9 (DELETE /v2/<name>/manifests/<reference>) fails with 404
    for a manifest the repository does not hold; what it holds stays.
    """
    payload, digest = registry.pushImage(name, "v1", [os.urandom(32)])
    response = delete(registry, f"/v2/{name}/manifests/{MISSING}")
    assert response.status == 404, response
    assert registry.getManifest(name, "v1").body == payload


def test_deleteManifestWhenDisabledReturns400Or405(noDeleteRegistry, name):
    """
    Deleting Manifests: "If manifest deletion is disabled, the registry MUST
    respond with either a 400 Bad Request or a 405 Method Not Allowed."  The
    manifest still pulls.
    """
    payload, digest = noDeleteRegistry.pushImage(name, "v1", [os.urandom(32)])
    response = delete(noDeleteRegistry, f"/v2/{name}/manifests/{digest}")
    assert response.status in (400, 405), response
    assert noDeleteRegistry.getManifest(name, digest).body == payload


def test_deletedReferrerLeavesTheReferrersList(registry, name):
    """
    Deleting Manifests / Listing Referrers: each listed descriptor "is of an
    image manifest or index in the same <name> namespace with a subject
    field": once a referrer is deleted it is no longer listed, and the other
    referrer still is.
    """
    subject, subjectDigest = registry.pushImage(name, "v1", [os.urandom(32)])
    registry.pushBlob(name, EMPTY_CONFIG)
    gone = imageManifest(artifactType="application/vnd.example.a", subject=subjectOf(subject))
    kept = imageManifest(artifactType="application/vnd.example.b", subject=subjectOf(subject))
    for payload in (gone, kept):
        assert registry.pushManifest(name, digestOf(payload), payload).status == 201
    assert delete(registry, f"/v2/{name}/manifests/{digestOf(gone)}").status == 202
    response = registry.get(f"/v2/{name}/referrers/{subjectDigest}")
    assert response.status == 200, response
    listed = [entry["digest"] for entry in response.json()["manifests"]]
    assert listed == [digestOf(kept)]
    assert registry.getManifest(name, digestOf(kept)).body == kept


def test_deletedSubjectKeepsItsReferrersListable(registry, name):
    """
    Listing Referrers: "the registry MUST NOT return a 404 Not Found to a
    referrers API requests", also once the subject itself is deleted; its
    referrers remain manifests in the repository.
    """
    subject, subjectDigest = registry.pushImage(name, "v1", [os.urandom(32)])
    registry.pushBlob(name, EMPTY_CONFIG)
    referrer = imageManifest(artifactType="application/vnd.example.a", subject=subjectOf(subject))
    assert registry.pushManifest(name, digestOf(referrer), referrer).status == 201
    assert delete(registry, f"/v2/{name}/manifests/{subjectDigest}").status == 202
    response = registry.get(f"/v2/{name}/referrers/{subjectDigest}")
    assert response.status == 200, response
    assert registry.getManifest(name, digestOf(referrer)).body == referrer


# Deleting blobs.
def test_deleteBlobReturns202(registry, name):
    """
    Deleting Blobs: "Upon success, the registry MUST respond with code 202
    Accepted."  The blob is no longer found in the repository; another blob
    still pulls.
    """
    data, other = os.urandom(1000), os.urandom(1000)
    digest = registry.pushBlob(name, data)
    otherDigest = registry.pushBlob(name, other)
    response = delete(registry, f"/v2/{name}/blobs/{digest}")
    assert response.status == 202, response
    assert registry.get(f"/v2/{name}/blobs/{digest}").status == 404
    assert registry.head(f"/v2/{name}/blobs/{digest}").status == 404
    assert registry.get(f"/v2/{name}/blobs/{otherDigest}").body == other


def test_deleteUnknownBlobReturns404(registry, name):
    """
    Deleting Blobs: "If the blob is not found, a 404 Not Found code MUST be
    returned."
    """
    registry.pushBlob(name, os.urandom(10))
    response = delete(registry, f"/v2/{name}/blobs/{MISSING}")
    assert response.status == 404, response


def test_deleteBlobTwiceReturns404(registry, name):
    """
    Deleting Blobs: "If the blob is not found, a 404 Not Found code MUST be
    returned" — a blob already deleted is not found.
    """
    digest = registry.pushBlob(name, os.urandom(10))
    assert delete(registry, f"/v2/{name}/blobs/{digest}").status == 202
    response = delete(registry, f"/v2/{name}/blobs/{digest}")
    assert response.status == 404, response


def test_deleteBlobInOneRepositoryKeepsItInAnother(registry, name, otherName):
    """
    Deleting Blobs: "<name> is the namespace of the repository" the blob is
    deleted from; the same blob pushed to another repository still pulls there.
    """
    data = os.urandom(500)
    digest = registry.pushBlob(name, data)
    registry.pushBlob(otherName, data)
    assert delete(registry, f"/v2/{name}/blobs/{digest}").status == 202
    assert registry.get(f"/v2/{name}/blobs/{digest}").status == 404
    pulled = registry.get(f"/v2/{otherName}/blobs/{digest}")
    assert pulled.body == data
    assert digestOf(pulled.body) == digest


def test_deleteBlobWhenDisabledReturns400Or405(noDeleteRegistry, name):
    """
    Deleting Blobs: "If blob deletion is disabled, the registry MUST respond
    with either a 400 Bad Request or a 405 Method Not Allowed."  The blob
    still pulls.
    """
    data = os.urandom(500)
    digest = noDeleteRegistry.pushBlob(name, data)
    response = delete(noDeleteRegistry, f"/v2/{name}/blobs/{digest}")
    assert response.status in (400, 405), response
    assert noDeleteRegistry.get(f"/v2/{name}/blobs/{digest}").body == data


def test_pushAfterDeleteServesTheNewContent(registry, name):
    """
    Content Management: "Clients are able to control the full life-cycle of
    the content stored in the registry": a tag deleted and pushed again
    pulls the newly pushed manifest.
    """
    old, oldDigest = registry.pushImage(name, "v1", [os.urandom(32)])
    assert delete(registry, f"/v2/{name}/manifests/{oldDigest}").status == 202
    new, newDigest = registry.pushImage(name, "v1", [os.urandom(32)])
    pulled = registry.getManifest(name, "v1")
    assert pulled.body == new
    assert pulled.header("Content-Type") == OCI_MANIFEST
    assert registry.getManifest(name, oldDigest).status == 404
