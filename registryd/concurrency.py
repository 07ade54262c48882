"""Small concurrency tools shared by the storage and web layers."""

import functools

from twisted.internet.defer import Deferred, DeferredLock, maybeDeferred
from twisted.internet.threads import deferToThreadPool


def deferred(function):
    """Make an C{async def} return a Deferred, as our interfaces promise."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        return Deferred.fromCoroutine(function(*args, **kwargs))

    return call


# Runners: how a storage call is run, each returning a Deferred.


def inline(function, *args):
    """Run a call that never blocks on the reactor thread."""
    return maybeDeferred(function, *args)


def inThreadPool(reactor, threadpool):
    """A runner that runs each call in C{threadpool}."""

    def run(function, *args):
        return deferToThreadPool(reactor, threadpool, function, *args)

    return run


class KeyedLocks:
    """One L{DeferredLock} per key, forgotten when nobody holds or waits for it."""

    def __init__(self):
        self._locks = {}

    def acquire(self, key):
        """@return: Deferred firing when the caller holds C{key}'s lock."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        return lock.acquire().addCallback(lambda _: None)

    def release(self, key):
        lock = self._locks[key]
        lock.release()
        if not lock.locked and not lock.waiting:
            del self._locks[key]

    @deferred
    async def run(self, key, function, *args):
        """Run C{function(*args)} (which may return a Deferred) holding C{key}'s lock."""
        await self.acquire(key)
        try:
            return await _maybeAwait(function(*args))
        finally:
            self.release(key)


async def _maybeAwait(result):
    if isinstance(result, Deferred):
        return await result
    if hasattr(result, "__await__"):
        return await result
    return result
