"""
The daemon process's memory habits (for the twistd plugin's process only:
an embedding application's process is its own to tune).

A registry process lives long, holds little, and passes large transient
buffers through (upload batches, socket reads of a megabyte).  Two defaults
of CPython and glibc suit that badly: the garbage collector's full passes
scan every object loaded at startup, and glibc keeps freed large buffers in
its heap once it has seen one freed, so the resident size stays at its
highest.  And a large body's buffers, freed once it is in, leave holes below
whatever was allocated meanwhile (a request, a cache entry), which no
threshold gives back: each such body would leave the heap a few MiB larger.
"""

import ctypes
import ctypes.util
import gc

_M_MMAP_THRESHOLD = -3
# Buffers at least this large are mapped, and unmapped when freed; smaller
# ones (a 1 MiB socket read) come from the heap, whose free top glibc now
# trims instead of keeping.  Mapping every megabyte read would cost its
# page faults on the push path.
LARGE = 2 * 1024 * 1024
# Seconds without a large body before the heap's free pages are given back:
# giving them back after every body cost chunked pushes 12% of their speed
# (each 8 MiB chunk faulted its buffers' pages in again).
IDLE = 0.5
_trim = None  # glibc's malloc_trim, once this process has been tuned
_callLater = None
_release = None  # the pending call of _trim


def returnLargeBuffers(callLater):
    """
    Have glibc give freed buffers back to the system: set its mmap threshold,
    which also stops it raising that threshold (and its heap's trim
    threshold) past the largest buffer it has seen freed; and have
    L{releaseFreed} trim the heap, scheduled with C{callLater}.
    """
    global _trim, _callLater
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return  # not glibc: its allocator has its own habits
    mallopt(_M_MMAP_THRESHOLD, LARGE)
    _trim, _callLater = trim, callLater


def releaseFreed():
    """
    A large transient (a request body of megabytes) has been freed: give
    the heap's free pages back to the system, wherever they lie, once
    L{IDLE} seconds pass without another.  A no-op unless
    L{returnLargeBuffers} tuned this process.
    """
    global _release
    if _trim is None:
        return
    if _release is not None and _release.active():
        _release.reset(IDLE)
    else:
        _release = _callLater(IDLE, _trim, 0)


def freezeWhenRunning(reactor):
    """
    Once the reactor runs, keep what was loaded and built until then (it
    lives as long as the process) out of the collector's full passes, which
    would otherwise scan it all and stall requests for milliseconds.
    """
    reactor.callWhenRunning(gc.freeze)
