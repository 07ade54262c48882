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

import http.client
import socket

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web.http_headers import Headers
from treq.testing import StubTreq

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
        values = self.headers.getRawHeaders(name.encode())
        return None if values is None else values[0]

    @property
    def length(self):
        """The Content-Length sent, as an int (None if absent)."""
        value = self.header("Content-Length")
        return None if value is None else int(value)

    def json(self):
        return json.loads(self.body)

    @property
    def errorCodes(self):
        return [e["code"] for e in self.json()["errors"]]


def configWith(
    deleteEnabled=True,
    readonly=False,
    classes=(),
    urlsAllow=(),
    urlsDeny=(),
    validationDisabled=False,
    **http,
):
    config = defaultConfig()
    return replace(
        config,
        storage=replace(config.storage, deleteEnabled=deleteEnabled, readonly=readonly),
        http=replace(config.http, **http) if http else config.http,
        policy=replace(config.policy, repositoryClasses=tuple(classes)),
        validation=replace(
            config.validation,
            disabled=validationDisabled,
            manifestURLsAllow=tuple(urlsAllow),
            manifestURLsDeny=tuple(urlsDeny),
        ),
    )


async def settle(stub, d):
    """
    Pump StubTreq C{stub}'s in-memory connection until C{d} has its result,
    letting the real reactor run meanwhile (for work done in threads).
    """
    done = []
    d.addBoth(lambda result: done.append(True) or result)
    while not done:
        stub.flush()
        await deferLater(reactor, 0, lambda: None)
    return await d


class StubClient:
    """Requests through StubTreq; the registry's calls never block."""

    seesHeadLength = False  # Twisted's client hides a HEAD's Content-Length

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
        # Twisted's client keeps Content-Length out of the headers; put back
        # what it parsed (it cannot know it for HEAD responses).
        if isinstance(response.length, int) and method != "HEAD":
            response.headers.setRawHeaders(b"Content-Length", [b"%d" % (response.length,)])
        return Response(response.code, response.headers, content)

    def _settle(self, d):
        return settle(self._stub, d)

    async def close(self):
        self._stub.flush()


class SocketClient:
    """
    Requests over a real loopback socket to a registry in this process, with
    C{http.client} in a thread, so every response header is seen as sent.
    """

    seesHeadLength = True

    def __init__(self, running):
        self._running = running
        self.registry = running.registry
        self.url = running.url

    async def request(self, method, path, headers=None, body=b""):
        return await deferToThread(self._request, method, path, headers, body)

    def _request(self, method, path, headers, body):
        address, port = self._running.host.split(":")
        sock = socket.create_connection((address, int(port)), timeout=60)
        try:
            head = [f"{method} {path} HTTP/1.1", f"Host: {self._running.host}", "Connection: close"]
            for name, values in (headers or {}).items():
                for value in values if isinstance(values, list) else [values]:
                    head.append(f"{name}: {value}")
            if body or method in ("POST", "PUT", "PATCH"):
                head.append(f"Content-Length: {len(body or b'')}")
            try:
                sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered before the body was taken: read the answer
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            content = response.read()
        finally:
            sock.close()
        raw = Headers()
        for name, value in response.getheaders():
            raw.addRawHeader(name, value.encode("latin-1"))
        return Response(response.status, raw, content)

    async def close(self):
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
