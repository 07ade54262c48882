"""The twistd plugin's service and the daemon process's memory habits."""

import gc
import json
import subprocess
import sys

from twisted.internet import reactor

from registryd import memory, tap
from registryd.auth.keys import ephemeralSigningKey


def test_daemonTunesItsProcess(tmp_path, monkeypatch):
    """The daemon (not an embedder) returns large buffers, and freezes what it loaded once the reactor runs."""
    options = tap.Options()
    options.parseOptions(["--storage-root", str(tmp_path), "--listen", "tcp:0:interface=127.0.0.1"])
    scheduled, tuned = [], []
    monkeypatch.setattr(reactor, "callWhenRunning", lambda f, *a, **kw: scheduled.append(f))
    monkeypatch.setattr(memory, "returnLargeBuffers", lambda callLater: tuned.append(callLater))
    service = tap.makeService(options)
    assert service.config.storage.rootdirectory == str(tmp_path)
    assert scheduled == [gc.freeze]
    assert tuned == [reactor.callLater]


_LARGE_BUFFERS = """
import os, sys
from registryd import memory
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
if sys.argv[1] == "tuned":
    memory.returnLargeBuffers(None)
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


_HOLES = """
import os, sys
from twisted.internet.task import Clock
from registryd import memory
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
clock = Clock()
if sys.argv[1] == "tuned":
    memory.returnLargeBuffers(clock.callLater)
held, pins = [], []
for _ in range(640):  # each buffer (from the heap, tuned or not) pinned below a longer-lived one
    held.append(os.urandom(100_000))
    pins.append(os.urandom(2000))
del held
before = rss()
released = []
for step in (0.6, 0.6, 1.0):  # another large body a little before IDLE passes, then none
    memory.releaseFreed()
    clock.advance(step * memory.IDLE)
    released.append(before - rss())
print(*released)
"""


def test_freedHolesAreReleasedOnceIdle():
    """
    64 MiB freed below live allocations stay resident until releaseFreed
    gives them back, once IDLE passes without another large body; in a
    process the daemon did not tune (an embedder's), releaseFreed leaves
    the allocator alone.
    """

    def released(mode):
        out = subprocess.run([sys.executable, "-c", _HOLES, mode], capture_output=True, text=True, check=True)
        return [int(n) for n in out.stdout.split()]

    waiting, stillWaiting, idle = released("tuned")
    assert waiting < 10 and stillWaiting < 10
    assert idle >= 55
    assert max(released("untuned")) < 10


_LOADED = """
import sys
from registryd import tap
options = tap.Options()
config = ["--config", sys.argv[2]] if sys.argv[2] else []
options.parseOptions(["--storage-root", sys.argv[1], "--listen", "tcp:0:interface=127.0.0.1", *config])
tap.makeService(options)
print(*sorted(m for m in sys.argv[3:] if m in sys.modules))
"""


def test_unconfiguredFeaturesAreNotLoaded(tmp_path):
    """
    A daemon without auth, proxy or notifications does not load their code
    (the HTTP client, JWT: MiBs in every process); configured, it does.
    """
    heavy = ["jwt", "treq", "twisted.web.client", "registryd.proxy.upstream", "registryd.notifications.sink"]

    def loaded(config=""):
        out = subprocess.run(
            [sys.executable, "-c", _LOADED, str(tmp_path), config, *heavy], capture_output=True, text=True, check=True
        )
        return out.stdout.split()

    assert loaded() == []
    (tmp_path / "jwks.json").write_text(json.dumps(ephemeralSigningKey().jwks()))
    (tmp_path / "all.yaml").write_text(
        "version: 0.1\n"
        "auth:\n  token:\n    realm: https://auth.test/token\n    service: r\n    issuer: i\n"
        f"    jwks: {tmp_path / 'jwks.json'}\n"
        "proxy:\n  remoteurl: http://127.0.0.1:9\n"
        "notifications:\n  endpoints:\n    - name: hook\n      url: http://127.0.0.1:9/hook\n"
    )
    assert loaded(str(tmp_path / "all.yaml")) == sorted(heavy)
