"""The access controllers in front of the API: htpasswd (Basic) and silly."""

import base64
import os

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.logger import globalLogPublisher

from registryd.auth.controllers import htpasswdController, sillyController
from registryd.auth.htpasswd import Htpasswd, addUser
from registryd.driver.memory import MemoryDriver
from registryd.storage import paths
from registryd.storage.registry import Registry
from registryd.web.api import RegistryAPI
from tests.support import StubClient, digestOf


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def stubClient(controller):
    registry = Registry(MemoryDriver(), deleteEnabled=True)
    client = StubClient.__new__(StubClient)
    client.registry = registry
    client._stub = StubTreq(RegistryAPI(registry, accessController=controller).resource())
    client.url = "http://registry.test"
    return client


@pytest.fixture
def htpasswdFile(tmp_path):
    path = str(tmp_path / "htpasswd")
    addUser(path, "alice", "wonderland", rounds=4)
    return path


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest_twisted.ensureDeferred
async def test_basicChallenge(htpasswdFile):
    client = stubClient(htpasswdController("my realm", Htpasswd(htpasswdFile)))
    r = await client.request("GET", "/v2/")
    assert (r.status, r.errorCodes) == (401, ["UNAUTHORIZED"])
    assert r.header("WWW-Authenticate") == b'Basic realm="my realm"'
    r = await client.request("GET", "/v2/", headers={"Authorization": basic("alice", "wonderland")})
    assert (r.status, r.json()) == (200, {})


@pytest.mark.parametrize(
    "authorization",
    [
        basic("alice", "wrong"),
        basic("mallory", "wonderland"),
        basic("alice", ""),
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer sometoken",
        "Digest username=alice",
        "Basic",
    ],
)
@pytest_twisted.ensureDeferred
async def test_badCredentials(htpasswdFile, authorization):
    client = stubClient(htpasswdController("r", Htpasswd(htpasswdFile)))
    r = await client.request("GET", "/v2/a/tags/list", headers={"Authorization": authorization})
    assert (r.status, r.errorCodes) == (401, ["UNAUTHORIZED"])
    assert r.header("WWW-Authenticate") == b'Basic realm="r"'


@pytest_twisted.ensureDeferred
async def test_refusedPushStoresNothing(htpasswdFile):
    client = stubClient(htpasswdController("r", Htpasswd(htpasswdFile)))
    data = os.urandom(10000)
    digest = digestOf(data)
    for headers in ({}, {"Authorization": basic("alice", "bad")}):
        r = await client.request("POST", f"/v2/a/blobs/uploads/?digest={digest}", headers=headers, body=data)
        assert r.status == 401
        r = await client.request("PUT", "/v2/a/manifests/t", headers=headers, body=b"{}")
        assert r.status == 401
    try:
        stored = await client.registry.driver.list(paths.REPOSITORIES)
    except Exception:
        stored = []
    assert stored == []
    r = await client.request(
        "POST", f"/v2/a/blobs/uploads/?digest={digest}", headers={"Authorization": basic("alice", "wonderland")}, body=data
    )
    assert r.status == 201


@pytest_twisted.ensureDeferred
async def test_failedLoginLoggedWithoutSecret(htpasswdFile, logged):
    client = stubClient(htpasswdController("r", Htpasswd(htpasswdFile)))
    await client.request("GET", "/v2/", headers={"Authorization": basic("alice", "hunter2-secret")})
    from twisted.logger import formatEvent

    lines = [formatEvent(e) for e in logged]
    failures = [l for l in lines if "failed login" in l]
    assert failures and "alice" in failures[0]
    assert not any("hunter2-secret" in l for l in lines)


@pytest_twisted.ensureDeferred
async def test_fileReReadWhenChanged(htpasswdFile):
    client = stubClient(htpasswdController("r", Htpasswd(htpasswdFile)))
    r = await client.request("GET", "/v2/", headers={"Authorization": basic("bob", "builder")})
    assert r.status == 401
    addUser(htpasswdFile, "bob", "builder", rounds=4)
    r = await client.request("GET", "/v2/", headers={"Authorization": basic("bob", "builder")})
    assert r.status == 200
    addUser(htpasswdFile, "bob", "changed", rounds=4)
    r = await client.request("GET", "/v2/", headers={"Authorization": basic("bob", "changed")})
    assert r.status == 200


def test_onlyBcryptEntries(tmp_path):
    path = tmp_path / "htpasswd"
    addUser(str(path), "good", "pw", rounds=4)
    with open(path, "ab") as f:
        f.write(b"md5user:$apr1$abcdefgh$0123456789abcdefghijkl\nshauser:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbroken\n")
    htpasswd = Htpasswd(str(path))
    assert htpasswd.users() == {"good"}
    assert htpasswd.check("good", "pw")
    assert not htpasswd.check("good", "other")
    assert not htpasswd.check("md5user", "password")


@pytest_twisted.ensureDeferred
async def test_sillyChallengesWithScope():
    client = stubClient(sillyController("https://auth.example/token", "registry.example"))
    r = await client.request("PUT", "/v2/lib/app/manifests/v1", body=b"{}")
    assert (r.status, r.errorCodes) == (401, ["UNAUTHORIZED"])
    assert r.header("WWW-Authenticate") == (
        b'Bearer realm="https://auth.example/token",service="registry.example",'
        b'scope="repository:lib/app:pull,push"'
    )
    r = await client.request("GET", "/v2/_catalog")
    assert b'scope="registry:catalog:*"' in r.header("WWW-Authenticate")
    r = await client.request("GET", "/v2/_catalog", headers={"Authorization": "Bearer anything"})
    assert r.status == 200
