import errno
import fcntl
import os
import shutil
import threading

import pytest
import pytest_twisted
from twisted.logger import LogLevel, capturedLogs, formatEvent

from registryd.driver import filesystem
from registryd.concurrency import inline
from registryd.driver.deferred import DeferredDriver
from registryd.driver.durability import startWriteback
from registryd.driver.filesystem import ALIGN, DIRECT_AFTER, STAGE, WRITEBACK, BlockingFilesystemDriver, FilesystemDriver
from registryd.testing.contracts import BAD_PATHS, StorageDriverContract


class TestFilesystemDriver(StorageDriverContract):
    @pytest.fixture
    def driver(self, tmp_path):
        return FilesystemDriver(str(tmp_path / "root"))


def _tree(top):
    return sorted(
        os.path.relpath(os.path.join(d, n), top)
        for d, dirs, files in os.walk(top)
        for n in dirs + files
    )


@pytest_twisted.ensureDeferred
async def test_nothingOutsideRootIsTouched(tmp_path):
    """Bad paths raise before any file operation: the tree beside the root is unchanged."""
    (tmp_path / "outside").write_bytes(b"sentinel")
    driver = FilesystemDriver(str(tmp_path / "root"))
    await driver.putContent("/inside", b"x")
    before = _tree(tmp_path)
    for path in BAD_PATHS + ["/../outside", "/root/../../outside"]:
        for call in (
            lambda: driver.putContent(path, b"evil"),
            lambda: driver.delete(path),
            lambda: driver.move("/inside", path),
        ):
            try:
                await call()
            except Exception:
                pass
    assert _tree(tmp_path) == before
    assert (tmp_path / "outside").read_bytes() == b"sentinel"


@pytest_twisted.ensureDeferred
async def test_layoutIsPlainFiles(tmp_path):
    """Driver paths map one-to-one to files, so other registries can read the root."""
    driver = FilesystemDriver(str(tmp_path))
    await driver.putContent("/docker/registry/v2/x/link", b"sha256:abc")
    assert (tmp_path / "docker/registry/v2/x/link").read_bytes() == b"sha256:abc"
    # no temporary files are left beside it
    assert os.listdir(tmp_path / "docker/registry/v2/x") == ["link"]


@pytest_twisted.ensureDeferred
async def test_temporaryFilesAreNotListed(tmp_path):
    driver = FilesystemDriver(str(tmp_path))
    await driver.putContent("/d/real", b"x")
    (tmp_path / "d" / ".tmp-0123456789abcdef").write_bytes(b"half")
    assert await driver.list("/d") == ["/d/real"]


def test_largeWritesAreSentToDiskAsTheyCome(tmp_path, monkeypatch):
    """
    A blob's writes start their writeback in runs of WRITEBACK bytes as they
    come, so its final flush is short; an appending writer starts its runs
    where the file ends.
    """
    started = []
    monkeypatch.setattr(filesystem, "startWriteback", lambda fd, offset, length: started.append((offset, length)))
    driver = BlockingFilesystemDriver(str(tmp_path), directWrites=False)
    writer = driver.openWrite("/blob/data", False)
    half = WRITEBACK // 2
    pieces = [b"s" * 1000, b"b" * WRITEBACK, b"c" * half, b"d" * half, b"t" * 10]
    for piece in pieces:
        writer.write(piece)
    writer.close()
    assert started == [(0, 1000 + WRITEBACK), (1000 + WRITEBACK, WRITEBACK)]
    started.clear()
    writer = driver.openWrite("/blob/data", True)
    writer.write(b"e" * WRITEBACK)
    writer.close()
    assert started == [(1010 + 2 * WRITEBACK, WRITEBACK)]
    assert (tmp_path / "blob/data").read_bytes() == b"".join(pieces) + b"e" * WRITEBACK


class DirectWrites:
    """Records the writes made through descriptors opened with O_DIRECT: (offset, length)."""

    def __init__(self, monkeypatch, failOn=None):
        self.writes = []
        self._failOn = failOn
        pwrite = os.pwrite

        def spy(fd, data, offset):
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
                self.writes.append((offset, len(data)))
                if len(self.writes) == self._failOn:
                    raise OSError(errno.EIO, "injected")
            return pwrite(fd, data, offset)

        monkeypatch.setattr(filesystem.os, "pwrite", spy)

    def openFiles(self):
        return len(os.listdir("/proc/self/fd"))


def writeAll(writer, data, piece):
    for start in range(0, len(data), piece):
        writer.write(data[start : start + piece])


