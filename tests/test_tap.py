"""The twistd plugin's service and the daemon process's memory habits."""

import gc
import subprocess
import sys

from twisted.internet import reactor

from registryd import memory, tap


def test_daemonTunesItsProcess(tmp_path, monkeypatch):
    """The daemon (not an embedder) returns large buffers, and freezes what it loaded once the reactor runs."""
    options = tap.Options()
    options.parseOptions(["--storage-root", str(tmp_path), "--listen", "tcp:0:interface=127.0.0.1"])
    scheduled, tuned = [], []
    monkeypatch.setattr(reactor, "callWhenRunning", lambda f, *a, **kw: scheduled.append(f))
    monkeypatch.setattr(memory, "returnLargeBuffers", lambda: tuned.append(True))
    service = tap.makeService(options)
    assert service.config.storage.rootdirectory == str(tmp_path)
    assert scheduled == [gc.freeze]
    assert tuned == [True]


_LARGE_BUFFERS = """
import os, sys
from registryd import memory
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
if sys.argv[1] == "tuned":
    memory.returnLargeBuffers()
first = bytes(2 << 20)
del first  # glibc, untuned, now keeps freed buffers of this size in its heap
held = [os.urandom(1 << 20) for _ in range(64)]
above = [b"x" * 100 for _ in range(1000)]
peak = rss()
del held
print(peak - rss())
"""


def test_largeBuffersAreReturned():
    """64 MiB of freed 1 MiB buffers leave the resident set (glibc keeps them by default)."""

    def returned(mode):
        out = subprocess.run([sys.executable, "-c", _LARGE_BUFFERS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    assert returned("tuned") >= 60
    assert returned("default") < 10
