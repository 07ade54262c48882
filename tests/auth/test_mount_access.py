"""Mounts only from repositories the caller may read; otherwise an ordinary upload."""

import pytest_twisted
from treq.testing import StubTreq
from zope.interface import implementer

from registryd.auth.access import Access
from registryd.auth.interfaces import Grant, IAccessController
from registryd.driver.memory import MemoryDriver
from registryd.storage.registry import Registry
from registryd.web.api import RegistryAPI
from tests.support import StubClient, pushBlob


@implementer(IAccessController)
class Granting:
    """Everyone is 'user' with a fixed grant (what a token would carry)."""

    challengeScheme = "Bearer"

    def __init__(self, accesses):
        self.grant = Grant(user="user", accesses=frozenset(accesses))

    async def authorize(self, request, needed):
        return self.grant


def repo(name, *actions):
    return [Access("repository", name, action) for action in actions]


async def client(accesses):
    registry = Registry(MemoryDriver())
    # Arrange content with full access first.
    setup = StubClient.__new__(StubClient)
    setup._stub = StubTreq(RegistryAPI(registry).resource())
    setup.url = "http://registry.test"
    secret = await pushBlob(setup, "secret", b"secret layer")
    readable = await pushBlob(setup, "readable", b"readable layer")
    limited = StubClient.__new__(StubClient)
    limited._stub = StubTreq(RegistryAPI(registry, accessController=Granting(accesses)).resource())
    limited.url = "http://registry.test"
    return limited, secret, readable


@pytest_twisted.ensureDeferred
async def test_mountNeedsReadAccessToSource():
    c, secret, readable = await client(repo("target", "pull", "push") + repo("readable", "pull"))
    r = await c.request("POST", f"/v2/target/blobs/uploads/?mount={secret}&from=secret")
    assert r.status == 202  # not mounted: the caller may not read "secret"
    r = await c.request("HEAD", f"/v2/target/blobs/{secret}")
    assert r.status == 404
    r = await c.request("POST", f"/v2/target/blobs/uploads/?mount={readable}&from=readable")
    assert r.status == 201
    r = await c.request("GET", f"/v2/target/blobs/{readable}")
    assert r.body == b"readable layer"


@pytest_twisted.ensureDeferred
async def test_mountWithoutFromLooksOnlyWhereReadable():
    c, secret, readable = await client(repo("target", "pull", "push") + repo("readable", "pull"))
    r = await c.request("POST", f"/v2/target/blobs/uploads/?mount={secret}")
    assert r.status == 202
    r = await c.request("POST", f"/v2/target/blobs/uploads/?mount={readable}")
    assert r.status == 201
    assert (await c.request("HEAD", f"/v2/target/blobs/{readable}")).status == 200
