"""Token verification: what proves a token, and every way a token fails to."""

import base64
import datetime
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import get_default_algorithms

from registryd.auth.access import Access
from registryd.auth.interfaces import Resource
from registryd.auth import token as tokenModule
from registryd.auth.keys import libtrustKeyID
from registryd.auth.token import InvalidToken, TokenClaims, TokenVerifier, loadCertificates, loadJWKS

NOW = 1_800_000_000
ISSUER, SERVICE = "auth.example.com", "registry.example.com"
DAY = datetime.timedelta(days=1)


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def time(self):
        return self.now


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def newKey(kind):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(
        {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}[kind]
    )


def certificate(
    key, name, issuerKey=None, issuerName=None, ca=False, notBefore=NOW - 86400, notAfter=NOW + 86400 * 365
):
    """A certificate for C{key}'s public key, self-signed unless an issuer is given."""
    issuerKey = issuerKey or key
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuerName or name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(utc(notBefore))
        .not_valid_after(utc(notAfter))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    algorithm = None if isinstance(issuerKey, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuerKey, algorithm)


def der64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class PKI:
    """root -> intermediate -> leaf, for each kind of leaf key."""

    def __init__(self):
        self.rootKey = newKey("p256")
        self.root = certificate(self.rootKey, "root", ca=True)
        self.intermediateKey = newKey("rsa")
        self.intermediate = certificate(self.intermediateKey, "intermediate", self.rootKey, "root", ca=True)
        self.leafKeys = {kind: newKey(kind) for kind in ("rsa", "p256", "ed25519")}
        self.leaves = {
            kind: certificate(key, f"leaf {kind}", self.intermediateKey, "intermediate")
            for kind, key in self.leafKeys.items()
        }


@pytest.fixture(scope="module")
def pki():
    return PKI()


ALGORITHM = {"rsa": "RS256", "p256": "ES256", "ed25519": "EdDSA"}


def claims(**overrides):
    result = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": NOW + 300,
        "nbf": NOW,
        "iat": NOW,
        "jti": "abc",
        "access": [
            {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ],
    }
    result.update(overrides)
    return {k: v for k, v in result.items() if v is not None}


def sign(key, algorithm, headers, **overrides):
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def verifier(**kwargs):
    kwargs.setdefault("clock", Clock())
    return TokenVerifier(ISSUER, SERVICE, **kwargs)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handMade(header, payload, signature=b""):
    return ".".join(
        [b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(signature)]
    )


def chainToken(pki, kind="p256", **overrides):
    chain = [der64(pki.leaves[kind]), der64(pki.intermediate)]
    return sign(pki.leafKeys[kind], ALGORITHM[kind], {"x5c": chain}, **overrides)


def jwk(publicKey, kid, **extra):
    entry = get_default_algorithms()[
        (
            "RS256"
            if isinstance(publicKey, rsa.RSAPublicKey)
            else "EdDSA" if isinstance(publicKey, ed25519.Ed25519PublicKey) else "ES256"
        )
    ].to_jwk(publicKey, as_dict=True)
    entry.update(kid=kid, **extra)
    return entry


def assertRejected(v, token, reason=None):
    with pytest.raises(InvalidToken) as caught:
        v.verify(token)
    message = str(caught.value)
    assert message and (token[:40] not in message if isinstance(token, str) and len(token) > 10 else True)
    if reason is not None:
        assert reason in message
    return message


# What a good token gives ------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "p256", "ed25519"])
def test_x5cChainToBundle(pki, kind):
    """RS256, ES256 and EdDSA leaves, via an intermediate, to the bundle's root."""
    result = verifier(certificates=[pki.root]).verify(chainToken(pki, kind))
    assert result == TokenClaims(
        subject="alice",
        accesses=frozenset(
            {
                Access("repository", "a/b", "pull"),
                Access("repository", "a/b", "push"),
                Access("registry", "catalog", "*"),
            }
        ),
        resources=(Resource("a/b", ""),),
        expiresAt=float(NOW + 300),
    )


