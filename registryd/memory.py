"""
The daemon process's memory habits (for the twistd plugin's process only:
an embedding application's process is its own to tune).

A registry process lives long, holds little, and passes large transient
buffers through (upload batches, socket reads of a megabyte).  Two defaults
of CPython and glibc suit that badly: the garbage collector's full passes
scan every object loaded at startup, and glibc keeps freed large buffers in
its heap once it has seen one freed, so the resident size stays at its
highest.
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


def returnLargeBuffers():
    """
    Have glibc give freed buffers back to the system: set its mmap threshold,
    which also stops it raising that threshold (and its heap's trim
    threshold) past the largest buffer it has seen freed.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc: its allocator has its own habits
    mallopt(_M_MMAP_THRESHOLD, LARGE)


def freezeWhenRunning(reactor):
    """
    Once the reactor runs, keep what was loaded and built until then (it
    lives as long as the process) out of the collector's full passes, which
    would otherwise scan it all and stall requests for milliseconds.
    """
    reactor.callWhenRunning(gc.freeze)
