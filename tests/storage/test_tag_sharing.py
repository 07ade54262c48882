"""A long tag list, listed by one process, is read by the others from a file beside it."""

import json
import os

import pytest
import pytest_twisted

from registryd.driver.filesystem import FilesystemDriver
from registryd.storage import paths
from registryd.storage.registry import Registry
from registryd.storage.tags import SHARED_AT_LEAST

DIGEST = "sha256:" + "a" * 64
LONG_AGO = 1_700_000_000


class Counting:
    """A driver that counts listings, and may refuse writes (a read-only root)."""

    def __init__(self, driver, writable=True):
        self._driver = driver
        self._writable = writable
        self.listings = 0

    def __getattr__(self, name):
        return getattr(self._driver, name)

    def list(self, path):
        self.listings += 1
        return self._driver.list(path)

    def putContent(self, path, content, durable=True):
        if not self._writable:
            raise PermissionError(30, "Read-only file system")
        return self._driver.putContent(path, content, durable)


def makeTags(root, names, stamp=LONG_AGO):
    """Tags written straight into a root, their directory last changed at C{stamp}."""
    tags = os.path.join(root, "docker/registry/v2/repositories/a/_manifests/tags")
    for name in names:
        os.makedirs(os.path.join(tags, name, "current"), exist_ok=True)
        with open(os.path.join(tags, name, "current", "link"), "w") as f:
            f.write(DIGEST)
    os.utime(tags, (stamp, stamp))
    return tags


def process(root, **options):
    """A registry over C{root} with its own caches, as another process would have."""
    driver = Counting(FilesystemDriver(root), **options)
    return driver, Registry(driver).repository("a").tags


NAMES = [f"t{i:05d}" for i in range(SHARED_AT_LEAST)]


@pytest_twisted.ensureDeferred
async def test_anotherProcessReadsTheSharedList(tmp_path):
    makeTags(str(tmp_path), reversed(NAMES))
    first, tags = process(str(tmp_path))
    assert await tags.list() == NAMES
    assert first.listings == 1
    shared = json.loads((tmp_path / paths.tagListCache("a").lstrip("/")).read_bytes())
    assert shared["tags"] == NAMES
    second, tags = process(str(tmp_path))
    assert await tags.list() == NAMES
    assert second.listings == 0  # read, not listed


@pytest_twisted.ensureDeferred
async def test_aChangedDirectoryIsListedAgain(tmp_path):
    makeTags(str(tmp_path), NAMES)
    _, tags = process(str(tmp_path))
    await tags.list()
    makeTags(str(tmp_path), ["zzz"], stamp=LONG_AGO + 10)  # another process tagged
    second, tags = process(str(tmp_path))
    assert await tags.list() == NAMES + ["zzz"]
    assert second.listings == 1
    third, tags = process(str(tmp_path))
    assert await tags.list() == NAMES + ["zzz"]
    assert third.listings == 0


@pytest.mark.parametrize("names, stamp", [(NAMES[:-1], LONG_AGO), (NAMES, None)])
@pytest_twisted.ensureDeferred
async def test_shortOrUnsettledListsAreNotShared(tmp_path, names, stamp):
    tags = makeTags(str(tmp_path), names)
    if stamp is None:
        os.utime(tags)  # changed just now: it may change again within the tick
    _, service = process(str(tmp_path))
    assert await service.list() == names
    assert not (tmp_path / paths.tagListCache("a").lstrip("/")).exists()


@pytest_twisted.ensureDeferred
async def test_aReadOnlyRootStillLists(tmp_path):
    makeTags(str(tmp_path), NAMES)
    driver, tags = process(str(tmp_path), writable=False)
    assert await tags.list() == NAMES
    assert not (tmp_path / paths.tagListCache("a").lstrip("/")).exists()


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"modTime": 1700000000, "tags": "t1"}'])
@pytest_twisted.ensureDeferred
async def test_anUnreadableSharedListIsIgnored(tmp_path, content):
    makeTags(str(tmp_path), NAMES)
    (tmp_path / paths.tagListCache("a").lstrip("/")).write_bytes(content)
    driver, tags = process(str(tmp_path))
    assert await tags.list() == NAMES
    assert driver.listings == 1