def test_x5cChainMayIncludeTheRoot(pki):
    chain = [der64(pki.leaves["p256"]), der64(pki.intermediate), der64(pki.root)]
    token = sign(pki.leafKeys["p256"], "ES256", {"x5c": chain})
    assert verifier(certificates=[pki.root]).verify(token).subject == "alice"


def test_x5cOfABundleCertificateItself():
    """A self-signed signing certificate given as the bundle (the built-in issuer's setup)."""
    key = newKey("p256")
    cert = certificate(key, "signer")
    token = sign(key, "ES256", {"x5c": [der64(cert)]})
    assert verifier(certificates=[cert]).verify(token).subject == "alice"


@pytest.mark.parametrize("kind", ["rsa", "p256", "ed25519"])
def test_jwksKid(pki, kind):
    key = pki.leafKeys[kind]
    jwks = {"keys": [jwk(newKey("p256").public_key(), "other"), jwk(key.public_key(), "mine")]}
    token = sign(key, ALGORITHM[kind], {"kid": "mine"})
    assert verifier(jwks=jwks).verify(token).subject == "alice"


@pytest.mark.parametrize(
    "algorithm, kind",
    [
        ("RS384", "rsa"),
        ("RS512", "rsa"),
        ("PS256", "rsa"),
        ("PS384", "rsa"),
        ("PS512", "rsa"),
        ("ES384", "p384"),
        ("ES512", "p521"),
    ],
)
def test_otherAcceptedAlgorithms(algorithm, kind):
    key = newKey(kind)
    token = sign(key, algorithm, {"kid": "k"})
    assert verifier(jwks={"keys": [jwk(key.public_key(), "k")]}).verify(token).subject == "alice"


@pytest.mark.parametrize("kind", ["rsa", "p256"])
def test_libtrustKidOfABundleCertificate(pki, kind):
    """Docker's token servers name the bundle certificate's key by its libtrust ID."""
    key = pki.leafKeys[kind]
    token = sign(key, ALGORITHM[kind], {"kid": libtrustKeyID(key.public_key())})
    assert verifier(certificates=[pki.root, pki.leaves[kind]]).verify(token).subject == "alice"


def test_x5cIsIgnoredWithoutABundle(pki):
    """With a JWKS only, an x5c header proves nothing and the kid decides."""
    key = pki.leafKeys["p256"]
    token = sign(key, "ES256", {"kid": "k", "x5c": [der64(pki.leaves["p256"])]})
    assert verifier(jwks={"keys": [jwk(key.public_key(), "k")]}).verify(token).subject == "alice"


def test_bytesToken(pki):
    assert verifier(certificates=[pki.root]).verify(chainToken(pki).encode()).subject == "alice"


def test_anonymousToken(pki):
    result = verifier(certificates=[pki.root]).verify(chainToken(pki, sub="", access=[]))
    assert result.subject is None
    assert result.accesses == frozenset()
    assert result.resources == ()


def test_resourceClassesAndNoAccessClaim(pki):
    access = [
        {"type": "repository", "name": "a", "actions": ["pull"], "class": "image"},
        {"type": "repository", "name": "b", "actions": []},
    ]
    v = verifier(certificates=[pki.root])
    assert v.verify(chainToken(pki, access=access)).resources == (Resource("a", "image"), Resource("b", ""))
    assert v.verify(chainToken(pki, access=None)).accesses == frozenset()


@pytest.mark.parametrize("audience", [SERVICE, ["other", SERVICE]])
def test_audienceStringOrList(pki, audience):
    assert verifier(certificates=[pki.root]).verify(chainToken(pki, aud=audience)).subject == "alice"