def test_largeWritesGoPastThePageCache(tmp_path, monkeypatch):
    """
    From the write that takes it past DIRECT_AFTER bytes, a writer's bytes go direct, in
    aligned runs of STAGE bytes at aligned offsets; the tail through the
    page cache.  Every byte is where it belongs.
    """
    direct = DirectWrites(monkeypatch)
    started = []
    monkeypatch.setattr(filesystem, "startWriteback", lambda fd, offset, length: started.append((offset, length)))
    driver = BlockingFilesystemDriver(str(tmp_path))
    data = os.urandom(5 * STAGE + 12345)
    before = direct.openFiles()
    writer = driver.openWrite("/blob/data", False)
    writeAll(writer, data, 100_003)  # pieces that align with nothing
    assert writer.size == len(data)
    writer.close()
    assert (tmp_path / "blob/data").read_bytes() == data
    assert direct.openFiles() == before
    first = direct.writes[0][0]
    assert DIRECT_AFTER - 100_003 < first <= DIRECT_AFTER + ALIGN and first % ALIGN == 0
    assert direct.writes == [(first + n * STAGE, STAGE) for n in range(len(direct.writes))]
    assert direct.writes[-1][0] + STAGE > len(data) - STAGE  # only the tail was left
    assert started == []  # nothing buffered was large enough to send on


def test_smallWritersStayInThePageCache(tmp_path, monkeypatch):
    direct = DirectWrites(monkeypatch)
    driver = BlockingFilesystemDriver(str(tmp_path))
    writer = driver.openWrite("/blob/data", False)
    data = os.urandom(DIRECT_AFTER)
    writeAll(writer, data, 4096)
    writer.close()
    assert direct.writes == [] and (tmp_path / "blob/data").read_bytes() == data


def test_directWritesTurnedOff(tmp_path, monkeypatch):
    direct = DirectWrites(monkeypatch)
    driver = BlockingFilesystemDriver(str(tmp_path), directWrites=False)
    writer = driver.openWrite("/blob/data", False)
    data = os.urandom(4 * STAGE)
    writeAll(writer, data, STAGE)
    writer.close()
    assert direct.writes == [] and (tmp_path / "blob/data").read_bytes() == data


