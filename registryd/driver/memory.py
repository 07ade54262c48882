"""
An in-memory driver: a tree of dictionaries.

It passes the same contract suite as the filesystem driver, so it is the
verified fake that embedders and tests run a real registry on.  It is not
thread-safe and runs inline on the reactor thread.
"""

import time

from registryd.concurrency import inline
from registryd.driver.deferred import DeferredDriver
from registryd.driver.interfaces import (
    FileInfo,
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    WriterBusyError,
)
from registryd.driver.paths import segments


class _File:
    __slots__ = ("data", "modTime")

    def __init__(self, data=b""):
        self.data = bytearray(data)
        self.modTime = time.time()


class _Dir(dict):
    __slots__ = ("modTime",)

    def __init__(self):
        super().__init__()
        self.modTime = time.time()


def _join(path, name):
    return path.rstrip("/") + "/" + name


class _Reader:
    def __init__(self, file, offset):
        self._file = file
        self._offset = offset

    def read(self, size):
        chunk = bytes(self._file.data[self._offset : self._offset + size])
        self._offset += len(chunk)
        return chunk

    def fileno(self):
        return None

    def close(self):
        pass


class _Writer:
    def __init__(self, driver, path, file):
        self._driver = driver
        self._path = path
        self._file = file

    @property
    def size(self):
        return len(self._file.data)

    def write(self, data):
        self._file.data += data
        self._file.modTime = time.time()

    def close(self, durable=True):
        self._driver._writing.discard(self._path)

    def commit(self):
        self.close()

    def cancel(self):
        self.close()
        try:
            if self._driver._file(self._path) is self._file:
                self._driver.delete(self._path)
        except PathNotFoundError:
            pass


class BlockingMemoryDriver:
    """The blocking half of the memory driver."""

    name = "inmemory"

    def __init__(self):
        self._root = _Dir()
        self._writing = set()

    def _find(self, path):
        node = self._root
        for segment in segments(path):
            if not isinstance(node, _Dir) or segment not in node:
                raise PathNotFoundError(path)
            node = node[segment]
        return node

    def _file(self, path):
        node = self._find(path)
        if not isinstance(node, _File):
            raise PathNotFoundError(path)
        return node

    def _create(self, path, file):
        *dirs, leaf = segments(path)
        node = self._root
        for segment in dirs:
            child = node.get(segment)
            if child is None:
                child = node[segment] = _Dir()
                node.modTime = child.modTime
            if not isinstance(child, _Dir):
                raise InvalidPathError(f"{path}: {segment} is a file")
            node = child
        if isinstance(node.get(leaf), _Dir):
            raise InvalidPathError(f"{path} is a directory")
        if leaf not in node:
            node.modTime = time.time()  # as a directory's mtime follows its entries
        node[leaf] = file
        return file

    def getContent(self, path):
        return bytes(self._file(path).data)

    def putContent(self, path, content):
        self._create(path, _File(content))

    def flush(self):
        """Nothing to make durable: the memory driver forgets on exit anyway."""

    def openRead(self, path, offset):
        file = self._file(path)
        if offset > len(file.data) or offset < 0:
            raise InvalidOffsetError(f"{path}: offset {offset}")
        return _Reader(file, offset)

    def openWrite(self, path, append):
        if path in self._writing:
            raise WriterBusyError(path)
        file = self._file(path) if append else self._create(path, _File())
        self._writing.add(path)
        return _Writer(self, path, file)

    def stat(self, path):
        node = self._find(path)
        if isinstance(node, _File):
            return FileInfo(path, len(node.data), node.modTime, False)
        return FileInfo(path, 0, node.modTime, True)

    def _directory(self, path):
        node = self._find(path)
        if not isinstance(node, _Dir):
            raise PathNotFoundError(path)
        return node

    def list(self, path):
        return [_join(path, name) for name in self._directory(path)]

    def listInfo(self, path):
        return [self.stat(_join(path, name)) for name in self._directory(path)]

    def move(self, source, destination):
        file = self._file(source)
        if source == destination:
            return
        self._create(destination, file)
        self.delete(source)

    def delete(self, path):
        if path == "/":
            raise InvalidPathError("refusing to delete the storage root")
        *dirs, leaf = segments(path)
        holder = self._find("/" + "/".join(dirs))
        if not isinstance(holder, _Dir) or leaf not in holder:
            raise PathNotFoundError(path)
        del holder[leaf]
        holder.modTime = time.time()


def MemoryDriver():
    """A new, empty in-memory L{IStorageDriver}."""
    return DeferredDriver(BlockingMemoryDriver(), inline)
