"""
The storage driver contract: a small path-based store, after Distribution's.

Everything above the driver speaks only this interface, so a filesystem, an
in-memory dictionary and (later) an object store are interchangeable.  Nothing
here promises POSIX semantics: C{move} need not be atomic across keys (but the
destination must never be seen half-written), directories exist only as
prefixes of files, and a writer's bytes are invisible until C{commit}.

Paths are strings such as C{/docker/registry/v2/blobs}: absolute, C{/}-separated
segments of C{[A-Za-z0-9._-]}, no empty, C{.} or C{..} segment.  Every method
raises L{InvalidPathError} (through its Deferred) for any other path.
"""

from dataclasses import dataclass

from zope.interface import Attribute, Interface


class StorageDriverError(Exception):
    """Base of the errors a driver reports."""


class PathNotFoundError(StorageDriverError):
    """Nothing is stored at the path."""


class InvalidPathError(StorageDriverError):
    """The path is not of the driver's grammar, or escapes its root."""


class WriterBusyError(StorageDriverError):
    """Another writer, perhaps in another process, has the path open."""


class InvalidOffsetError(StorageDriverError):
    """A read or resumed write asked for an offset past the end of the content."""


@dataclass(frozen=True)
class FileInfo:
    """What L{IStorageDriver.stat} and C{walk} report about a path."""

    path: str
    size: int
    modTime: float
    isDir: bool


class IStorageReader(Interface):
    """A stream of a stored file's bytes, from an offset onwards."""

    def read(size):
        """
        Read up to C{size} bytes.

        @return: Deferred firing with bytes; C{b""} at the end of the content.
        """

    def close():
        """Release the reader's resources.  Safe to call more than once."""

    def fileno():
        """
        A local file descriptor of the content, for C{sendfile}, or None
        when the content is not a local file (memory, object stores).
        """


class IStorageWriter(Interface):
    """
    An append-only writer of one path, resumable across processes.

    Bytes written are durable once C{close} or C{commit} has fired, and become
    readable at the path only after C{commit}.
    """

    size = Attribute("Number of bytes at the path, including earlier sessions'.")

    def write(data):
        """Append C{data} bytes.  @return: Deferred firing with None."""

    def close(durable=True):
        """
        Release resources, first making what was written durable unless
        C{durable} is false (the caller flushes later, e.g. with a durable
        C{move} or C{putContent}); a later C{writer(path, append=True)}
        continues after it.

        @return: Deferred firing with None.
        """

    def commit():
        """
        Finish the content: durable and readable at the path.  The writer
        is closed afterwards.

        @return: Deferred firing with None.
        """

    def cancel():
        """Discard the content and release resources.  @return: Deferred."""


class IStorageDriver(Interface):
    """A path-keyed store of byte strings."""

    name = Attribute("A short name of the driver for logs, e.g. 'filesystem'.")

    def getContent(path):
        """
        Read a whole small file (metadata, links, manifests).

        @return: Deferred firing with bytes.
        @raise PathNotFoundError: Nothing is stored at C{path}.
        """

    def putContent(path, content, durable=True):
        """
        Store C{content} bytes at C{path}, replacing what was there.  Readers see
        either the old or the new bytes, never a mixture.

        @param durable: Whether the new bytes (and every write before them)
            must be durable when the Deferred fires.  A caller making several
            writes asks it of the last only, so they share one flush.
        @return: Deferred firing with None.
        """

    def reader(path, offset=0):
        """
        Open a stream of the file's bytes from C{offset}.

        @return: Deferred firing with an L{IStorageReader}.
        @raise PathNotFoundError: Nothing is stored at C{path}.
        @raise InvalidOffsetError: C{offset} is past the end of the file.
        """

    def writer(path, append=False):
        """
        Open a writer of C{path}: a new file, or with C{append} the
        continuation of one written by an earlier writer.  One writer at a
        time: until it is closed, committed or cancelled, no other may open.

        @return: Deferred firing with an L{IStorageWriter}.
        @raise PathNotFoundError: C{append} and no earlier content exists.
        @raise WriterBusyError: Another writer has C{path} open.
        """

    def stat(path):
        """
        @return: Deferred firing with the L{FileInfo} of a file or directory.
        @raise PathNotFoundError: Nothing is stored at or beneath C{path}.
        """

    def list(path):
        """
        List the direct children of a directory.

        @return: Deferred firing with a list of child paths (full paths), unsorted.
        @raise PathNotFoundError: C{path} is not a directory.
        """

    def move(source, destination, durable=True):
        """
        Move a file.  The destination is replaced and never seen half-written;
        afterwards the source is gone.

        @param durable: As for C{putContent}.
        @return: Deferred firing with None.
        @raise PathNotFoundError: C{source} does not exist.
        """

    def delete(path):
        """
        Delete a file, or a directory and everything beneath it.

        @return: Deferred firing with None.
        @raise PathNotFoundError: Nothing is stored at or beneath C{path}.
        """

    def walk(path, visit):
        """
        Visit every file and directory beneath C{path}, depth first in
        lexical order.  C{visit(fileInfo)} is called for each; for a directory
        it may return C{False} to skip what is beneath it.  It may be called
        in another thread (the driver's), so it must only look at what it is
        given and remember it, not use the reactor.  A directory removed
        while the walk goes on is skipped.

        @return: Deferred firing with None when the walk is done.
        @raise PathNotFoundError: C{path} is not a directory.
        """

    def redirectURL(path, method):
        """
        A URL a client may fetch C{path} from directly (an object store's
        presigned URL), or None when the driver cannot offer one.

        @return: Deferred firing with a str or None.
        """
