"""
OCI Distribution Spec 1.1, Workflow Categories / Content Discovery: listing
tags (C{n}, C{last}, C{Link}) and listing referrers (C{artifactType} filter).

Tags are pushed, listed, and every listed tag is pulled back to the manifest
bytes it was pushed with; referrers are checked against the manifests pushed.
"""

import os

import pytest

from tests.conformance.client import (
    EMPTY_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    digestOf,
    imageIndex,
    imageManifest,
    subjectOf,
    withQuery,
)

pytestmark = pytest.mark.conformance

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


def pushTags(registry, name, tags):
    """Tag one manifest per tag; return {tag: manifest bytes}."""
    registry.pushBlob(name, EMPTY_CONFIG)
    pushed = {}
    for tag in tags:
        payload = imageManifest(annotations={"tag": tag})
        response = registry.pushManifest(name, tag, payload)
        assert response.status == 201, response
        pushed[tag] = payload
    return pushed


def listTags(registry, target):
    response = registry.get(target)
    assert response.status == 200, response
    return response, response.json()["tags"]


def assertTagsPull(registry, name, tags, pushed):
    for tag in tags:
        assert registry.getManifest(name, tag).body == pushed[tag]


def pushReferrer(registry, name, subject, subjectType=OCI_MANIFEST, index=False, **fields):
    """Push a manifest (or index) whose subject is C{subject}; return its bytes."""
    if index:
        payload = imageIndex([], subject=subjectOf(subject, subjectType), **fields)
        mediaType = OCI_INDEX
    else:
        registry.pushBlob(name, EMPTY_CONFIG)
        payload = imageManifest(subject=subjectOf(subject, subjectType), **fields)
        mediaType = OCI_MANIFEST
    response = registry.pushManifest(name, digestOf(payload), payload, mediaType)
    assert response.status == 201, response
    return payload


def referrers(registry, name, digest, **query):
    target = f"/v2/{name}/referrers/{digest}"
    return registry.get(withQuery(target, **query) if query else target)


def byDigest(response):
    return {entry["digest"]: entry for entry in response.json()["manifests"]}


# Listing tags.
def test_tagsListReturns200WithNameAndTags(registry, name):
    """
    Listing Tags: "Assuming a repository is found, this request MUST return a
    200 OK response code", and "the response MUST be a json body in the
    following format: {"name": "<name>", "tags": [...]}".
    """
    pushed = pushTags(registry, name, ["one", "two", "three"])
    response = registry.get(f"/v2/{name}/tags/list")
    assert response.status == 200, response
    body = response.json()
    assert body["name"] == name
    assert sorted(body["tags"]) == sorted(pushed)
    assertTagsPull(registry, name, body["tags"], pushed)


def test_tagsListIsInLexicalOrder(registry, name):
    """
    Listing Tags: "If the list is not empty, the tags MUST be in lexical
    order" (tags differing in letters, digits and punctuation).
    """
    tags = ["v2", "latest", "v10", "1.0", "1.0-rc1", "a_b", "a.b", "a-b", "0"]
    pushed = pushTags(registry, name, tags)
    response, listed = listTags(registry, f"/v2/{name}/tags/list")
    assert listed == sorted(tags)
    assertTagsPull(registry, name, listed, pushed)


def test_tagsListOrderIsCaseInsensitive(registry, name):
    """
    Listing Tags: "the tags MUST be in lexical order (i.e. case-insensitive
    alphanumeric order)".
    """
    tags = ["delta", "Charlie", "bravo", "Alpha", "echo"]
    pushed = pushTags(registry, name, tags)
    response, listed = listTags(registry, f"/v2/{name}/tags/list")
    assert listed == ["Alpha", "bravo", "Charlie", "delta", "echo"]
    assertTagsPull(registry, name, listed, pushed)


def test_tagsListMayBeEmpty(registry, name):
    """
    Listing Tags: "The list of tags MAY be empty if there are no tags on the
    repository" (a repository holding only an untagged manifest), and the
    request still "MUST return a 200 OK".
    """
    payload, digest = registry.pushImage(name, None)
    response = registry.get(f"/v2/{name}/tags/list")
    assert response.status == 200, response
    assert response.json()["name"] == name
    assert not response.json()["tags"]
    assert registry.getManifest(name, digest).body == payload


def test_tagsListWithNReturnsNTags(registry, name):
    """
    Listing Tags: with C{n}, "The response to such a request MAY return fewer
    than <int> results, but only when the total number of tags attached to the
    repository is less than <int> or a Link header is provided. Otherwise, the
    response MUST include <int> results", starting "at the beginning of the
    list", "in lexical order".
    """
    tags = [f"t{i}" for i in range(7)]
    pushed = pushTags(registry, name, tags)
    response, listed = listTags(registry, f"/v2/{name}/tags/list?n=3")
    if response.header("Link") is None:
        assert listed == sorted(tags)[:3]
    else:
        assert listed == sorted(tags)[: len(listed)]
        assert 0 < len(listed) <= 3
    assertTagsPull(registry, name, listed, pushed)


