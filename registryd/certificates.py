"""Self-signed certificates: the token signer's and the one for trying TLS."""

from cryptography import x509
from cryptography.hazmat.primitives import hashes

_SIGNING_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def selfSigned(privateKey, subject, notBefore, notAfter, extensions=()):
    """
    A certificate for C{privateKey}'s public key signed by itself: not a CA,
    for digital signatures only, plus C{extensions} (C{(extension, critical)}).
    """
    publicKey = privateKey.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(notBefore)
        .not_valid_after(notAfter)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNING_ONLY, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(privateKey, hashes.SHA256())
