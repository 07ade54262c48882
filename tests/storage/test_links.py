"""Links on the filesystem: what a write that changes nothing leaves alone."""

import os

import pytest_twisted

from registryd.driver.filesystem import FilesystemDriver
from registryd.storage import paths
from registryd.storage.links import readLink, writeLink
from registryd.storage.registry import Registry
from registryd.testing.contracts import _imageManifest, _storeBlob


def _inode(root, path):
    return os.stat(root + path).st_ino


@pytest_twisted.ensureDeferred
async def test_sameManifestUnderAnotherTagMakesNoNewRevisionFile(tmp_path):
    root = str(tmp_path)
    repository = Registry(FilesystemDriver(root)).repository("a")
    await _storeBlob(repository, b"{}")
    await _storeBlob(repository, b"layer")
    manifest = _imageManifest(b"{}", [b"layer"])
    await repository.manifests.put(manifest, "v1")
    revision = paths.manifestRevisionLink("a", manifest.digest)
    before = _inode(root, revision)
    await repository.manifests.put(manifest, "v2")
    await repository.manifests.put(manifest, "v1")
    assert _inode(root, revision) == before
    assert [await repository.tags.get(t) for t in ("v1", "v2")] == [manifest.digest] * 2


@pytest_twisted.ensureDeferred
async def test_durableOrChangedLinksAreWritten(tmp_path):
    root = str(tmp_path)
    driver = FilesystemDriver(root)
    one, two = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    await writeLink(driver, "/l/link", one, durable=False)
    first = _inode(root, "/l/link")
    await writeLink(driver, "/l/link", one, durable=True)  # a flush is asked for: written
    second = _inode(root, "/l/link")
    assert second != first
    await writeLink(driver, "/l/link", two, durable=False)  # changed: written
    assert _inode(root, "/l/link") != second
    assert await readLink(driver, "/l/link") == two
