"""Reading and deleting blobs: GET/HEAD/DELETE /v2/<name>/blobs/<digest>."""

import os

import pytest
import pytest_twisted

from tests.support import configWith, digestOf, makeClient, pushBlob

BLOB = bytes(range(256)) * 1000  # 256,000 bytes


@pytest_twisted.ensureDeferred
async def test_getReturnsBytesAndHeaders(client):
    digest = await pushBlob(client, "lib/app", BLOB)
    r = await client.request("GET", f"/v2/lib/app/blobs/{digest}")
    assert r.status == 200
    assert r.body == BLOB
    assert digestOf(r.body) == digest
    assert r.header("Content-Length") == str(len(BLOB)).encode()
    assert r.header("Docker-Content-Digest") == digest.encode()
    assert r.header("Content-Type") == b"application/octet-stream"
    assert r.header("ETag") == f'"{digest}"'.encode()
    assert r.header("Accept-Ranges") == b"bytes"
    assert r.header("Docker-Distribution-API-Version") == b"registry/2.0"


@pytest_twisted.ensureDeferred
async def test_headHasHeadersNoBody(client):
    digest = await pushBlob(client, "lib/app", BLOB)
    r = await client.request("HEAD", f"/v2/lib/app/blobs/{digest}")
    assert r.status == 200
    assert r.body == b""
    if client.seesHeadLength:
        assert r.length == len(BLOB)
    assert r.header("Docker-Content-Digest") == digest.encode()


@pytest_twisted.ensureDeferred
async def test_emptyBlob(client):
    digest = await pushBlob(client, "lib/app", b"")
    r = await client.request("GET", f"/v2/lib/app/blobs/{digest}")
    assert (r.status, r.body, r.header("Content-Length")) == (200, b"", b"0")


@pytest.mark.parametrize(
    "rangeHeader, start, end",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=255990-", 255990, 255999),
        ("bytes=-10", 255990, 255999),
        ("bytes=255000-999999", 255000, 255999),
    ],
)
@pytest_twisted.ensureDeferred
async def test_singleRange(client, rangeHeader, start, end):
    digest = await pushBlob(client, "r", BLOB)
    r = await client.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": rangeHeader})
    assert r.status == 206
    assert r.body == BLOB[start : end + 1]
    assert r.header("Content-Range") == f"bytes {start}-{end}/{len(BLOB)}".encode()
    assert r.header("Content-Length") == str(end - start + 1).encode()


@pytest.mark.parametrize("rangeHeader", ["bytes=256000-", "bytes=300000-300010", "bytes=-0", "bytes=10-5"])
@pytest_twisted.ensureDeferred
async def test_unsatisfiableRange(client, rangeHeader):
    digest = await pushBlob(client, "r", BLOB)
    r = await client.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": rangeHeader})
    assert r.status == 416
    assert r.header("Content-Range") == f"bytes */{len(BLOB)}".encode()
    assert r.errorCodes == ["BLOB_UPLOAD_INVALID"]


@pytest.mark.parametrize("rangeHeader", ["bytes=0-1,5-6", "items=0-5", "bytes=abc"])
@pytest_twisted.ensureDeferred
async def test_ignoredRangeServesWholeBlob(client, rangeHeader):
    digest = await pushBlob(client, "r", BLOB)
    r = await client.request("GET", f"/v2/r/blobs/{digest}", headers={"Range": rangeHeader})
    assert (r.status, r.body) == (200, BLOB)


@pytest_twisted.ensureDeferred
async def test_ifNoneMatch(client):
    digest = await pushBlob(client, "r", BLOB)
    for value in (f'"{digest}"', digest):
        r = await client.request("GET", f"/v2/r/blobs/{digest}", headers={"If-None-Match": value})
        assert (r.status, r.body) == (304, b"")
    r = await client.request("GET", f"/v2/r/blobs/{digest}", headers={"If-None-Match": '"other"'})
    assert r.status == 200


@pytest_twisted.ensureDeferred
async def test_blobVisibleOnlyWhereLinked(client):
    digest = await pushBlob(client, "a", BLOB)
    for method in ("GET", "HEAD"):
        r = await client.request(method, f"/v2/b/blobs/{digest}")
        assert r.status == 404
    r = await client.request("GET", f"/v2/b/blobs/{digest}")
    assert r.errorCodes == ["BLOB_UNKNOWN"]
    await pushBlob(client, "b", BLOB)
    r = await client.request("GET", f"/v2/b/blobs/{digest}")
    assert (r.status, r.body) == (200, BLOB)


@pytest_twisted.ensureDeferred
async def test_unknownBlob(client):
    r = await client.request("GET", f"/v2/a/blobs/{digestOf(b'never pushed')}")
    assert r.status == 404
    assert r.errorCodes == ["BLOB_UNKNOWN"]
    assert r.header("Content-Type") == b"application/json"


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:xyz",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256",
        "nodigest",
        "sha512:" + "a" * 64,
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalidDigest(client, digest):
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/v2/a/blobs/{digest}")
        assert r.status == 400, (method, r.body)
        assert r.errorCodes == ["DIGEST_INVALID"]