def test_appendingWriterGoesDirectFromAnAlignedOffset(tmp_path, monkeypatch):
    """
    An upload resumed where an unaligned PATCH ended: once its file is past
    DIRECT_AFTER, the next chunk goes direct from its first write, the
    bytes up to the next aligned offset through the page cache.
    """
    direct = DirectWrites(monkeypatch)
    driver = BlockingFilesystemDriver(str(tmp_path))
    chunks = [os.urandom(DIRECT_AFTER // 2 + 1001), os.urandom(2 * STAGE + 1001), os.urandom(3 * STAGE + 7)]
    starts = []
    for chunk in chunks:
        writer = driver.openWrite("/upload", True) if starts else driver.openWrite("/upload", False)
        starts.append(writer.size)
        before = len(direct.writes)
        writeAll(writer, chunk, 65536)
        writer.close()
        starts[-1] = (starts[-1], direct.writes[before][0] if len(direct.writes) > before else None)
    assert (tmp_path / "upload").read_bytes() == b"".join(chunks)
    (_, first), (_, second), (size, third) = starts
    assert first is None  # a small upload stays in the page cache
    # The second chunk takes the file past DIRECT_AFTER: direct from there.
    assert second % ALIGN == 0 and DIRECT_AFTER - 65536 < second <= DIRECT_AFTER + ALIGN
    # The third starts past it: direct from its first aligned offset.
    assert size % ALIGN and third == size + (-size) % ALIGN


def test_failedDirectWriteFallsBackToThePageCache(tmp_path, monkeypatch):
    """A direct write that fails: the staged bytes and the rest are written through the page cache."""
    direct = DirectWrites(monkeypatch, failOn=2)
    driver = BlockingFilesystemDriver(str(tmp_path))
    before = direct.openFiles()
    writer = driver.openWrite("/blob/data", False)
    data = os.urandom(6 * STAGE + 5)
    writeAll(writer, data, 3 * STAGE // 2)
    assert writer.size == len(data)
    writer.close()
    assert len(direct.writes) == 2  # the second failed, and no more were tried
    assert (tmp_path / "blob/data").read_bytes() == data
    assert direct.openFiles() == before
    assert driver.directWrites  # one failure does not turn them off


def test_filesystemRefusingDirectWrites(tmp_path, monkeypatch):
    """Refused at open (EINVAL): written through the page cache, and not tried again, with one warning."""
    direct = DirectWrites(monkeypatch)

    def refuse(self, file, offset, spares):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(filesystem._DirectWrites, "__init__", refuse)
    driver = BlockingFilesystemDriver(str(tmp_path))
    data = os.urandom(3 * STAGE)
    with capturedLogs() as events:
        for name in ("/a", "/b"):
            writer = driver.openWrite(name, False)
            writeAll(writer, data, STAGE)
            writer.close()
            assert (tmp_path / name[1:]).read_bytes() == data
    assert not driver.directWrites and direct.writes == []
    warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
    assert len(warnings) == 1 and "refuses direct writes" in warnings[0]


def test_directWritersReuseAStage(tmp_path, monkeypatch):
    """
    Sequential direct writers (a chunked push's PATCHes) share one staging
    buffer; writers at once each get their own, and one is kept after.
    """
    direct = DirectWrites(monkeypatch)
    made = []
    mmap = filesystem.mmap.mmap
    monkeypatch.setattr(filesystem.mmap, "mmap", lambda *a, **kw: made.append(mmap(*a, **kw)) or made[-1])
    driver = BlockingFilesystemDriver(str(tmp_path))
    chunks = [os.urandom(2 * STAGE + 1000) for _ in range(3)]
    for i, chunk in enumerate(chunks):
        writer = driver.openWrite("/upload", bool(i))
        writeAll(writer, chunk, 65536)
        writer.close()
    assert len(made) == 1 and driver.spareStages == made
    assert (tmp_path / "upload").read_bytes() == b"".join(chunks)
    writers = [driver.openWrite(f"/at-once-{i}", False) for i in range(3)]
    for writer in writers:
        writer.write(chunks[0])
    assert len(made) == 3  # the spare, and two more
    for writer in writers:
        writer.close()
    assert len(driver.spareStages) == filesystem.SPARE_STAGES == 1
    assert sum(stage.closed for stage in made) == 2
    for i in range(3):
        assert (tmp_path / f"at-once-{i}").read_bytes() == chunks[0]
    assert direct.writes


def test_cancelledDirectWriterLeavesNothingOpen(tmp_path, monkeypatch):
    direct = DirectWrites(monkeypatch)
    driver = BlockingFilesystemDriver(str(tmp_path))
    before = direct.openFiles()
    writer = driver.openWrite("/upload", False)
    writeAll(writer, os.urandom(3 * STAGE), STAGE)
    assert direct.writes
    writer.cancel()
    assert direct.openFiles() == before and not (tmp_path / "upload").exists()


def test_startWriteback(tmp_path):
    """The system call itself: the bytes are unchanged, nothing raises."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100_000)
    with open(path, "rb") as f:
        startWriteback(f.fileno(), 0, 100_000)
    assert path.read_bytes() == b"x" * 100_000


@pytest_twisted.ensureDeferred
async def test_contentFilesAreOrdinaryFiles(tmp_path):
    """New files and directories get the usual modes (the umask's), as open() would give."""
    umask = os.umask(0o022)
    try:
        driver = FilesystemDriver(str(tmp_path))
        await driver.putContent("/new/dirs/file", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "new/dirs/file").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "new/dirs").stat().st_mode & 0o777 == 0o755


@pytest_twisted.ensureDeferred
async def test_walkSkipsADirectoryRemovedMeanwhile(tmp_path):
    """A walk is not failed by a directory deleted after its parent was listed; it runs in one thread call."""
    for path in ("w/a/1", "w/b/2", "w/c/3"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"-")
    calls = []
    driver = DeferredDriver(BlockingFilesystemDriver(str(tmp_path)), lambda f, *a: calls.append(f) or inline(f, *a))
    seen = []

    def visit(info):
        seen.append(info.path)
        if info.path == "/w/a":
            shutil.rmtree(tmp_path / "w/b")  # as another process might
        return True

    await driver.walk("/w", visit)
    assert seen == ["/w/a", "/w/a/1", "/w/b", "/w/c", "/w/c/3"]
    assert len(calls) == 1


def _failingWrites(monkeypatch):
    def write(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(filesystem.os, "write", write)


def test_newDirectoriesAppearWithTheirFile(tmp_path, monkeypatch):
    """
    A file whose directories are missing arrives with them, at once: a
    write that fails (or a process killed) midway leaves no directory
    visible without the file, as a tag listed without its link.
    """
    driver = BlockingFilesystemDriver(str(tmp_path))
    driver.putContent("/r/_manifests/tags/old/current/link", b"sha256:1")
    _failingWrites(monkeypatch)
    with pytest.raises(OSError):
        driver.putContent("/r/_manifests/tags/new/current/link", b"sha256:2")
    assert driver.list("/r/_manifests/tags") == ["/r/_manifests/tags/old"]
    assert os.listdir(tmp_path / "r/_manifests/tags") == ["old"]  # nothing left behind
    monkeypatch.undo()
    driver.putContent("/r/_manifests/tags/new/current/link", b"sha256:2")
    assert driver.getContent("/r/_manifests/tags/new/current/link") == b"sha256:2"
    assert sorted(os.listdir(tmp_path / "r/_manifests/tags")) == ["new", "old"]
    assert os.listdir(tmp_path / "r/_manifests/tags/new/current") == ["link"]


def test_directoriesMadeMeanwhileAreWrittenInto(tmp_path, monkeypatch):
    """Two writers making the same new directories: both files land, neither write fails."""
    driver = BlockingFilesystemDriver(str(tmp_path))
    rename = os.rename

    def otherWriterFirst(source, destination):
        # Another process puts its tag into the same new repository just before us.
        if not os.path.exists(destination):
            os.makedirs(os.path.join(destination, "_manifests/tags/b/current"))
            (tmp_path / "r/_manifests/tags/b/current/link").write_bytes(b"sha256:b")
        rename(source, destination)

    monkeypatch.setattr(filesystem.os, "rename", otherWriterFirst)
    driver.putContent("/r/_manifests/tags/a/current/link", b"sha256:a")
    assert driver.getContent("/r/_manifests/tags/a/current/link") == b"sha256:a"
    assert driver.getContent("/r/_manifests/tags/b/current/link") == b"sha256:b"
    assert os.listdir(tmp_path) == ["r"]  # no staging left beside it


def test_aDeletedDirectoryDisappearsAtOnce(tmp_path, monkeypatch):
    """
    Deleting a directory renames it away first: a removal that stops
    midway (an error, a kill) leaves nothing visible, not a tag directory
    without its link.
    """
    driver = BlockingFilesystemDriver(str(tmp_path))
    driver.putContent("/r/_manifests/tags/t/current/link", b"sha256:1")
    driver.putContent("/r/_manifests/tags/u/current/link", b"sha256:2")

    def rmdir(path, *args, **kwargs):
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(shutil.os, "rmdir", rmdir)  # files go, directories stay
    with capturedLogs() as events:
        driver.delete("/r/_manifests/tags/t")
    assert driver.list("/r/_manifests/tags") == ["/r/_manifests/tags/u"]
    # What could not be removed is said, not left silently.
    assert [e["log_level"] for e in events] == [LogLevel.warn]
    assert "Device or resource busy" in formatEvent(events[0])
    with pytest.raises(filesystem.PathNotFoundError):
        driver.delete("/r/_manifests/tags/t")


def test_aDirectoryRemovedMeanwhileIsMadeAgain(tmp_path, monkeypatch):
    """A tag deleted by another process while this one re-tags it: the new tag lands, no error."""
    driver = BlockingFilesystemDriver(str(tmp_path))
    driver.putContent("/r/_manifests/tags/t/current/link", b"sha256:1")
    replace = os.replace

    def deletedFirst(source, destination):
        monkeypatch.setattr(filesystem.os, "replace", replace)
        BlockingFilesystemDriver(str(tmp_path)).delete("/r/_manifests/tags/t")
        replace(source, destination)

    monkeypatch.setattr(filesystem.os, "replace", deletedFirst)
    driver.putContent("/r/_manifests/tags/t/current/link", b"sha256:2")
    assert driver.getContent("/r/_manifests/tags/t/current/link") == b"sha256:2"
    assert os.listdir(tmp_path / "r/_manifests/tags") == ["t"]
    assert os.listdir(tmp_path / "r/_manifests/tags/t/current") == ["link"]


@pytest_twisted.ensureDeferred
async def test_flushesRunInAThreadOfTheirOwn(tmp_path, monkeypatch):
    """A durable write waits for a flush run by the driver's own flush thread, not the pool."""
    threads = []
    flush = BlockingFilesystemDriver.flush

    def recorded(self):
        threads.append(threading.current_thread().name)
        return flush(self)

    monkeypatch.setattr(BlockingFilesystemDriver, "flush", recorded)
    driver = FilesystemDriver(str(tmp_path))
    await driver.putContent("/a/link", b"sha256:1")
    await driver.putContent("/b/link", b"sha256:2", durable=False)
    assert threads == ["registryd-flush"]