def test_tagsListWithNOverTheTotalReturnsAll(registry, name):
    """
    Listing Tags: "The response to such a request MAY return fewer than <int>
    results, but only when the total number of tags attached to the
    repository is less than <int>": then every tag is listed.
    """
    tags = ["c", "a", "b"]
    pushed = pushTags(registry, name, tags)
    response, listed = listTags(registry, f"/v2/{name}/tags/list?n=10")
    assert listed == ["a", "b", "c"]
    assertTagsPull(registry, name, listed, pushed)


def test_tagsListWithNZeroIsEmptyWithoutLink(registry, name):
    """
    Listing Tags: "When n is zero, this endpoint MUST return an empty list,
    and MUST NOT include a Link header."
    """
    pushTags(registry, name, ["a", "b"])
    response, listed = listTags(registry, f"/v2/{name}/tags/list?n=0")
    assert not listed
    assert response.header("Link") is None


def test_tagsListLinkHeaderFollowsRFC5988(registry, name):
    """
    Listing Tags: "A Link header MAY be included in the response when
    additional tags are available. If included, the Link header MUST be set
    according to RFC5988 with the Relation Type rel="next"."  Following it
    page after page lists every tag once, in lexical order.
    """
    tags = [f"tag{i:02d}" for i in range(11)]
    pushed = pushTags(registry, name, tags)
    collected = []
    target = f"/v2/{name}/tags/list?n=4"
    for _ in range(20):
        response, listed = listTags(registry, target)
        collected += listed
        target = response.nextLink  # raises if not <url>; rel="next"
        if target is None:
            break
    assert collected == sorted(tags)
    assertTagsPull(registry, name, collected, pushed)


def test_relativeLinkHeaderIsFollowed(relativeRegistry, name):
    """
    Listing Tags: the Link header "MUST be set according to RFC5988"; its
    URI-Reference may be relative, resolved against the request's URL.
    """
    tags = ["a", "b", "c", "d", "e"]
    pushed = pushTags(relativeRegistry, name, tags)
    response, first = listTags(relativeRegistry, f"/v2/{name}/tags/list?n=2")
    assert response.header("Link").startswith("</"), response
    collected = list(first)
    while response.nextLink is not None:
        response, listed = listTags(relativeRegistry, response.nextLink)
        collected += listed
    assert collected == tags
    assertTagsPull(relativeRegistry, name, collected, pushed)


def test_tagsListLastIsExclusive(registry, name):
    """
    Listing Tags: "A request of this sort will return up to <int> tags,
    beginning non-inclusively with <tagname>. That is to say, <tagname> will
    not be included in the results, but up to <int> tags after <tagname> will
    be returned. The tags MUST be in lexical order."
    """
    tags = ["a", "b", "c", "d", "e", "f"]
    pushed = pushTags(registry, name, tags)
    response, listed = listTags(registry, f"/v2/{name}/tags/list?n=2&last=b")
    assert listed == ["c", "d"]
    assertTagsPull(registry, name, listed, pushed)


def test_tagsListLastWithoutN(registry, name):
    """
    Listing Tags: "When using the last query parameter, the n parameter is
    OPTIONAL": every tag after C{last}.
    """
    tags = ["a", "b", "c", "d"]
    pushed = pushTags(registry, name, tags)
    response, listed = listTags(registry, f"/v2/{name}/tags/list?last=b")
    assert listed == ["c", "d"]
    assertTagsPull(registry, name, listed, pushed)


def test_tagsListOfUnknownRepositoryReturns404(registry, name):
    """
    Listing Tags: "Assuming a repository is found, this request MUST return
    a 200 OK"; end-8a fails with 404 for a repository that does not exist.
    """
    response = registry.get(f"/v2/{name}/tags/list")
    assert response.status == 404, response


# Listing referrers.
def test_referrersReturnsImageIndexOfReferrers(registry, name):
    """
    Listing Referrers: "Assuming a repository is found, this request MUST
    return a 200 OK", "the response MUST be a JSON body with an image index
    containing a list of descriptors", "The Content-Type header MUST be set
    to application/vnd.oci.image.index.v1+json"; each descriptor describes a
    manifest "with a subject field that specifies the value of <digest>".
    """
    subject, subjectDigest = registry.pushImage(name, "v1", [os.urandom(32)])
    sbom = pushReferrer(registry, name, subject, artifactType=SBOM)
    signature = pushReferrer(registry, name, subject, artifactType=SIGNATURE)
    response = referrers(registry, name, subjectDigest)
    assert response.status == 200, response
    assert response.header("Content-Type") == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    listed = byDigest(response)
    assert set(listed) == {digestOf(sbom), digestOf(signature)}
    for payload in (sbom, signature):
        entry = listed[digestOf(payload)]
        assert entry["mediaType"] == OCI_MANIFEST
        assert entry["size"] == len(payload)
        assert registry.getManifest(name, entry["digest"]).body == payload


