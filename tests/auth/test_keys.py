"""The issuer's signing key: made once, reloaded the same, named the libtrust way."""

import base64
import datetime
import hashlib
import os
import re
import stat

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from registryd.auth.keys import libtrustKeyID, loadOrCreateSigningKey

# A public key and the key ID CNCF Distribution 2.8 (libtrust) gives it: a
# token signed by its private key with only this kid was accepted by
# Distribution configured with the key's certificate as rootcertbundle.
DISTRIBUTION_VECTOR = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtJ0xaTL/QcGzX/lQuWwyFrTrMpCr\n"
    b"UdyTcyW7ro7Y9Bmb3PW2d6oEo9LoD3YNnA9+CQujUoMDp/N7AjSu+4qQDw==\n"
    b"-----END PUBLIC KEY-----\n",
    "LXP5:PDZJ:PPR5:6NP7:HAOQ:VYXE:WQ2Q:AG5L:QZ2J:JUO4:A2XO:4OJT",
)
LIBTRUST_ID = re.compile(r"^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$")


def test_libtrustKeyIDMatchesDistribution():
    pem, expected = DISTRIBUTION_VECTOR
    assert libtrustKeyID(serialization.load_pem_public_key(pem)) == expected


@pytest.mark.parametrize(
    "privateKey",
    [ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(public_exponent=65537, key_size=2048)],
    ids=["ec", "rsa"],
)
def test_libtrustKeyIDFormat(privateKey):
    """48 base32 characters in twelve groups: the first 240 bits of the SPKI's SHA-256."""
    publicKey = privateKey.public_key()
    keyID = libtrustKeyID(publicKey)
    assert LIBTRUST_ID.match(keyID)
    der = publicKey.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b32decode(keyID.replace(":", "")) == hashlib.sha256(der).digest()[:30]


def test_createsKeyAndCertificate(tmp_path):
    path = str(tmp_path / "deep" / "er" / "token.key")
    key = loadOrCreateSigningKey(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.path.exists(path + ".crt")
    assert isinstance(key.privateKey, ec.EllipticCurvePrivateKey)
    assert key.privateKey.curve.name == "secp256r1"
    assert key.algorithm == "ES256"
    assert key.keyID == libtrustKeyID(key.privateKey.public_key())
    assert sorted(os.listdir(tmp_path / "deep" / "er")) == ["token.key", "token.key.crt"]


def test_certificateIsSelfSignedAndLongLived(tmp_path):
    key = loadOrCreateSigningKey(str(tmp_path / "token.key"))
    certificate = key.certificate
    assert certificate.public_key() == key.privateKey.public_key()
    assert certificate.subject == certificate.issuer
    assert (
        certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "registryd token signer"
    )
    certificate.verify_directly_issued_by(certificate)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert certificate.not_valid_before_utc < now
    assert certificate.not_valid_after_utc > now + datetime.timedelta(days=5 * 365)
    assert x509.load_pem_x509_certificate(key.certificatePEM()) == certificate
    with open(tmp_path / "token.key.crt", "rb") as f:
        assert f.read() == key.certificatePEM()


def test_reloadGivesTheSameKey(tmp_path):
    path = str(tmp_path / "token.key")
    first = loadOrCreateSigningKey(path)
    second = loadOrCreateSigningKey(path)
    assert second.keyID == first.keyID
    assert second.privateKey.private_numbers() == first.privateKey.private_numbers()
    assert second.certificate == first.certificate


def test_missingCertificateIsMadeForTheExistingKey(tmp_path):
    path = str(tmp_path / "token.key")
    first = loadOrCreateSigningKey(path)
    os.unlink(path + ".crt")
    second = loadOrCreateSigningKey(path)
    assert second.keyID == first.keyID
    assert second.certificate.public_key() == first.privateKey.public_key()


def test_certificateOfAnotherKeyIsRefused(tmp_path):
    loadOrCreateSigningKey(str(tmp_path / "a.key"))
    loadOrCreateSigningKey(str(tmp_path / "b.key"))
    os.replace(tmp_path / "b.key.crt", tmp_path / "a.key.crt")
    with pytest.raises(ValueError, match="not for the key"):
        loadOrCreateSigningKey(str(tmp_path / "a.key"))


def test_otherKeyTypesAreRefused(tmp_path):
    path = tmp_path / "token.key"
    path.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ValueError, match="EC P-256"):
        loadOrCreateSigningKey(str(path))


def test_jwksHoldsThePublicKey(tmp_path):
    key = loadOrCreateSigningKey(str(tmp_path / "token.key"))
    [entry] = key.jwks()["keys"]
    assert entry["kid"] == key.keyID
    assert entry["alg"] == "ES256"
    assert entry["use"] == "sig"
    assert "d" not in entry  # no private part
    assert jwt.PyJWK(entry).key == key.privateKey.public_key()


def test_certificateLeftFromALostKeyIsReplaced(tmp_path):
    path = str(tmp_path / "token.key")
    first = loadOrCreateSigningKey(path)
    os.unlink(path)
    second = loadOrCreateSigningKey(path)
    assert second.keyID != first.keyID
    assert x509.load_pem_x509_certificate((tmp_path / "token.key.crt").read_bytes()) == second.certificate
    assert second.certificate.public_key() == second.privateKey.public_key()
