"""
Test clients that speak to the registry API in three setups, so one test
runs against each:

  - C{stub}: L{treq.testing.StubTreq} over the resource, in-memory storage;
  - C{memory}: a real loopback socket, in-memory storage;
  - C{filesystem}: a real loopback socket, filesystem storage.

The socket setups go through L{RegistrySite}, so upload bodies are streamed.
"""

import hashlib
import json
from dataclasses import dataclass, replace

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.client import HTTPConnectionPool
from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.web.client import Agent

from registryd.config import defaultConfig
from registryd.reference import Digest
from registryd.service import makeRegistry, makeResource
from registryd.testing import startRegistry

SETUPS = ["stub", "memory", "filesystem"]


@dataclass
class Response:
    status: int
    headers: object  # twisted.web.http_headers.Headers
    body: bytes

    def header(self, name):
        values = self.headers.getRawHeaders(name)
        return None if values is None else values[0]

    def json(self):
        return json.loads(self.body)

    @property
    def errorCodes(self):
        return [e["code"] for e in self.json()["errors"]]


def configWith(deleteEnabled=True, readonly=False, **http):
    config = defaultConfig()
    return replace(
        config,
        storage=replace(config.storage, deleteEnabled=deleteEnabled, readonly=readonly),
        http=replace(config.http, **http) if http else config.http,
    )


class StubClient:
    """Requests through StubTreq; the registry's calls never block."""

    def __init__(self, config):
        config = replace(config, storage=replace(config.storage, driver="inmemory"))
        self.registry = makeRegistry(config, reactor)
        self._stub = StubTreq(makeResource(config, self.registry))
        self.url = "http://registry.test"

    async def request(self, method, path, headers=None, body=b""):
        response = await self._settle(
            self._stub.request(method, self.url + path, headers=headers, data=body or None)
        )
        content = await self._settle(self._stub.content(response))
        return Response(response.code, response.headers, content)

    async def _settle(self, d):
        """Pump StubTreq's in-memory connection until C{d} has its result."""
        done = []
        d.addBoth(lambda result: done.append(True) or result)
        while not done:
            self._stub.flush()
            await deferLater(reactor, 0, lambda: None)
        return await d

    async def close(self):
        self._stub.flush()


class SocketClient:
    """Requests over a real loopback socket to a registry in this process."""

    def __init__(self, running):
        self._running = running
        self.registry = running.registry
        self.url = running.url
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.retryAutomatically = False
        self._client = HTTPClient(Agent(reactor, pool=self._pool))

    async def request(self, method, path, headers=None, body=b""):
        response = await self._client.request(
            method, self.url + path, headers=headers, data=body or None
        )
        content = await treq.content(response)
        return Response(response.code, response.headers, content)

    async def close(self):
        await self._pool.closeCachedConnections()
        await self._running.stop()


async def makeClient(setup, config=None):
    config = config or configWith()
    if setup == "stub":
        return StubClient(config)
    running = await startRegistry(storage="inmemory" if setup == "memory" else "filesystem", config=config)
    return SocketClient(running)


def digestOf(data, algorithm="sha256"):
    return Digest(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")


async def pushBlob(client, name, data):
    """Push C{data} monolithically; return its digest."""
    digest = digestOf(data)
    response = await client.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", body=data)
    assert response.status == 201, response.body
    return digest
