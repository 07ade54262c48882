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
