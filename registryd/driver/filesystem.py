"""
The filesystem driver: driver paths are files beneath a root directory.

Its blocking calls run in a thread pool, but for reads (small metadata, and
the bounded chunks of a blob stream) and small writes, which the page cache
answers in microseconds.  Small content is written to a temporary file and
renamed into place, so it is never seen half-written; a durable write then
waits for a flush of the filesystem shared with concurrent writers
(L{GroupCommit}), which makes it and any new directory entries durable.
Writers' files are fsync'd themselves when closed or committed.

A writer's bytes past its first MiB (a blob upload's bulk) go to the disk
with C{O_DIRECT}, past the page cache, where the filesystem allows it (see
L{_DirectWrites}).
"""

import errno
import fcntl
import mmap
import os
import secrets
import shutil
import stat as _stat

from twisted.logger import Logger

from registryd.concurrency import SerialThread, inThreadPool, inline
from registryd.driver.deferred import DeferredDriver
from registryd.driver.durability import startWriteback, syncFilesystem
from registryd.driver.interfaces import (
    FileInfo,
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    WriterBusyError,
)
from registryd.driver.paths import checkPath

log = Logger()

_TEMP_PREFIX = ".tmp-"
# Bytes written through the page cache are sent on to the disk in runs of
# this many: runs of 1 MiB (each write of an upload) measured 10% slower on
# these VMs, 4 to 32 MiB alike.
WRITEBACK = 8 * 1024 * 1024
# A writer goes direct from the write that takes its file past this many
# bytes, or past its size when opened if larger (a resumed upload's next
# chunk goes direct whole), so a small upload never does; direct writes are
# staged and sent in runs of STAGE bytes, at offsets and from memory aligned
# to ALIGN (any block size up to a page).
DIRECT_AFTER = 1024 * 1024
STAGE = 1024 * 1024
ALIGN = 4096
# Stages kept for the next direct writer: a fresh one costs 0.75 ms to
# fault in and unmap on these VMs (against 0.02 to refill), paid by every
# PATCH of a chunked push.  One is kept: the benefit is sequential chunks.
SPARE_STAGES = 1
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)


