"""Tags list, catalog and OCI 1.1 referrers, with pagination; tag consistency."""

from urllib.parse import urlsplit

import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, gatherResults

from registryd.manifest import OCI_EMPTY, OCI_INDEX, OCI_MANIFEST
from registryd.storage import paths
from registryd.reference import lexicalKey, sortedLexically
from tests.support import digestOf, pushBlob
from tests.web.manifestkit import descriptor, encode, pushImage, putManifest


async def tagMany(client, name, tags):
    digest, payload = await pushImage(client, name)
    for tag in tags:
        await putManifest(client, name, tag, payload, OCI_MANIFEST)
    return digest


def nextLink(response):
    link = response.header("Link")
    if link is None:
        return None
    target = link.decode().split(";")[0].strip("<> ")
    assert link.decode().endswith('rel="next"')
    parts = urlsplit(target)
    return parts.path + "?" + parts.query


TAGS = ["b", "a", "c-1", "C", "z", "_x", "a.b", "10", "9"]


@pytest_twisted.ensureDeferred
async def test_tagsListSorted(client):
    await tagMany(client, "lib/app", TAGS)
    r = await client.request("GET", "/v2/lib/app/tags/list")
    assert r.status == 200
    assert r.header("Content-Type") == b"application/json"
    assert r.json() == {"name": "lib/app", "tags": sorted(TAGS, key=lexicalKey)}
    assert r.header("Link") is None


@pytest_twisted.ensureDeferred
async def test_tagsPagination(client):
    await tagMany(client, "lib/app", TAGS)
    seen = []
    path = "/v2/lib/app/tags/list?n=4"
    pages = 0
    while path:
        r = await client.request("GET", path)
        assert r.status == 200
        page = r.json()["tags"]
        assert len(page) <= 4
        seen += page
        pages += 1
        path = nextLink(r)
        # A Link exactly when more remain.
        assert (path is not None) == (len(seen) < len(TAGS))
    assert seen == sorted(TAGS, key=lexicalKey)
    assert pages == 3


@pytest_twisted.ensureDeferred
async def test_tagsPaginationEdges(client):
    await tagMany(client, "lib/app", TAGS)
    ordered = sorted(TAGS, key=lexicalKey)
    r = await client.request("GET", "/v2/lib/app/tags/list?n=0")
    assert (r.json()["tags"], r.header("Link")) == ([], None)
    r = await client.request("GET", f"/v2/lib/app/tags/list?n={len(TAGS)}")
    assert (r.json()["tags"], r.header("Link")) == (ordered, None)
    r = await client.request("GET", "/v2/lib/app/tags/list?n=100&last=zzz")
    assert (r.json()["tags"], r.header("Link")) == ([], None)
    r = await client.request("GET", "/v2/lib/app/tags/list?last=a")
    after = ordered[ordered.index("a") + 1 :]
    assert r.json()["tags"] == after
    r = await client.request("GET", "/v2/lib/app/tags/list?n=2&last=a")
    assert r.json()["tags"] == after[:2]
    assert nextLink(r) == f"/v2/lib/app/tags/list?last={after[1]}&n=2"
    # Case-insensitive: "C" sorts between "b" and "c-1".
    assert ordered.index("b") < ordered.index("C") < ordered.index("c-1")
    for bad in ("-1", "x", "1.5", "99999999999"):
        r = await client.request("GET", f"/v2/lib/app/tags/list?n={bad}")
        assert (r.status, r.errorCodes) == (400, ["UNSUPPORTED"])


@pytest_twisted.ensureDeferred
async def test_tagsUnknownRepository(client):
    r = await client.request("GET", "/v2/nothing/here/tags/list")
    assert (r.status, r.errorCodes) == (404, ["NAME_UNKNOWN"])
    r = await client.request("GET", "/v2/Bad/tags/list")
    assert (r.status, r.errorCodes) == (400, ["NAME_INVALID"])


@pytest_twisted.ensureDeferred
async def test_tagsOfRepositoryWithoutTags(client):
    digest, _ = await pushImage(client, "untagged")
    r = await client.request("GET", "/v2/untagged/tags/list")
    assert (r.status, r.json()["tags"]) == (200, [])


