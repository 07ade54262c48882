"""
Contract test suites: one per interface, run against every implementation.

Each suite is a pytest class with no fixtures of its own; an
implementation's test module subclasses it and provides the fixture the
suite names (C{driver} for L{StorageDriverContract}).  Requires pytest and
pytest-twisted (the C{[test]} extra).
"""

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from registryd.driver.interfaces import (
    FileInfo,
    InvalidOffsetError,
    InvalidPathError,
    IStorageDriver,
    IStorageReader,
    IStorageWriter,
    PathNotFoundError,
    WriterBusyError,
)

# Paths no driver may accept: traversal, relative, empty segments, NUL,
# percent-encoding, spaces, over-long segments.
BAD_PATHS = [
    "",
    "relative/path",
    "/a/../b",
    "/..",
    "/a/./b",
    "/a//b",
    "/a/",
    "/a/\x00b",
    "/a/%2e%2e/b",
    "/a b",
    "/a/" + "x" * 256,
    "/a\\..\\b",
]


async def readAll(reader, size=7):
    chunks = []
    while True:
        chunk = await reader.read(size)
        if not chunk:
            break
        chunks.append(chunk)
    reader.close()
    return b"".join(chunks)


class StorageDriverContract:
    """The L{IStorageDriver} contract.  Subclasses provide a C{driver} fixture."""

    def test_interface(self, driver):
        assert verifyObject(IStorageDriver, driver)

    @pytest_twisted.ensureDeferred
    async def test_putGetRoundTrip(self, driver):
        await driver.putContent("/a/b/c", b"hello")
        assert await driver.getContent("/a/b/c") == b"hello"
        await driver.putContent("/a/b/c", b"replaced")
        assert await driver.getContent("/a/b/c") == b"replaced"
        # Sizes around the read sizes of drivers that read in pieces.
        for size in (0, 65535, 65536, 65537, 3 * 65536, 4 * 1024 * 1024 + 1):
            content = bytes(range(256)) * (size // 256) + b"t" * (size % 256)
            await driver.putContent("/a/big", content)
            assert await driver.getContent("/a/big") == content

    @pytest_twisted.ensureDeferred
    async def test_nonDurableWritesAreVisibleAtOnce(self, driver):
        """durable=False only defers the flush: readers see the writes as usual."""
        await driver.putContent("/a/1", b"first", durable=False)
        await driver.putContent("/a/2", b"second", durable=False)
        await driver.move("/a/1", "/b/1", durable=False)
        await driver.putContent("/a/3", b"third")
        assert await driver.getContent("/b/1") == b"first"
        assert await driver.getContent("/a/2") == b"second"
        assert sorted(await driver.list("/a")) == ["/a/2", "/a/3"]

    @pytest_twisted.ensureDeferred
    async def test_getMissing(self, driver):
        with pytest.raises(PathNotFoundError):
            await driver.getContent("/nothing/here")
        await driver.putContent("/dir/file", b"x")
        with pytest.raises(PathNotFoundError):
            await driver.getContent("/dir")

    @pytest.mark.parametrize("path", BAD_PATHS)
    @pytest_twisted.ensureDeferred
    async def test_badPathsRefusedEverywhere(self, driver, path):
        calls = [
            lambda: driver.getContent(path),
            lambda: driver.putContent(path, b"x"),
            lambda: driver.reader(path),
            lambda: driver.writer(path),
            lambda: driver.stat(path),
            lambda: driver.list(path),
            lambda: driver.move(path, "/ok"),
            lambda: driver.move("/ok", path),
            lambda: driver.delete(path),
            lambda: driver.walk(path, lambda info: None),
            lambda: driver.redirectURL(path, "GET"),
        ]
        await driver.putContent("/ok", b"x")
        for call in calls:
            with pytest.raises(InvalidPathError):
                await call()
        assert await driver.getContent("/ok") == b"x"

    @pytest_twisted.ensureDeferred
    async def test_readerStreamsFromOffset(self, driver):
        content = bytes(range(256)) * 40
        await driver.putContent("/blob", content)
        reader = await driver.reader("/blob")
        assert verifyObject(IStorageReader, reader)
        assert await readAll(reader, 1000) == content
        reader = await driver.reader("/blob", 1234)
        assert await readAll(reader) == content[1234:]
        reader = await driver.reader("/blob", len(content))
        assert await readAll(reader) == b""

    @pytest_twisted.ensureDeferred
    async def test_readerErrors(self, driver):
        with pytest.raises(PathNotFoundError):
            await driver.reader("/missing")
        await driver.putContent("/small", b"abc")
        with pytest.raises(InvalidOffsetError):
            await driver.reader("/small", 4)

    @pytest_twisted.ensureDeferred
    async def test_writerCommit(self, driver):
        writer = await driver.writer("/up/data")
        assert verifyObject(IStorageWriter, writer)
        assert writer.size == 0
        await writer.write(b"abc")
        await writer.write(b"def")
        assert writer.size == 6
        await writer.commit()
        assert await driver.getContent("/up/data") == b"abcdef"

    @pytest_twisted.ensureDeferred
    async def test_writerResumesAfterClose(self, driver):
        writer = await driver.writer("/up/data")
        await writer.write(b"first ")
        await writer.close()
        writer = await driver.writer("/up/data", append=True)
        assert writer.size == 6
        await writer.write(b"second")
        assert writer.size == 12
        await writer.commit()
        assert await driver.getContent("/up/data") == b"first second"
        assert (await driver.stat("/up/data")).size == 12

    @pytest_twisted.ensureDeferred
    async def test_writerNewTruncates(self, driver):
        await driver.putContent("/up/data", b"old content")
        writer = await driver.writer("/up/data")
        assert writer.size == 0
        await writer.write(b"new")
        await writer.commit()
        assert await driver.getContent("/up/data") == b"new"

    @pytest_twisted.ensureDeferred
    async def test_writerCancel(self, driver):
        writer = await driver.writer("/up/data")
        await writer.write(b"abc")
        await writer.cancel()
        with pytest.raises(PathNotFoundError):
            await driver.getContent("/up/data")

    @pytest_twisted.ensureDeferred
    async def test_oneWriterAtATime(self, driver):
        first = await driver.writer("/up/data")
        await first.write(b"mine")
        with pytest.raises(WriterBusyError):
            await driver.writer("/up/data", append=True)
        with pytest.raises(WriterBusyError):
            await driver.writer("/up/data")
        await first.close()
        second = await driver.writer("/up/data", append=True)
        assert second.size == 4  # the refused opens truncated nothing
        await second.cancel()
        third = await driver.writer("/up/data")
        await third.commit()

    @pytest_twisted.ensureDeferred
    async def test_appendMissing(self, driver):
        with pytest.raises(PathNotFoundError):
            await driver.writer("/nope/data", append=True)

    @pytest_twisted.ensureDeferred
    async def test_stat(self, driver):
        await driver.putContent("/d/file", b"12345")
        info = await driver.stat("/d/file")
        assert isinstance(info, FileInfo)
        assert (info.path, info.size, info.isDir) == ("/d/file", 5, False)
        assert info.modTime > 0
        directory = await driver.stat("/d")
        assert directory.isDir
        with pytest.raises(PathNotFoundError):
            await driver.stat("/d/other")

    @pytest_twisted.ensureDeferred
    async def test_list(self, driver):
        for path in ["/r/a", "/r/b/x", "/r/c/y/z"]:
            await driver.putContent(path, b"-")
        assert sorted(await driver.list("/r")) == ["/r/a", "/r/b", "/r/c"]
        assert sorted(await driver.list("/")) == ["/r"]
        with pytest.raises(PathNotFoundError):
            await driver.list("/missing")
        with pytest.raises(PathNotFoundError):
            await driver.list("/r/a")

    @pytest_twisted.ensureDeferred
    async def test_listManyEntries(self, driver):
        for i in range(300):
            await driver.putContent(f"/many/t{i:04d}/link", b"x")
        names = sorted(await driver.list("/many"))
        assert names == [f"/many/t{i:04d}" for i in range(300)]

    @pytest_twisted.ensureDeferred
    async def test_move(self, driver):
        await driver.putContent("/src/file", b"payload")
        await driver.putContent("/dst/deep/file", b"old")
        await driver.move("/src/file", "/dst/deep/file")
        assert await driver.getContent("/dst/deep/file") == b"payload"
        with pytest.raises(PathNotFoundError):
            await driver.getContent("/src/file")
        await driver.move("/dst/deep/file", "/new/place/file")
        assert await driver.getContent("/new/place/file") == b"payload"
        with pytest.raises(PathNotFoundError):
            await driver.move("/src/file", "/elsewhere")

    @pytest_twisted.ensureDeferred
    async def test_delete(self, driver):
        await driver.putContent("/t/a/1", b"1")
        await driver.putContent("/t/a/2", b"2")
        await driver.putContent("/t/b", b"3")
        await driver.delete("/t/b")
        with pytest.raises(PathNotFoundError):
            await driver.getContent("/t/b")
        await driver.delete("/t/a")
        with pytest.raises(PathNotFoundError):
            await driver.stat("/t/a/1")
        with pytest.raises(PathNotFoundError):
            await driver.delete("/t/a")
        with pytest.raises(InvalidPathError):
            await driver.delete("/")

    @pytest_twisted.ensureDeferred
    async def test_walk(self, driver):
        for path in ["/w/b/2", "/w/a/1", "/w/a/skip/x", "/w/c"]:
            await driver.putContent(path, b"-")
        seen = []

        def visit(info):
            seen.append((info.path, info.isDir))
            return info.path != "/w/a/skip"

        await driver.walk("/w", visit)
        assert seen == [
            ("/w/a", True),
            ("/w/a/1", False),
            ("/w/a/skip", True),
            ("/w/b", True),
            ("/w/b/2", False),
            ("/w/c", False),
        ]
        with pytest.raises(PathNotFoundError):
            await driver.walk("/missing", visit)

    @pytest_twisted.ensureDeferred
    async def test_redirectURL(self, driver):
        await driver.putContent("/r", b"x")
        url = await driver.redirectURL("/r", "GET")
        assert url is None or url.startswith("http")


# The registry-level interfaces.  Subclasses provide a C{registry} fixture:
# an IRegistry with deletes enabled, over the storage under test.


def _digest(data, algorithm="sha256"):
    from registryd.reference import Digest

    return Digest.of(data, algorithm)


async def _storeBlob(repository, data):
    upload = await repository.blobs.createUpload()
    await upload.write(data)
    return await upload.commit(_digest(data))


def _imageManifest(config, layers, subject=None, artifactType=None):
    import json

    from registryd.manifest import OCI_IMAGE_CONFIG, OCI_MANIFEST, parseManifest

    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_IMAGE_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(l), "size": len(l)}
            for l in layers
        ],
    }
    if subject is not None:
        document["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 10}
    if artifactType is not None:
        document["artifactType"] = artifactType
    return parseManifest(json.dumps(document).encode(), OCI_MANIFEST)


async def _storeImage(repository, seed=b"", **fields):
    config, layer = b'{"seed":"%s"}' % seed, b"layer " + seed
    await _storeBlob(repository, config)
    await _storeBlob(repository, layer)
    manifest = _imageManifest(config, [layer], **fields)
    await repository.manifests.put(manifest)
    return manifest


async def _fails(code, awaitable):
    from registryd.errors import RegistryError

    with pytest.raises(RegistryError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value


class RegistryContract:
    """L{IRegistry} and L{IRepository}."""

    def test_registryInterfaces(self, registry):
        from registryd.interfaces import IRegistry, IRepository

        assert verifyObject(IRegistry, registry)
        assert verifyObject(IRepository, registry.repository("a/b"))
        assert registry.repository("a/b").name == "a/b"

    @pytest_twisted.ensureDeferred
    async def test_catalog(self, registry):
        assert await registry.catalog() == []
        for name in ["b", "a/x", "a", "c/d/e"]:
            await _storeImage(registry.repository(name))
        await _storeBlob(registry.repository("blobs-only"), b"x")
        assert await registry.catalog() == ["a", "a/x", "b", "c/d/e"]
        assert await registry.catalog(n=2) == ["a", "a/x"]
        assert await registry.catalog(last="a/x") == ["b", "c/d/e"]
        assert await registry.catalog(n=1, last="b") == ["c/d/e"]


class BlobStoreContract:
    """L{IBlobStore} and L{IBlobUpload}."""

    def test_blobStoreInterface(self, registry):
        from registryd.interfaces import IBlobStore

        assert verifyObject(IBlobStore, registry.repository("a").blobs)

    @pytest_twisted.ensureDeferred
    async def test_uploadCommitStatOpen(self, registry):
        from registryd.interfaces import IBlobUpload

        blobs = registry.repository("a").blobs
        data = bytes(range(256)) * 500
        upload = await blobs.createUpload()
        assert verifyObject(IBlobUpload, upload)
        assert (upload.name, upload.size) == ("a", 0)
        await upload.write(data[:1000])
        await upload.write(data[1000:])
        assert upload.size == len(data)
        info = await upload.commit(_digest(data))
        assert (info.digest, info.size) == (_digest(data), len(data))
        assert (await blobs.stat(_digest(data))).size == len(data)
        assert await readAll(await blobs.open(_digest(data)), 4096) == data
        assert await readAll(await blobs.open(_digest(data), 5000)) == data[5000:]

    @pytest_twisted.ensureDeferred
    async def test_resumeAcrossSessions(self, registry):
        blobs = registry.repository("a").blobs
        upload = await blobs.createUpload()
        await upload.write(b"first,")
        await upload.close()
        resumed = await blobs.resumeUpload(upload.id)
        assert (resumed.id, resumed.size) == (upload.id, 6)
        assert abs(resumed.startedAt - upload.startedAt) < 1
        await resumed.write(b"second")
        await resumed.commit(_digest(b"first,second"))
        await _fails("BLOB_UPLOAD_UNKNOWN", blobs.resumeUpload(upload.id))

    @pytest_twisted.ensureDeferred
    async def test_sha512(self, registry):
        blobs = registry.repository("a").blobs
        upload = await blobs.createUpload()
        await upload.write(b"five twelve")
        info = await upload.commit(_digest(b"five twelve", "sha512"))
        assert info.digest.startswith("sha512:")
        assert await readAll(await blobs.open(info.digest)) == b"five twelve"

    @pytest_twisted.ensureDeferred
    async def test_digestMismatchCancels(self, registry):
        blobs = registry.repository("a").blobs
        upload = await blobs.createUpload()
        await upload.write(b"actual")
        await _fails("DIGEST_INVALID", upload.commit(_digest(b"claimed")))
        await _fails("BLOB_UNKNOWN", blobs.stat(_digest(b"actual")))
        await _fails("BLOB_UNKNOWN", blobs.stat(_digest(b"claimed")))
        await _fails("BLOB_UPLOAD_UNKNOWN", blobs.resumeUpload(upload.id))

    @pytest_twisted.ensureDeferred
    async def test_cancel(self, registry):
        blobs = registry.repository("a").blobs
        upload = await blobs.createUpload()
        await upload.write(b"abandoned")
        await upload.cancel()
        await _fails("BLOB_UPLOAD_UNKNOWN", blobs.resumeUpload(upload.id))

    @pytest_twisted.ensureDeferred
    async def test_unknownUploads(self, registry):
        blobs = registry.repository("a").blobs
        for uploadID in ["nope", "../../x", "0b8d0e1a-5b1b-4b8e-9d5e-1a2b3c4d5e6f"]:
            await _fails("BLOB_UPLOAD_UNKNOWN", blobs.resumeUpload(uploadID))

    @pytest_twisted.ensureDeferred
    async def test_visibilityLinkMountDelete(self, registry):
        a, b, c = (registry.repository(n).blobs for n in "abc")
        info = await _storeBlob(registry.repository("a"), b"shared")
        await _fails("BLOB_UNKNOWN", b.stat(info.digest))
        await _fails("BLOB_UNKNOWN", b.open(info.digest))
        await _fails("BLOB_UNKNOWN", b.mount(info.digest, "c"))
        assert (await b.mount(info.digest, "a")).size == 6
        assert (await c.mount(info.digest)).size == 6
        assert (await registry.repository("d").blobs.link(info.digest)).size == 6
        await _fails("BLOB_UNKNOWN", c.link(_digest(b"stored nowhere")))
        await a.delete(info.digest)
        await _fails("BLOB_UNKNOWN", a.stat(info.digest))
        await _fails("BLOB_UNKNOWN", a.delete(info.digest))
        assert await readAll(await b.open(info.digest)) == b"shared"


class ManifestServiceContract:
    """L{IManifestService}."""

    def test_manifestServiceInterface(self, registry):
        from registryd.interfaces import IManifestService

        assert verifyObject(IManifestService, registry.repository("a").manifests)

    @pytest_twisted.ensureDeferred
    async def test_putGetExistsDelete(self, registry):
        repository = registry.repository("a")
        manifest = await _storeImage(repository)
        assert await repository.manifests.exists(manifest.digest)
        got = await repository.manifests.get(manifest.digest)
        assert (got.digest, got.payload, got.mediaType) == (
            manifest.digest,
            manifest.payload,
            manifest.mediaType,
        )
        assert not await registry.repository("b").manifests.exists(manifest.digest)
        await _fails("MANIFEST_UNKNOWN", registry.repository("b").manifests.get(manifest.digest))
        await repository.manifests.delete(manifest.digest)
        assert not await repository.manifests.exists(manifest.digest)
        await _fails("MANIFEST_UNKNOWN", repository.manifests.get(manifest.digest))
        await _fails("MANIFEST_UNKNOWN", repository.manifests.delete(manifest.digest))

    @pytest_twisted.ensureDeferred
    async def test_referencedBlobsMustBeInRepository(self, registry):
        repository = registry.repository("a")
        await _storeBlob(registry.repository("elsewhere"), b"layer")
        await _storeBlob(repository, b"{}")
        error = await _fails(
            "MANIFEST_BLOB_UNKNOWN", repository.manifests.put(_imageManifest(b"{}", [b"layer"]))
        )
        assert error.detail["digest"] == _digest(b"layer")


class TagServiceContract:
    """L{ITagService}."""

    def test_tagServiceInterface(self, registry):
        from registryd.interfaces import ITagService

        assert verifyObject(ITagService, registry.repository("a").tags)

    @pytest_twisted.ensureDeferred
    async def test_tagGetUntagListLookup(self, registry):
        repository = registry.repository("a")
        tags = repository.tags
        await _fails("NAME_UNKNOWN", tags.list())
        one = await _storeImage(repository, b"1")
        two = await _storeImage(repository, b"2")
        assert await tags.list() == []
        for tag in ["latest", "v1", "stable"]:
            await tags.tag(tag, one.digest)
        assert await tags.get("v1") == one.digest
        await tags.tag("latest", two.digest)
        assert await tags.get("latest") == two.digest
        assert await tags.list() == ["latest", "stable", "v1"]
        assert await tags.lookup(one.digest) == ["stable", "v1"]
        await tags.untag("v1")
        await _fails("MANIFEST_UNKNOWN", tags.get("v1"))
        await _fails("MANIFEST_UNKNOWN", tags.untag("v1"))
        assert await tags.list() == ["latest", "stable"]


class ReferrersIndexContract:
    """L{IReferrersIndex}."""

    def test_referrersIndexInterface(self, registry):
        from registryd.interfaces import IReferrersIndex

        assert verifyObject(IReferrersIndex, registry.repository("a").referrers)

    @pytest_twisted.ensureDeferred
    async def test_indexedOnPutRemovedOnDelete(self, registry):
        repository = registry.repository("a")
        subject = await _storeImage(repository, b"subject")
        sig = await _storeImage(repository, b"sig", subject=subject.digest, artifactType="application/x-sig")
        sbom = await _storeImage(repository, b"sbom", subject=subject.digest, artifactType="application/x-sbom")
        found = await repository.referrers.referrers(subject.digest)
        assert [d.digest for d in found] == sorted([sig.digest, sbom.digest])
        assert {d.artifactType for d in found} == {"application/x-sig", "application/x-sbom"}
        only = await repository.referrers.referrers(subject.digest, "application/x-sbom")
        assert [d.digest for d in only] == [sbom.digest]
        await repository.manifests.delete(sig.digest)
        assert [d.digest for d in await repository.referrers.referrers(subject.digest)] == [sbom.digest]
        await repository.referrers.remove(subject.digest, sbom.digest)
        assert await repository.referrers.referrers(subject.digest) == []
        await repository.referrers.add(subject.digest, sbom.digest)
        assert [d.digest for d in await repository.referrers.referrers(subject.digest)] == [sbom.digest]
        assert await registry.repository("b").referrers.referrers(subject.digest) == []
