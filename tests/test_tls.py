"""
TLS listeners from the configuration, over real sockets, with Python's C{ssl}
module as the client (in a thread, so the reactor keeps serving).
"""

import datetime
import socket
import ssl

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.error import CannotListenError
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from twisted.web.server import Site

from registryd.config import parseConfig, withOverrides
from registryd.driver.memory import MemoryDriver
from registryd.service import RegistryService, makeResource
from registryd.storage.registry import Registry
from registryd.testing.contracts import _imageManifest, _storeBlob
from registryd.tls import TLSServerEndpoint, listeners, selfSignedCertificate
from registryd.web.site import RegistryRequest, RegistrySite


@pytest.fixture
def serverFiles(tmp_path):
    """A self-signed certificate and key from make-cert's function."""
    certificate, key = selfSignedCertificate(["localhost", "127.0.0.1"], days=1)
    certPath, keyPath = tmp_path / "cert.pem", tmp_path / "key.pem"
    certPath.write_bytes(certificate)
    keyPath.write_bytes(key)
    return str(certPath), str(keyPath)


class Authority:
    """A CA that signs certificates, written to files under C{directory}."""

    def __init__(self, directory, name, issuer=None):
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        # self-signed unless another authority issues it
        self.certificate = None
        self.certificate = (issuer or self)._sign(self.key.public_key(), name, ca=True)
        self.path = self._write(f"{name}.pem", self.certificate)

    def _sign(self, publicKey, name, ca, serverName=None, clientAuth=False):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if self.certificate is None else self.certificate.subject)
            .public_key(publicKey)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
        if serverName:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(serverName)]), critical=False
            )
        if clientAuth:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        return builder.sign(self.key, hashes.SHA256())

    def _write(self, filename, *objects):
        path = self.directory / filename
        data = b""
        for thing in objects:
            if isinstance(thing, x509.Certificate):
                data += thing.public_bytes(serialization.Encoding.PEM)
            else:
                data += thing.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
        path.write_bytes(data)
        return str(path)

    def issue(self, name, serverName=None, clientAuth=False, chain=()):
        """Write C{name}.crt (with C{chain} after it) and C{name}.key; return their paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._sign(
            key.public_key(), name, ca=False, serverName=serverName, clientAuth=clientAuth
        )
        return (
            self._write(f"{name}.crt", certificate, *chain),
            self._write(f"{name}.key", key),
        )


class Scheme(Resource):
    """Answers C{https} or C{http}: what the request saw of the connection."""

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"https" if request.isSecure() else b"http"


def tlsConfig(certificate, key, **tls):
    return parseConfig(
        {"http": {"addr": "127.0.0.1:0", "tls": dict(certificate=certificate, key=key, **tls)}}
    )


async def listen(config):
    """Listen on the configuration's one listener; return the port."""
    ((description, endpoint),) = listeners(config, reactor)
    return await endpoint.listen(Site(Scheme()))


def clientContext(cafile, minimum=None, maximum=None, certificate=None):
    context = ssl.create_default_context(cafile=cafile)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if certificate is not None:
        context.load_cert_chain(*certificate)
    return context


def fetch(port, context, serverName="localhost", path="/", version="HTTP/1.0", method="GET", body=None, headers=""):
    """
    In a thread: connect, handshake, send C{method} C{path} (with C{body}
    and its length, and the header lines C{headers}); return the server's
    certificate (DER), the TLS version and the response.
    """
    close = "Connection: close\r\n" if version == "HTTP/1.1" else ""
    if body is not None:
        headers += f"Content-Length: {len(body)}\r\n"

    def run():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=serverName) as tls:
                head = f"{method} {path} {version}\r\nHost: {serverName}\r\n{close}{headers}\r\n"
                tls.sendall(head.encode() + (body or b""))
                response = b""
                while chunk := tls.recv(65536):
                    response += chunk
                return tls.getpeercert(binary_form=True), tls.version(), response

    return deferToThread(run)


def der(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)


async def refused(d):
    """The connection of C{d} (from L{fetch}) fails without an HTTP response."""
    try:
        _, _, response = await d
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    return not response.startswith(b"HTTP/")


