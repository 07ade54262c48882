"""The built-in token issuer: its tokens, and its endpoint as docker, podman and skopeo use it."""

import base64
import json
import re
import time
from urllib.parse import quote

import jwt
import pytest
import pytest_twisted
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from treq.testing import StubTreq

from registryd.auth.access import Access
from registryd.auth.htpasswd import Htpasswd, addUser
from registryd.auth.issuer import TokenIssuer
from registryd.auth.keys import loadOrCreateSigningKey
from registryd.auth.policy import Policy
from registryd.auth.token import InvalidToken, TokenVerifier
from tests.support import settle

ISSUER, SERVICE, REALM = "registryd-issuer", "registry.test", "registry.test login"
URL = "http://registry.test/"

POLICY = {
    "groups": {"team": ["alice"]},
    "rules": [
        {"repositories": ["public/**"], "anonymous": ["pull"]},
        {"repositories": ["team/**"], "groups": {"team": ["pull", "push"]}},
        {"repositories": ["**"], "users": {"admin": ["pull", "push", "delete"]}},
    ],
    "catalog": {"users": ["admin"]},
}


class Clock:
    def __init__(self):
        self.now = int(time.time())

    def time(self):
        return self.now


class Setup:
    def __init__(self, tmp_path):
        self.htpasswdPath = str(tmp_path / "htpasswd")
        for user in ("alice", "bob", "admin"):
            addUser(self.htpasswdPath, user, f"{user}-secret", rounds=4)
        self.users = Htpasswd(self.htpasswdPath)
        self.key = loadOrCreateSigningKey(str(tmp_path / "token.key"))
        self.clock = Clock()
        self.issuer = TokenIssuer(
            ISSUER, SERVICE, self.key, self.users, Policy.fromMapping(POLICY), clock=self.clock, realm=REALM
        )
        self.verifier = TokenVerifier(ISSUER, SERVICE, certificates=[self.key.certificate], clock=self.clock)
        self._stub = StubTreq(self.issuer.resource())

    async def request(self, method, url=URL, **kwargs):
        response = await self._settle(self._stub.request(method, url, **kwargs))
        body = await self._settle(self._stub.content(response))
        return response, body

    async def get(self, scopes=(), auth=None, **params):
        query = [("service", SERVICE)] + [("scope", s) for s in scopes] + list(params.items())
        headers = {}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        return await self.request("GET", params=query, headers=headers)

    async def post(self, **form):
        form.setdefault("service", SERVICE)
        form.setdefault("client_id", "docker")
        return await self.request("POST", data=form)

    def _settle(self, d):
        return settle(self._stub, d)


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def repo(name, action):
    return Access("repository", name, action)


def header(response, name):
    values = response.headers.getRawHeaders(name.encode())
    return None if values is None else values[0]


# Tokens ------------------------------------------------------------------------


