"""
Group commit: many writers made durable by one flush of the filesystem.

A small write (a link, a manifest) that fsync'd its file and its directory
cost two disk flushes; a manifest push writes four.  Instead, writers put
their files in place and then wait for one flush (C{syncfs(2)}) that
I{started} after their write: concurrent writers share it, so the flushes
per second stay flat however many writes there are.  The waiting happens on
the reactor, as Deferreds: one trip to a thread per flush, not per writer.
"""

import ctypes
import ctypes.util
import os

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)
_syncFileRange = getattr(_libc, "sync_file_range", None)
if _syncFileRange is not None:
    _syncFileRange.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_SYNC_FILE_RANGE_WRITE = 2


def startWriteback(fd, offset, length):
    """
    Ask the kernel to start writing C{length} bytes at C{offset} of C{fd}
    to disk now, without waiting: a large file written this way is mostly
    on disk by the time it is flushed, so the flush is short, and its dirty
    pages never pile up to where the kernel throttles the writer.
    """
    if _syncFileRange is not None:
        _syncFileRange(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def syncFilesystem(fd):
    """Flush the whole filesystem holding open file C{fd} (blocking)."""
    if _syncfs is None:
        os.sync()
    elif _syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class GroupCommit:
    """
    Flushes shared by the writers waiting for them, at most one running.

    @param flush: The blocking flush.
    @param run: A runner (see L{registryd.concurrency}) to call it with.
    """

    def __init__(self, flush, run):
        self._flush = flush
        self._run = run
        self._running = False
        self._waiting = []

    def sync(self):
        """
        @return: A Deferred firing once everything written before the call
            is durable, or failing with the flush's error.
        """
        d = Deferred()
        self._waiting.append(d)
        if not self._running:
            self._start()
        return d

    def _start(self):
        # A flush already running may have started before the waiters' writes.
        self._running = True
        batch, self._waiting = self._waiting, []

        def finished(result):
            self._running = False
            for d in batch:
                d.errback(result) if isinstance(result, Failure) else d.callback(None)
            if self._waiting and not self._running:
                self._start()

        self._run(self._flush).addBoth(finished)
