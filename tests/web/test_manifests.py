"""
The manifest routes, point by point after shared/reference/manifest-semantics.md
(section and step named in each test's docstring), then OCI 1.1.
"""

import json

import pytest
import pytest_twisted

from registryd.manifest import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.support import configWith, digestOf, makeClient, pushBlob
from tests.web.manifestkit import (
    ALL_TYPES,
    descriptor,
    encode,
    imageManifest,
    index,
    pushImage,
    putManifest,
)


async def withClient(setup, config, test):
    client = await makeClient(setup, config)
    try:
        await test(client)
    finally:
        await client.close()


# Dispatch


@pytest_twisted.ensureDeferred
async def test_referenceIsDigestOrTag(client):
    """Dispatch: a reference that parses as a digest is one; anything else a tag."""
    digest, payload = await pushImage(client, "a", tag="v1")
    for reference in ("v1", digest):
        r = await client.request("GET", f"/v2/a/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert (r.status, r.body) == (200, payload)


@pytest.mark.parametrize("setup", ["stub", "filesystem"])
@pytest_twisted.ensureDeferred
async def test_readOnlyStillServesGets(setup):
    """Dispatch: read-only refuses PUT and DELETE (405 UNSUPPORTED) but serves GET/HEAD."""

    async def test(client):
        r = await client.request("PUT", "/v2/a/manifests/v1", body=b"{}", headers={"Content-Type": OCI_MANIFEST})
        assert (r.status, r.errorCodes) == (405, ["UNSUPPORTED"])
        r = await client.request("DELETE", "/v2/a/manifests/v1")
        assert (r.status, r.errorCodes) == (405, ["UNSUPPORTED"])
        r = await client.request("GET", "/v2/a/manifests/v1")
        assert (r.status, r.errorCodes) == (404, ["MANIFEST_UNKNOWN"])

    await withClient(setup, configWith(readonly=True), test)


# GET / HEAD


@pytest.mark.parametrize(
    "accept",
    [
        OCI_MANIFEST,
        f"{OCI_MANIFEST};q=0.1",
        f"text/html, {OCI_MANIFEST}",
        [DOCKER_MANIFEST, OCI_MANIFEST],
        [f"garbage;;, {OCI_MANIFEST}"],
        ["application/json", f"{DOCKER_LIST},{OCI_MANIFEST}; q=0.9"],
    ],
)
@pytest_twisted.ensureDeferred
async def test_acceptNegotiation(client, accept):
    """GET 1: every Accept header counts, split on commas, parameters ignored."""
    digest, payload = await pushImage(client, "a", tag="v1")
    r = await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": accept})
    assert (r.status, r.body) == (200, payload)


@pytest_twisted.ensureDeferred
async def test_unknownTag(client):
    """GET 2: an unknown tag is 404 MANIFEST_UNKNOWN."""
    await pushImage(client, "a", tag="v1")
    for method in ("GET", "HEAD"):
        r = await client.request(method, "/v2/a/manifests/v2", headers={"Accept": ALL_TYPES})
        assert r.status == 404
    r = await client.request("GET", "/v2/a/manifests/v2", headers={"Accept": ALL_TYPES})
    assert r.errorCodes == ["MANIFEST_UNKNOWN"]


@pytest_twisted.ensureDeferred
async def test_ifNoneMatch(client):
    """GET 3: If-None-Match with the digest, quoted or not, is 304 without a body."""
    digest, _ = await pushImage(client, "a", tag="v1")
    for value in (digest, f'"{digest}"'):
        for reference in ("v1", digest):
            r = await client.request(
                "GET", f"/v2/a/manifests/{reference}", headers={"If-None-Match": value, "Accept": OCI_MANIFEST}
            )
            assert (r.status, r.body) == (304, b"")
    r = await client.request("GET", "/v2/a/manifests/v1", headers={"If-None-Match": '"sha256:other"', "Accept": OCI_MANIFEST})
    assert r.status == 200


@pytest_twisted.ensureDeferred
async def test_unknownDigest(client):
    """GET 4: an unknown revision is 404 MANIFEST_UNKNOWN."""
    r = await client.request("GET", f"/v2/a/manifests/{digestOf(b'nothing')}", headers={"Accept": ALL_TYPES})
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_UNKNOWN"])


@pytest_twisted.ensureDeferred
async def test_manifestInOtherRepositoryIsUnknown(client):
    digest, _ = await pushImage(client, "a", tag="v1")
    r = await client.request("GET", f"/v2/b/manifests/{digest}", headers={"Accept": ALL_TYPES})
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_UNKNOWN"])


@pytest_twisted.ensureDeferred
async def test_ociManifestGating(client):
    """GET 5: an OCI manifest only for clients that accept OCI manifests."""
    digest, payload = await pushImage(client, "a", tag="v1")
    for accept in (DOCKER_MANIFEST, f"{OCI_INDEX}, {DOCKER_LIST}", "text/html"):
        r = await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": accept})
        assert r.status == 404
        assert r.errorCodes == ["MANIFEST_UNKNOWN"]
        assert r.json()["errors"][0]["message"] == "OCI manifest found, but accept header does not support OCI manifests"


@pytest.mark.parametrize("accept", [None, "*/*", "application/*", "text/plain, */*;q=0.1"])
@pytest_twisted.ensureDeferred
async def test_noAcceptMeansEverything(client, accept):
    """
    Beyond Distribution: without an Accept header, or with a wildcard, every
    type is accepted (the spec: a GET "MUST provide the expected manifest").
    """
    digest, payload = await pushImage(client, "a", tag="v1")
    r = await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": accept} if accept else {})
    assert (r.status, r.body) == (200, payload)
    await pushDockerList(client, [("amd64", "linux")])
    r = await client.request("GET", "/v2/d/manifests/list", headers={"Accept": accept} if accept else {})
    assert r.header("Content-Type") == DOCKER_LIST.encode()


@pytest_twisted.ensureDeferred
async def test_ociIndexGating(client):
    """GET 5: an OCI index only for clients that accept OCI indexes."""
    child, childPayload = await pushImage(client, "a")
    payload = index([(childPayload, OCI_MANIFEST, {"architecture": "amd64", "os": "linux"})])
    await putManifest(client, "a", "multi", payload, OCI_INDEX)
    r = await client.request("GET", "/v2/a/manifests/multi", headers={"Accept": OCI_MANIFEST})
    assert r.status == 404
    assert r.json()["errors"][0]["message"] == "OCI index found, but accept header does not support OCI indexes"
    r = await client.request("GET", "/v2/a/manifests/multi", headers={"Accept": OCI_INDEX})
    assert (r.status, r.body) == (200, payload)
    assert r.header("Content-Type") == OCI_INDEX.encode()


async def pushDockerList(client, platforms):
    entries = []
    digests = {}
    for arch, os in platforms:
        digest, payload = await pushImage(client, "d", mediaType=DOCKER_MANIFEST, seed=arch.encode())
        entries.append((payload, DOCKER_MANIFEST, {"architecture": arch, "os": os}))
        digests[(arch, os)] = (digest, payload)
    payload = index(entries, DOCKER_LIST)
    await putManifest(client, "d", "list", payload, DOCKER_LIST)
    return digestOf(payload), payload, digests


@pytest_twisted.ensureDeferred
async def test_dockerListFallbackToAmd64ByTag(client):
    """GET 5: a Docker list fetched by tag by a client without list support gets linux/amd64."""
    listDigest, listPayload, digests = await pushDockerList(client, [("arm64", "linux"), ("amd64", "linux")])
    amd64Digest, amd64Payload = digests[("amd64", "linux")]
    r = await client.request("GET", "/v2/d/manifests/list", headers={"Accept": DOCKER_MANIFEST})
    assert (r.status, r.body) == (200, amd64Payload)
    assert r.header("Docker-Content-Digest") == amd64Digest.encode()
    assert r.header("Content-Type") == DOCKER_MANIFEST.encode()
    # With list support: the list itself.
    r = await client.request("GET", "/v2/d/manifests/list", headers={"Accept": f"{DOCKER_LIST}, {DOCKER_MANIFEST}"})
    assert (r.body, r.header("Docker-Content-Digest")) == (listPayload, listDigest.encode())
    # By digest there is no rewriting.
    r = await client.request("GET", f"/v2/d/manifests/{listDigest}", headers={"Accept": DOCKER_MANIFEST})
    assert r.body == listPayload


@pytest_twisted.ensureDeferred
async def test_dockerListFallbackNeedsSchema2Support(client):
    """GET 5: ... and 400 MANIFEST_INVALID when the client accepts schema 2 neither."""
    await pushDockerList(client, [("amd64", "linux")])
    r = await client.request("GET", "/v2/d/manifests/list", headers={"Accept": OCI_MANIFEST})
    assert (r.status, r.errorCodes) == (400, ["MANIFEST_INVALID"])
    assert r.json()["errors"][0]["message"] == "Schema 2 manifest not supported by client"


@pytest_twisted.ensureDeferred
async def test_dockerListWithoutAmd64(client):
    """GET 5: ... and 404 MANIFEST_UNKNOWN when there is no linux/amd64 entry."""
    await pushDockerList(client, [("arm64", "linux"), ("amd64", "windows")])
    r = await client.request("GET", "/v2/d/manifests/list", headers={"Accept": DOCKER_MANIFEST})
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_UNKNOWN"])


@pytest_twisted.ensureDeferred
async def test_schema2ServedWhateverAccept(client):
    """GET 5: a Docker schema-2 manifest is served whatever the Accept header says."""
    digest, payload = await pushImage(client, "a", tag="s2", mediaType=DOCKER_MANIFEST)
    for headers in ({}, {"Accept": OCI_MANIFEST}, {"Accept": "text/plain"}):
        r = await client.request("GET", "/v2/a/manifests/s2", headers=headers)
        assert (r.status, r.body) == (200, payload)


@pytest_twisted.ensureDeferred
async def test_responseHeadersAndExactBytes(client):
    """GET 6: Content-Type, Content-Length, Docker-Content-Digest, ETag; exact bytes; HEAD no body."""
    digest, payload = await pushImage(client, "a", tag="v1")
    assert b"\n   " in payload  # the odd spacing survives
    r = await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.body == payload
    assert digestOf(r.body) == digest
    assert r.header("Content-Type") == OCI_MANIFEST.encode()
    assert r.length == len(payload)
    assert r.header("Docker-Content-Digest") == digest.encode()
    assert r.header("ETag") == f'"{digest}"'.encode()
    r = await client.request("HEAD", "/v2/a/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert (r.status, r.body) == (200, b"")
    assert r.header("Docker-Content-Digest") == digest.encode()
    assert r.header("Content-Type") == OCI_MANIFEST.encode()
    if client.seesHeadLength:
        assert r.length == len(payload)


# PUT


@pytest_twisted.ensureDeferred
async def test_putTooLarge(client):
    """PUT 1: a body over 4 MiB is MANIFEST_INVALID, with the spec's 413 (Distribution: 400)."""
    config = b"{}"
    await pushBlob(client, "a", config)
    payload = imageManifest(config, [], annotations={"pad": "x" * (4 * 1024 * 1024)})
    r = await client.request("PUT", "/v2/a/manifests/big", headers={"Content-Type": OCI_MANIFEST}, body=payload)
    assert (r.status, r.errorCodes) == (413, ["MANIFEST_INVALID"])
    r = await client.request("GET", "/v2/a/manifests/big", headers={"Accept": OCI_MANIFEST})
    assert r.status == 404


@pytest.mark.parametrize(
    "body, contentType, words",
    [
        (b"not json", OCI_MANIFEST, "JSON"),
        (b'{"schemaVersion": 1, "fsLayers": []}', "application/vnd.docker.distribution.manifest.v1+json", "schema 1"),
        (b'{"schemaVersion": 3, "mediaType": "%s", "config": {}, "layers": []}' % OCI_MANIFEST.encode(), OCI_MANIFEST, "schemaVersion"),
        (b'{"schemaVersion": 2, "mediaType": "%s", "layers": []}' % OCI_MANIFEST.encode(), OCI_MANIFEST, "config"),
        (b'{"schemaVersion": 2, "mediaType": "%s", "manifests": []}' % OCI_INDEX.encode(), OCI_MANIFEST, "Content-Type"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_putInvalidManifest(client, body, contentType, words):
    """PUT 2: a manifest that does not parse is 400 MANIFEST_INVALID with the reason."""
    r = await client.request("PUT", "/v2/a/manifests/bad", headers={"Content-Type": contentType}, body=body)
    assert (r.status, r.errorCodes) == (400, ["MANIFEST_INVALID"])
    assert words.lower() in json.dumps(r.json()).lower()


@pytest_twisted.ensureDeferred
async def test_putByDigest(client):
    """PUT 3: by digest the bytes must match the reference, else DIGEST_INVALID."""
    config = b'{"c":1}'
    await pushBlob(client, "a", config)
    payload = imageManifest(config, [])
    r = await putManifest(client, "a", digestOf(payload), payload, OCI_MANIFEST)
    assert r.header("Docker-Content-Digest") == digestOf(payload).encode()
    r = await client.request(
        "PUT", f"/v2/a/manifests/{digestOf(b'other')}", headers={"Content-Type": OCI_MANIFEST}, body=payload + b" "
    )
    assert (r.status, r.errorCodes) == (400, ["DIGEST_INVALID"])
    r = await client.request("GET", f"/v2/a/manifests/{digestOf(payload + b' ')}", headers={"Accept": OCI_MANIFEST})
    assert r.status == 404


@pytest_twisted.ensureDeferred
async def test_putBySha512Digest(client):
    config = b'{"c":512}'
    await pushBlob(client, "a", config)
    payload = imageManifest(config, [])
    digest = digestOf(payload, "sha512")
    r = await putManifest(client, "a", digest, payload, OCI_MANIFEST)
    assert r.header("Docker-Content-Digest") == digest.encode()
    r = await client.request("GET", f"/v2/a/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    assert (r.status, r.body) == (200, payload)


@pytest.mark.parametrize("tag", ["-bad", ".hidden", "a" * 129, "with%20space", "t@g"])
@pytest_twisted.ensureDeferred
async def test_invalidTag(client, tag):
    r = await client.request("PUT", f"/v2/a/manifests/{tag}", headers={"Content-Type": OCI_MANIFEST}, body=b"{}")
    assert (r.status, r.errorCodes) == (400, ["TAG_INVALID"])


@pytest_twisted.ensureDeferred
async def test_validTagEdges(client):
    for tag in ("_underscore", "A", "a" * 128, "v1.2.3-rc_4"):
        await pushImage(client, "a", tag=tag)
        r = await client.request("HEAD", f"/v2/a/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200


@pytest.mark.parametrize("setup", ["stub", "memory"])
@pytest_twisted.ensureDeferred
async def test_resourcePolicy(setup):
    """PUT 4: policy.repository.classes allows manifest classes."""

    async def test(client):
        # schema 2 with the image config: class image, allowed
        await pushImage(client, "a", tag="img", mediaType=DOCKER_MANIFEST)
        # plugin config: class plugin, not allowed
        r = await pushExpecting(client, DOCKER_MANIFEST, "application/vnd.docker.plugin.v1+json")
        assert (r.status, r.errorCodes) == (403, ["DENIED"])
        assert r.json()["errors"][0]["message"] == "registry does not allow plugin manifest"
        # an unknown config type: unknown class
        r = await pushExpecting(client, DOCKER_MANIFEST, "application/x-something")
        assert r.json()["errors"][0]["message"] == "unknown manifest class for application/x-something"
        # OCI: only the image config is class image
        await pushImage(client, "a", tag="oci")
        r = await pushExpecting(client, OCI_MANIFEST, "application/vnd.example.config+json")
        assert (r.status, r.errorCodes) == (403, ["DENIED"])

    await withClient(setup, configWith(classes=["image"]), test)


async def pushExpecting(client, mediaType, configType):
    config = b'{"policy": "%s"}' % configType.encode()
    await pushBlob(client, "a", config)
    payload = imageManifest(config, [], mediaType, configType)
    return await client.request("PUT", "/v2/a/manifests/x", headers={"Content-Type": mediaType}, body=payload)


@pytest_twisted.ensureDeferred
async def test_noPolicyAllowsArtifacts(client):
    """PUT 4: an empty class list allows all, OCI artifacts included."""
    digest, _ = await pushImage(client, "a", tag="art", configType="application/vnd.example.config+json")
    r = await client.request("HEAD", "/v2/a/manifests/art", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200


@pytest_twisted.ensureDeferred
async def test_authorizedResourceClasses():
    """PUT 4: authorized resources naming the repository with other classes only: DENIED."""
    from collections import namedtuple

    from treq.testing import StubTreq

    from registryd.driver.memory import MemoryDriver
    from registryd.storage.registry import Registry
    from registryd.web.api import RegistryAPI
    from tests.support import StubClient

    Resource = namedtuple("Resource", "name resourceClass")
    resources = {"plugins-only": [Resource("plugins-only", "plugin")], "open": [Resource("open", "")]}
    registry = Registry(MemoryDriver())
    api = RegistryAPI(
        registry,
        repositoryClasses=("image", "plugin"),
        resources=lambda request: resources.get(request.path.decode().split("/")[2], ()),
    )
    client = StubClient.__new__(StubClient)
    client._stub = StubTreq(api.resource())
    client.url = "http://registry.test"
    for name, expected in (("plugins-only", 403), ("open", 201)):
        config = b'{"arch":"amd64"}'
        await pushBlob(client, name, config)
        payload = imageManifest(config, [], DOCKER_MANIFEST)
        r = await client.request("PUT", f"/v2/{name}/manifests/t", headers={"Content-Type": DOCKER_MANIFEST}, body=payload)
        assert r.status == expected, r.body
    assert r.status == 201
    r = await client.request("PUT", "/v2/plugins-only/manifests/t", headers={"Content-Type": DOCKER_MANIFEST}, body=payload)
    assert r.json()["errors"][0]["message"] == "repository not authorized for image manifest"


@pytest_twisted.ensureDeferred
async def test_missingBlob(client):
    """PUT 5: a referenced blob not in the repository is MANIFEST_BLOB_UNKNOWN with its digest."""
    config, layer = b'{"c":2}', b"missing layer"
    await pushBlob(client, "a", config)
    await pushBlob(client, "elsewhere", layer)  # in the registry, not in this repository
    payload = imageManifest(config, [layer])
    r = await client.request("PUT", "/v2/a/manifests/v1", headers={"Content-Type": OCI_MANIFEST}, body=payload)
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_BLOB_UNKNOWN"])
    assert r.json()["errors"][0]["detail"]["digest"] == digestOf(layer)
    r = await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status == 404


@pytest_twisted.ensureDeferred
async def test_missingConfig(client):
    payload = imageManifest(b'{"never":"pushed"}', [])
    r = await client.request("PUT", "/v2/a/manifests/v1", headers={"Content-Type": OCI_MANIFEST}, body=payload)
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_BLOB_UNKNOWN"])
    assert r.json()["errors"][0]["detail"]["digest"] == digestOf(b'{"never":"pushed"}')


@pytest_twisted.ensureDeferred
async def test_indexNeedsItsManifests(client):
    """PUT 5: every manifest an index references must be in the repository."""
    _, child = await pushImage(client, "other")
    payload = index([(child, OCI_MANIFEST, None)])
    r = await client.request("PUT", "/v2/a/manifests/idx", headers={"Content-Type": OCI_INDEX}, body=payload)
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_BLOB_UNKNOWN"])
    assert r.json()["errors"][0]["detail"]["digest"] == digestOf(child)
    await pushImage(client, "a")
    await putManifest(client, "a", "idx", payload, OCI_INDEX)


def foreignManifest(config, url):
    layer = descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", b"foreign", urls=[url])
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [layer],
        }
    )


@pytest.mark.parametrize(
    "options, url, allowed",
    [
        ({}, "https://example.com/layer", False),
        ({"urlsAllow": [r"^https://example\.com/"]}, "https://example.com/layer", True),
        ({"urlsAllow": [r"^https://example\.com/"]}, "https://evil.com/layer", False),
        ({"urlsAllow": [r"^https://"], "urlsDeny": [r"evil"]}, "https://evil.com/layer", False),
        ({"urlsDeny": [r"evil"]}, "https://fine.com/layer", True),
        ({"urlsAllow": [r".*"]}, "ftp://example.com/layer", False),
        ({"validationDisabled": True}, "https://anything.example/layer", True),
    ],
)
@pytest_twisted.ensureDeferred
async def test_foreignLayers(options, url, allowed):
    """PUT 5: layers with urls are checked against validation.manifests.urls, not for presence."""

    async def test(client):
        config = b'{"foreign": 1}'
        await pushBlob(client, "a", config)
        payload = foreignManifest(config, url)
        r = await client.request("PUT", "/v2/a/manifests/f", headers={"Content-Type": OCI_MANIFEST}, body=payload)
        if allowed:
            assert r.status == 201, r.body
        else:
            assert (r.status, r.errorCodes) == (404, ["MANIFEST_BLOB_UNKNOWN"])

    await withClient("stub", configWith(**options), test)


@pytest_twisted.ensureDeferred
async def test_tagMovesToNewDigest(client):
    """PUT 6 and 7: by tag, the tag points at the new digest; 201 with Location and digest."""
    first, _ = await pushImage(client, "a", tag="latest", seed=b"1")
    config = b'{"seed":"2"}'
    await pushBlob(client, "a", config)
    payload = imageManifest(config, [])
    r = await putManifest(client, "a", "latest", payload, OCI_MANIFEST)
    second = digestOf(payload)
    assert r.header("Docker-Content-Digest") == second.encode()
    assert r.header("Location").decode().endswith(f"/v2/a/manifests/{second}")
    r = await client.request("GET", "/v2/a/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert (r.body, r.header("Docker-Content-Digest")) == (payload, second.encode())
    # The old manifest is still there by digest.
    r = await client.request("GET", f"/v2/a/manifests/{first}", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200


# DELETE


@pytest_twisted.ensureDeferred
async def test_deleteByTag(client):
    """DELETE 2: by tag only the tag goes; unknown tag 404 MANIFEST_UNKNOWN."""
    digest, _ = await pushImage(client, "a", tag="v1")
    r = await client.request("DELETE", "/v2/a/manifests/v1")
    assert r.status == 202
    r = await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status == 404
    r = await client.request("GET", f"/v2/a/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200
    r = await client.request("DELETE", "/v2/a/manifests/v1")
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_UNKNOWN"])


@pytest_twisted.ensureDeferred
async def test_deleteByDigestRemovesTags(client):
    """DELETE 3: by digest the manifest goes, and every tag pointing to it."""
    digest, _ = await pushImage(client, "a", tag="v1")
    await putManifest(client, "a", "v1-alias", (await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": OCI_MANIFEST})).body, OCI_MANIFEST)
    other, _ = await pushImage(client, "a", tag="other", seed=b"x")
    r = await client.request("DELETE", f"/v2/a/manifests/{digest}")
    assert r.status == 202
    for reference in (digest, "v1", "v1-alias"):
        r = await client.request("GET", f"/v2/a/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert (r.status, r.errorCodes) == (404, ["MANIFEST_UNKNOWN"])
    r = await client.request("GET", "/v2/a/tags/list")
    assert r.json()["tags"] == ["other"]
    r = await client.request("DELETE", f"/v2/a/manifests/{digest}")
    assert (r.status, r.errorCodes) == (404, ["MANIFEST_UNKNOWN"])
    r = await client.request("DELETE", "/v2/a/manifests/sha256:nothex")
    assert (r.status, r.errorCodes) == (400, ["DIGEST_INVALID"])


@pytest.mark.parametrize("setup", ["stub", "filesystem"])
@pytest_twisted.ensureDeferred
async def test_deleteDisabled(setup):
    """
    DELETE 3: deletes disabled is 405 UNSUPPORTED, for tags too (the spec
    requires 400 or 405 for tag deletion; Distribution untags regardless).
    """

    async def test(client):
        digest, _ = await pushImage(client, "a", tag="v1")
        r = await client.request("DELETE", f"/v2/a/manifests/{digest}")
        assert (r.status, r.errorCodes) == (405, ["UNSUPPORTED"])
        r = await client.request("GET", f"/v2/a/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200
        r = await client.request("DELETE", "/v2/a/manifests/v1")
        assert (r.status, r.errorCodes) == (405, ["UNSUPPORTED"])
        r = await client.request("GET", "/v2/a/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200

    await withClient(setup, configWith(deleteEnabled=False), test)
