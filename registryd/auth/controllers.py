"""
The access controllers of the C{auth} configuration, on twisted.cred:
C{htpasswd} (Basic), C{token} (Bearer JWTs, also for the built-in issuer)
and C{silly} (any header; development only).

Each is a L{Portal} over checkers and a realm that makes a L{Grant}; the
controller turns the request's C{Authorization} header into credentials,
logs in, and compares the grant with what the route needs.  Failures become
401 UNAUTHORIZED with a challenge naming exactly what was needed, or, for
an authenticated caller whose token is too narrow, 403 DENIED with the same
challenge (RFC 6750's insufficient_scope).
"""

import hashlib
import hmac
import os
import time

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web.guard import BasicCredentialFactory
from twisted.web.iweb import ICredentialFactory
from zope.interface import Interface, implementer

from registryd import errors
from registryd.auth.access import scopes
from registryd.auth.interfaces import Grant, IAccessController, IGrant

log = Logger()


class IBearerToken(Interface):
    """Credentials holding a bearer token."""


@implementer(IBearerToken)
class BearerToken:
    def __init__(self, token):
        self.token = token


@implementer(ICredentialFactory)
class BearerCredentialFactory:
    scheme = b"bearer"

    def getChallenge(self, request):
        return {}

    def decode(self, response, request):
        token = response.strip()
        if not token:
            raise LoginFailed("empty bearer token")
        return BearerToken(token.decode("ascii", "replace"))


@implementer(ICredentialFactory)
class AnyCredentialFactory:
    """Silly auth: whatever follows the scheme is a credential."""

    def __init__(self, scheme):
        self.scheme = scheme

    def getChallenge(self, request):
        return {}

    def decode(self, response, request):
        return BearerToken(response.decode("ascii", "replace"))


@implementer(IRealm)
class GrantRealm:
    """Avatar ids are already L{Grant}s or user names; the realm hands them out."""

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IGrant not in interfaces:
            raise NotImplementedError(interfaces)
        grant = avatarId if isinstance(avatarId, Grant) else Grant(user=avatarId)
        return IGrant, grant, lambda: None


@implementer(ICredentialsChecker)
class HtpasswdChecker:
    """
    Usernames and passwords against an htpasswd file.  bcrypt is slow on
    purpose, so it runs in a thread, and a success is remembered for
    C{MEMORY} seconds under an HMAC of the credentials keyed by a secret of
    this process (clients send Basic credentials with every request).
    """

    credentialInterfaces = (IUsernamePassword,)
    MEMORY = 60.0

    def __init__(self, htpasswd, clock=time):
        self._htpasswd = htpasswd
        self._clock = clock
        self._secret = os.urandom(32)
        self._remembered = {}

    def _key(self, username, password):
        return hmac.new(self._secret, username + b"\0" + password, hashlib.sha256).digest()

    def requestAvatarId(self, credentials):
        username = credentials.username
        key = self._key(username, credentials.password)
        now = self._clock.time()
        remembered = self._remembered.get(username)
        if remembered and remembered[1] > now and hmac.compare_digest(remembered[0], key):
            return succeed(username.decode("utf-8", "replace"))
        d = deferToThread(self._htpasswd.check, username.decode("utf-8", "replace"), credentials.password)

        def checked(valid):
            if not valid:
                raise UnauthorizedLogin("bad user name or password")
            if len(self._remembered) > 10000:
                self._remembered.clear()
            self._remembered[username] = (key, now + self.MEMORY)
            return username.decode("utf-8", "replace")

        return d.addCallback(checked)


@implementer(ICredentialsChecker)
class TokenChecker:
    """Bearer JWTs, through a L{registryd.auth.token.TokenVerifier}."""

    credentialInterfaces = (IBearerToken,)

    def __init__(self, verifier):
        self._verifier = verifier

    def requestAvatarId(self, credentials):
        from registryd.auth.token import InvalidToken

        try:
            claims = self._verifier.verify(credentials.token)
        except InvalidToken as e:
            raise UnauthorizedLogin(str(e)) from None
        return succeed(
            Grant(user=claims.subject or None, accesses=claims.accesses, resources=claims.resources)
        )


