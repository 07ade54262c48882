"""
Verifying Docker registry tokens: JWTs from a token server, as in
Distribution's C{auth.token}.

A token's key is found through its header: with a root bundle configured,
an C{x5c} chain that must end in it (as Distribution does, there is no
falling back to C{kid} when it does not); otherwise a C{kid} naming a key of
the JWKS or a bundle certificate by its libtrust ID.  Only asymmetric
algorithms are accepted, and each only with its own kind of key, so a public
key can never be used as an HMAC secret.  Times are checked against an
injected clock, with a leeway for skew.
"""

import base64
import binascii
import collections
import datetime
import json
import time
from dataclasses import dataclass

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from registryd.auth.access import Access
from registryd.auth.interfaces import Resource
from registryd.auth.keys import libtrustKeyID

# A claim only the issuer's refresh tokens carry: they are not access tokens.
REFRESH_CLAIM = "refresh"

_RSA = (rsa.RSAPublicKey,)
_EDWARDS = (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
# Algorithm -> (key types, EC curve name or None).
_ALGORITHMS = {
    "RS256": (_RSA, None),
    "RS384": (_RSA, None),
    "RS512": (_RSA, None),
    "PS256": (_RSA, None),
    "PS384": (_RSA, None),
    "PS512": (_RSA, None),
    "ES256": ((ec.EllipticCurvePublicKey,), "secp256r1"),
    "ES384": ((ec.EllipticCurvePublicKey,), "secp384r1"),
    "ES512": ((ec.EllipticCurvePublicKey,), "secp521r1"),
    "EdDSA": (_EDWARDS, None),
}
# Longer chains are not what token servers send; refuse before parsing.
_MAX_CHAIN = 8

_REASONS = [
    (jwt.InvalidAudienceError, "token is for another service"),
    (jwt.InvalidIssuerError, "token from another issuer"),
    (jwt.InvalidSignatureError, "bad token signature"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.PyJWTError, "malformed token"),
]
# Times are checked against the injected clock, not PyJWT's.
_DECODE_OPTIONS = {
    "require": ["exp", "iss", "aud"],
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
}


class InvalidToken(Exception):
    """A token that grants nothing; the message is a short reason, never the token."""


@dataclass(frozen=True)
class TokenClaims:
    """
    What a verified token says.

    @ivar subject: The user, or None for an anonymous token.
    @ivar accesses: The L{Access}es of its C{access} claim.
    @ivar resources: One L{Resource} per C{repository} access entry.
    @ivar expiresAt: Its C{exp}, in seconds since the epoch.
    """

    subject: str | None
    accesses: frozenset
    resources: tuple
    expiresAt: float


def _isNumber(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decodeToken(token, key, algorithm, issuer, audience, leeway, now):
    """
    The claims of C{token} if it is signed by C{key} with C{algorithm}, from
    C{issuer}, for C{audience}, and current at C{now} give or take C{leeway}.

    @raise InvalidToken: Otherwise.
    """
    try:
        claims = jwt.decode(
            token, key, algorithms=[algorithm], audience=audience, issuer=issuer, options=_DECODE_OPTIONS
        )
    except jwt.PyJWTError as e:
        raise InvalidToken(next(reason for kind, reason in _REASONS if isinstance(e, kind))) from None
    if not _isNumber(claims["exp"]) or ("nbf" in claims and not _isNumber(claims["nbf"])):
        raise InvalidToken("malformed token times")
    if claims["exp"] <= now - leeway:
        raise InvalidToken("token expired")
    if claims.get("nbf", now) > now + leeway:
        raise InvalidToken("token not valid yet")
    return claims


def _fitsAlgorithm(key, algorithm):
    types, curve = _ALGORITHMS[algorithm]
    return isinstance(key, types) and (curve is None or key.curve.name == curve)


def _chainKey(x5c, roots, now):
    """
    The leaf's public key if the C{x5c} chain is current and each
    certificate is issued by the next, the last one being or being issued by
    a root.
    """
    if not isinstance(x5c, list) or not 0 < len(x5c) <= _MAX_CHAIN:
        raise InvalidToken("malformed x5c header")
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except (TypeError, ValueError, binascii.Error):
        raise InvalidToken("malformed x5c header") from None
    for certificate in chain:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise InvalidToken("certificate in x5c chain not valid now")
    issuers = chain[1:] + [None]
    for certificate, issuerCertificate in zip(chain, issuers):
        if issuerCertificate is None:
            if certificate in roots:
                break
            candidates = [root for root in roots if root.subject == certificate.issuer]
        else:
            candidates = [issuerCertificate]
        if not any(_issued(certificate, candidate, now) for candidate in candidates):
            raise InvalidToken("x5c chain does not end in a trusted certificate")
    return chain[0].public_key()


def _issued(certificate, issuer, now):
    """Whether C{issuer}, a CA certificate valid at C{now}, signed C{certificate}."""
    if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
        return False
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        certificate.verify_directly_issued_by(issuer)
    except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
        return False
    return constraints.ca


def _jwksKeys(jwks):
    """C{{kid: (public key, alg or None)}} of a JWK Set's signing keys."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("a JWK Set needs a list of keys")
    keys = {}
    for entry in jwks["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
            continue
        try:
            key = jwt.PyJWK(entry).key
        except jwt.PyJWTError as e:
            raise ValueError(f"JWK {entry['kid']!r}: {e}") from None
        keys[entry["kid"]] = (key, entry.get("alg"))
    return keys


class TokenVerifier:
    """
    Checks registry tokens for one C{service} from one C{issuer}.

    @param certificates: The root bundle, L{x509.Certificate}s.
    @param jwks: A JWK Set dict, or None.
    @param leeway: Seconds of clock skew forgiven on C{exp} and C{nbf}.
    @param clock: Has C{time()}.

    A client sends the same token with every request until it expires, and
    checking a signature costs more than answering a pull, so a token found
    good is remembered (C{REMEMBERED} at most, up to C{MEMORY} seconds and
    never past its expiry); anything else is checked in full every time.
    """

    REMEMBERED = 4096
    MEMORY = 60.0

    def __init__(self, issuer, service, certificates=(), jwks=None, leeway=60, clock=time):
        self._issuer = issuer
        self._service = service
        self._roots = list(certificates)
        self._leeway = leeway
        self._clock = clock
        self._verified = collections.OrderedDict()  # token -> (claims, good until)
        self._keys = {libtrustKeyID(c.public_key()): (c.public_key(), None) for c in self._roots}
        self._keys.update(_jwksKeys(jwks) if jwks is not None else {})

    def _key(self, header, now):
        if "x5c" in header and self._roots:
            when = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
            return _chainKey(header["x5c"], self._roots, when)
        if "kid" not in header:
            raise InvalidToken("token names no key")
        key, algorithm = self._keys.get(header["kid"], (None, None))
        if key is None:
            raise InvalidToken("token signed by an unknown key")
        if algorithm is not None and algorithm != header["alg"]:
            raise InvalidToken("token algorithm does not match its key")
        return key

    def verify(self, token):
        """
        @param token: The compact JWS, str or bytes.
        @return: The token's L{TokenClaims}.
        @raise InvalidToken: The token does not prove anything.
        """
        if isinstance(token, bytes):
            token = token.decode("ascii", "replace")
        now = self._clock.time()
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, until = remembered
            if now < until:
                return claims
            del self._verified[token]
        claims = self._verify(token, now)
        self._verified[token] = (claims, min(claims.expiresAt + self._leeway, now + self.MEMORY))
        while len(self._verified) > self.REMEMBERED:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token, now):
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in _ALGORITHMS:
            raise InvalidToken("token algorithm not accepted")
        key = self._key(header, now)
        if not _fitsAlgorithm(key, algorithm):
            raise InvalidToken("token algorithm does not match its key")
        claims = decodeToken(token, key, algorithm, self._issuer, self._service, self._leeway, now)
        if claims.get(REFRESH_CLAIM):
            raise InvalidToken("a refresh token is not an access token")
        return _tokenClaims(claims)


def _tokenClaims(claims):
    subject = claims.get("sub") or None
    entries = claims.get("access") or []
    if not isinstance(entries, list):
        raise InvalidToken("malformed access claim")
    accesses, resources = set(), []
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("type"), str)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("actions", []), list)
            and all(isinstance(action, str) for action in entry.get("actions", []))
            and isinstance(entry.get("class", ""), str)
        ):
            raise InvalidToken("malformed access claim")
        accesses.update(Access(entry["type"], entry["name"], action) for action in entry.get("actions", []))
        if entry["type"] == "repository":
            resources.append(Resource(entry["name"], entry.get("class", "")))
    return TokenClaims(subject, frozenset(accesses), tuple(resources), float(claims["exp"]))


def loadCertificates(path):
    """The certificates of the PEM bundle at C{path}.  @raise ValueError: none there."""
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())


def loadJWKS(path):
    """The JWK Set (JSON) at C{path}.  @raise ValueError: not a JWK Set."""
    with open(path, "rb") as f:
        jwks = json.load(f)
    _jwksKeys(jwks)
    return jwks