def test_leewayOnExpiryAndNotBefore(pki):
    v = verifier(certificates=[pki.root])
    assert v.verify(chainToken(pki, exp=NOW - 30)).subject == "alice"
    assert v.verify(chainToken(pki, nbf=NOW + 30)).subject == "alice"
    strict = verifier(certificates=[pki.root], leeway=0)
    assertRejected(strict, chainToken(pki, exp=NOW - 30), "expired")
    assertRejected(strict, chainToken(pki, nbf=NOW + 30), "not valid yet")


def test_clockIsInjected(pki):
    clock = Clock()
    v = verifier(certificates=[pki.root], clock=clock)
    token = chainToken(pki)
    v.verify(token)
    clock.now = NOW + 300 + 61
    assertRejected(v, token, "expired")


def test_aGoodTokenIsRememberedForAMinute(pki, monkeypatch):
    """Its signature is checked once, not on every request that carries it."""
    clock = Clock()
    v = verifier(certificates=[pki.root], clock=clock)
    token = chainToken(pki, exp=NOW + 3600)
    checks = []
    decode = tokenModule.decodeToken
    monkeypatch.setattr(tokenModule, "decodeToken", lambda *a: checks.append(a) or decode(*a))
    for _ in range(3):
        assert v.verify(token).subject == "alice"
    assert len(checks) == 1
    clock.now = NOW + TokenVerifier.MEMORY + 1
    assert v.verify(token).subject == "alice"
    assert len(checks) == 2


def test_aTokenIsNotRememberedPastItsExpiry(pki):
    clock = Clock()
    v = verifier(certificates=[pki.root], clock=clock, leeway=0)
    token = chainToken(pki, exp=NOW + 10)
    v.verify(token)
    clock.now = NOW + 11
    assertRejected(v, token, "expired")


def test_badTokensAreNotRemembered(pki, monkeypatch):
    v = verifier(certificates=[pki.root])
    forged = chainToken(pki, aud="other")
    checks = []
    decode = tokenModule.decodeToken
    monkeypatch.setattr(tokenModule, "decodeToken", lambda *a: checks.append(a) or decode(*a))
    for _ in range(2):
        assertRejected(v, forged, "another service")
    assert len(checks) == 2


def test_rememberedTokensAreBounded(pki, monkeypatch):
    """Past REMEMBERED tokens, the oldest are checked again."""
    monkeypatch.setattr(TokenVerifier, "REMEMBERED", 3)
    v = verifier(certificates=[pki.root])
    tokens = [chainToken(pki, jti=str(i)) for i in range(5)]
    for token in tokens:
        v.verify(token)
    checks = []
    decode = tokenModule.decodeToken
    monkeypatch.setattr(tokenModule, "decodeToken", lambda *a: checks.append(a) or decode(*a))
    v.verify(tokens[4])
    assert checks == []
    v.verify(tokens[0])
    assert len(checks) == 1


# What a token must not get past ------------------------------------------------


def test_expiredBeyondLeeway(pki):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, exp=NOW - 61), "expired")


def test_notYetValid(pki):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, nbf=NOW + 120), "not valid yet")


@pytest.mark.parametrize("audience", ["other", ["other", "another"], None])
def test_wrongAudience(pki, audience):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, aud=audience))


@pytest.mark.parametrize("issuer", ["evil.example.com", None])
def test_wrongIssuer(pki, issuer):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, iss=issuer))


def test_missingExpiry(pki):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, exp=None))


@pytest.mark.parametrize("field, value", [("exp", "soon"), ("exp", True), ("nbf", "now")])
def test_malformedTimes(pki, field, value):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, **{field: value}))


def test_algNone(pki):
    key = pki.leafKeys["p256"]
    kid = libtrustKeyID(key.public_key())
    v = verifier(certificates=[pki.leaves["p256"]])
    for alg in ("none", "None", "NONE"):
        assertRejected(v, handMade({"alg": alg, "typ": "JWT", "kid": kid}, claims()), "algorithm")
    assertRejected(v, jwt.encode(claims(), None, algorithm="none", headers={"kid": kid}), "algorithm")


