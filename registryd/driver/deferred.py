"""
The one place a blocking driver becomes an L{IStorageDriver} of Deferreds.

A blocking driver implements the same operations as plain calls (C{listInfo}
instead of C{list}, C{openRead}/C{openWrite} instead of C{reader}/C{writer}).
L{DeferredDriver} checks every path, then runs each call through a I{runner}:
L{inline} for drivers whose calls never block (memory), or
L{inThreadPool} for drivers that do file I/O (both in
L{registryd.concurrency}).
"""

from twisted.internet.defer import succeed
from zope.interface import implementer

from registryd.driver.durability import GroupCommit
from registryd.driver.interfaces import IStorageDriver, IStorageReader, IStorageWriter, PathNotFoundError
from registryd.driver.paths import checkPath


@implementer(IStorageReader)
class _Reader:
    def __init__(self, blocking, run):
        self._blocking = blocking
        self._run = run
        self._closed = False

    def read(self, size):
        return self._run(self._blocking.read, size)

    def fileno(self):
        return self._blocking.fileno()

    def close(self):
        if not self._closed:
            self._closed = True
            self._blocking.close()


# Writes up to this size take the quick runner: copying them costs less
# than a trip to the thread pool.
SMALL_WRITE = 64 * 1024


@implementer(IStorageWriter)
class _Writer:
    def __init__(self, blocking, run, quick):
        self._blocking = blocking
        self._run = run
        self._quick = quick
        self._written = False

    @property
    def size(self):
        return self._blocking.size

    def write(self, data):
        self._written = True
        run = self._quick if len(data) <= SMALL_WRITE else self._run
        return run(self._blocking.write, data)

    def close(self, durable=True):
        # Without anything to flush, closing is quick.
        run = self._run if durable and self._written else self._quick
        return run(self._blocking.close, durable)

    def commit(self):
        return self._run(self._blocking.commit)

    def cancel(self):
        return self._run(self._blocking.cancel)


def _checked(method, runner="_run"):
    def call(self, path, *args):
        return self._runners[runner](self._calls[method], checkPath(path), *args)

    call.__name__ = method
    return call


@implementer(IStorageDriver)
class DeferredDriver:
    """
    An L{IStorageDriver} over a blocking driver and a runner.

    @param quick: The runner for calls that neither flush nor move much
        data: small metadata reads (C{getContent} of links and manifests,
        C{stat}), a reader's bounded chunks, opening a writer, small writes
        and renames; by default C{run}.  On a local filesystem these cost
        microseconds, less than a trip to a thread pool and back, so the
        filesystem driver runs them L{inline}, as Twisted's own
        C{static.File} producer reads on the reactor.  Lists and large
        writes stay with C{run}.  A durable C{putContent} or C{move} is the
        same call followed by the blocking driver's C{flush}, shared with
        concurrent writers through L{GroupCommit}.
    @param flushing: The runner of those flushes; by default C{run}.
    """

    def __init__(self, blocking, run, quick=None, flushing=None):
        self._blocking = blocking
        self._run = run
        self._quick = quick or run
        self.name = blocking.name
        # Looked up once: these are on every storage call's path.
        self._runners = {"_run": self._run, "_quick": self._quick}
        self._calls = {name: getattr(blocking, name) for name in ("getContent", "stat", "delete", "list")}
        self._commit = GroupCommit(blocking.flush, flushing or run)

    getContent = _checked("getContent", "_quick")

    def putContent(self, path, content, durable=True):
        run = self._run if len(content) > SMALL_WRITE else self._quick
        return self._flushed(run(self._blocking.putContent, checkPath(path), content), durable)

    def _flushed(self, d, durable):
        return d.addCallback(lambda _: self._commit.sync()) if durable else d

    stat = _checked("stat", "_quick")
    delete = _checked("delete")

    list = _checked("list")

    def listInfo(self, path):
        """Like C{list}, with each child's L{FileInfo}."""
        return self._run(self._blocking.listInfo, checkPath(path))

    def reader(self, path, offset=0):
        d = self._run(self._blocking.openRead, checkPath(path), offset)
        return d.addCallback(_Reader, self._quick)

    def writer(self, path, append=False):
        d = self._quick(self._blocking.openWrite, checkPath(path), append)
        return d.addCallback(_Writer, self._run, self._quick)

    def move(self, source, destination, durable=True):
        return self._flushed(self._quick(self._blocking.move, checkPath(source), checkPath(destination)), durable)

    def redirectURL(self, path, method):
        checkPath(path)
        return succeed(None)

    def walk(self, path, visit):
        # One trip to the runner for the whole walk, not one per directory:
        # a catalog of a thousand repositories walked in 150 ms that way.
        return self._run(_walk, self._blocking, checkPath(path), visit)


def _walk(blocking, path, visit):
    """L{DeferredDriver.walk} over a blocking driver's C{listInfo}."""

    def children(infos):
        return iter(sorted(infos, key=lambda i: i.path))

    stack = [children(blocking.listInfo(path))]
    while stack:
        info = next(stack[-1], None)
        if info is None:
            stack.pop()
        elif visit(info) is not False and info.isDir:
            try:
                stack.append(children(blocking.listInfo(info.path)))
            except PathNotFoundError:
                pass  # removed since its parent was listed