def _fsyncDirectory(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makeDirectories(directory):
    """Create C{directory} and missing parents (made durable by the caller's flush)."""
    if os.path.isdir(directory):
        return
    _makeDirectories(os.path.dirname(directory))
    try:
        os.mkdir(directory)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise


def _writeNew(local, content):
    """Write C{content} to a new file C{local}; FileNotFoundError if its directory is missing."""
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _temporaryBeside(local):
    return f"{os.path.dirname(local)}/{_TEMP_PREFIX}{secrets.token_hex(8)}"


def _removeTree(local):
    try:
        shutil.rmtree(local)
    except FileNotFoundError:
        pass
    except OSError as e:
        # What is left has a temporary name: nothing lists it.
        log.warn("could not remove {path}: {error}", path=local, error=e)


def _putInNewDirectories(local, content):
    """
    Put C{content} at C{local} whose directories are missing: build them,
    file included, under a temporary name beside the first that exists, and
    rename them into place at once, so that nothing (a listing, a restart
    after a crash) finds them without the file, as a tag without its link.

    @return: False if someone else made the directories meanwhile.
    """
    top = os.path.dirname(local)
    while not os.path.isdir(os.path.dirname(top)):
        top = os.path.dirname(top)
    staging = _temporaryBeside(top)
    staged = staging + local[len(top) :]  # where local is inside the staging
    try:
        os.makedirs(os.path.dirname(staged))
        _writeNew(staged, content)
        os.rename(staging, top)
    except BaseException as e:
        _removeTree(staging)
        if isinstance(e, OSError) and e.errno in (errno.EEXIST, errno.ENOTEMPTY) and os.path.isdir(top):
            return False
        raise
    return True


def _exclusive(file, path, truncate=False):
    """
    Lock C{file} for this writer (processes sharing the root included); the
    lock goes with the file descriptor when the writer closes it.
    """
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise WriterBusyError(path) from None
    if truncate:
        file.truncate(0)
    return file


class _missingAs:
    """Translate "no such file" OS errors into PathNotFoundError."""

    def __init__(self, path):
        self._path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if isinstance(value, OSError) and value.errno in _MISSING:
            raise PathNotFoundError(self._path) from None
        return False


class _Reader:
    def __init__(self, file):
        self._file = file

    def read(self, size):
        return self._file.read(size)

    def fileno(self):
        return self._file.fileno()

    def close(self):
        self._file.close()


class _DirectWrites:
    """
    Bytes appended to a file past the page cache (C{O_DIRECT}).

    Why: on these VMs a buffered write of new file data costs 2.5 ms of
    processor time a MiB (the kernel's copy into page-cache pages the host
    has not backed yet), which made pushes run at 300-450 MiB/s; the same
    bytes written direct cost next to nothing, and the disk takes them at
    2.5 GB/s.  Elsewhere it spares the page cache a blob nobody may pull.

    The bytes are staged in an aligned buffer and written in runs of
    C{STAGE} at aligned offsets, through a second descriptor of the same
    open file; what is left when the writer closes (less than a run) goes
    through the page cache.

    @param file: The writer's file, flushed.
    @param offset: Where its bytes end, aligned to C{ALIGN}.
    @param spares: Stages to take one from (else one is made), and to
        give it back to when done (up to L{SPARE_STAGES}).
    @raise OSError: The filesystem refuses C{O_DIRECT}.
    """

    def __init__(self, file, offset, spares):
        self._file = file
        self._offset = offset  # where the staged bytes go
        self._fd = os.open(f"/proc/self/fd/{file.fileno()}", os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
        self._spares = spares
        try:
            self._stage = spares.pop()  # atomic: writers run in several threads
        except IndexError:
            self._stage = mmap.mmap(-1, STAGE)
        self._staged = 0

    def write(self, data):
        """
        @return: None; or, when a direct write failed, the bytes of
            C{data} not yet written, which the caller writes through the
            page cache after L{finish}.
        """
        view = memoryview(data)
        while view:
            n = min(len(view), STAGE - self._staged)
            self._stage[self._staged : self._staged + n] = view[:n]
            self._staged += n
            view = view[n:]
            if self._staged == STAGE:
                try:
                    written = os.pwrite(self._fd, self._stage, self._offset)
                except OSError as e:
                    log.info("filesystem: a direct write failed ({error}); writing through the page cache", error=e)
                    return view
                if written != STAGE:  # the disk is full: the page cache will say so
                    self._staged, self._offset = self._staged - written, self._offset + written
                    self._stage.move(0, written, self._staged)
                    return view
                self._offset += STAGE
                self._staged = 0
        return None

    def finish(self):
        """Write the staged bytes through the page cache, and let go of the direct descriptor."""
        try:
            if self._staged:
                self._file.seek(self._offset)
                self._file.write(self._stage[: self._staged])
        finally:
            self.release()

    def release(self):
        os.close(self._fd)
        if len(self._spares) < SPARE_STAGES:
            self._spares.append(self._stage)
        else:
            self._stage.close()
        self._stage = None


class _Writer:
    """
    @param driver: Its L{BlockingFilesystemDriver}, whose C{directWrites}
        says whether to try direct writes (and is turned off when the
        filesystem refuses them).
    """

    def __init__(self, local, file, driver):
        self._local = local
        self._file = file
        self._driver = driver
        self._written = False
        self.size = file.seek(0, os.SEEK_END)
        self._unsent = self.size  # where the bytes not yet sent on to the disk start
        self._direct = None
        # Where direct writes may begin, or None: not (or no longer) tried.
        self._directFrom = max(self.size, DIRECT_AFTER) if driver.directWrites else None

    def write(self, data):
        self._written = True
        if self._directFrom is not None and self.size + len(data) > self._directFrom:
            data = self._goDirect(data)
        if self._direct is not None:
            rest = self._direct.write(data)
            if rest is None:
                self.size += len(data)
                return
            self.size += len(data) - len(rest)
            self._endDirect()
            data = rest
        self._file.write(data)
        self.size += len(data)
        if self.size - self._unsent >= WRITEBACK:
            self._file.flush()
            startWriteback(self._file.fileno(), self._unsent, self.size - self._unsent)
            self._unsent = self.size

    def _goDirect(self, data):
        """Write C{data} up to an aligned offset through the page cache, then start direct writes."""
        head = (-self.size) % ALIGN
        if len(data) <= head:
            return data
        self._directFrom = None
        self._file.write(data[:head])
        self._file.flush()
        self.size += head
        try:
            self._direct = _DirectWrites(self._file, self.size, self._driver.spareStages)
        except OSError as e:
            if e.errno == errno.EINVAL and self._driver.directWrites:
                self._driver.directWrites = False
                log.warn("filesystem: {root} refuses direct writes; writing through the page cache", root=self._driver.root)
        return memoryview(data)[head:]

    def _endDirect(self):
        direct, self._direct = self._direct, None
        direct.finish()
        self._unsent = self.size

    def close(self, durable=True):
        if not self._file.closed:
            try:
                if self._direct is not None:
                    self._endDirect()
                self._file.flush()
                if durable and self._written:
                    os.fsync(self._file.fileno())
            finally:
                self._file.close()

    def commit(self):
        self.close()
        _fsyncDirectory(os.path.dirname(self._local))

    def cancel(self):
        if self._direct is not None:
            self._direct.release()
            self._direct = None
        self._file.close()
        try:
            os.unlink(self._local)
        except FileNotFoundError:
            pass


class BlockingFilesystemDriver:
    """The blocking half of the filesystem driver."""

    name = "filesystem"

    def __init__(self, root, directWrites=True):
        self.root = os.path.abspath(root)
        self.directWrites = directWrites and hasattr(os, "O_DIRECT")
        self.spareStages = []  # for direct writers (see SPARE_STAGES)
        os.makedirs(self.root, exist_ok=True)

    def _local(self, path):
        # A checked path is absolute with no "." or ".." segments: appended to
        # the root it stays beneath it.
        return self.root + checkPath(path) if path != "/" else self.root

    def getContent(self, path):
        with _missingAs(path):
            fd = os.open(self._local(path), os.O_RDONLY | os.O_CLOEXEC)
            try:
                return _readAll(fd)
            finally:
                os.close(fd)

    def putContent(self, path, content):
        local = self._local(path)
        while True:
            temporary = _temporaryBeside(local)
            try:
                _writeNew(temporary, content)
                os.replace(temporary, local)
                return
            except FileNotFoundError:
                # The directory is missing, or was removed meanwhile.
                _removeQuietly(temporary)
                if _putInNewDirectories(local, content):
                    return
                # Made meanwhile by another writer: write into them.
            except BaseException:
                _removeQuietly(temporary)
                raise

    def flush(self):
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            syncFilesystem(fd)
        finally:
            os.close(fd)

    def openRead(self, path, offset):
        with _missingAs(path):
            file = open(self._local(path), "rb")
        if offset < 0 or offset > os.fstat(file.fileno()).st_size:
            file.close()
            raise InvalidOffsetError(f"{path}: offset {offset}")
        file.seek(offset)
        return _Reader(file)

    def openWrite(self, path, append):
        local = self._local(path)
        if append:
            with _missingAs(path):
                return _Writer(local, _exclusive(open(local, "r+b"), path), self)
        _makeDirectories(os.path.dirname(local))
        with _missingAs(path):
            # Locked before truncating, so a writer open elsewhere keeps its bytes.
            return _Writer(local, _exclusive(open(local, "ab"), path, truncate=True), self)

    def stat(self, path):
        with _missingAs(path):
            st = os.stat(self._local(path))
        isDir = _stat.S_ISDIR(st.st_mode)
        return FileInfo(path, 0 if isDir else st.st_size, st.st_mtime, isDir)

    def list(self, path):
        prefix = path.rstrip("/") + "/"
        with _missingAs(path):
            names = os.listdir(self._local(path))
        return [prefix + name for name in names if not name.startswith(_TEMP_PREFIX)]

    def listInfo(self, path):
        prefix = path.rstrip("/") + "/"
        infos = []
        with _missingAs(path), os.scandir(self._local(path)) as entries:
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIX):
                    continue
                try:
                    st = entry.stat()
                    isDir = entry.is_dir()
                except FileNotFoundError:
                    continue  # removed while we listed
                infos.append(FileInfo(prefix + entry.name, 0 if isDir else st.st_size, st.st_mtime, isDir))
        return infos

    def move(self, source, destination):
        local = self._local(source)
        target = self._local(destination)
        if os.path.isdir(target):
            raise InvalidPathError(f"{destination} is a directory")
        _makeDirectories(os.path.dirname(target))
        with _missingAs(source):
            os.replace(local, target)

    def delete(self, path):
        local = self._local(path)
        if local == self.root:
            raise InvalidPathError("refusing to delete the storage root")
        with _missingAs(path):
            if os.path.isdir(local) and not os.path.islink(local):
                # Renamed away first, so that it disappears at once, not
                # file by file (a tag seen without its link).
                staging = _temporaryBeside(local)
                os.rename(local, staging)
                _removeTree(staging)
            else:
                os.unlink(local)


def _readAll(fd, piece=64 * 1024):
    """
    The rest of file C{fd}.  Plain system calls: a link is read on every
    request, and Python's buffered file objects cost more than the read.
    """
    data = os.read(fd, piece)
    if len(data) < piece:  # a regular file reads short only at its end
        return data
    pieces = [data]
    while data:
        data = os.read(fd, piece)
        pieces.append(data)
    return b"".join(pieces)


def _removeQuietly(local):
    try:
        os.unlink(local)
    except FileNotFoundError:
        pass


def FilesystemDriver(root, reactor=None, threadpool=None, directWrites=True):
    """
    An L{IStorageDriver} over the directory C{root}, its blocking calls run in
    C{threadpool} (the reactor's own by default), its flushes in a thread of
    their own.  C{directWrites=False} keeps every write in the page cache.
    """
    if reactor is None:
        from twisted.internet import reactor
    if threadpool is None:
        threadpool = reactor.getThreadPool()
    return DeferredDriver(
        BlockingFilesystemDriver(root, directWrites),
        inThreadPool(reactor, threadpool),
        inline,
        flushing=SerialThread(reactor, "registryd-flush"),
    )