@pytest_twisted.ensureDeferred
async def test_catalog(client):
    names = ["b/x", "a", "a/b", "a-c", "zz/top/deep", "m"]
    for name in names:
        await pushImage(client, name, tag="t")
    await pushBlob(client, "blobs-only", b"not a repository yet")
    r = await client.request("GET", "/v2/_catalog")
    assert r.json() == {"repositories": sorted(names)}
    seen, path = [], "/v2/_catalog?n=2"
    while path:
        r = await client.request("GET", path)
        seen += r.json()["repositories"]
        path = nextLink(r)
        assert (path is not None) == (len(seen) < len(names))
    assert seen == sorted(names)
    r = await client.request("GET", "/v2/_catalog?n=0")
    assert (r.json()["repositories"], r.header("Link")) == ([], None)
    r = await client.request("GET", "/v2/_catalog?last=a/b&n=10")
    assert r.json()["repositories"] == [n for n in sorted(names) if n > "a/b"]
    r = await client.request("GET", "/v2/_catalog?n=-5")
    assert (r.status, r.errorCodes) == (400, ["UNSUPPORTED"])


@pytest_twisted.ensureDeferred
async def test_emptyCatalog(client):
    r = await client.request("GET", "/v2/_catalog")
    assert (r.status, r.json()) == (200, {"repositories": []})


# Referrers (OCI 1.1)

EMPTY = b"{}"


async def pushReferrer(client, name, subjectDigest, subjectPayload, artifactType, seed, annotations=None):
    await pushBlob(client, name, EMPTY)
    layer = b"signature " + seed
    await pushBlob(client, name, layer)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifactType,
        "config": descriptor(OCI_EMPTY, EMPTY),
        "layers": [descriptor("application/octet-stream", layer)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subjectDigest, "size": len(subjectPayload)},
    }
    if annotations:
        document["annotations"] = annotations
    payload = encode(document)
    r = await putManifest(client, name, digestOf(payload), payload, OCI_MANIFEST)
    assert r.header("OCI-Subject") == subjectDigest.encode()
    return digestOf(payload), payload


@pytest_twisted.ensureDeferred
async def test_referrers(client):
    subject, subjectPayload = await pushImage(client, "a", tag="v1")
    sig, sigPayload = await pushReferrer(
        client, "a", subject, subjectPayload, "application/vnd.example.sig", b"1", {"org.example.k": "v"}
    )
    sbom, sbomPayload = await pushReferrer(client, "a", subject, subjectPayload, "application/vnd.example.sbom", b"2")
    r = await client.request("GET", f"/v2/a/referrers/{subject}")
    assert r.status == 200
    assert r.header("Content-Type") == OCI_INDEX.encode()
    assert r.header("OCI-Filters-Applied") is None
    body = r.json()
    assert (body["schemaVersion"], body["mediaType"]) == (2, OCI_INDEX)
    expected = {
        sig: {
            "mediaType": OCI_MANIFEST,
            "digest": sig,
            "size": len(sigPayload),
            "artifactType": "application/vnd.example.sig",
            "annotations": {"org.example.k": "v"},
        },
        sbom: {
            "mediaType": OCI_MANIFEST,
            "digest": sbom,
            "size": len(sbomPayload),
            "artifactType": "application/vnd.example.sbom",
        },
    }
    assert {d["digest"]: d for d in body["manifests"]} == expected
    r = await client.request("GET", f"/v2/a/referrers/{subject}?artifactType=application/vnd.example.sbom")
    assert r.header("OCI-Filters-Applied") == b"artifactType"
    assert [d["digest"] for d in r.json()["manifests"]] == [sbom]


@pytest_twisted.ensureDeferred
async def test_referrersOfUnknownSubjectAndBadDigest(client):
    r = await client.request("GET", f"/v2/a/referrers/{digestOf(b'nothing')}")
    assert (r.status, r.json()["manifests"]) == (200, [])
    r = await client.request("GET", "/v2/a/referrers/sha256:bad")
    assert (r.status, r.errorCodes) == (400, ["DIGEST_INVALID"])


