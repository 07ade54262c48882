"""Upload sessions: POST/PATCH/PUT/GET/DELETE /v2/<name>/blobs/uploads/..."""

import os
from urllib.parse import urlsplit

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from tests.support import digestOf, makeClient, pushBlob

DATA = os.urandom(300_000)
UUID = "0b8d0e1a-5b1b-4b8e-9d5e-1a2b3c4d5e6f"


def pathOf(location):
    parts = urlsplit(location.decode())
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def startSession(client, name="a"):
    r = await client.request("POST", f"/v2/{name}/blobs/uploads/")
    assert r.status == 202, r.body
    return pathOf(r.header("Location"))


@pytest_twisted.ensureDeferred
async def test_startSession(client):
    r = await client.request("POST", "/v2/lib/app/blobs/uploads/")
    assert r.status == 202
    uuid = r.header("Docker-Upload-UUID").decode()
    assert pathOf(r.header("Location")) == f"/v2/lib/app/blobs/uploads/{uuid}"
    assert r.header("Range") == b"0-0"
    assert r.length == 0


@pytest_twisted.ensureDeferred
async def test_monolithicPost(client):
    digest = digestOf(DATA)
    r = await client.request("POST", f"/v2/a/blobs/uploads/?digest={digest}", body=DATA)
    assert r.status == 201
    assert pathOf(r.header("Location")) == f"/v2/a/blobs/{digest}"
    assert r.header("Docker-Content-Digest") == digest.encode()
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert r.body == DATA


@pytest_twisted.ensureDeferred
async def test_monolithicPut(client):
    location = await startSession(client)
    digest = digestOf(DATA)
    r = await client.request("PUT", f"{location}?digest={digest}", body=DATA)
    assert r.status == 201, r.body
    assert pathOf(r.header("Location")) == f"/v2/a/blobs/{digest}"
    assert r.header("Docker-Content-Digest") == digest.encode()
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert r.body == DATA


@pytest_twisted.ensureDeferred
async def test_chunkedUpload(client):
    location = await startSession(client)
    chunks = [DATA[:100_000], DATA[100_000:250_000], DATA[250_000:]]
    offset = 0
    for chunk in chunks[:2]:
        end = offset + len(chunk) - 1
        r = await client.request(
            "PATCH",
            location,
            headers={"Content-Range": f"{offset}-{end}", "Content-Type": "application/octet-stream"},
            body=chunk,
        )
        assert r.status == 202, r.body
        assert r.header("Range") == f"0-{end}".encode()
        uuid = r.header("Docker-Upload-UUID").decode()
        assert location.endswith(uuid)
        location = pathOf(r.header("Location"))
        offset += len(chunk)
    r = await client.request("GET", location)
    assert r.status == 204
    assert r.header("Range") == f"0-{offset - 1}".encode()
    assert r.header("Docker-Upload-UUID") == uuid.encode()
    digest = digestOf(DATA)
    r = await client.request(
        "PUT",
        f"{location}?digest={digest}",
        headers={"Content-Range": f"{offset}-{len(DATA) - 1}"},
        body=chunks[2],
    )
    assert r.status == 201, r.body
    assert r.header("Docker-Content-Digest") == digest.encode()
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert r.body == DATA
    # A finished session is gone.
    r = await client.request("GET", location)
    assert r.status == 404
    assert r.errorCodes == ["BLOB_UPLOAD_UNKNOWN"]


@pytest_twisted.ensureDeferred
async def test_streamedPatchWithoutContentRange(client):
    location = await startSession(client)
    for part in (DATA[:123_456], DATA[123_456:]):
        r = await client.request("PATCH", location, body=part)
        assert r.status == 202
    assert r.header("Range") == f"0-{len(DATA) - 1}".encode()
    digest = digestOf(DATA)
    r = await client.request("PUT", f"{location}?digest={digest}")
    assert r.status == 201
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert r.body == DATA


@pytest_twisted.ensureDeferred
async def test_outOfOrderChunk(client):
    location = await startSession(client)
    r = await client.request("PATCH", location, headers={"Content-Range": "0-9"}, body=DATA[:10])
    assert r.status == 202
    for badRange in ("20-29", "0-9", "5-14"):
        r = await client.request(
            "PATCH", location, headers={"Content-Range": badRange}, body=DATA[10:20]
        )
        assert r.status == 416, badRange
        assert r.header("Range") == b"0-9"
        assert r.errorCodes == ["BLOB_UPLOAD_INVALID"]
    # Nothing of the refused chunks was stored.
    r = await client.request("GET", location)
    assert r.header("Range") == b"0-9"