# -- The handshake ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_handshakeServesTheConfiguredCertificate(serverFiles):
    certificate, key = serverFiles
    port = await listen(tlsConfig(certificate, key))
    try:
        for name in ("localhost", "127.0.0.1"):
            peer, version, response = await fetch(
                port.getHost().port, clientContext(certificate), serverName=name
            )
            assert peer == der(certificate)
            assert version in ("TLSv1.2", "TLSv1.3")
            assert response.startswith(b"HTTP/1.0 200 ")
            # the site knows the request came over TLS (for https:// URLs)
            assert response.endswith(b"\r\n\r\nhttps")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_answeredPullsKnowTheyCameOverTLS(serverFiles):
    """A tag list page answered below twisted.web links its next page with https."""
    certificate, key = serverFiles
    config = tlsConfig(certificate, key)
    registry = Registry(MemoryDriver())
    repository = registry.repository("a")
    for blob in (b"{}", b"layer"):
        await _storeBlob(repository, blob)
    manifest = _imageManifest(b"{}", [b"layer"])
    for tag in ("one", "two"):
        await repository.manifests.put(manifest, tag)
    ((_, endpoint),) = listeners(config, reactor)
    port = await endpoint.listen(RegistrySite(makeResource(config, registry), accessLogEnabled=False))
    try:
        _, _, response = await fetch(
            port.getHost().port, clientContext(certificate), path="/v2/a/tags/list?n=1", version="HTTP/1.1"
        )
    finally:
        await port.stopListening()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'\r\nLink: <https://localhost/v2/a/tags/list?last=one&n=1>; rel="next"\r\n' in response
    assert response.endswith(b'{"name":"a","tags":["one"]}')


@pytest_twisted.ensureDeferred
async def test_manifestPutsAnsweredBelowTwistedKnowTheyCameOverTLS(serverFiles):
    """A manifest PUT answered from the request, over TLS: stored, and its Location is https."""
    certificate, key = serverFiles
    config = tlsConfig(certificate, key)
    registry = Registry(MemoryDriver())
    for blob in (b"{}", b"layer"):
        await _storeBlob(registry.repository("a"), blob)
    manifest = _imageManifest(b"{}", [b"layer"])

    class Refused(RegistryRequest):
        def __init__(self, *args, **kwargs):
            raise AssertionError("the PUT reached twisted.web")

    site = RegistrySite(makeResource(config, registry), accessLogEnabled=False)
    site.requestFactory = Refused
    ((_, endpoint),) = listeners(config, reactor)
    port = await endpoint.listen(site)
    try:
        _, _, response = await fetch(
            port.getHost().port,
            clientContext(certificate),
            path="/v2/a/manifests/v1",
            version="HTTP/1.1",
            method="PUT",
            body=manifest.payload,
            headers=f"Content-Type: {manifest.mediaType}\r\n",
        )
    finally:
        await port.stopListening()
    assert response.startswith(b"HTTP/1.1 201 Created\r\n")
    assert f"\r\nLocation: https://localhost/v2/a/manifests/{manifest.digest}\r\n".encode() in response
    assert (await registry.repository("a").tags.get("v1")) == manifest.digest


@pytest_twisted.ensureDeferred
async def test_chainAfterTheCertificateIsSent(tmp_path):
    """A client trusting only the root verifies a leaf issued by an intermediate."""
    root = Authority(tmp_path, "root")
    intermediate = Authority(tmp_path, "intermediate", issuer=root)
    certificate, key = intermediate.issue(
        "server", serverName="localhost", chain=[intermediate.certificate]
    )
    port = await listen(tlsConfig(certificate, key))
    try:
        peer, _, response = await fetch(port.getHost().port, clientContext(root.path))
        assert peer == der(certificate)
        assert response.startswith(b"HTTP/1.0 200 ")
    finally:
        await port.stopListening()


# -- minimumtls ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_defaultMinimumAcceptsTLS12(serverFiles):
    certificate, key = serverFiles
    port = await listen(tlsConfig(certificate, key))
    try:
        context = clientContext(certificate, maximum=ssl.TLSVersion.TLSv1_2)
        _, version, response = await fetch(port.getHost().port, context)
        assert version == "TLSv1.2"
        assert response.startswith(b"HTTP/1.0 200 ")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_minimumTLS13RefusesATLS12Client(serverFiles):
    certificate, key = serverFiles
    port = await listen(tlsConfig(certificate, key, minimumtls="tls1.3"))
    try:
        context = clientContext(certificate, maximum=ssl.TLSVersion.TLSv1_2)
        with pytest.raises(ssl.SSLError):
            await fetch(port.getHost().port, context)
        _, version, _ = await fetch(port.getHost().port, clientContext(certificate))
        assert version == "TLSv1.3"
    finally:
        await port.stopListening()