@pytest.mark.parametrize("alg", [["ES256"], {"ES256": 1}, None, 256])
def test_algorithmOfTheWrongType(pki, alg):
    kid = libtrustKeyID(pki.leafKeys["p256"].public_key())
    v = verifier(certificates=[pki.leaves["p256"]])
    assertRejected(v, handMade({"alg": alg, "kid": kid}, claims(), b"x" * 64), "algorithm")


def test_unsigned(pki):
    key = pki.leafKeys["p256"]
    kid = libtrustKeyID(key.public_key())
    v = verifier(certificates=[pki.leaves["p256"]])
    assertRejected(v, handMade({"alg": "ES256", "typ": "JWT", "kid": kid}, claims()))
    signed = sign(key, "ES256", {"kid": kid})
    assertRejected(v, signed.rsplit(".", 1)[0] + ".")


def test_forgedWithTheSameKid(pki):
    """Signed by another key that claims the trusted key's ID."""
    trusted = pki.leafKeys["p256"]
    kid = libtrustKeyID(trusted.public_key())
    forged = sign(newKey("p256"), "ES256", {"kid": kid})
    assertRejected(verifier(certificates=[pki.leaves["p256"]]), forged, "signature")
    jwks = {"keys": [jwk(trusted.public_key(), "k")]}
    assertRejected(verifier(jwks=jwks), sign(newKey("p256"), "ES256", {"kid": "k"}), "signature")


def test_forgedClaims(pki):
    """A good token with its payload swapped keeps no signature."""
    token = chainToken(pki)
    header, _, signature = token.split(".")
    payload = b64url(json.dumps(claims(sub="admin")).encode())
    assertRejected(verifier(certificates=[pki.root]), f"{header}.{payload}.{signature}", "signature")


@pytest.mark.parametrize("cut", [1, 10, 50])
def test_truncated(pki, cut):
    token = chainToken(pki)
    assertRejected(verifier(certificates=[pki.root]), token[:-cut])


@pytest.mark.parametrize(
    "garbage", ["", "garbage", "a.b.c", "a.b", "....", "eyJ.eyJ.sig", b"\xff\xfe\x00", "\u00e9.\u00e9.\u00e9"]
)
def test_garbage(pki, garbage):
    assertRejected(verifier(certificates=[pki.root]), garbage)


def test_hmacWithThePublicKeyAsSecret(pki):
    """Algorithm confusion: HS256 "signed" with the trusted public key must not pass."""
    key = pki.leafKeys["rsa"]
    kid = libtrustKeyID(key.public_key())
    v = verifier(certificates=[pki.leaves["rsa"]], jwks={"keys": [jwk(key.public_key(), "k")]})
    for encoding, form in [
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
    ]:
        secret = key.public_key().public_bytes(encoding, form)
        for header in (
            {"alg": "HS256", "typ": "JWT", "kid": kid},
            {"alg": "HS256", "typ": "JWT", "kid": "k"},
        ):
            signingInput = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims()).encode())}"
            signature = hmac.new(secret, signingInput.encode(), hashlib.sha256).digest()
            assertRejected(v, f"{signingInput}.{b64url(signature)}", "algorithm")


def test_algorithmMustFitTheKey(pki):
    """An EC key's token claiming RS256, a P-384 key used for ES256, a JWK pinned to another alg."""
    ecKey = pki.leafKeys["p256"]
    v = verifier(certificates=[pki.leaves["p256"]])
    header = {"alg": "RS256", "typ": "JWT", "kid": libtrustKeyID(ecKey.public_key())}
    assertRejected(v, handMade(header, claims(), b"x" * 64), "does not match")
    p384 = newKey("p384")
    assertRejected(
        verifier(jwks={"keys": [jwk(p384.public_key(), "k")]}),
        handMade({"alg": "ES256", "kid": "k"}, claims(), b"x" * 64),
        "does not match",
    )
    rsaKey = pki.leafKeys["rsa"]
    pinned = verifier(jwks={"keys": [jwk(rsaKey.public_key(), "k", alg="RS256")]})
    assertRejected(pinned, sign(rsaKey, "PS256", {"kid": "k"}), "does not match")
    assert pinned.verify(sign(rsaKey, "RS256", {"kid": "k"})).subject == "alice"


