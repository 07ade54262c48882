"""
python-dxf (PyPI C{python-dxf}, 12) against a real C{twistd -n registryd}.

python-dxf's C{push_blob} has no chunk size: given an iterator it sends the
whole blob as ONE C{PUT ...?digest=} with C{Transfer-Encoding: chunked}
(HTTP chunks, not registry chunks), given a file one PUT with a
C{Content-Length}.  It has no public call that sends C{PATCH} requests, so
the registry-level chunked upload (C{PATCH} with C{Content-Range}) is
exercised by the oras-py tests (C{test_oras.py}), not here.

Covered: a 50 MiB blob streamed in 64 KiB HTTP chunks and pulled back
(C{pull_blob}, sha256 compared); cross-repository mount (C{mount_blob});
C{set_alias}/C{get_alias}/C{get_manifest}/C{list_aliases} round-trips with
pagination; C{del_alias}/C{del_blob} with deletes enabled (then 404), and
405 with deletes disabled.
"""

import hashlib
import json
import os

import pytest

from tests.interop.realclients import logged, sha256, startRegistry

pytest.importorskip("dxf", reason="python-dxf (PyPI 'python-dxf') is not installed")
import requests  # noqa: E402
from dxf import DXF  # noqa: E402
from dxf.exceptions import DXFMountFailed  # noqa: E402

pytestmark = pytest.mark.interop

BIG = 50 * 1024 * 1024
PIECE = 64 * 1024
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def registry(tmp_path):
    """A real registryd with deletes enabled, stopped at teardown."""
    process = startRegistry(tmp_path, delete=True)
    yield process
    process.stop()


@pytest.fixture
def readOnlyRegistry(tmp_path):
    """A real registryd with deletes disabled (the default), stopped at teardown."""
    process = startRegistry(tmp_path, name="nodelete")
    yield process
    process.stop()


def dxf(registry, repository):
    return DXF(registry.host, repository, insecure=True, timeout=120)


def pulled(client, digest):
    """The blob's bytes through C{pull_blob} (which checks the digest itself too)."""
    return b"".join(client.pull_blob(digest))


def statusOf(call, *arguments):
    """The HTTP status of the error C{call(*arguments)} raises."""
    with pytest.raises(requests.HTTPError) as raised:
        call(*arguments)
    return raised.value.response.status_code


def test_bigBlobStreamedInHTTPChunksRoundTrips(registry):
    """
    A 50 MiB blob pushed from an iterator of 64 KiB pieces (one PUT,
    chunked transfer encoding) is stored whole: C{blob_size} and a
    C{pull_blob} hashed on the fly agree with what was sent.
    """
    data = os.urandom(BIG)
    digest = sha256(data)
    client = dxf(registry, "interop/big")
    pieces = (data[i : i + PIECE] for i in range(0, BIG, PIECE))
    assert client.push_blob(data=pieces, digest=digest) == digest

    puts = logged(registry, "PUT", "/v2/interop/big/blobs/uploads/")
    assert len(puts) == 1 and puts[0][2] == 201, puts

    assert client.blob_size(digest) == BIG
    chunks, size = client.pull_blob(digest, size=True, chunk_size=1 << 20)
    assert size == BIG
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    assert "sha256:" + hasher.hexdigest() == digest

    # Pushing it again is a HEAD that finds it, no second upload.
    assert client.push_blob(data=iter([b"not read"]), digest=digest) == digest
    assert len(logged(registry, "PUT", "/v2/interop/big/")) == 1


def test_fileBlobAndMountBetweenRepositories(registry, tmp_path):
    """
    A blob pushed from a file into one repository is mounted into another
    (201, no upload) and reads back there with the same bytes; a mount of a
    blob the source does not have is refused (dxf sees no 201).
    """
    data = os.urandom(300 * 1024 + 7)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    source = dxf(registry, "interop/source")
    target = dxf(registry, "interop/team/target")
    digest = source.push_blob(str(path))
    assert digest == sha256(data)
    assert pulled(source, digest) == data

    assert statusOf(target.blob_size, digest) == 404
    assert target.mount_blob("interop/source", digest) == digest
    assert target.blob_size(digest) == len(data)
    assert pulled(target, digest) == data

    missing = sha256(b"nobody pushed this")
    with pytest.raises(DXFMountFailed):
        target.mount_blob("interop/source", missing)
    assert statusOf(target.blob_size, missing) == 404


def test_aliasesRoundTrip(registry):
    """
    C{set_alias} makes a schema 2 manifest over two blobs; C{get_alias},
    C{get_manifest}, C{get_digest} and the manifest digest come back as
    sent; C{list_aliases} lists every tag, also one per page.
    """
    client = dxf(registry, "interop/aliases")
    first = client.push_blob(data=iter([b"first blob\n"]), digest=sha256(b"first blob\n"))
    second = client.push_blob(data=iter([b"second", b" blob\n"]), digest=sha256(b"second blob\n"))

    manifest = client.set_alias("v1", first, second)
    assert client.get_alias("v1") == [first, second]
    assert client.get_alias("v1", sizes=True) == [(first, 11), (second, 12)]
    assert client.get_manifest("v1") == manifest
    assert client.get_digest("v1") == first
    digest, response = client.head_manifest_and_response("v1")
    assert digest == sha256(manifest.encode())
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert json.loads(client.get_manifest(digest)) == json.loads(manifest)

    client.set_alias("v2", second)
    client.set_alias("latest", first, second)
    assert sorted(client.list_aliases()) == ["latest", "v1", "v2"]
    assert sorted(client.list_aliases(batch_size=1, iterate=True)) == ["latest", "v1", "v2"]
    pages = logged(registry, "GET", "/v2/interop/aliases/tags/list")
    assert len(pages) >= 1 + 3, pages

    # The same manifest under two tags is one manifest.
    assert client.head_manifest_and_response("latest")[0] == digest


def test_deletes(registry):
    """
    With deletes enabled, C{del_alias} removes the manifest (its tag and
    digest then 404) and returns the blobs; C{del_blob} removes a blob from
    one repository (then 404 there) while a repository it was mounted into
    still serves it.
    """
    client = dxf(registry, "interop/deletes")
    other = dxf(registry, "interop/keeps")
    layer = b"layer to delete\n" * 1000
    digest = client.push_blob(data=iter([layer]), digest=sha256(layer))
    other.mount_blob("interop/deletes", digest)
    manifest = client.set_alias("doomed", digest)
    client.set_alias("stays", digest, digest)
    manifestDigest = sha256(manifest.encode())

    assert client.del_alias("doomed") == [digest]
    assert statusOf(client.get_alias, "doomed") == 404
    assert statusOf(client.get_manifest, manifestDigest) == 404
    assert client.list_aliases() == ["stays"]

    client.del_blob(digest)
    assert statusOf(client.blob_size, digest) == 404
    assert statusOf(client.pull_blob, digest) == 404
    assert statusOf(client.del_blob, digest) == 404
    assert pulled(other, digest) == layer


def test_deletesDisabled(readOnlyRegistry):
    """With deletes disabled (the default), both deletes answer 405 and change nothing."""
    client = dxf(readOnlyRegistry, "interop/nodelete")
    layer = b"kept\n"
    digest = client.push_blob(data=iter([layer]), digest=sha256(layer))
    client.set_alias("v1", digest)

    assert statusOf(client.del_blob, digest) == 405
    assert statusOf(client.del_alias, "v1") == 405
    assert pulled(client, digest) == layer
    assert client.get_alias("v1") == [digest]