def test_issuedTokenClaimsAndHeader(setup):
    response = setup.issuer.issue("alice", ["repository:team/app:pull,push"])
    token = response["token"]
    assert response["access_token"] == token
    assert response["expires_in"] == 300
    assert response["issued_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(setup.clock.now))
    assert "refresh_token" not in response
    head = jwt.get_unverified_header(token)
    assert head["alg"] == "ES256"
    assert head["kid"] == setup.key.keyID
    assert base64.b64decode(head["x5c"][0]) == setup.key.certificate.public_bytes(Encoding.DER)
    claims = jwt.decode(token, options={"verify_signature": False})
    now = setup.clock.now
    assert {k: claims[k] for k in ("iss", "sub", "aud", "exp", "nbf", "iat")} == {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
    }
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
    other = jwt.decode(setup.issuer.issue("alice", [])["token"], options={"verify_signature": False})
    assert len(claims["jti"]) >= 16 and claims["jti"] != other["jti"]


def test_tokensVerifyWithTheCertificateAndWithTheJWKS(setup):
    token = setup.issuer.issue("alice", ["repository:team/app:pull"])["token"]
    expected = frozenset({repo("team/app", "pull")})
    assert setup.verifier.verify(token).accesses == expected
    withJWKS = TokenVerifier(ISSUER, SERVICE, jwks=setup.key.jwks(), clock=setup.clock)
    assert withJWKS.verify(token).accesses == expected
    assert withJWKS.verify(token).subject == "alice"


def test_grantsAreRequestedIntersectAllowed(setup):
    scopes = [
        "repository:team/app:pull,push,delete",  # delete not allowed
        "repository:other/app:pull",  # nothing allowed
        "repository:public/x:pull",
        "registry:catalog:*",
    ]
    claims = setup.verifier.verify(setup.issuer.issue("alice", scopes)["token"])
    assert claims.accesses == {repo("team/app", "pull"), repo("team/app", "push"), repo("public/x", "pull")}
    admin = setup.verifier.verify(setup.issuer.issue("admin", ["repository:x:pull"])["token"])
    assert admin.accesses == {repo("x", "pull")}  # never more than requested


def test_anonymousToken(setup):
    response = setup.issuer.issue(None, ["repository:public/x:pull,push", "repository:team/app:pull"])
    assert jwt.decode(response["token"], options={"verify_signature": False})["sub"] == ""
    claims = setup.verifier.verify(response["token"])
    assert claims.subject is None
    assert claims.accesses == {repo("public/x", "pull")}
    assert response["scope"] == "repository:public/x:pull"


def test_refreshTokenIsNoAccessToken(setup):
    response = setup.issuer.issue("alice", ["repository:team/app:pull"], withRefresh=True)
    refresh = response["refresh_token"]
    claims = jwt.decode(refresh, options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["aud"] == SERVICE
    assert claims["exp"] == setup.clock.now + 30 * 86400
    assert "access" not in claims
    with pytest.raises(InvalidToken, match="refresh"):
        setup.verifier.verify(refresh)


# GET, as docker, podman and skopeo ask ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_getAnonymous(setup):
    response, body = await setup.get(["repository:public/x:pull,push", "repository:team/app:pull"])
    assert response.code == 200
    assert header(response, "Content-Type") == b"application/json"
    assert header(response, "Cache-Control") == b"no-store"
    result = json.loads(body)
    assert setup.verifier.verify(result["token"]).accesses == {repo("public/x", "pull")}
    assert result["access_token"] == result["token"]
    assert "refresh_token" not in result


@pytest_twisted.ensureDeferred
async def test_getWithBasicCredentialsAndSeveralScopes(setup):
    response, body = await setup.get(
        ["repository:team/app:pull,push", "repository:public/x:pull", "registry:catalog:*"],
        auth=("alice", "alice-secret"),
        account="alice",
    )
    assert response.code == 200
    claims = setup.verifier.verify(json.loads(body)["token"])
    assert claims.subject == "alice"
    assert claims.accesses == {repo("team/app", "pull"), repo("team/app", "push"), repo("public/x", "pull")}


@pytest_twisted.ensureDeferred
async def test_getSpaceSeparatedScopes(setup):
    response, body = await setup.get(
        ["repository:team/app:pull repository:public/x:pull"], auth=("alice", "alice-secret")
    )
    claims = setup.verifier.verify(json.loads(body)["token"])
    assert claims.accesses == {repo("team/app", "pull"), repo("public/x", "pull")}


@pytest.mark.parametrize("auth", [("alice", "wrong"), ("nobody", "alice-secret"), ("alice", ""), ("", "")])
@pytest_twisted.ensureDeferred
async def test_getWithBadCredentials(setup, logged, auth):
    response, body = await setup.get(["repository:team/app:pull"], auth=auth)
    assert response.code == 401
    assert header(response, "WWW-Authenticate") == f'Basic realm="{REALM}"'.encode()
    assert json.loads(body) == {
        "errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password", "detail": None}]
    }
    failures = [formatEvent(e) for e in logged if "failed login" in formatEvent(e)]
    assert len(failures) == 1
    assert repr(auth[0]) in failures[0] and "127.0.0.1" in failures[0]
    if auth[1]:
        assert not any(auth[1] in formatEvent(e) or auth[1] in repr(e) for e in logged)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest x",
    ],
)
@pytest_twisted.ensureDeferred
async def test_getWithMalformedAuthorization(setup, authorization):
    response, body = await setup.request(
        "GET", params={"service": SERVICE}, headers={"Authorization": authorization}
    )
    assert response.code == 401
    assert header(response, "WWW-Authenticate") == f'Basic realm="{REALM}"'.encode()
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"


