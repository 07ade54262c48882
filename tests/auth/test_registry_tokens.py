"""
Bearer tokens at the registry's door: every bad token, or a good token used
beyond its scope, is 401 or 403, and nothing is written.
"""

import base64
import json
import os
import time

import jwt
import pytest
import pytest_twisted
from treq.testing import StubTreq

from registryd.auth.controllers import tokenController
from registryd.auth.htpasswd import Htpasswd, addUser
from registryd.auth.issuer import TokenIssuer
from registryd.auth.keys import ephemeralSigningKey
from registryd.auth.policy import Policy
from registryd.auth.token import TokenVerifier
from registryd.driver.memory import MemoryDriver
from registryd.storage import paths
from registryd.storage.registry import Registry
from registryd.web.api import RegistryAPI
from tests.support import StubClient, digestOf

ISSUER, SERVICE, REALM = "test-issuer", "registry.test", "https://auth.test/token"
KEY = ephemeralSigningKey()
OTHER = ephemeralSigningKey()


def token(access=(), key=KEY, headers=None, **claims):
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "nbf": now - 1, "iat": now}
    body.update(claims)
    body["access"] = [
        {"type": type, "name": name, "actions": actions} for type, name, actions in access
    ]
    header = {"kid": KEY.keyID}
    header.update(headers or {})
    return jwt.encode(body, key.privateKey, algorithm="ES256", headers=header)


def unsigned(**claims):
    segment = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "access": [
        {"type": "repository", "name": "a", "actions": ["pull", "push", "delete"]}]}
    return f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': KEY.keyID})}.{segment(body)}."


def client():
    registry = Registry(MemoryDriver(), deleteEnabled=True)
    verifier = TokenVerifier(ISSUER, SERVICE, certificates=[KEY.certificate])
    c = StubClient.__new__(StubClient)
    c.registry = registry
    c._stub = StubTreq(RegistryAPI(registry, accessController=tokenController(REALM, SERVICE, verifier)).resource())
    c.url = "http://registry.test"
    return c


async def nothingStored(c):
    try:
        assert await c.registry.driver.list(paths.REPOSITORIES) == []
    except Exception as e:  # nothing at all under the root
        assert "PathNotFound" in type(e).__name__


async def attemptWrites(c, bearer, name="a"):
    """Every kind of write; returns the statuses."""
    data = os.urandom(5000)
    auth = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    statuses = []
    for method, path, body in [
        ("POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(data)}", data),
        ("POST", f"/v2/{name}/blobs/uploads/", b""),
        ("PUT", f"/v2/{name}/manifests/v1", b'{"schemaVersion":2}'),
        ("DELETE", f"/v2/{name}/manifests/v1", b""),
        ("DELETE", f"/v2/{name}/blobs/{digestOf(data)}", b""),
    ]:
        r = await c.request(method, path, headers=auth, body=body)
        statuses.append((r.status, r.errorCodes[0] if r.status >= 400 else None))
    return statuses


