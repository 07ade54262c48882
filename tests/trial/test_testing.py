"""registryd.testing under twisted.trial, which also checks the reactor is left clean."""

import hashlib

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from registryd.testing import startRegistry


class StartRegistryTests(TestCase):
    @inlineCallbacks
    def _roundTrip(self, storage):
        running = yield startRegistry(storage=storage)
        self.addCleanup(running.stop)
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        client = treq.client.HTTPClient(Agent(reactor, pool=pool))
        data = b"pushed under trial"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        response = yield client.post(f"{running.url}/v2/t/blobs/uploads/?digest={digest}", data=data)
        self.assertEqual(response.code, 201)
        yield response.content()
        response = yield client.get(f"{running.url}/v2/t/blobs/{digest}")
        self.assertEqual((yield response.content()), data)
        # The registry object behind it holds the blob too.
        info = yield running.registry.repository("t").blobs.stat(digest)
        self.assertEqual(info.size, len(data))

    def test_inMemory(self):
        return self._roundTrip("inmemory")

    def test_filesystem(self):
        return self._roundTrip("filesystem")

    @inlineCallbacks
    def test_stopClosesOpenConnections(self):
        """A client that keeps its connection open does not leave the reactor dirty."""
        running = yield startRegistry()
        pool = HTTPConnectionPool(reactor, persistent=True)
        client = treq.client.HTTPClient(Agent(reactor, pool=pool))
        response = yield client.get(f"{running.url}/v2/")
        yield response.content()
        yield running.stop()
        yield pool.closeCachedConnections()
