"""
The built-in token server, so a small team needs no separate auth server.

It speaks Docker's token protocol at the root of its resource (the service
mounts it at C{/token}):

  - C{GET ?service=S&scope=repository:a/b:pull,push&scope=...}, with Basic
    credentials or none, as docker, podman and skopeo ask before each
    operation; C{offline_token=true} adds a refresh token;
  - C{POST}, form-encoded OAuth2, as C{docker login} and clients holding an
    identity token ask: C{grant_type=password} (C{username}, C{password};
    C{access_type=offline} adds a refresh token) or
    C{grant_type=refresh_token} (C{refresh_token}); C{scope} is
    space-separated there.

Users are those of an htpasswd file; a token grants the requested accesses
the L{registryd.auth.policy.Policy} allows its user, never more.  Tokens are
ES256 JWTs whose header carries both C{kid} and C{x5c}, so registryd's
verifier (with the certificate or the JWKS) and Distribution's (with the
certificate as C{rootcertbundle}) accept them.  Refresh tokens are JWTs of
the same key marked with L{REFRESH_CLAIM}; each kind is refused where the
other is expected.
"""

import base64
import json
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization
from klein import Klein
from twisted.cred.error import LoginFailed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web.guard import BasicCredentialFactory

from registryd import errors
from registryd.auth.access import parseScope, scopes as scopeStrings
from registryd.auth.token import REFRESH_CLAIM, InvalidToken, decodeToken

log = Logger()


class ServiceUnknown(errors.RegistryError):
    """A GET for another registry's tokens."""

    code = "UNSUPPORTED"
    status = 400
    message = "tokens are not issued for this service here"


class OAuthError(Exception):
    """An RFC 6749 error answer to a POST."""

    def __init__(self, status, error, description):
        super().__init__(error, description)
        self.status = status
        self.error = error
        self.description = description


def _remote(request):
    return getattr(request.getClientAddress(), "host", "-")


def _quoted(value):
    return '"' + value.replace("\\", "").replace('"', "") + '"'


def _json(request, status, body, headers=()):
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    for name, value in headers:
        request.setHeader(name, value)
    return json.dumps(body).encode("utf-8")


def _arg(request, name):
    values = request.args.get(name.encode())
    return None if not values else values[0].decode("utf-8", "replace")


def _requestedScopes(request):
    """Every scope of every C{scope} parameter (space-separated in OAuth2)."""
    values = request.args.get(b"scope", [])
    return [scope for value in values for scope in value.decode("utf-8", "replace").split(" ")]