BAD_TOKENS = {
    "expired": lambda: token([("repository", "a", ["pull", "push", "delete"])], exp=int(time.time()) - 3600),
    "not yet valid": lambda: token([("repository", "a", ["pull", "push", "delete"])], nbf=int(time.time()) + 3600),
    "wrong audience": lambda: token([("repository", "a", ["pull", "push", "delete"])], aud="other.service"),
    "wrong issuer": lambda: token([("repository", "a", ["pull", "push", "delete"])], iss="evil"),
    "unsigned (alg none)": lambda: unsigned(),
    "forged (other key, our kid)": lambda: token([("repository", "a", ["pull", "push", "delete"])], key=OTHER),
    "truncated": lambda: token([("repository", "a", ["pull", "push", "delete"])])[:-20],
    "garbage": lambda: "not.a.jwt",
    "empty": lambda: "",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
@pytest_twisted.ensureDeferred
async def test_badTokensRefused(kind):
    c = client()
    statuses = await attemptWrites(c, BAD_TOKENS[kind]())
    assert statuses == [(401, "UNAUTHORIZED")] * 5, statuses
    r = await c.request("GET", "/v2/a/tags/list", headers={"Authorization": f"Bearer {BAD_TOKENS[kind]()}"})
    assert r.status == 401
    challenge = r.header("WWW-Authenticate").decode()
    assert challenge.startswith(f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:a:pull"')
    await nothingStored(c)


@pytest_twisted.ensureDeferred
async def test_noToken():
    c = client()
    assert await attemptWrites(c, None) == [(401, "UNAUTHORIZED")] * 5
    await nothingStored(c)


@pytest_twisted.ensureDeferred
async def test_tokenForAUsedOnB():
    c = client()
    good = token([("repository", "a", ["pull", "push", "delete"])])
    statuses = await attemptWrites(c, good, name="b")
    assert statuses == [(403, "DENIED")] * 5
    await nothingStored(c)
    r = await c.request("GET", "/v2/b/tags/list", headers={"Authorization": f"Bearer {good}"})
    assert r.status == 403
    assert 'scope="repository:b:pull",error="insufficient_scope"' in r.header("WWW-Authenticate").decode()


@pytest_twisted.ensureDeferred
async def test_pullTokenCannotPushOrDelete():
    c = client()
    pullOnly = token([("repository", "a", ["pull"])])
    assert await attemptWrites(c, pullOnly) == [(403, "DENIED")] * 5
    await nothingStored(c)
    # ... but may pull.
    r = await c.request("GET", "/v2/a/tags/list", headers={"Authorization": f"Bearer {pullOnly}"})
    assert (r.status, r.errorCodes) == (404, ["NAME_UNKNOWN"])


@pytest_twisted.ensureDeferred
async def test_goodTokenWorks():
    c = client()
    good = token([("repository", "a", ["pull", "push", "delete"])])
    data = b"allowed"
    r = await c.request("POST", f"/v2/a/blobs/uploads/?digest={digestOf(data)}", headers={"Authorization": f"Bearer {good}"}, body=data)
    assert r.status == 201
    r = await c.request("GET", f"/v2/a/blobs/{digestOf(data)}", headers={"Authorization": f"Bearer {good}"})
    assert r.body == data


@pytest_twisted.ensureDeferred
async def test_catalogNeedsCatalogScope():
    c = client()
    for access in ([], [("repository", "a", ["pull", "push"])], [("registry", "other", ["*"])]):
        r = await c.request("GET", "/v2/_catalog", headers={"Authorization": f"Bearer {token(access)}"})
        assert (r.status, r.errorCodes) == (403, ["DENIED"])
        assert 'scope="registry:catalog:*"' in r.header("WWW-Authenticate").decode()
    anonymous = token([], sub="")
    r = await c.request("GET", "/v2/_catalog", headers={"Authorization": f"Bearer {anonymous}"})
    assert r.status == 401
    r = await c.request("GET", "/v2/_catalog", headers={"Authorization": f"Bearer {token([('registry', 'catalog', ['*'])])}"})
    assert (r.status, r.json()) == (200, {"repositories": []})


@pytest_twisted.ensureDeferred
async def test_injectionInScopeAndServiceValues(tmp_path):
    """Hostile scope and service values never reach a header or a grant."""
    users = str(tmp_path / "htpasswd")
    addUser(users, "alice", "pw", rounds=4)
    policy = Policy.fromMapping({"rules": [{"repositories": ["**"], "anonymous": ["pull"]}]})
    issuer = TokenIssuer(ISSUER, SERVICE, KEY, Htpasswd(users), policy)
    stub = StubClient.__new__(StubClient)
    stub._stub = StubTreq(issuer.resource())
    stub.url = "http://auth.test"
    for scope in [
        'repository:a:pull"\r\nX-Injected: yes',
        "repository:a:pull\nrepository:b:push",
        'repository:a";evil="1:pull',
        "repository:../../etc:pull",
        "repository:A:pull",
    ]:
        from urllib.parse import quote

        r = await stub.request("GET", f"/?service={SERVICE}&scope={quote(scope)}")
        assert r.status == 200
        assert r.header("X-Injected") is None
        claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
        assert claims["access"] == []
    r = await stub.request("GET", f"/?service={quote(SERVICE + chr(34) + chr(13) + chr(10) + 'X-Injected: yes')}&scope=repository:a:pull")
    assert r.status == 400
    assert r.header("X-Injected") is None


@pytest_twisted.ensureDeferred
async def test_hostileHostDoesNotReachRealm():
    """A realm built from the Host header only uses a plain host name."""
    from registryd.web.responses import URLs

    c = client()
    controller = tokenController(URLs().absolute("/token"), SERVICE, TokenVerifier(ISSUER, SERVICE, certificates=[KEY.certificate]))
    c._stub = StubTreq(RegistryAPI(c.registry, accessController=controller).resource())
    r = await c.request("GET", "/v2/", headers={"Host": 'evil.com",error="x'})
    challenge = r.header("WWW-Authenticate").decode()
    assert challenge.startswith('Bearer realm="/token",')
    assert "evil" not in challenge


@pytest_twisted.ensureDeferred
async def test_resourceClassesFromTokenClaims():
    """policy.repository.classes against the classes the token's access entries name."""
    from tests.web.manifestkit import imageManifest

    registry = Registry(MemoryDriver(), deleteEnabled=True)
    verifier = TokenVerifier(ISSUER, SERVICE, certificates=[KEY.certificate])
    api = RegistryAPI(
        registry,
        repositoryClasses=("image", "plugin"),
        accessController=tokenController(REALM, SERVICE, verifier),
    )
    c = StubClient.__new__(StubClient)
    c._stub = StubTreq(api.resource())
    c.url = "http://registry.test"
    now = int(time.time())
    for name, entryClass, expected in (("plugins", "plugin", 403), ("images", "image", 201), ("plain", None, 201)):
        entry = {"type": "repository", "name": name, "actions": ["pull", "push"]}
        if entryClass:
            entry["class"] = entryClass
        bearer = jwt.encode(
            {"iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "access": [entry]},
            KEY.privateKey, algorithm="ES256", headers={"kid": KEY.keyID},
        )
        auth = {"Authorization": f"Bearer {bearer}"}
        config = b'{"architecture":"amd64"}'
        r = await c.request("POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(config)}", headers=auth, body=config)
        assert r.status == 201
        payload = imageManifest(config, [], "application/vnd.docker.distribution.manifest.v2+json")
        r = await c.request(
            "PUT", f"/v2/{name}/manifests/t",
            headers={**auth, "Content-Type": "application/vnd.docker.distribution.manifest.v2+json"}, body=payload,
        )
        assert r.status == expected, (name, r.body)
        if expected == 403:
            assert r.json()["errors"][0]["message"] == "repository not authorized for image manifest"