@pytest_twisted.ensureDeferred
async def test_getOfflineTokenAddsARefreshToken(setup):
    _, body = await setup.get(
        ["repository:team/app:pull"], auth=("alice", "alice-secret"), offline_token="true"
    )
    result = json.loads(body)
    assert jwt.decode(result["refresh_token"], options={"verify_signature": False})["refresh"] is True
    _, body = await setup.get(["repository:public/x:pull"], offline_token="true")
    assert "refresh_token" not in json.loads(body)  # anonymous callers have nothing to refresh


@pytest_twisted.ensureDeferred
async def test_getForAnotherService(setup):
    response, body = await setup.request(
        "GET", params={"service": "evil.test", "scope": "repository:public/x:pull"}
    )
    assert response.code == 400
    assert json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"


@pytest_twisted.ensureDeferred
async def test_getWithoutServiceIsForOurs(setup):
    response, body = await setup.request("GET", params={"scope": "repository:public/x:pull"})
    assert response.code == 200
    assert setup.verifier.verify(json.loads(body)["token"]).accesses == {repo("public/x", "pull")}


@pytest.mark.parametrize(
    "scope",
    [
        "repository:public/x:pull\r\nX-Injected: yes",
        "repository:Public/X:pull",
        "repository:public/x",
        "repository:public/x:pull;push",
        'repository:public/x:pull"',
        "unknown:public/x:pull",
        "",
    ],
)
@pytest_twisted.ensureDeferred
async def test_malformedScopesGrantNothing(setup, scope):
    response, body = await setup.request("GET", URL + "?service=" + SERVICE + "&scope=" + quote(scope))
    assert response.code == 200
    assert response.headers.getRawHeaders("X-Injected") is None
    result = json.loads(body)
    assert setup.verifier.verify(result["token"]).accesses == frozenset()
    assert result["scope"] == ""


@pytest_twisted.ensureDeferred
async def test_badUserNameIsNotEchoedIntoHeaders(setup, logged):
    response, _ = await setup.get([], auth=("evil\r\nX-Injected yes", "x"))
    assert response.code == 401
    assert response.headers.getRawHeaders("X-Injected") is None
    assert header(response, "WWW-Authenticate") == f'Basic realm="{REALM}"'.encode()
    assert any("'evil\\r\\nX-Injected yes'" in formatEvent(e) for e in logged)  # logged on one line


@pytest_twisted.ensureDeferred
async def test_mountedAtToken(setup):
    root = Resource()
    root.putChild(b"token", setup.issuer.resource())
    setup._stub = StubTreq(root)
    for path in ("token", "token/"):
        response, body = await setup.request(
            "GET", URL + path + "?service=" + SERVICE + "&scope=repository:public/x:pull"
        )
        assert response.code == 200, path
        assert response.request.absoluteURI.decode().endswith(
            path + "?service=" + SERVICE + "&scope=repository:public/x:pull"
        )
        assert setup.verifier.verify(json.loads(body)["token"]).accesses == {repo("public/x", "pull")}


# POST: OAuth2, as docker login and identity tokens use ------------------------------


@pytest_twisted.ensureDeferred
async def test_postPasswordGrant(setup):
    response, body = await setup.post(
        grant_type="password",
        username="alice",
        password="alice-secret",
        scope="repository:team/app:pull,push",
    )
    assert response.code == 200
    assert header(response, "Cache-Control") == b"no-store"
    result = json.loads(body)
    claims = setup.verifier.verify(result["access_token"])
    assert claims.subject == "alice"
    assert claims.accesses == {repo("team/app", "pull"), repo("team/app", "push")}
    assert result["scope"] == "repository:team/app:pull,push"
    assert "refresh_token" not in result


@pytest_twisted.ensureDeferred
async def test_postPasswordGrantOfflineGivesARefreshToken(setup):
    _, body = await setup.post(
        grant_type="password", username="alice", password="alice-secret", access_type="offline", scope=""
    )
    result = json.loads(body)
    assert setup.verifier.verify(result["access_token"]).accesses == frozenset()
    assert jwt.decode(result["refresh_token"], options={"verify_signature": False})["sub"] == "alice"