# -- clientcas ----------------------------------------------------------------


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest_twisted.ensureDeferred
async def test_clientCAsRequireACertificateTheyIssued(serverFiles, tmp_path, maximum):
    certificate, key = serverFiles
    clients = Authority(tmp_path, "clients")
    strangers = Authority(tmp_path, "strangers")
    port = await listen(tlsConfig(certificate, key, clientcas=[clients.path]))
    number = port.getHost().port
    try:
        # no certificate
        assert await refused(fetch(number, clientContext(certificate, maximum=maximum)))
        # a certificate from another CA
        stranger = strangers.issue("stranger", clientAuth=True)
        context = clientContext(certificate, maximum=maximum, certificate=stranger)
        assert await refused(fetch(number, context))
        # a certificate from the configured CA
        client = clients.issue("client", clientAuth=True)
        context = clientContext(certificate, maximum=maximum, certificate=client)
        _, _, response = await fetch(number, context)
        assert response.startswith(b"HTTP/1.0 200 ")
    finally:
        await port.stopListening()


def acceptableIssuers(port, certificate, key):
    """In a thread: the issuers the server asks a client certificate from, by common name."""

    def run():
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.use_certificate_chain_file(certificate)
        context.use_privatekey_file(key)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.setblocking(True)
            connection = SSL.Connection(context, raw)
            connection.set_connect_state()
            connection.set_tlsext_host_name(b"localhost")
            connection.do_handshake()
            names = [name.CN for name in connection.get_client_ca_list()]
            connection.shutdown()
            return names

    return deferToThread(run)


@pytest_twisted.ensureDeferred
async def test_clientCAsAreNamedToClients(serverFiles, tmp_path):
    """The server names the acceptable issuers, so a client with several certificates can pick."""
    certificate, key = serverFiles
    first, second = Authority(tmp_path, "first"), Authority(tmp_path, "second")
    port = await listen(tlsConfig(certificate, key, clientcas=[first.path, second.path]))
    try:
        client = second.issue("client", clientAuth=True)
        assert await acceptableIssuers(port.getHost().port, *client) == ["first", "second"]
    finally:
        await port.stopListening()


# -- Listeners ----------------------------------------------------------------


def test_listenerDescriptions(serverFiles, tmp_path):
    certificate, key = serverFiles
    plain = parseConfig({"http": {"addr": "127.0.0.1:5000"}})
    ((description, endpoint),) = listeners(plain, reactor)
    assert description == "tcp:5000:interface=127.0.0.1"
    assert not isinstance(endpoint, TLSServerEndpoint)

    ((description, endpoint),) = listeners(tlsConfig(certificate, key), reactor)
    assert description == "tcp:0:interface=127.0.0.1 with TLS 1.2+"
    assert isinstance(endpoint, TLSServerEndpoint)

    clients = Authority(tmp_path, "clients")
    config = tlsConfig(certificate, key, clientcas=[clients.path], minimumtls="tls1.3")
    ((description, _),) = listeners(config, reactor)
    assert description == "tcp:0:interface=127.0.0.1 with TLS 1.3+, client certificates required"


def test_listenStringsAreUsedAsWritten():
    config = parseConfig({"http": {"listen": ["tcp:5000:interface=127.0.0.1", "unix:/tmp/r.sock"]}})
    result = listeners(config, reactor)
    assert [d for d, _ in result] == ["tcp:5000:interface=127.0.0.1", "unix:/tmp/r.sock"]
    assert not any(isinstance(e, TLSServerEndpoint) for _, e in result)


def test_listenOverrideIsUsedAsWritten(serverFiles):
    certificate, key = serverFiles
    config = withOverrides(tlsConfig(certificate, key), listen=["tcp:0:interface=127.0.0.1"])
    ((description, endpoint),) = listeners(config, reactor)
    assert description == "tcp:0:interface=127.0.0.1"
    assert not isinstance(endpoint, TLSServerEndpoint)


# -- The service --------------------------------------------------------------


def freePort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serviceConfig(certificate, key, port):
    return parseConfig(
        {
            "storage": {"inmemory": {}, "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {
                "addr": f"127.0.0.1:{port}",
                "tls": {"certificate": certificate, "key": key},
            },
        }
    )


@pytest_twisted.ensureDeferred
async def test_registryServiceServesTLS(serverFiles):
    certificate, key = serverFiles
    port = freePort()
    service = RegistryService(serviceConfig(certificate, key, port), reactor)
    service.startService()
    try:
        peer, _, response = await fetch(port, clientContext(certificate), path="/v2/")
        assert peer == der(certificate)
        assert response.startswith(b"HTTP/1.0 200 ")
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_registryServiceFailsToStartOnAPortInUse(serverFiles):
    certificate, key = serverFiles
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        service = RegistryService(
            serviceConfig(certificate, key, taken.getsockname()[1]), reactor
        )
        try:
            with pytest.raises(CannotListenError):
                service.startService()
        finally:
            await service.stopService()