@pytest_twisted.ensureDeferred
async def test_sha512Blob(client):
    data = b"sha512 content" * 100
    digest = digestOf(data, "sha512")
    r = await client.request("POST", f"/v2/a/blobs/uploads/?digest={digest}", body=data)
    assert r.status == 201, r.body
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert (r.status, r.body) == (200, data)
    assert r.header("Docker-Content-Digest") == digest.encode()


@pytest.mark.parametrize(
    "name",
    ["UPPER", "a/../b", "..", "%2e%2e", "a/%2e%2e/b", "a//b", "-a", "a_", "a%00b", "x" * 256, "a/b/" + "c" * 253],
)
@pytest_twisted.ensureDeferred
async def test_invalidName(client, name):
    digest = digestOf(b"x")
    r = await client.request("GET", f"/v2/{name}/blobs/{digest}")
    assert r.status == 400, r.body
    assert r.errorCodes == ["NAME_INVALID"]


@pytest_twisted.ensureDeferred
async def test_multiComponentNames(client):
    name = "org/team/project/image"
    digest = await pushBlob(client, name, BLOB)
    r = await client.request("GET", f"/v2/{name}/blobs/{digest}")
    assert (r.status, r.body) == (200, BLOB)


@pytest_twisted.ensureDeferred
async def test_deleteUnlinks(client):
    digest = await pushBlob(client, "a", BLOB)
    await pushBlob(client, "b", BLOB)
    r = await client.request("DELETE", f"/v2/a/blobs/{digest}")
    assert r.status == 202
    r = await client.request("HEAD", f"/v2/a/blobs/{digest}")
    assert r.status == 404
    # Only the link went: another repository still has it.
    r = await client.request("GET", f"/v2/b/blobs/{digest}")
    assert (r.status, r.body) == (200, BLOB)
    r = await client.request("DELETE", f"/v2/a/blobs/{digest}")
    assert r.status == 404
    assert r.errorCodes == ["BLOB_UNKNOWN"]


@pytest.mark.parametrize("setup", ["stub", "filesystem"])
@pytest_twisted.ensureDeferred
async def test_deleteDisabled(setup):
    client = await makeClient(setup, configWith(deleteEnabled=False))
    try:
        digest = await pushBlob(client, "a", BLOB)
        r = await client.request("DELETE", f"/v2/a/blobs/{digest}")
        assert r.status == 405
        assert r.errorCodes == ["UNSUPPORTED"]
        r = await client.request("GET", f"/v2/a/blobs/{digest}")
        assert r.status == 200
    finally:
        await client.close()


@pytest.mark.parametrize("setup", ["stub", "filesystem"])
@pytest_twisted.ensureDeferred
async def test_readOnlyRefusesWrites(setup):
    client = await makeClient(setup, configWith(readonly=True))
    try:
        digest = digestOf(BLOB)
        for method, path in [
            ("POST", f"/v2/a/blobs/uploads/?digest={digest}"),
            ("POST", "/v2/a/blobs/uploads/"),
            ("DELETE", f"/v2/a/blobs/{digest}"),
            ("PATCH", "/v2/a/blobs/uploads/0b8d0e1a-5b1b-4b8e-9d5e-1a2b3c4d5e6f"),
            ("PUT", f"/v2/a/blobs/uploads/0b8d0e1a-5b1b-4b8e-9d5e-1a2b3c4d5e6f?digest={digest}"),
            ("PUT", "/v2/a/manifests/latest"),
            ("DELETE", "/v2/a/manifests/latest"),
        ]:
            r = await client.request(method, path, body=BLOB if method != "DELETE" else b"")
            assert r.status == 405, (method, path, r.body)
            assert r.errorCodes == ["UNSUPPORTED"]
        r = await client.request("GET", f"/v2/a/blobs/{digest}")
        assert r.errorCodes == ["BLOB_UNKNOWN"]
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_unknownRouteAndMethod(client):
    r = await client.request("GET", "/v3/whatever")
    assert r.status == 404
    assert r.errorCodes == ["UNSUPPORTED"]
    r = await client.request("POST", f"/v2/a/blobs/{digestOf(b'x')}")
    assert r.status == 405
    assert r.errorCodes == ["UNSUPPORTED"]


@pytest_twisted.ensureDeferred
async def test_filesystemLayoutIsDistributions(tmp_path):
    """The blob and its link sit where CNCF Distribution puts them."""
    client = await makeClient("filesystem")
    try:
        digest = await pushBlob(client, "lib/app", BLOB)
        root = client._running.root
        hexdigest = digest.split(":")[1]
        data = os.path.join(root, "docker/registry/v2/blobs/sha256", hexdigest[:2], hexdigest, "data")
        with open(data, "rb") as f:
            assert f.read() == BLOB
        link = os.path.join(root, "docker/registry/v2/repositories/lib/app/_layers/sha256", hexdigest, "link")
        with open(link, "rb") as f:
            assert f.read() == digest.encode()
        # The finished upload left nothing behind.
        assert os.listdir(os.path.join(root, "docker/registry/v2/repositories/lib/app/_uploads")) == []
    finally:
        await client.close()