@implementer(ICredentialsChecker)
class AnythingChecker:
    """Silly auth: any credential is a login."""

    credentialInterfaces = (IBearerToken,)

    def requestAvatarId(self, credentials):
        return succeed(Grant(user="silly"))


def _remote(request):
    address = request.getClientAddress()
    return getattr(address, "host", "-")


@implementer(IAccessController)
class AccessController:
    """
    An L{IAccessController} over a portal.

    @param factories: L{ICredentialFactory}s by lower-case scheme.
    @param challenge: C{challenge(request, needed, error) -> str}, the
        C{WWW-Authenticate} value for a 401 (and a 403 for too narrow a token).
    """

    def __init__(self, portal, factories, challenge, challengeScheme):
        self._portal = portal
        self._factories = factories
        self._challenge = challenge
        self.challengeScheme = challengeScheme

    def _unauthorized(self, request, needed, error=None, message="authentication required"):
        return errors.Unauthorized(
            detail=[{"Type": a.type, "Name": a.name, "Action": a.action} for a in needed] or None,
            message=message,
            headers={"WWW-Authenticate": self._challenge(request, needed, error)},
        )

    async def authorize(self, request, needed):
        header = request.getHeader(b"authorization")
        if header is None:
            raise self._unauthorized(request, needed)
        scheme, _, response = header.partition(b" ")
        factory = self._factories.get(scheme.lower())
        if factory is None:
            raise self._unauthorized(request, needed, "invalid_request", "unsupported authorization scheme")
        try:
            credentials = factory.decode(response, request)
        except LoginFailed:
            raise self._unauthorized(request, needed, "invalid_request", "malformed credentials") from None
        try:
            _, grant, _ = await self._portal.login(credentials, None, IGrant)
        except UnauthorizedLogin as e:
            who = getattr(credentials, "username", b"").decode("utf-8", "replace")
            log.warn(
                "failed login from {remote}{user}: {reason}",
                remote=_remote(request),
                user=f" as {who!r}" if who else "",
                reason=str(e) or "refused",
            )
            raise self._unauthorized(request, needed, "invalid_token", "authentication failed") from None
        if not grant.allows(needed):
            if grant.user is None:
                # Anonymous: logging in may help.
                raise self._unauthorized(request, needed, "insufficient_scope", "insufficient scope")
            # RFC 6750: an insufficient scope is 403, with the scope needed,
            # so that a client may ask its token server again.
            raise errors.Denied(
                detail=[{"Type": a.type, "Name": a.name, "Action": a.action} for a in needed],
                headers={"WWW-Authenticate": self._challenge(request, needed, "insufficient_scope")},
            )
        return grant


def _quoted(value):
    return '"' + value.replace("\\", "").replace('"', "") + '"'


def bearerChallenge(realm, service):
    """C{Bearer realm=...,service=...,scope=...[,error=...]}; C{realm} may be a callable of the request."""

    def challenge(request, needed, error):
        parts = [
            f"realm={_quoted(realm(request) if callable(realm) else realm)}",
            f"service={_quoted(service)}",
        ]
        if needed:
            parts.append(f"scope={_quoted(' '.join(scopes(needed)))}")
        if error and error != "invalid_request":
            parts.append(f"error={_quoted(error)}")
        return "Bearer " + ",".join(parts)

    return challenge


def htpasswdController(realm, htpasswd):
    portal = Portal(GrantRealm(), [HtpasswdChecker(htpasswd)])
    return AccessController(
        portal,
        {b"basic": BasicCredentialFactory(realm)},
        lambda request, needed, error: f"Basic realm={_quoted(realm)}",
        "Basic",
    )


def tokenController(realm, service, verifier):
    """Bearer token auth; C{realm} may be a callable of the request."""
    portal = Portal(GrantRealm(), [TokenChecker(verifier)])
    return AccessController(
        portal, {b"bearer": BearerCredentialFactory()}, bearerChallenge(realm, service), "Bearer"
    )


def sillyController(realm, service):
    portal = Portal(GrantRealm(), [AnythingChecker()])
    factories = {scheme: AnyCredentialFactory(scheme) for scheme in (b"bearer", b"basic")}
    return AccessController(portal, factories, bearerChallenge(realm, service), "Bearer")