def test_referrersOfSubjectWithoutReferrersIsEmpty(registry, name):
    """
    Listing Referrers: "If a query results in no matching referrers, an empty
    manifest list MUST be returned."
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    response = referrers(registry, name, subjectDigest)
    assert response.status == 200, response
    assert response.header("Content-Type") == OCI_INDEX
    assert response.json()["manifests"] == []


def test_referrersOfUnknownSubjectIsNot404(registry, name):
    """
    Listing Referrers: "If the registry supports the referrers API, the
    registry MUST NOT return a 404 Not Found to a referrers API requests": a
    subject that was never pushed has an empty list.
    """
    registry.pushImage(name, "v1")
    response = referrers(registry, name, digestOf(os.urandom(16)))
    assert response.status == 200, response
    assert response.json()["manifests"] == []


def test_referrersInRepositoryWithoutContentIsNot404(registry, name):
    """
    Listing Referrers: "the registry MUST NOT return a 404 Not Found to a
    referrers API requests", also for a repository holding nothing yet.
    """
    response = referrers(registry, name, digestOf(os.urandom(16)))
    assert response.status == 200, response
    assert response.json()["manifests"] == []


def test_referrersWithInvalidDigestReturns400(registry, name):
    """
    Listing Referrers: "If the request is invalid, such as a <digest> with an
    invalid syntax, a 400 Bad Request MUST be returned."
    """
    registry.pushImage(name, "v1")
    for digest in ("sha256:not-hex", "sha256:abc", "nodigest"):
        response = referrers(registry, name, digest)
        assert response.status == 400, (digest, response)


def test_referrerArtifactTypeIsTheManifests(registry, name):
    """
    Listing Referrers: "The descriptors MUST include an artifactType field
    that is set to the value of the artifactType in the image manifest or
    index, if present."
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    payload = pushReferrer(
        registry, name, subject, artifactType=SBOM, config=EMPTY_CONFIG, configType=OCI_EMPTY
    )
    entry = byDigest(referrers(registry, name, subjectDigest))[digestOf(payload)]
    assert entry["artifactType"] == SBOM


def test_referrerArtifactTypeFallsBackToConfigMediaType(registry, name):
    """
    Listing Referrers: "If the artifactType is empty or missing in the image
    manifest, the value of artifactType MUST be set to the config descriptor
    mediaType value."
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    config = b'{"kind": "attestation"}'
    registry.pushBlob(name, config)
    payload = pushReferrer(
        registry, name, subject, config=config, configType="application/vnd.example.config.v1+json"
    )
    entry = byDigest(referrers(registry, name, subjectDigest))[digestOf(payload)]
    assert entry["artifactType"] == "application/vnd.example.config.v1+json"


def test_referrerIndexArtifactTypeIsTheIndexs(registry, name):
    """
    Listing Referrers: "The descriptors MUST include an artifactType field
    that is set to the value of the artifactType in the image manifest or
    index, if present" (an index).
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    payload = pushReferrer(registry, name, subject, index=True, artifactType=SIGNATURE)
    entry = byDigest(referrers(registry, name, subjectDigest))[digestOf(payload)]
    assert entry["mediaType"] == OCI_INDEX
    assert entry["artifactType"] == SIGNATURE
    assert entry["size"] == len(payload)


def test_referrerIndexWithoutArtifactTypeOmitsIt(registry, name):
    """
    Listing Referrers: "If the artifactType is empty or missing in an index,
    the artifactType MUST be omitted."
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    payload = pushReferrer(registry, name, subject, index=True)
    entry = byDigest(referrers(registry, name, subjectDigest))[digestOf(payload)]
    assert entry["mediaType"] == OCI_INDEX
    assert "artifactType" not in entry


def test_referrerDescriptorsCarryAnnotations(registry, name):
    """
    Listing Referrers: "The descriptors MUST include annotations from the
    image manifest or index."
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.example.k": "v"}
    manifest = pushReferrer(registry, name, subject, artifactType=SBOM, annotations=annotations)
    index = pushReferrer(registry, name, subject, index=True, annotations={"org.example.i": "1"})
    listed = byDigest(referrers(registry, name, subjectDigest))
    assert listed[digestOf(manifest)]["annotations"] == annotations
    assert listed[digestOf(index)]["annotations"] == {"org.example.i": "1"}