def test_unknownKidAndNoKey(pki):
    v = verifier(certificates=[pki.root], jwks={"keys": [jwk(pki.leafKeys["p256"].public_key(), "k")]})
    assertRejected(v, sign(pki.leafKeys["p256"], "ES256", {"kid": "unknown"}), "unknown key")
    assertRejected(v, sign(pki.leafKeys["p256"], "ES256", {}), "names no key")


def test_jwksKeysForEncryptionAreNotUsed(pki):
    key = pki.leafKeys["p256"]
    v = verifier(jwks={"keys": [jwk(key.public_key(), "k", use="enc")]})
    assertRejected(v, sign(key, "ES256", {"kid": "k"}), "unknown key")


def test_x5cNotChainingToTheBundle(pki):
    """A chain of another CA, even one named like the trusted root."""
    impostorKey = newKey("p256")
    impostor = certificate(impostorKey, "root", ca=True)
    intermediateKey = newKey("p256")
    intermediate = certificate(intermediateKey, "intermediate", impostorKey, "root", ca=True)
    leafKey = newKey("p256")
    leaf = certificate(leafKey, "leaf", intermediateKey, "intermediate")
    v = verifier(certificates=[pki.root])
    for chain in ([leaf, intermediate], [leaf, intermediate, impostor], [leaf]):
        token = sign(leafKey, "ES256", {"x5c": [der64(c) for c in chain]})
        assertRejected(v, token, "trusted")
    selfSigned = certificate(leafKey, "leaf")
    assertRejected(v, sign(leafKey, "ES256", {"x5c": [der64(selfSigned)]}), "trusted")


def test_x5cLeafNotSignedByTheNext(pki):
    """A genuine intermediate appended to a leaf it did not sign."""
    leafKey = newKey("p256")
    leaf = certificate(leafKey, "leaf", newKey("p256"), "intermediate")
    token = sign(leafKey, "ES256", {"x5c": [der64(leaf), der64(pki.intermediate)]})
    assertRejected(verifier(certificates=[pki.root]), token, "trusted")


def test_x5cSignedByTokenKeyOfTheChain(pki):
    """The chain vouches for its leaf's key only, not for the intermediate's."""
    chain = [der64(pki.leaves["rsa"]), der64(pki.intermediate)]
    token = sign(pki.intermediateKey, "RS256", {"x5c": chain})
    assertRejected(verifier(certificates=[pki.root]), token, "signature")


def test_x5cIssuersMustBeCAs(pki):
    """A leaf certificate cannot vouch for another certificate."""
    holderKey = pki.leafKeys["p256"]
    rogueKey = newKey("p256")
    rogue = certificate(rogueKey, "rogue", holderKey, "leaf p256")
    chain = [der64(rogue), der64(pki.leaves["p256"]), der64(pki.intermediate)]
    assertRejected(verifier(certificates=[pki.root]), sign(rogueKey, "ES256", {"x5c": chain}), "trusted")
    # Nor can a bundle certificate that is not a CA.
    nonCA = certificate(newKey("p256"), "not a ca")
    leafKey = newKey("p256")
    leaf = certificate(leafKey, "leaf", pki.leafKeys["p256"], "leaf p256")
    assertRejected(
        verifier(certificates=[pki.leaves["p256"], nonCA]),
        sign(leafKey, "ES256", {"x5c": [der64(leaf)]}),
        "trusted",
    )


