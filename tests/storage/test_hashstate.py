"""Hash states saved with uploads, so another process resumes hashing without re-reading."""

import hashlib
import os

import pytest
import pytest_twisted

from registryd.driver.filesystem import FilesystemDriver
from registryd.reference import Digest
from registryd.storage import paths
from registryd.storage.hashstate import ResumableSHA256, resumableSupported
from registryd.storage.registry import Registry

pytestmark = pytest.mark.skipif(not resumableSupported(), reason="no libcrypto")


def test_resumableMatchesHashlib():
    data = os.urandom(3_000_000)
    hasher = ResumableSHA256()
    hasher.update(data[:1_000_001])
    resumed = ResumableSHA256(hasher.state())
    resumed.update(data[1_000_001:])
    assert resumed.hexdigest() == hashlib.sha256(data).hexdigest()
    # hexdigest does not end the hash
    hasher.update(data[1_000_001:])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError):
        ResumableSHA256(b"short")


class CountingReads:
    def __init__(self, driver):
        self._driver = driver
        self.reads = []

    def __getattr__(self, name):
        return getattr(self._driver, name)

    def reader(self, path, offset=0):
        self.reads.append(path)
        return self._driver.reader(path, offset)


@pytest_twisted.ensureDeferred
async def test_anotherProcessResumesTheHash(tmp_path):
    data = os.urandom(2_500_000)
    first = Registry(FilesystemDriver(str(tmp_path)))
    upload = await first.repository("a").blobs.createUpload()
    await upload.write(data[:1_000_000])
    await upload.close()
    assert sorted(await first.driver.list(paths.uploads("a"))) == [
        paths.uploadData("a", upload.id),
        paths.uploadHashState("a", upload.id, 1_000_000),
    ]
    # A second registry over the same root: as another process would be.
    counting = CountingReads(FilesystemDriver(str(tmp_path)))
    second = Registry(counting)
    resumed = await second.repository("a").blobs.resumeUpload(upload.id)
    await resumed.write(data[1_000_000:2_000_000])
    await resumed.close()
    # Only the newest state is kept.
    assert sorted(await counting.list(paths.uploads("a"))) == [
        paths.uploadData("a", upload.id),
        paths.uploadHashState("a", upload.id, 2_000_000),
    ]
    third = Registry(counting)
    last = await third.repository("a").blobs.resumeUpload(upload.id)
    await last.write(data[2_000_000:])
    info = await last.commit(Digest.of(data))
    assert info.size == len(data)
    # Committed without reading the data back to hash it, and nothing left behind.
    assert counting.reads == []
    assert await counting.list(paths.uploads("a")) == []


@pytest_twisted.ensureDeferred
async def test_missingStateFallsBackToRehashing(tmp_path):
    data = os.urandom(100_000)
    first = Registry(FilesystemDriver(str(tmp_path)))
    upload = await first.repository("a").blobs.createUpload()
    await upload.write(data[:50_000])
    await upload.close()
    await first.driver.delete(paths.uploadHashState("a", upload.id, 50_000))
    counting = CountingReads(FilesystemDriver(str(tmp_path)))
    resumed = await Registry(counting).repository("a").blobs.resumeUpload(upload.id)
    await resumed.write(data[50_000:])
    assert (await resumed.commit(Digest.of(data))).size == len(data)
    assert counting.reads == [paths.uploadData("a", upload.id)]
