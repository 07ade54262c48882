"""
TLS on the registry's listeners, and a self-signed certificate for trying it out.

C{http.tls} becomes one server TLS setup: the certificate file's first PEM
certificate is served, with the rest of the file as its chain; C{minimumtls}
raises the oldest version accepted; C{clientcas} make a client certificate
issued by one of them required (and are sent to clients as the acceptable
issuers, so a client holding several certificates can pick).  Each listener
of C{http.listen} is then its plain endpoint wrapped in TLS by
L{TLSServerEndpoint}, so C{tcp:} and C{tcp6:} listeners are served alike.

Endpoint strings written in C{http.listen} or given with C{--listen} are used
as written: an C{ssl:} string there sets up its own TLS.
"""

import datetime
import ipaddress
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IStreamServerEndpoint
from twisted.internet.ssl import CertificateOptions, TLSVersion, trustRootFromCertificates
from twisted.internet.ssl import Certificate as TwistedCertificate
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from registryd.certificates import selfSigned

_VERSIONS = {"tls1.2": TLSVersion.TLSv1_2, "tls1.3": TLSVersion.TLSv1_3}

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1")


def listeners(config, reactor):
    """
    The listeners C{config.http} describes, not yet listening.

    @return: A list of C{(description, endpoint)}: a line for the log and an
        L{IStreamServerEndpoint}, one per entry of C{config.http.listen}.
    @raise ValueError: An endpoint string is bad, or the TLS material cannot
        be used (L{registryd.config} has checked both when it was loaded).
    @raise OSError: A TLS file cannot be read.
    """
    http = config.http
    tls = None if http.tls is None else ServerTLS.fromConfig(http.tls)
    result = []
    for description in http.listen:
        endpoint = serverFromString(reactor, description)
        if tls is not None:
            endpoint = TLSServerEndpoint(endpoint, tls)
            description = f"{description} with {tls.description}"
        result.append((description, endpoint))
    return result


def tlsFactory(tls, factory):
    """C{factory} with TLS as C{http.tls} (a L{TLSConfig}) sets it up."""
    return TLSMemoryBIOFactory(ServerTLS.fromConfig(tls), False, factory)


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """
    Any stream server endpoint with TLS on its connections, as C{listenSSL}
    puts it on a TCP port.
    """

    def __init__(self, wrapped, connectionCreator):
        """
        @param wrapped: The L{IStreamServerEndpoint} to listen on.
        @param connectionCreator: An L{IOpenSSLServerConnectionCreator}, such
            as a L{ServerTLS}.
        """
        self._wrapped = wrapped
        self._connectionCreator = connectionCreator

    def listen(self, protocolFactory):
        return self._wrapped.listen(
            TLSMemoryBIOFactory(self._connectionCreator, False, protocolFactory)
        )


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The server side of TLS for every connection of a listener: one OpenSSL
    context, prepared once.

    @ivar description: What it enforces, e.g. C{"TLS 1.2+, client
        certificates required"}, for the log.
    """

    def __init__(self, context, description):
        self._context = context
        self.description = description

    @classmethod
    def fromConfig(cls, tls):
        """
        The TLS a L{registryd.config.TLSConfig} asks for.

        @raise OSError: A file cannot be read.
        @raise ValueError: A file does not hold what it should, or the key is
            not the certificate's.
        """
        chain = readCertificates(tls.certificate)
        key = readPrivateKey(tls.key)
        if _publicKey(chain[0].public_key()) != _publicKey(key.public_key()):
            raise ValueError("the key does not match the certificate")
        authorities = [c for path in tls.clientCAs for c in readCertificates(path)]
        clientOptions = {}
        if authorities:
            # A trust root makes CertificateOptions require a certificate.
            clientOptions["trustRoot"] = trustRootFromCertificates(
                [TwistedCertificate(crypto.X509.from_cryptography(c)) for c in authorities]
            )
        options = CertificateOptions(
            # cryptography's objects, which pyOpenSSL prefers to its own
            privateKey=key,
            certificate=chain[0],
            extraCertChain=chain[1:],
            raiseMinimumTo=_VERSIONS[tls.minimumTLS],
            **clientOptions,
        )
        try:
            context = options.getContext()
            for authority in authorities:
                context.add_client_ca(authority)
        except SSL.Error as e:
            raise ValueError(_sslReason(e)) from None
        description = f"TLS {tls.minimumTLS[3:]}+"
        if authorities:
            description += ", client certificates required"
        return cls(context, description)

    def serverConnectionForTLS(self, tlsProtocol):
        return SSL.Connection(self._context, None)


def readCertificates(path):
    """
    The PEM certificates in the file at C{path}, in their order.

    @raise OSError: The file cannot be read.
    @raise ValueError: It holds no certificate, or a broken one.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError("not a PEM certificate file") from None


def readPrivateKey(path):
    """
    The (unencrypted) PEM private key in the file at C{path}.

    @raise OSError: The file cannot be read.
    @raise ValueError: It holds no private key registryd can use.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError("encrypted private keys are not supported") from None
    except ValueError:
        raise ValueError("not a PEM private key file") from None
    except Exception as e:  # e.g. cryptography's UnsupportedAlgorithm
        raise ValueError(f"unusable private key: {e}") from None


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


def selfSignedCertificate(hostnames=DEFAULT_HOSTNAMES, days=365, now=None):
    """
    A new EC P-256 key and a self-signed certificate for C{hostnames}, for
    trying registryd out with TLS: clients have to be told to trust the
    certificate itself.

    @param hostnames: Host names and IP addresses, each one a subject
        alternative name; the first also names the subject.
    @param days: How long the certificate is valid.
    @param now: The time it is valid from (default: now).
    @return: C{(certificatePEM, keyPEM)}, bytes; the key is unencrypted PKCS#8.
    @raise ValueError: No host names, a bad one, or fewer than one day.
    """
    hostnames = list(hostnames)
    if not hostnames:
        raise ValueError("at least one host name is needed")
    if days < 1:
        raise ValueError(f"expected at least 1 day, got {days}")
    names = []
    for name in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not isinstance(name, str) or len(name) > 253 or not _DNS_NAME.fullmatch(name):
                raise ValueError(f"not a host name or IP address: {name!r}") from None
            names.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    commonName = hostnames[0] if len(hostnames[0]) <= 64 else "registryd"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "registryd self-signed"),
            x509.NameAttribute(NameOID.COMMON_NAME, commonName),
        ]
    )
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    publicKey = key.public_key()
    certificate = selfSigned(
        key,
        subject,
        # a little earlier, for clients whose clocks are a little behind
        now - datetime.timedelta(minutes=5),
        now + datetime.timedelta(days=days),
        [
            (x509.SubjectAlternativeName(names), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(publicKey), False),
        ],
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _publicKey(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sslReason(error):
    """One line from an C{OpenSSL.SSL.Error}, whose argument is a list of tuples."""
    reasons = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else ():
        if isinstance(entry, tuple) and entry:
            reasons.append(str(entry[-1]))
    return "; ".join(r for r in reasons if r) or str(error) or "OpenSSL error"
