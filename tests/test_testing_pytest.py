"""registryd.testing under pytest-twisted, as the module's docstring shows."""

import hashlib
import http.client

import pytest_twisted
from twisted.internet.threads import deferToThread

from registryd.testing import startRegistry


@pytest_twisted.async_yield_fixture
async def registry():
    running = await startRegistry(storage="filesystem")
    yield running
    await running.stop()


def _push(host, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    connection = http.client.HTTPConnection(host)
    connection.request("POST", f"/v2/p/blobs/uploads/?digest={digest}", body=data)
    status = connection.getresponse().status
    connection.close()
    return status, digest


@pytest_twisted.ensureDeferred
async def test_pushThroughRealSocket(registry):
    assert registry.url.startswith("http://127.0.0.1:")
    status, digest = await deferToThread(_push, registry.host, b"pytest-twisted")
    assert status == 201
    info = await registry.registry.repository("p").blobs.stat(digest)
    assert info.size == len(b"pytest-twisted")
    # Filesystem storage really is on disk under the root it reports.
    import os

    assert os.path.isdir(os.path.join(registry.root, "docker/registry/v2/blobs"))