@pytest.mark.parametrize("which", ["leaf", "intermediate", "root"])
def test_x5cExpiredCertificate(pki, which):
    rootKey, leafKey, intermediateKey = newKey("p256"), newKey("p256"), newKey("p256")
    expired = {"notBefore": NOW - 10 * 86400, "notAfter": NOW - 86400}
    root = certificate(rootKey, "root", ca=True, **(expired if which == "root" else {}))
    intermediate = certificate(
        intermediateKey,
        "intermediate",
        rootKey,
        "root",
        ca=True,
        **(expired if which == "intermediate" else {}),
    )
    leaf = certificate(
        leafKey, "leaf", intermediateKey, "intermediate", **(expired if which == "leaf" else {})
    )
    token = sign(leafKey, "ES256", {"x5c": [der64(leaf), der64(intermediate)]})
    assertRejected(verifier(certificates=[root]), token)


def test_x5cCertificateNotValidYet(pki):
    leafKey = newKey("p256")
    leaf = certificate(leafKey, "leaf", pki.intermediateKey, "intermediate", notBefore=NOW + 3600)
    token = sign(leafKey, "ES256", {"x5c": [der64(leaf), der64(pki.intermediate)]})
    assertRejected(verifier(certificates=[pki.root]), token, "not valid now")


@pytest.mark.parametrize(
    "x5c", ["notalist", [], ["not base64!"], [base64.b64encode(b"not DER").decode()], [42]]
)
def test_malformedX5c(pki, x5c):
    assertRejected(
        verifier(certificates=[pki.root]), sign(pki.leafKeys["p256"], "ES256", {"x5c": x5c}), "malformed x5c"
    )


def test_x5cTooLong(pki):
    """Refused before any certificate is looked at."""
    chain = [der64(pki.leaves["p256"])] * 8 + [der64(pki.intermediate)]
    assertRejected(
        verifier(certificates=[pki.root]),
        sign(pki.leafKeys["p256"], "ES256", {"x5c": chain}),
        "malformed x5c",
    )


@pytest.mark.parametrize(
    "access",
    [
        "repository:a:pull",
        [["repository", "a", ["pull"]]],
        [{"type": "repository", "name": "a", "actions": "pull"}],
        [{"type": "repository", "actions": ["pull"]}],
        [{"type": "repository", "name": "a", "actions": [1]}],
        [{"type": "repository", "name": "a", "actions": ["pull"], "class": 3}],
    ],
)
def test_malformedAccessClaim(pki, access):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, access=access), "access")


def test_refreshTokenIsNotAnAccessToken(pki):
    assertRejected(verifier(certificates=[pki.root]), chainToken(pki, refresh=True), "refresh")


def test_reasonsNeverHoldTheToken(pki):
    v = verifier(certificates=[pki.root])
    for token in [
        chainToken(pki, aud="other"),
        chainToken(pki, exp=NOW - 3600),
        chainToken(pki)[:-5],
        "x" * 200,
    ]:
        message = assertRejected(v, token)
        assert len(message) < 80
        for part in token.split("."):
            assert part[:16] not in message


# Loading the configuration's files ----------------------------------------------


def test_loadCertificates(tmp_path, pki):
    path = tmp_path / "bundle.pem"
    path.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pki.root, pki.intermediate))
    )
    assert loadCertificates(str(path)) == [pki.root, pki.intermediate]
    (tmp_path / "empty.pem").write_bytes(b"nothing here\n")
    with pytest.raises(ValueError):
        loadCertificates(str(tmp_path / "empty.pem"))


def test_loadJWKS(tmp_path, pki):
    key = pki.leafKeys["ed25519"]
    jwks = {"keys": [jwk(key.public_key(), "k")]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    loaded = loadJWKS(str(path))
    assert loaded == jwks
    assert verifier(jwks=loaded).verify(sign(key, "EdDSA", {"kid": "k"})).subject == "alice"


@pytest.mark.parametrize(
    "content",
    ["[]", '{"keys": {}}', '{"keys": [{"kty": "EC", "kid": "k", "crv": "P-256", "x": "bad"}]}', "not json"],
)
def test_loadJWKSRefusesWhatIsNotAJWKSet(tmp_path, content):
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        loadJWKS(str(path))