class TokenIssuer:
    """
    Issues tokens for C{service} as C{issuer}.

    @param signingKey: A L{registryd.auth.keys.SigningKey}.
    @param users: A L{registryd.auth.htpasswd.Htpasswd}: its C{check} for
        passwords, its C{users} so refresh tokens die with their user.
    @param policy: A L{registryd.auth.policy.Policy}.
    @param expiration: Seconds an access token lasts.
    @param refreshExpiration: Seconds a refresh token lasts.
    @param clock: Has C{time()}.
    @param realm: The Basic challenge's realm (default: C{service}).
    """

    app = Klein()

    def __init__(
        self,
        issuer,
        service,
        signingKey,
        users,
        policy,
        expiration=300,
        refreshExpiration=30 * 86400,
        clock=time,
        realm=None,
    ):
        self._issuer = issuer
        self._service = service
        self._key = signingKey
        self._users = users
        self._policy = policy
        # Whole seconds: Go clients decode expires_in into an int.
        self._expiration = int(round(expiration))
        self._refreshExpiration = int(round(refreshExpiration))
        self._clock = clock
        self._realm = realm or service
        der = signingKey.certificate.public_bytes(serialization.Encoding.DER)
        self._x5c = [base64.b64encode(der).decode()]

    def resource(self):
        """
        The L{IResource} answering token requests at its root; mounted as a
        child, it answers without a trailing slash too (no redirect: clients
        would follow it without the query).
        """
        return self.app.resource()

    def _sign(self, claims):
        return jwt.encode(
            claims,
            self._key.privateKey,
            algorithm=self._key.algorithm,
            headers={"kid": self._key.keyID, "x5c": self._x5c},
        )

    def issue(self, user, scopes, withRefresh=False):
        """
        The token response for C{user} (None: anonymous), who has been
        authenticated, asking for the scope strings C{scopes}.

        @return: The JSON-ready dict: C{token} and C{access_token} (the same
            JWT), C{expires_in}, C{issued_at}, C{scope} (what was granted),
            and C{refresh_token} if C{withRefresh}.
        """
        requested = [access for scope in scopes for access in parseScope(scope)]
        granted = self._policy.granted(user, requested)
        entries = {}
        for access in granted:
            entries.setdefault((access.type, access.name), []).append(access.action)
        now = int(self._clock.time())
        claims = {
            "iss": self._issuer,
            "sub": user or "",
            "aud": self._service,
            "exp": now + self._expiration,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
        }
        token = self._sign(
            {**claims, "access": [{"type": t, "name": n, "actions": a} for (t, n), a in entries.items()]}
        )
        response = {
            "token": token,
            "access_token": token,
            "expires_in": self._expiration,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "scope": " ".join(scopeStrings(granted)),
        }
        if withRefresh:
            response["refresh_token"] = self._sign(
                {**claims, "exp": now + self._refreshExpiration, REFRESH_CLAIM: True}
            )
        return response

    def _forService(self, request):
        """Whether the request asks for our service (clients always name it; absent is fine)."""
        return _arg(request, "service") in (None, self._service)

    async def _login(self, request, user, password):
        """Whether C{password} (bytes) is C{user}'s; failures are logged."""
        if user and await deferToThread(self._users.check, user, password):
            return True
        log.warn("token: failed login as {user!r} from {remote}", user=user, remote=_remote(request))
        return False

    def _refreshUser(self, request, token):
        """The user a refresh token is for, if it is ours, current, and they still exist."""
        try:
            claims = decodeToken(
                token,
                self._key.privateKey.public_key(),
                self._key.algorithm,
                self._issuer,
                self._service,
                0,
                self._clock.time(),
            )
        except InvalidToken as e:
            reason = str(e)
        else:
            user = claims.get("sub")
            if claims.get(REFRESH_CLAIM) is not True:
                reason = "not a refresh token"
            elif not user or user not in self._users.users():
                reason = "no such user"
            else:
                return user
        log.warn("token: refresh refused from {remote}: {reason}", remote=_remote(request), reason=reason)
        raise OAuthError(400, "invalid_grant", "invalid refresh token")

    @app.route("/", methods=["GET"], strict_slashes=False)
    async def get(self, request):
        if not self._forService(request):
            raise ServiceUnknown()
        user = None
        header = request.getHeader(b"authorization")
        if header is not None:
            scheme, _, response = header.partition(b" ")
            try:
                if scheme.lower() != b"basic":
                    raise LoginFailed("not Basic")
                credentials = BasicCredentialFactory(self._realm).decode(response.strip(), request)
            except LoginFailed:
                raise self._unauthorized("malformed credentials") from None
            user = credentials.username.decode("utf-8", "replace")
            if not await self._login(request, user, credentials.password):
                raise self._unauthorized("incorrect username or password")
        withRefresh = user is not None and _arg(request, "offline_token") == "true"
        return _json(request, 200, self.issue(user, _requestedScopes(request), withRefresh))

    def _unauthorized(self, message):
        challenge = f"Basic realm={_quoted(self._realm)}"
        return errors.Unauthorized(message=message, headers={"WWW-Authenticate": challenge})

    @app.route("/", methods=["POST"], strict_slashes=False)
    async def post(self, request):
        if not self._forService(request):
            raise OAuthError(400, "invalid_request", "tokens are not issued for this service here")
        grantType = _arg(request, "grant_type")
        if grantType == "password":
            user, password = _arg(request, "username"), request.args.get(b"password")
            if not user or not password:
                raise OAuthError(400, "invalid_request", "username and password required")
            if not await self._login(request, user, password[0]):
                raise OAuthError(400, "invalid_grant", "incorrect username or password")
            withRefresh = _arg(request, "access_type") == "offline"
        elif grantType == "refresh_token":
            token = _arg(request, "refresh_token")
            if not token:
                raise OAuthError(400, "invalid_request", "refresh_token required")
            user, withRefresh = self._refreshUser(request, token), False
        elif grantType is None:
            raise OAuthError(400, "invalid_request", "grant_type required")
        else:
            raise OAuthError(400, "unsupported_grant_type", "grant_type must be password or refresh_token")
        return _json(request, 200, self.issue(user, _requestedScopes(request), withRefresh))

    @app.handle_errors(errors.RegistryError)
    def registryError(self, request, failure):
        error = failure.value
        body = error.envelope()
        request.setResponseCode(error.status)
        request.setHeader(b"Content-Type", b"application/json")
        for name, value in error.headers.items():
            request.setHeader(name, value)
        return body

    @app.handle_errors(OAuthError)
    def oauthError(self, request, failure):
        error = failure.value
        return _json(request, error.status, {"error": error.error, "error_description": error.description})
