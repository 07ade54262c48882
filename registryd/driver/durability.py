"""
Group commit: many writers made durable by one C{syncfs}.

A small write (a link, a manifest) that fsync'd its file and its directory
cost two disk flushes; a manifest push writes four.  Instead, writers
rename their files into place and then wait for one C{syncfs(2)} of the
filesystem that I{started} after their rename: concurrent writers share it,
so the flushes per second stay flat however many writes there are.
"""

import ctypes
import ctypes.util
import os
import threading

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


class GroupSync:
    """Blocking C{sync()} calls (from pool threads) sharing flushes of one filesystem."""

    def __init__(self, directory):
        self._fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        self._condition = threading.Condition()
        self._started = 0
        self._finished = 0
        self._running = False

    def _flush(self):
        if _syncfs is None:
            os.sync()
        elif _syncfs(self._fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))

    def sync(self):
        """Return once everything written before the call is durable."""
        with self._condition:
            # A flush already running may have started before our writes.
            needed = self._started + 1
            while self._finished < needed:
                if self._running:
                    self._condition.wait()
                    continue
                self._running = True
                self._started += 1
                mine = self._started
                self._condition.release()
                try:
                    self._flush()
                finally:
                    self._condition.acquire()
                    self._running = False
                    self._finished = max(self._finished, mine)
                    self._condition.notify_all()

    def close(self):
        os.close(self._fd)