@pytest_twisted.ensureDeferred
async def test_referrerBeforeSubject(client):
    """OCI 1.1 allows pushing a referrer before its subject exists."""
    ghost = encode({"ghost": True})
    sig, _ = await pushReferrer(client, "a", digestOf(ghost), ghost, "application/vnd.example.sig", b"3")
    r = await client.request("GET", f"/v2/a/referrers/{digestOf(ghost)}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sig]


@pytest_twisted.ensureDeferred
async def test_deletingReferrerRemovesIt(client):
    subject, subjectPayload = await pushImage(client, "a", tag="v1")
    sig, _ = await pushReferrer(client, "a", subject, subjectPayload, "application/vnd.example.sig", b"4")
    r = await client.request("DELETE", f"/v2/a/manifests/{sig}")
    assert r.status == 202
    r = await client.request("GET", f"/v2/a/referrers/{subject}")
    assert r.json()["manifests"] == []


@pytest_twisted.ensureDeferred
async def test_referrersArePerRepository(client):
    subject, subjectPayload = await pushImage(client, "a", tag="v1")
    await pushReferrer(client, "a", subject, subjectPayload, "application/vnd.example.sig", b"5")
    r = await client.request("GET", f"/v2/b/referrers/{subject}")
    assert r.json()["manifests"] == []


@pytest_twisted.ensureDeferred
async def test_fallbackTagReferrersImported(client):
    """
    A root written by a registry without the referrers API keeps referrers in
    an index tagged <alg>-<hex>: they are served by the referrers API.
    """
    subject, subjectPayload = await pushImage(client, "a", tag="v1")
    sig, sigPayload = await pushReferrer(client, "a", subject, subjectPayload, "application/vnd.example.sig", b"6")
    # Forget the index entry, as if another registry had stored the referrer.
    driver = client.registry.driver
    await driver.delete(paths.referrers("a", subject))
    r = await client.request("GET", f"/v2/a/referrers/{subject}")
    assert r.json()["manifests"] == []
    fallback = encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sig,
                    "size": len(sigPayload),
                    "artifactType": "application/vnd.example.sig",
                }
            ],
        }
    )
    await putManifest(client, "a", f"sha256-{subject.split(':')[1]}", fallback, OCI_INDEX)
    r = await client.request("GET", f"/v2/a/referrers/{subject}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sig]
    # Imported for good: the fallback tag may go.
    await client.request("DELETE", f"/v2/a/manifests/sha256-{subject.split(':')[1]}")
    r = await client.request("GET", f"/v2/a/referrers/{subject}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sig]


# Consistency


@pytest_twisted.ensureDeferred
async def test_tagUpdateNeverTorn(client):
    """A GET during tag updates sees the old or the new manifest, never an error."""
    one, payloadOne = await pushImage(client, "c", tag="t", seed=b"one")
    two, payloadTwo = await pushImage(client, "c", seed=b"two")
    results = []

    async def reader():
        for _ in range(30):
            r = await client.request("GET", "/v2/c/manifests/t", headers={"Accept": OCI_MANIFEST})
            results.append((r.status, r.body))

    async def writer():
        for i in range(15):
            await putManifest(client, "c", "t", payloadTwo if i % 2 == 0 else payloadOne, OCI_MANIFEST)

    await gatherResults([Deferred.fromCoroutine(reader()), Deferred.fromCoroutine(writer())])
    assert len(results) == 30
    for status, body in results:
        assert status == 200
        assert body in (payloadOne, payloadTwo)


@pytest_twisted.ensureDeferred
async def test_concurrentTagPutsOneWinner(client):
    payloads = []
    for i in range(6):
        _, payload = await pushImage(client, "c", seed=str(i).encode())
        payloads.append(payload)
    await gatherResults(
        [Deferred.fromCoroutine(putManifest(client, "c", "race", p, OCI_MANIFEST)) for p in payloads]
    )
    r = await client.request("GET", "/v2/c/manifests/race", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200
    assert r.body in payloads
    winner = digestOf(r.body)
    # Lookup by digest agrees: the winner is found.
    assert await client.registry.repository("c").tags.lookup(winner) == ["race"]
    # A tag is its current link alone: no history index as Distribution keeps.
    assert await client.registry.driver.list(paths.tag("c", "race")) == [paths.tag("c", "race") + "/current"]


@given(st.lists(st.text(alphabet="abcABC_.-09", max_size=6)))
def test_sortedLexicallyIsTheLexicalOrder(names):
    """The two-pass sort the tag lists use gives exactly the spec's order (lexicalKey)."""
    assert sortedLexically(names) == sorted(names, key=lexicalKey)