@pytest_twisted.ensureDeferred
async def test_contentLengthDisagreesWithContentRange(client):
    location = await startSession(client)
    r = await client.request("PATCH", location, headers={"Content-Range": "0-99"}, body=DATA[:50])
    assert r.status == 400
    assert r.errorCodes == ["SIZE_INVALID"]
    r = await client.request("GET", location)
    assert r.header("Range") == b"0-0"


@pytest.mark.parametrize("badRange", ["abc", "0-", "-5", "bytes 1-2/3", "9-3x"])
@pytest_twisted.ensureDeferred
async def test_malformedContentRange(client, badRange):
    location = await startSession(client)
    r = await client.request("PATCH", location, headers={"Content-Range": badRange}, body=b"xyz")
    assert r.status == 400
    assert r.errorCodes == ["BLOB_UPLOAD_INVALID"]


@pytest_twisted.ensureDeferred
async def test_digestMismatchStoresNothing(client):
    location = await startSession(client)
    r = await client.request("PATCH", location, body=DATA)
    assert r.status == 202
    claimed = digestOf(b"something else")
    r = await client.request("PUT", f"{location}?digest={claimed}")
    assert r.status == 400
    assert r.errorCodes == ["DIGEST_INVALID"]
    for digest in (claimed, digestOf(DATA)):
        r = await client.request("HEAD", f"/v2/a/blobs/{digest}")
        assert r.status == 404
    # The session was cancelled with it.
    r = await client.request("GET", location)
    assert r.errorCodes == ["BLOB_UPLOAD_UNKNOWN"]


@pytest_twisted.ensureDeferred
async def test_monolithicDigestMismatch(client):
    claimed = digestOf(b"other")
    r = await client.request("POST", f"/v2/a/blobs/uploads/?digest={claimed}", body=DATA)
    assert r.status == 400
    assert r.errorCodes == ["DIGEST_INVALID"]
    r = await client.request("HEAD", f"/v2/a/blobs/{digestOf(DATA)}")
    assert r.status == 404


@pytest_twisted.ensureDeferred
async def test_sha512Completion(client):
    location = await startSession(client)
    await client.request("PATCH", location, body=DATA)
    digest = digestOf(DATA, "sha512")
    r = await client.request("PUT", f"{location}?digest={digest}")
    assert r.status == 201
    r = await client.request("GET", f"/v2/a/blobs/{digest}")
    assert r.body == DATA


@pytest_twisted.ensureDeferred
async def test_putWithoutDigest(client):
    location = await startSession(client)
    r = await client.request("PUT", location, body=DATA)
    assert r.status == 400
    assert r.errorCodes == ["DIGEST_INVALID"]
    for bad in ("sha256:zz", "md5:abc", ""):
        r = await client.request("PUT", f"{location}?digest={bad}", body=DATA)
        assert r.status == 400
        assert r.errorCodes == ["DIGEST_INVALID"]
    # The session survives a refused completion.
    r = await client.request("GET", location)
    assert r.status == 204


@pytest_twisted.ensureDeferred
async def test_cancel(client):
    location = await startSession(client)
    await client.request("PATCH", location, body=DATA[:1000])
    r = await client.request("DELETE", location)
    assert r.status == 204
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, location, body=b"x" if method == "PATCH" else b"")
        assert r.status == 404
        assert r.errorCodes == ["BLOB_UPLOAD_UNKNOWN"]
    r = await client.request("PUT", f"{location}?digest={digestOf(DATA[:1000])}")
    assert r.errorCodes == ["BLOB_UPLOAD_UNKNOWN"]


@pytest.mark.parametrize(
    "uploadID",
    [UUID, "..", "%2e%2e", "..%2f..%2f..%2fetc", "a%00b", "x" * 300, "%2fetc%2fpasswd", "0B8D0E1A-5B1B-4B8E-9D5E-1A2B3C4D5E6F"],
)
@pytest_twisted.ensureDeferred
async def test_unknownOrHostileUploadIDs(client, uploadID):
    path = f"/v2/a/blobs/uploads/{uploadID}"
    for method, extra in [("GET", ""), ("PATCH", ""), ("PUT", f"?digest={digestOf(b'x')}"), ("DELETE", "")]:
        r = await client.request(method, path + extra, body=b"x" if method in ("PATCH", "PUT") else b"")
        assert r.status == 404, (method, r.status, r.body)
        if "%2f" in uploadID:
            # A decoded slash makes it another path, which no route serves.
            assert r.errorCodes in (["BLOB_UPLOAD_UNKNOWN"], ["UNSUPPORTED"])
        else:
            assert r.errorCodes == ["BLOB_UPLOAD_UNKNOWN"]


@pytest_twisted.ensureDeferred
async def test_uploadToAnotherRepositoryIsUnknown(client):
    location = await startSession(client, "a")
    r = await client.request("GET", location.replace("/v2/a/", "/v2/b/"))
    assert r.errorCodes == ["BLOB_UPLOAD_UNKNOWN"]


