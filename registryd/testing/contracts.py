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