def test_referrersOfAnIndexSubject(registry, name):
    """
    Listing Referrers: "<digest> is the digest of the manifest specified in
    the subject field" — any manifest, an image index included.
    """
    image, _ = registry.pushImage(name, None, [os.urandom(16)])
    index = imageIndex([image])
    assert registry.pushManifest(name, "multi", index, OCI_INDEX).status == 201
    payload = pushReferrer(registry, name, index, subjectType=OCI_INDEX, artifactType=SBOM)
    response = referrers(registry, name, digestOf(index))
    assert set(byDigest(response)) == {digestOf(payload)}


def test_referrersListOnlyManifestsNamingThatSubject(registry, name):
    """
    Listing Referrers: "Each descriptor is of an image manifest or index in
    the same <name> namespace with a subject field that specifies the value of
    <digest>": referrers of another subject are not listed.
    """
    first, firstDigest = registry.pushImage(name, "first", [os.urandom(16)])
    second, secondDigest = registry.pushImage(name, "second", [os.urandom(16)])
    ofFirst = pushReferrer(registry, name, first, artifactType=SBOM)
    ofSecond = pushReferrer(registry, name, second, artifactType=SBOM)
    assert set(byDigest(referrers(registry, name, firstDigest))) == {digestOf(ofFirst)}
    assert set(byDigest(referrers(registry, name, secondDigest))) == {digestOf(ofSecond)}


def test_referrersListOnlyTheSameRepository(registry, name, otherName):
    """
    Listing Referrers: "Each descriptor is of an image manifest or index in
    the same <name> namespace": a referrer pushed to another repository is
    listed there, not here.
    """
    subject, subjectDigest = registry.pushImage(name, "v1", [os.urandom(16)])
    registry.pushImage(otherName, "v1", [os.urandom(16)])
    elsewhere = pushReferrer(registry, otherName, subject, artifactType=SBOM)
    assert referrers(registry, name, subjectDigest).json()["manifests"] == []
    assert set(byDigest(referrers(registry, otherName, subjectDigest))) == {digestOf(elsewhere)}


def test_referrersFilteredByArtifactType(registry, name):
    """
    Listing Referrers (SHOULD support filtering): "If filtering is requested
    and applied, the response MUST include a header OCI-Filters-Applied:
    artifactType denoting that an artifactType filter was applied"; only
    referrers of that artifactType are listed.
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    sbom = pushReferrer(registry, name, subject, artifactType=SBOM)
    pushReferrer(registry, name, subject, artifactType=SIGNATURE)
    response = referrers(registry, name, subjectDigest, artifactType=SBOM)
    assert response.status == 200, response
    assert response.header("OCI-Filters-Applied") == "artifactType"
    listed = byDigest(response)
    assert set(listed) == {digestOf(sbom)}
    assert listed[digestOf(sbom)]["artifactType"] == SBOM


def test_referrersFilterMatchingNothingIsEmpty(registry, name):
    """
    Listing Referrers: with a filter applied ("OCI-Filters-Applied:
    artifactType"), "If a query results in no matching referrers, an empty
    manifest list MUST be returned."
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    pushReferrer(registry, name, subject, artifactType=SIGNATURE)
    response = referrers(registry, name, subjectDigest, artifactType=SBOM)
    assert response.status == 200, response
    assert response.header("OCI-Filters-Applied") == "artifactType"
    assert response.json()["manifests"] == []


def test_unfilteredReferrersHaveNoFiltersApplied(registry, name):
    """
    Listing Referrers: OCI-Filters-Applied denotes "that an artifactType
    filter was applied"; without a filter requested the header is absent
    and every referrer is listed.
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    sbom = pushReferrer(registry, name, subject, artifactType=SBOM)
    signature = pushReferrer(registry, name, subject, artifactType=SIGNATURE)
    response = referrers(registry, name, subjectDigest)
    assert response.header("OCI-Filters-Applied") is None
    assert set(byDigest(response)) == {digestOf(sbom), digestOf(signature)}


def test_referrersTaggedInTheFallbackIndexAreListed(registry, name):
    """
    Upgrade Procedures / Enabling the Referrers API: "Registries MUST include
    preexisting image manifests that are listed in an image index tagged with
    the referrers tag schema and have a valid subject field in the referrers
    API response" (tag C{<alg>-<ref>}).
    """
    subject, subjectDigest = registry.pushImage(name, "v1")
    payload = pushReferrer(registry, name, subject, artifactType=SBOM)
    fallback = imageIndex([payload])
    algorithm, hexdigest = subjectDigest.split(":")
    tag = f"{algorithm}-{hexdigest}"
    assert registry.pushManifest(name, tag, fallback, OCI_INDEX).status == 201
    listed = byDigest(referrers(registry, name, subjectDigest))
    assert digestOf(payload) in listed
    assert listed[digestOf(payload)]["artifactType"] == SBOM