@pytest_twisted.ensureDeferred
async def test_mountFromRepository(client):
    digest = await pushBlob(client, "source", DATA)
    r = await client.request("POST", f"/v2/target/blobs/uploads/?mount={digest}&from=source")
    assert r.status == 201
    assert pathOf(r.header("Location")) == f"/v2/target/blobs/{digest}"
    assert r.header("Docker-Content-Digest") == digest.encode()
    r = await client.request("GET", f"/v2/target/blobs/{digest}")
    assert r.body == DATA


@pytest_twisted.ensureDeferred
async def test_mountFallsBackToUpload(client):
    digest = await pushBlob(client, "source", DATA)
    r = await client.request("POST", f"/v2/target/blobs/uploads/?mount={digest}&from=elsewhere")
    assert r.status == 202
    assert r.header("Docker-Upload-UUID")
    r = await client.request("HEAD", f"/v2/target/blobs/{digest}")
    assert r.status == 404
    unknown = digestOf(b"nowhere")
    r = await client.request("POST", f"/v2/target/blobs/uploads/?mount={unknown}&from=source")
    assert r.status == 202


@pytest_twisted.ensureDeferred
async def test_mountWithoutFrom(client):
    digest = await pushBlob(client, "source", DATA)
    r = await client.request("POST", f"/v2/target/blobs/uploads/?mount={digest}")
    assert r.status == 201
    r = await client.request("GET", f"/v2/target/blobs/{digest}")
    assert r.body == DATA
    r = await client.request("POST", f"/v2/target/blobs/uploads/?mount={digestOf(b'none')}")
    assert r.status == 202


@pytest_twisted.ensureDeferred
async def test_mountBadArguments(client):
    r = await client.request("POST", "/v2/t/blobs/uploads/?mount=sha256:bad&from=source")
    assert r.status == 400
    assert r.errorCodes == ["DIGEST_INVALID"]
    r = await client.request("POST", f"/v2/t/blobs/uploads/?mount={digestOf(b'x')}&from=Bad/Name")
    assert r.status == 400
    assert r.errorCodes == ["NAME_INVALID"]


@pytest.mark.parametrize("name", ["Bad", "a/../b", "%2e%2e"])
@pytest_twisted.ensureDeferred
async def test_invalidNameOnUploads(client, name):
    for method, path in [
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("PATCH", f"/v2/{name}/blobs/uploads/{UUID}"),
        ("PUT", f"/v2/{name}/blobs/uploads/{UUID}?digest={digestOf(b'x')}"),
        ("GET", f"/v2/{name}/blobs/uploads/{UUID}"),
    ]:
        r = await client.request(method, path, body=b"data" if method != "GET" else b"")
        assert r.status == 400, (method, path)
        assert r.errorCodes == ["NAME_INVALID"]


@pytest_twisted.ensureDeferred
async def test_concurrentPushesOfOneBlob(client):
    """Two clients pushing the same blob at once both succeed; the blob is right."""
    data = os.urandom(2_000_000)
    digest = digestOf(data)

    async def push(name):
        location = await startSession(client, name)
        half = len(data) // 2
        r = await client.request("PATCH", location, body=data[:half])
        assert r.status == 202
        r = await client.request("PUT", f"{location}?digest={digest}", body=data[half:])
        return r.status

    statuses = await gatherResults([Deferred.fromCoroutine(push(n)) for n in ("a", "a", "b")])
    assert statuses == [201, 201, 201]
    for name in ("a", "b"):
        r = await client.request("GET", f"/v2/{name}/blobs/{digest}")
        assert r.body == data


@pytest_twisted.ensureDeferred
async def test_filesystemNothingOutsideRoot(tmp_path):
    """Hostile names, digests and upload ids never touch files beside the root."""
    client = await makeClient("filesystem")
    root = client._running.root
    parent = os.path.dirname(root)
    before = sorted(os.listdir(parent))
    try:
        hostile = ["..", "%2e%2e", "..%2f..", "%00", "%2f" * 3]
        for h in hostile:
            for method, path in [
                ("POST", f"/v2/{h}/blobs/uploads/"),
                ("PATCH", f"/v2/a/blobs/uploads/{h}"),
                ("PUT", f"/v2/a/blobs/uploads/{h}?digest=sha256:{h}"),
                ("DELETE", f"/v2/a/blobs/{h}"),
                ("GET", f"/v2/a/blobs/sha256:..%2f..%2f{h}"),
            ]:
                r = await client.request(method, path, body=b"evil" if method != "GET" else b"")
                assert 400 <= r.status < 500, (method, path, r.status)
        assert sorted(os.listdir(parent)) == before
        top = os.listdir(root)
        assert top in ([], ["docker"])
    finally:
        await client.close()
