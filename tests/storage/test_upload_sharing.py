"""One request at a time per upload session, across processes sharing a root."""

import pytest
import pytest_twisted

from registryd import errors
from registryd.driver.filesystem import FilesystemDriver
from registryd.reference import Digest
from registryd.storage.registry import Registry


@pytest_twisted.ensureDeferred
async def test_sessionInUseElsewhereIsRefused(tmp_path):
    # Two registries over one root, as two worker processes are.
    one = Registry(FilesystemDriver(str(tmp_path)))
    two = Registry(FilesystemDriver(str(tmp_path)))
    upload = await one.repository("a").blobs.createUpload()
    await upload.write(b"first part")
    with pytest.raises(errors.BlobUploadInvalid) as refused:
        await two.repository("a").blobs.resumeUpload(upload.id)
    assert refused.value.message == "the upload is in use by another request"
    await upload.close()
    resumed = await two.repository("a").blobs.resumeUpload(upload.id)
    await resumed.write(b", second")
    info = await resumed.commit(Digest.of(b"first part, second"))
    assert info.size == len(b"first part, second")


@pytest_twisted.ensureDeferred
async def test_aSessionIsOneFileThatBecomesTheBlob(tmp_path):
    """A monolithic push leaves no session file behind: its data is renamed into the blob store."""
    registry = Registry(FilesystemDriver(str(tmp_path)))
    upload = await registry.repository("a").blobs.createUpload()
    uploads = tmp_path / "docker/registry/v2/repositories/a/_uploads"
    assert [p.name for p in uploads.iterdir()] == [upload.id]
    inode = (uploads / upload.id).stat().st_ino
    await upload.write(b"content")
    await upload.commit(Digest.of(b"content"))
    assert list(uploads.iterdir()) == []
    blob = tmp_path / "docker/registry/v2/blobs/sha256" / Digest.of(b"content").hex[:2]
    data = blob / Digest.of(b"content").hex / "data"
    assert data.read_bytes() == b"content"
    assert data.stat().st_ino == inode


@pytest_twisted.ensureDeferred
async def test_aLegacySessionDirectoryIsUnknown(tmp_path):
    """A session directory Distribution left in the root is not resumed (nor a 500)."""
    uploadID = "0b0e5c1c-7d3a-4a8e-9d6f-2f1e3c4b5a69"
    legacy = tmp_path / "docker/registry/v2/repositories/a/_uploads" / uploadID
    legacy.mkdir(parents=True)
    (legacy / "data").write_bytes(b"partial")
    (legacy / "startedat").write_bytes(b"2026-11-30T12:00:00.000000000Z")
    registry = Registry(FilesystemDriver(str(tmp_path)))
    with pytest.raises(errors.BlobUploadUnknown):
        await registry.repository("a").blobs.resumeUpload(uploadID)
    assert (legacy / "data").read_bytes() == b"partial"