@pytest_twisted.ensureDeferred
async def test_postBadPassword(setup, logged):
    response, body = await setup.post(grant_type="password", username="alice", password="nope", scope="")
    assert response.code == 400
    assert json.loads(body)["error"] == "invalid_grant"
    assert any("failed login as 'alice'" in formatEvent(e) for e in logged)
    assert not any("nope" in formatEvent(e) or "nope" in repr(e) for e in logged)


@pytest.mark.parametrize(
    "form", [{"username": "alice"}, {"password": "alice-secret"}, {"username": "", "password": "x"}]
)
@pytest_twisted.ensureDeferred
async def test_postPasswordGrantNeedsBoth(setup, form):
    response, body = await setup.post(grant_type="password", **form)
    assert response.code == 400
    assert json.loads(body)["error"] == "invalid_request"


@pytest_twisted.ensureDeferred
async def test_postRefreshGrant(setup):
    _, body = await setup.post(
        grant_type="password", username="alice", password="alice-secret", access_type="offline"
    )
    refresh = json.loads(body)["refresh_token"]
    setup.clock.now += 3600  # the access token is long gone; the refresh token is not
    response, body = await setup.post(
        grant_type="refresh_token",
        refresh_token=refresh,
        scope="repository:team/app:push repository:secret/x:pull",
    )
    assert response.code == 200
    result = json.loads(body)
    claims = setup.verifier.verify(result["access_token"])
    assert claims.subject == "alice"
    assert claims.accesses == {repo("team/app", "push")}
    assert "refresh_token" not in result


@pytest_twisted.ensureDeferred
async def test_accessTokenIsNoRefreshToken(setup, logged):
    access = setup.issuer.issue("alice", ["repository:team/app:pull"])["token"]
    response, body = await setup.post(
        grant_type="refresh_token", refresh_token=access, scope="repository:team/app:pull"
    )
    assert response.code == 400
    assert json.loads(body)["error"] == "invalid_grant"
    assert any("not a refresh token" in formatEvent(e) for e in logged)


@pytest_twisted.ensureDeferred
async def test_refreshTokenRefusedWhenExpiredForeignOrUserGone(setup, tmp_path):
    refresh = setup.issuer.issue("bob", [], withRefresh=True)["refresh_token"]
    other = TokenIssuer(
        ISSUER,
        SERVICE,
        loadOrCreateSigningKey(str(tmp_path / "other.key")),
        setup.users,
        Policy.fromMapping(POLICY),
    )
    foreign = other.issue("bob", [], withRefresh=True)["refresh_token"]
    elsewhere = TokenIssuer(ISSUER, "other.test", setup.key, setup.users, Policy.fromMapping(POLICY))
    wrongService = elsewhere.issue("bob", [], withRefresh=True)["refresh_token"]
    for token in (foreign, wrongService, refresh[:-4], "garbage"):
        response, body = await setup.post(grant_type="refresh_token", refresh_token=token)
        assert (response.code, json.loads(body)["error"]) == (400, "invalid_grant")
    response, _ = await setup.post(grant_type="refresh_token", refresh_token=refresh)
    assert response.code == 200
    setup.clock.now += 30 * 86400 + 1
    response, _ = await setup.post(grant_type="refresh_token", refresh_token=refresh)
    assert response.code == 400
    setup.clock.now -= 86400
    with open(setup.htpasswdPath) as f:
        lines = [line for line in f if not line.startswith("bob:")]
    with open(setup.htpasswdPath, "w") as f:
        f.writelines(lines)
    response, _ = await setup.post(grant_type="refresh_token", refresh_token=refresh)
    assert response.code == 400


@pytest.mark.parametrize(
    "form, status, error",
    [
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code\r\nX-Injected: yes"}, 400, "unsupported_grant_type"),
        ({}, 400, "invalid_request"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        (
            {"grant_type": "password", "username": "alice", "password": "alice-secret", "service": "evil"},
            400,
            "invalid_request",
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_postErrors(setup, form, status, error):
    response, body = await setup.post(**form)
    assert response.code == status
    assert json.loads(body)["error"] == error
    assert response.headers.getRawHeaders("X-Injected") is None
    assert "X-Injected" not in body.decode()


@pytest_twisted.ensureDeferred
async def test_otherMethodsAreNotAllowed(setup):
    response, _ = await setup.request("DELETE")
    assert response.code == 405


def test_issuedAtIsRFC3339(setup):
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", setup.issuer.issue(None, [])["issued_at"])
