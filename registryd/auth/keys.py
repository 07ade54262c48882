"""
The built-in token issuer's signing key, and Docker's libtrust key IDs.

The key is an EC P-256 private key in PEM, with a self-signed certificate for
it beside it (C{PATH.crt}); the certificate is what a registry is given as its
C{rootcertbundle}, and what the issuer puts in each token's C{x5c} header.
Both are made on first start, so a small setup needs no openssl incantation.
"""

import base64
import datetime
import hashlib
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

from registryd.certificates import selfSigned

# Long enough never to be the reason tokens stop verifying; replacing the
# key (delete both files, restart, hand out the new certificate) is how it is
# rotated.
_VALIDITY = datetime.timedelta(days=3650)
# Issuers' clocks run ahead of verifiers' by a little.
_BACKDATE = datetime.timedelta(hours=1)


def libtrustKeyID(publicKey):
    """
    Docker's libtrust key ID of C{publicKey}: the first 240 bits of the
    SHA-256 of its DER SubjectPublicKeyInfo, base32, in groups of four.

    Distribution and Docker's token servers name keys this way in C{kid}.
    """
    der = publicKey.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


class SigningKey:
    """
    A private key and the self-signed certificate for its public key.

    @ivar keyID: The libtrust key ID, sent as the tokens' C{kid}.
    @ivar algorithm: The JWS algorithm tokens are signed with.
    """

    algorithm = "ES256"

    def __init__(self, privateKey, certificate):
        self.privateKey = privateKey
        self.certificate = certificate
        self.keyID = libtrustKeyID(privateKey.public_key())

    def certificatePEM(self):
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def jwks(self):
        """A JWK Set holding the public key, for verifiers configured with C{jwks}."""
        key = ECAlgorithm.to_jwk(self.privateKey.public_key(), as_dict=True)
        key.update(kid=self.keyID, alg=self.algorithm, use="sig")
        return {"keys": [key]}


def _selfSigned(privateKey):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registryd token signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return selfSigned(privateKey, name, now - _BACKDATE, now + _VALIDITY)


def _writeAtomically(path, data, mode):
    """Write C{data} to C{path} through a temporary file with C{mode} from the start."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".signing-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def ephemeralSigningKey():
    """A new key kept only in memory (a registry with nowhere to store one)."""
    privateKey = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(privateKey, _selfSigned(privateKey))


def loadOrCreateSigningKey(path):
    """
    The L{SigningKey} whose PEM private key is at C{path} and certificate at
    C{path + ".crt"}.  A missing key is generated (EC P-256) along with its
    certificate; a missing certificate is made for an existing key.

    @raise ValueError: The key is not EC P-256, or the certificate is not
        for it.
    """
    certificatePath = path + ".crt"
    if os.path.exists(path):
        with open(path, "rb") as f:
            privateKey = serialization.load_pem_private_key(f.read(), password=None)
        if not (isinstance(privateKey, ec.EllipticCurvePrivateKey) and privateKey.curve.name == "secp256r1"):
            raise ValueError(f"{path}: the token signing key must be an EC P-256 key")
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        privateKey = ec.generate_private_key(ec.SECP256R1())
        pem = privateKey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _writeAtomically(path, pem, 0o600)
        if os.path.exists(certificatePath):
            os.unlink(certificatePath)  # for a key that is gone
    if os.path.exists(certificatePath):
        with open(certificatePath, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        if certificate.public_key() != privateKey.public_key():
            raise ValueError(f"{certificatePath}: certificate is not for the key in {path}")
    else:
        certificate = _selfSigned(privateKey)
        _writeAtomically(certificatePath, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return SigningKey(privateKey, certificate)
