import dataclasses
import datetime
import os
import re
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString

from registryd.config import (
    NotificationEndpoint,
    NotificationsConfig,
    ProxyConfig,
    ConfigError,
    HtpasswdAuth,
    HTTPConfig,
    IssuerAuth,
    LogConfig,
    PolicyConfig,
    SillyAuth,
    StorageConfig,
    TLSConfig,
    TokenAuth,
    UploadPurging,
    ValidationConfig,
    checkStorageRoot,
    defaultConfig,
    loadConfig,
    parseConfig,
    withOverrides,
)

EXAMPLE = Path(__file__).parent.parent / "etc" / "registryd.yaml"
asRoot = os.geteuid() == 0


def errorFor(mapping, key):
    """The message parseConfig fails with, checked to be one line starting with C{key}."""
    with pytest.raises(ConfigError) as caught:
        parseConfig(mapping)
    return checkMessage(caught.value, key)


def checkMessage(error, key):
    message = str(error)
    assert message.startswith(f"{key}: "), message
    assert error.key == key
    assert "\n" not in message and "Traceback" not in message
    return message


def nested(path, value):
    """A mapping with C{value} at the dotted C{path}."""
    for name in reversed(path.split(".")):
        value = {name: value}
    return value


def pemKey(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def tlsFiles(tmp_path_factory):
    """A matching self-signed certificate and key, in a directory with a colon in its name."""
    directory = tmp_path_factory.mktemp("tls") / "with:colon=sign"
    directory.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certPath, keyPath = directory / "cert.pem", directory / "key.pem"
    certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certPath), str(keyPath)


# -- Defaults -----------------------------------------------------------------


def test_defaults():
    config = defaultConfig()
    assert config.version == "0.1"
    assert config.log == LogConfig(level="info", formatter="text", accesslog=True, fields={})
    assert config.storage == StorageConfig(
        driver="filesystem",
        rootdirectory="./data",
        maxthreads=16,
        directwrites=True,
        deleteEnabled=False,
        readonly=False,
        uploadPurging=UploadPurging(
            enabled=True, age=168 * 3600, interval=24 * 3600, dryrun=False
        ),
        redirectDisable=False,
    )
    assert config.http == HTTPConfig(
        listen=("tcp:5000:interface=127.0.0.1",),
        host=None,
        prefix="/",
        secret=None,
        headers={"X-Content-Type-Options": ("nosniff",)},
        tls=None,
        relativeURLs=False,
    )
    assert config.policy == PolicyConfig(repositoryClasses=())
    assert config.validation == ValidationConfig(False, (), ())
    assert config.warnings == ()


def test_emptyMappingAndNullSectionsAreTheDefault():
    assert parseConfig({}) == defaultConfig()
    nulls = {name: None for name in ("version", "log", "storage", "http", "policy", "validation")}
    assert parseConfig(nulls) == defaultConfig()


def test_defaultListenIsTheDefaultAddr():
    config = parseConfig({"http": {"addr": "127.0.0.1:5000"}})
    assert config.http.listen == defaultConfig().http.listen


def test_configIsFrozen():
    config = defaultConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.storage.deleteEnabled = True


def test_defaultHeadersAreNotShared():
    first = defaultConfig()
    first.http.headers["X-Extra"] = ("1",)
    assert defaultConfig().http.headers == {"X-Content-Type-Options": ("nosniff",)}


# -- version and log ----------------------------------------------------------


@pytest.mark.parametrize("version", ["0.1", 0.1])
def test_version(version):
    assert parseConfig({"version": version}).version == "0.1"


@pytest.mark.parametrize("version", [0.2, "1.0", True, [0.1]])
def test_badVersion(version):
    assert "expected '0.1'" in errorFor({"version": version}, "version")


def test_log():
    config = parseConfig(
        {
            "log": {
                "level": "DEBUG",
                "formatter": "json",
                "accesslog": {"disabled": True},
                "fields": {"service": "registry", "environment": "staging"},
            }
        }
    )
    assert config.log == LogConfig(
        level="debug",
        formatter="json",
        accesslog=False,
        fields={"service": "registry", "environment": "staging"},
    )


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("log.level", "verbose", "one of error, warn, info, debug"),
        ("log.formatter", "logstash", "one of text, json"),
        ("log.accesslog.disabled", "yes", "a boolean"),
        ("log.fields", ["a"], "a mapping"),
        ("log.fields", {1: "a"}, "string field names"),
    ],
)
def test_badLog(key, value, expected):
    assert f"expected {expected}" in errorFor(nested(key, value), key)


def test_deprecatedLoglevelIsHonouredWithoutLogLevel():
    config = parseConfig({"loglevel": "warn"})
    assert config.log.level == "warn"
    assert config.warnings == ("loglevel: deprecated, use log.level",)


def test_deprecatedLoglevelLosesToLogLevel():
    config = parseConfig({"loglevel": "warn", "log": {"level": "error"}})
    assert config.log.level == "error"
    assert config.warnings == ("loglevel: ignored (log.level is set)",)


# -- storage ------------------------------------------------------------------


def test_filesystemStorage():
    config = parseConfig(
        {"storage": {"filesystem": {"rootdirectory": "/srv/r", "maxthreads": 4, "directwrites": False}}}
    )
    assert config.storage.driver == "filesystem"
    assert config.storage.rootdirectory == "/srv/r"
    assert config.storage.maxthreads == 4
    assert config.storage.directwrites is False


@pytest.mark.parametrize("storage", [{"inmemory": {}}, {"inmemory": None}, "inmemory"])
def test_inmemoryStorage(storage):
    assert parseConfig({"storage": storage}).storage.driver == "inmemory"


def test_noDriverIsFilesystemWithDefaultRoot():
    config = parseConfig({"storage": {"delete": {"enabled": True}}})
    assert config.storage.driver == "filesystem"
    assert config.storage.rootdirectory == "./data"
    assert config.storage.deleteEnabled is True


def test_storageSwitches():
    storage = parseConfig(
        {
            "storage": {
                "delete": {"enabled": True},
                "redirect": {"disable": True},
                "maintenance": {
                    "readonly": {"enabled": True},
                    "uploadpurging": {
                        "enabled": False,
                        "age": "72h",
                        "interval": "30m",
                        "dryrun": True,
                    },
                },
            }
        }
    ).storage
    assert storage.deleteEnabled is True
    assert storage.redirectDisable is True
    assert storage.readonly is True
    assert storage.uploadPurging == UploadPurging(
        enabled=False, age=72 * 3600, interval=1800, dryrun=True
    )


@pytest.mark.parametrize(
    "duration, seconds",
    [
        ("168h", 168 * 3600),
        ("24h", 86400),
        ("30m", 1800),
        ("10s", 10),
        ("1h30m", 5400),
        ("2h45m30s", 2 * 3600 + 45 * 60 + 30),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("1500us", 0.0015),
        ("1500\u00b5s", 0.0015),
        ("2000000ns", 0.002),
        (90, 90),
        (2.5, 2.5),
    ],
)
def test_durations(duration, seconds):
    path = "storage.maintenance.uploadpurging.age"
    age = parseConfig(nested(path, duration)).storage.uploadPurging.age
    assert age == pytest.approx(seconds)
    assert isinstance(age, float)


@pytest.mark.parametrize(
    "duration", ["", "10", "1x", "h", "-1h", "1h 30m", "0", "0s", 0, -5, True, [], float("inf")]
)
def test_badDurations(duration):
    path = "storage.maintenance.uploadpurging.interval"
    assert "expected a positive duration" in errorFor(nested(path, duration), path)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("storage.delete.enabled", "yes please", "a boolean, got 'yes please'"),
        ("storage.redirect.disable", 1, "a boolean, got 1"),
        ("storage.maintenance.readonly.enabled", "true", "a boolean, got 'true'"),
        ("storage.maintenance.uploadpurging.enabled", 0, "a boolean"),
        ("storage.maintenance.uploadpurging.dryrun", "no", "a boolean"),
        ("storage.filesystem.rootdirectory", 5, "a non-empty string, got 5"),
        ("storage.filesystem.rootdirectory", "", "a non-empty string"),
        ("storage.filesystem.maxthreads", 0, "an integer of at least 1, got 0"),
        ("storage.filesystem.maxthreads", True, "an integer of at least 1"),
        ("storage.filesystem.maxthreads", "8", "an integer of at least 1, got '8'"),
        ("storage.filesystem.directwrites", "no", "a boolean, got 'no'"),
        ("storage.delete", True, "a mapping, got True"),
        ("storage", ["filesystem"], "a mapping"),
    ],
)
def test_badStorage(key, value, expected):
    assert f"expected {expected}" in errorFor(nested(key, value), key)


def test_twoDrivers():
    message = errorFor({"storage": {"filesystem": {}, "inmemory": None}}, "storage")
    assert "exactly one storage driver" in message
    assert "filesystem, inmemory" in message


def test_otherDistributionDriverIsNotSupportedYet():
    message = errorFor({"storage": {"s3": {"bucket": "b"}}}, "storage.s3")
    assert "not supported yet by registryd" in message


def test_inmemoryTakesNoParameters():
    assert "unknown key" in errorFor(
        {"storage": {"inmemory": {"rootdirectory": "/x"}}}, "storage.inmemory.rootdirectory"
    )


def test_storageCacheAndTagAreReported():
    config = parseConfig(
        {"storage": {"cache": {"blobdescriptor": "inmemory"}, "tag": {"concurrencylimit": 8}}}
    )
    assert config.warnings == (
        "storage.cache: ignored (registryd caches in process)",
        "storage.tag: ignored (registryd has no tag lookup options)",
    )


# -- http ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr, endpoint",
    [
        (":5000", "tcp:5000"),
        ("0.0.0.0:5000", "tcp:5000:interface=0.0.0.0"),
        ("localhost:5000", "tcp:5000:interface=localhost"),
        ("registry.example.com:80", "tcp:80:interface=registry.example.com"),
        ("[::1]:5000", "tcp6:5000:interface=\\:\\:1"),
        ("[::]:5001", "tcp6:5001:interface=\\:\\:"),
    ],
)
def test_addr(addr, endpoint):
    config = parseConfig({"http": {"addr": addr, "net": "tcp"}})
    assert config.http.listen == (endpoint,)


def test_ipv6AddrBindsThatAddress():
    (endpoint,) = parseConfig({"http": {"addr": "[::1]:5000"}}).http.listen
    assert serverFromString(reactor, endpoint)._interface == "::1"


@pytest.mark.parametrize(
    "addr, expected",
    [
        ("5000", "HOST:PORT"),
        ("localhost", "HOST:PORT"),
        ("[::1:5000", "HOST:PORT"),
        ("::1:5000", "HOST:PORT"),
        ("a b:5000", "HOST:PORT"),
        (":http", "HOST:PORT"),
        ("host:99999", "a port from 0 to 65535"),
        ("[example.com]:5000", "an IPv6 address in brackets"),
    ],
)
def test_badAddr(addr, expected):
    assert f"expected {expected}" in errorFor({"http": {"addr": addr}}, "http.addr")


def test_unixAddr():
    config = parseConfig({"http": {"net": "unix", "addr": "/run/registry:1=a.sock"}})
    (endpoint,) = config.http.listen
    assert endpoint.startswith("unix:")
    # colons and equals signs in the path survive the endpoint string syntax
    assert serverFromString(reactor, endpoint)._address == "/run/registry:1=a.sock"


def test_unixNeedsAddr():
    assert "socket path is required" in errorFor({"http": {"net": "unix"}}, "http.addr")


def test_badNet():
    assert "expected one of tcp, unix" in errorFor({"http": {"net": "udp"}}, "http.net")


def test_listen():
    listen = ["tcp:5000:interface=127.0.0.1", "tcp6:5000:interface=\\:\\:1", "unix:/tmp/r.sock"]
    assert parseConfig({"http": {"listen": listen}}).http.listen == tuple(listen)


def test_badListenEndpoint():
    message = errorFor({"http": {"listen": ["tcp:5000", "xyz:1"]}}, "http.listen[1]")
    assert "bad endpoint string 'xyz:1'" in message
    assert "Unknown endpoint type" in message


def test_badListenArgument():
    assert "bad endpoint string" in errorFor(
        {"http": {"listen": ["tcp:5000:colour=blue"]}}, "http.listen[0]"
    )


@pytest.mark.parametrize(
    "http, key, expected",
    [
        ({"listen": "tcp:5000"}, "http.listen", "expected a list of strings"),
        ({"listen": [5000]}, "http.listen[0]", "expected a non-empty string"),
        ({"listen": []}, "http.listen", "at least one endpoint"),
        ({"listen": ["tcp:5000"], "addr": ":5000"}, "http.listen", "not both"),
        ({"listen": ["tcp:5000"], "net": "unix"}, "http.net", "applies to http.addr only"),
    ],
)
def test_badListen(http, key, expected):
    assert expected in errorFor({"http": http}, key)


def test_httpFields():
    http = parseConfig(
        {
            "http": {
                "host": "https://registry.example.com:5000",
                "prefix": "/",
                "secret": "s3cret",
                "relativeurls": True,
                "headers": {
                    "Strict-Transport-Security": ["max-age=31536000"],
                    "X-Multi": ["a", "b"],
                },
            }
        }
    ).http
    assert http.host == "https://registry.example.com:5000"
    assert http.prefix == "/"
    assert http.secret == "s3cret"
    assert http.relativeURLs is True
    # given headers replace the default ones
    assert http.headers == {
        "Strict-Transport-Security": ("max-age=31536000",),
        "X-Multi": ("a", "b"),
    }


def test_emptyHeadersRemoveTheDefault():
    assert parseConfig({"http": {"headers": {}}}).http.headers == {}


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("http.host", "registry.example.com", "expected an absolute http:// or https:// URL"),
        ("http.host", "ftp://registry.example.com", "expected an absolute http:// or https://"),
        ("http.host", 5000, "expected a non-empty string"),
        ("http.secret", 12345, "expected a non-empty string, got 12345"),
        ("http.relativeurls", "false", "expected a boolean, got 'false'"),
        ("http.headers", ["X-A: b"], "expected a mapping of header names"),
        ("http", "addr", "expected a mapping, got 'addr'"),
    ],
)
def test_badHTTP(key, value, expected):
    assert expected in errorFor(nested(key, value), key)


@pytest.mark.parametrize(
    "headers, key, expected",
    [
        ({"X-A": "b"}, "http.headers.X-A", "expected a list of strings, got 'b'"),
        ({"X-A": []}, "http.headers.X-A", "expected a list of strings"),
        ({"X-A": [1]}, "http.headers.X-A[0]", "expected a string without line breaks"),
        ({"X-A": ["a\r\nSet-Cookie: x"]}, "http.headers.X-A[0]", "without line breaks"),
        ({"Bad Name": ["x"]}, "http.headers.Bad Name", "not a valid header name"),
        ({"X-A:": ["x"]}, "http.headers.X-A:", "not a valid header name"),
    ],
)
def test_badHeaders(headers, key, expected):
    assert expected in errorFor({"http": {"headers": headers}}, key)


@pytest.mark.parametrize("prefix", ["/my/registry/", "registry"])
def test_prefixOtherThanRootIsNotSupportedYet(prefix):
    assert "not supported yet" in errorFor({"http": {"prefix": prefix}}, "http.prefix")


@pytest.mark.parametrize("key", ["debug", "draintimeout", "http2", "h2c"])
def test_ignoredHTTPKeysAreReported(key):
    config = parseConfig({"http": {key: {"addr": "localhost:5001"}}})
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith(f"http.{key}: ignored (")


# -- http.tls -----------------------------------------------------------------


def test_tlsIsServedOnThePlainAddrListener(tlsFiles):
    cert, key = tlsFiles
    http = parseConfig(
        {
            "http": {
                "addr": "127.0.0.1:5443",
                "tls": {
                    "certificate": cert,
                    "key": key,
                    "clientcas": [cert],
                    "minimumtls": "tls1.3",
                },
            }
        }
    ).http
    assert http.tls == TLSConfig(certificate=cert, key=key, clientCAs=(cert,), minimumTLS="tls1.3")
    # registryd.tls wraps this listener in TLS (see tests/test_tls.py)
    assert http.listen == ("tcp:5443:interface=127.0.0.1",)


def test_tlsOnIPv6Addr(tlsFiles):
    cert, key = tlsFiles
    http = parseConfig({"http": {"addr": "[::1]:5443", "tls": {"certificate": cert, "key": key}}}).http
    assert http.listen == ("tcp6:5443:interface=\\:\\:1",)
    assert http.tls.certificate == cert


def test_tlsOnAllInterfacesAndDefaultAddr(tlsFiles):
    cert, key = tlsFiles
    tls = {"certificate": cert, "key": key}
    allInterfaces = parseConfig({"http": {"addr": ":5443", "tls": tls}}).http
    assert allInterfaces.listen == ("tcp:5443",)
    assert allInterfaces.tls.minimumTLS == "tls1.2"
    assert allInterfaces.tls.clientCAs == ()
    withoutAddr = parseConfig({"http": {"tls": tls}}).http
    assert withoutAddr.listen == ("tcp:5000:interface=127.0.0.1",)
    assert withoutAddr.tls == TLSConfig(cert, key)


def test_emptyTLSIsNoTLS():
    assert parseConfig({"http": {"tls": None}}).http.tls is None
    assert parseConfig({"http": {"tls": {}}}).http.listen == defaultConfig().http.listen


def test_tlsNeedsCertificateAndKey(tlsFiles):
    cert, key = tlsFiles
    assert "required" in errorFor({"http": {"tls": {"certificate": cert}}}, "http.tls.key")
    assert "required" in errorFor({"http": {"tls": {"key": key}}}, "http.tls.certificate")


def test_tlsFilesMustBeReadable(tlsFiles, tmp_path):
    cert, key = tlsFiles
    missing = str(tmp_path / "missing.pem")
    tls = {"certificate": missing, "key": key}
    message = errorFor({"http": {"tls": tls}}, "http.tls.certificate")
    assert f"{missing}: cannot read: No such file or directory" in message
    tls = {"certificate": cert, "key": str(tmp_path)}
    assert "cannot read: Is a directory" in errorFor({"http": {"tls": tls}}, "http.tls.key")
    tls = {"certificate": cert, "key": key, "clientcas": [missing]}
    assert "cannot read" in errorFor({"http": {"tls": tls}}, "http.tls.clientcas[0]")


@pytest.mark.skipif(asRoot, reason="root reads files whatever their mode")
def test_tlsKeyWithoutReadPermission(tlsFiles, tmp_path):
    cert, _ = tlsFiles
    key = tmp_path / "key.pem"
    key.write_bytes(b"secret")
    key.chmod(0)
    message = errorFor({"http": {"tls": {"certificate": cert, "key": str(key)}}}, "http.tls.key")
    assert "Permission denied" in message


def test_tlsFilesMustBeACertificateAndItsKey(tlsFiles, tmp_path):
    cert, key = tlsFiles
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    message = errorFor({"http": {"tls": {"certificate": cert, "key": str(garbage)}}}, "http.tls.key")
    assert message == f"http.tls.key: {garbage}: not a PEM private key file"
    # the certificate where the key should be
    message = errorFor({"http": {"tls": {"certificate": cert, "key": cert}}}, "http.tls.key")
    assert "not a PEM private key file" in message
    message = errorFor({"http": {"tls": {"certificate": key, "key": key}}}, "http.tls.certificate")
    assert message == f"http.tls.certificate: {key}: not a PEM certificate file"
    tls = {"certificate": cert, "key": key, "clientcas": [cert, key]}
    message = errorFor({"http": {"tls": tls}}, "http.tls.clientcas[1]")
    assert "not a PEM certificate file" in message


def test_tlsKeyMustBeTheCertificates(tlsFiles, tmp_path):
    cert, _ = tlsFiles
    other = tmp_path / "other.pem"
    other.write_bytes(pemKey(ec.generate_private_key(ec.SECP256R1())))
    message = errorFor({"http": {"tls": {"certificate": cert, "key": str(other)}}}, "http.tls")
    assert message == (
        "http.tls: cannot use this certificate and key: the key does not match the certificate"
    )


def test_tlsKeyMustNotBeEncrypted(tlsFiles, tmp_path):
    cert, key = tlsFiles
    with open(key, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    message = errorFor({"http": {"tls": {"certificate": cert, "key": str(encrypted)}}}, "http.tls.key")
    assert "encrypted private keys are not supported" in message


def test_tlsCertificateFileWithChain(tlsFiles, tmp_path):
    cert, key = tlsFiles
    chain = tmp_path / "chain.pem"
    with open(cert, "rb") as f:
        chain.write_bytes(f.read() * 2)
    tls = parseConfig({"http": {"tls": {"certificate": str(chain), "key": key}}}).http.tls
    assert tls.certificate == str(chain)


def test_listenOverrideDropsTLS(tlsFiles):
    cert, key = tlsFiles
    config = parseConfig({"http": {"addr": ":5443", "tls": {"certificate": cert, "key": key}}})
    overridden = withOverrides(config, listen=["tcp:8080"])
    assert overridden.http.listen == ("tcp:8080",)
    # --listen strings are used as written, like http.listen
    assert overridden.http.tls is None
    assert withOverrides(config, listen=None).http.tls == config.http.tls


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("minimumtls", "tls1.0", "expected one of tls1.2, tls1.3"),
        ("clientcas", "/ca.pem", "expected a list of strings"),
        ("ciphersuites", ["TLS_AES_128_GCM_SHA256"], "not supported yet"),
        ("letsencrypt", {"cachefile": "/x"}, "not supported yet"),
        ("clientauth", "verify-client-cert-if-given", "not supported yet"),
        ("sni", True, "unknown key"),
    ],
)
def test_badTLS(tlsFiles, key, value, expected):
    cert, certKey = tlsFiles
    tls = {"certificate": cert, "key": certKey, key: value}
    assert expected in errorFor({"http": {"tls": tls}}, f"http.tls.{key}")


def test_tlsWithListenIsRefused(tlsFiles):
    cert, key = tlsFiles
    http = {"listen": ["tcp:5000"], "tls": {"certificate": cert, "key": key}}
    assert "write ssl: endpoints" in errorFor({"http": http}, "http.tls")


def test_tlsOnUnixSocketIsNotSupportedYet(tlsFiles):
    cert, key = tlsFiles
    http = {"net": "unix", "addr": "/tmp/r.sock", "tls": {"certificate": cert, "key": key}}
    assert "not supported yet" in errorFor({"http": http}, "http.tls")


# -- auth ---------------------------------------------------------------------


@pytest.fixture
def files(tmp_path, tlsFiles):
    """Paths of an htpasswd file, a policy, a certificate bundle and a JWKS."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:$2y$05$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("{}\n")
    jwks = tmp_path / "keys.jwks"
    jwks.write_text('{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}')
    return {
        "htpasswd": str(htpasswd),
        "policy": str(policy),
        "bundle": tlsFiles[0],
        "jwks": str(jwks),
        "missing": str(tmp_path / "missing"),
        "directory": str(tmp_path),
    }


def authWith(method, **parameters):
    return {"auth": {method: parameters}}


@pytest.mark.parametrize("value", [None, {}])
def test_noAuth(value):
    assert parseConfig({"auth": value}).auth is None
    assert defaultConfig().auth is None


@pytest.mark.parametrize("value", [[], "htpasswd", ["htpasswd"]])
def test_authIsAMapping(value):
    assert "expected a mapping" in errorFor({"auth": value}, "auth")


def test_authHtpasswd(files):
    config = parseConfig(authWith("htpasswd", realm="Registry Realm", path=files["htpasswd"]))
    assert config.auth == HtpasswdAuth(realm="Registry Realm", path=files["htpasswd"])
    assert config.warnings == ()


def test_authMoreThanOneMethod(files):
    mapping = {
        "auth": {
            "htpasswd": {"realm": "r", "path": files["htpasswd"]},
            "silly": {"realm": "r", "service": "s"},
        }
    }
    message = errorFor(mapping, "auth")
    assert message == "auth: more than one method (htpasswd, silly); give exactly one"


def test_authMethodWithoutParametersIsNotNoAuth():
    """A method named with nothing under it fails; it does not leave the registry open."""
    assert errorFor({"auth": {"htpasswd": None}}, "auth.htpasswd.realm") == (
        "auth.htpasswd.realm: required"
    )
    assert errorFor({"auth": {"silly": {}}}, "auth.silly.realm") == "auth.silly.realm: required"


def test_authUnknownMethod():
    assert errorFor({"auth": {"ldap": {"url": "x"}}}, "auth.ldap") == "auth.ldap: unknown key"


@pytest.mark.parametrize(
    "parameters, key, expected",
    [
        ({"path": "HTPASSWD"}, "auth.htpasswd.realm", "required"),
        ({"realm": "r"}, "auth.htpasswd.path", "required"),
        ({"realm": "r", "path": "MISSING"}, "auth.htpasswd.path",
         "MISSING: cannot read: No such file or directory"),
        ({"realm": "r", "path": "DIRECTORY"}, "auth.htpasswd.path", "cannot read: Is a directory"),
        ({"realm": 5, "path": "HTPASSWD"}, "auth.htpasswd.realm", "expected a non-empty string"),
        ({"realm": "", "path": "HTPASSWD"}, "auth.htpasswd.realm", "expected a non-empty string"),
        ({"realm": "r", "path": "HTPASSWD", "users": []}, "auth.htpasswd.users", "unknown key"),
    ],
)
def test_badAuthHtpasswd(files, parameters, key, expected):
    parameters = {k: files.get(str(v).lower(), v) for k, v in parameters.items()}
    expected = expected.replace("MISSING", files["missing"])
    assert expected in errorFor({"auth": {"htpasswd": parameters}}, key)


HEADER_BREAKERS = ['a"b', "a\\b", "a\nb", "a\rb", "a\r\nWWW-Authenticate: x", "a\x00b", "a\tb",
                   "a\x7fb", "r\u00e9gistry"]


@pytest.mark.parametrize("value", HEADER_BREAKERS)
@pytest.mark.parametrize(
    "method, key",
    [
        ("htpasswd", "realm"),
        ("token", "realm"),
        ("token", "service"),
        ("token", "issuer"),
        ("silly", "realm"),
        ("silly", "service"),
        ("issuer", "service"),
        ("issuer", "issuer"),
        ("issuer", "realm"),
    ],
)
def test_authHeaderValuesCannotBreakTheChallenge(files, method, key, value):
    valid = {
        "htpasswd": {"realm": "r", "path": files["htpasswd"]},
        "token": {"realm": "https://auth.example.com/token", "service": "s", "issuer": "i",
                  "rootcertbundle": files["bundle"]},
        "silly": {"realm": "r", "service": "s"},
        "issuer": {"service": "s", "htpasswd": files["htpasswd"], "policy": files["policy"]},
    }[method]
    if key == "realm" and method in ("token", "issuer"):
        value = "https://auth.example.com/" + value
    message = errorFor({"auth": {method: dict(valid, **{key: value})}}, f"auth.{method}.{key}")
    assert "expected printable ASCII without '\"' or '\\' (it is sent in WWW-Authenticate)" in message


def test_authHeaderValuesMayHaveSpacesAndPunctuation(files):
    realm = "Registry: the 'one' & only (v2) #1 ~ [x] {y}"
    config = parseConfig(authWith("htpasswd", realm=realm, path=files["htpasswd"]))
    assert config.auth.realm == realm


def test_authToken(files):
    config = parseConfig(
        authWith(
            "token",
            realm="https://auth.example.com/token",
            service="registry.example.com",
            issuer="auth.example.com",
            rootcertbundle=files["bundle"],
            jwks=files["jwks"],
            autoredirect=False,
        )
    )
    assert config.auth == TokenAuth(
        realm="https://auth.example.com/token",
        service="registry.example.com",
        issuer="auth.example.com",
        rootcertbundle=files["bundle"],
        jwks=files["jwks"],
    )
    assert config.warnings == ()


@pytest.mark.parametrize("which", ["bundle", "jwks"])
def test_authTokenWithOneKeySource(files, which):
    key = {"bundle": "rootcertbundle", "jwks": "jwks"}[which]
    config = parseConfig(
        authWith("token", realm="https://a.example.com/t", service="s", issuer="i",
                 **{key: files[which]})
    )
    assert getattr(config.auth, key) == files[which]
    other = {"rootcertbundle": "jwks", "jwks": "rootcertbundle"}[key]
    assert getattr(config.auth, other) is None


def test_authTokenNeedsAKeySource():
    message = errorFor(
        authWith("token", realm="https://a.example.com/t", service="s", issuer="i"),
        "auth.token.rootcertbundle",
    )
    assert message == "auth.token.rootcertbundle: required unless auth.token.jwks is given"


def test_authTokenWarnings(files):
    config = parseConfig(
        authWith("token", realm="https://a.example.com/t", service="s", issuer="i",
                 rootcertbundle=files["bundle"], signingalgorithms=["ES256", "RS256"],
                 autoredirectpath="/auth/token")
    )
    assert config.auth.rootcertbundle == files["bundle"]
    assert [line.split(":")[0] for line in config.warnings] == [
        "auth.token.autoredirectpath",
        "auth.token.signingalgorithms",
    ]
    assert all(": ignored (" in line for line in config.warnings)


def writeFile(directory, name, content):
    path = directory / name
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    "change, key, expected",
    [
        ({"realm": "auth.example.com/token"}, "realm", "expected an absolute http:// or https://"),
        ({"realm": None}, "realm", "required"),
        ({"service": None}, "service", "required"),
        ({"issuer": None}, "issuer", "required"),
        ({"issuer": ["i"]}, "issuer", "expected a non-empty string"),
        ({"autoredirect": True}, "autoredirect",
         "not supported yet by registryd 0.1.0 (set realm to the token server's URL)"),
        ({"autoredirect": "no"}, "autoredirect", "expected a boolean"),
        ({"signingalgorithms": "ES256"}, "signingalgorithms", "expected a list of strings"),
        ({"rootcertbundle": "MISSING"}, "rootcertbundle", "cannot read"),
        ({"rootcertbundle": "NOT-PEM"}, "rootcertbundle", "not a PEM certificate file"),
        ({"jwks": "MISSING"}, "jwks", "cannot read"),
        ({"jwks": "NOT-JSON"}, "jwks", "not JSON"),
        ({"jwks": "NOT-A-SET"}, "jwks", 'expected a JSON Web Key Set ({"keys": [...]})'),
        ({"jwks": "NO-KEYS"}, "jwks", "the key set has no keys"),
        ({"x5c": True}, "x5c", "unknown key"),
    ],
)
def test_badAuthToken(files, tmp_path, change, key, expected):
    paths = {
        "MISSING": files["missing"],
        "NOT-PEM": writeFile(tmp_path, "bundle.pem", "no certificates here"),
        "NOT-JSON": writeFile(tmp_path, "a.jwks", "{keys: "),
        "NOT-A-SET": writeFile(tmp_path, "b.jwks", '[{"kty": "EC"}]'),
        "NO-KEYS": writeFile(tmp_path, "c.jwks", '{"keys": []}'),
    }
    parameters = {"realm": "https://a.example.com/t", "service": "s", "issuer": "i",
                  "rootcertbundle": files["bundle"]}
    parameters.update({k: paths.get(v, v) for k, v in change.items() if isinstance(v, str)})
    parameters.update({k: v for k, v in change.items() if not isinstance(v, str)})
    parameters = {k: v for k, v in parameters.items() if v is not None}
    assert expected in errorFor({"auth": {"token": parameters}}, f"auth.token.{key}")


def test_authSilly():
    config = parseConfig(authWith("silly", realm="silly-realm", service="silly-service"))
    assert config.auth == SillyAuth(realm="silly-realm", service="silly-service")
    assert config.warnings == (
        "auth.silly: any Authorization header is accepted; for development only",
    )


def test_badAuthSilly():
    assert "required" in errorFor(authWith("silly", realm="r"), "auth.silly.service")
    assert "unknown key" in errorFor(
        authWith("silly", realm="r", service="s", users=["a"]), "auth.silly.users"
    )


def test_authIssuerDefaults(files):
    config = parseConfig(
        authWith("issuer", service="registry.example.com", htpasswd=files["htpasswd"],
                 policy=files["policy"])
    )
    assert config.auth == IssuerAuth(
        service="registry.example.com",
        issuer="registryd",
        htpasswd=files["htpasswd"],
        policy=files["policy"],
        key=None,  # the service puts it in the storage root
        expiration=300.0,
        realm=None,  # built from each request
        path="/token",
    )
    assert config.warnings == ()


def test_authIssuer(files, tmp_path):
    key = str(tmp_path / "keys" / "signing.key")
    (tmp_path / "keys").mkdir()
    config = parseConfig(
        authWith("issuer", service="s", issuer="my-issuer", htpasswd=files["htpasswd"],
                 policy=files["policy"], key=key, expiration="1h30m",
                 realm="https://registry.example.com/auth/token", path="/auth/token")
    )
    assert config.auth == IssuerAuth(
        service="s", issuer="my-issuer", htpasswd=files["htpasswd"], policy=files["policy"],
        key=key, expiration=5400.0, realm="https://registry.example.com/auth/token",
        path="/auth/token",
    )
    # an existing key file (and certificate) is used as it is
    (tmp_path / "keys" / "signing.key").write_text("key")
    (tmp_path / "keys" / "signing.key.crt").write_text("certificate")
    assert parseConfig(
        authWith("issuer", service="s", htpasswd=files["htpasswd"], policy=files["policy"], key=key)
    ).auth.key == key


@pytest.mark.parametrize(
    "change, key, expected",
    [
        ({"service": None}, "service", "required"),
        ({"htpasswd": None}, "htpasswd", "required"),
        ({"policy": None}, "policy", "required"),
        ({"htpasswd": "MISSING"}, "htpasswd", "cannot read: No such file or directory"),
        ({"policy": "MISSING"}, "policy", "cannot read: No such file or directory"),
        ({"key": "MISSING/signing.key"}, "key", "cannot be created: MISSING is not a directory"),
        ({"key": "HTPASSWD/signing.key"}, "key", "cannot be created: HTPASSWD is not a directory"),
        ({"key": "DIRECTORY"}, "key", "cannot read: Is a directory"),
        ({"expiration": "0s"}, "expiration", "expected a positive duration"),
        ({"expiration": "soon"}, "expiration", "expected a positive duration"),
        ({"realm": "/token"}, "realm", "expected an absolute http:// or https:// URL"),
        ({"path": "token"}, "path", "expected a URL path starting with '/'"),
        ({"path": "/to ken"}, "path", "expected a URL path starting with '/'"),
        ({"path": '/to"ken'}, "path", "expected a URL path starting with '/'"),
        ({"path": "/"}, "path", "/: the token endpoint needs a path of its own"),
        ({"path": "/v2"}, "path", "/v2: the token endpoint needs a path of its own"),
        ({"path": "/v2/token"}, "path", "/v2/token: the token endpoint needs a path of its own"),
        ({"issuer": ""}, "issuer", "expected a non-empty string"),
        ({"audience": "x"}, "audience", "unknown key"),
    ],
)
def test_badAuthIssuer(files, change, key, expected):
    def resolve(value):
        if not isinstance(value, str):
            return value
        for name in ("MISSING", "HTPASSWD", "DIRECTORY"):
            value = value.replace(name, files[name.lower()])
        return value

    parameters = {"service": "s", "htpasswd": files["htpasswd"], "policy": files["policy"]}
    parameters.update({k: resolve(v) for k, v in change.items()})
    parameters = {k: v for k, v in parameters.items() if v is not None}
    assert resolve(expected) in errorFor({"auth": {"issuer": parameters}}, f"auth.issuer.{key}")


@pytest.mark.skipif(asRoot, reason="root writes to directories whatever their mode")
def test_authIssuerKeyDirectoryMustBeWritable(files, tmp_path):
    """Unless the key and its certificate both exist, the missing one is written at startup."""
    locked = tmp_path / "locked"
    locked.mkdir()
    key = locked / "signing.key"
    mapping = authWith(
        "issuer", service="s", htpasswd=files["htpasswd"], policy=files["policy"], key=str(key)
    )
    locked.chmod(0o500)
    try:
        message = errorFor(mapping, "auth.issuer.key")
        assert message == f"auth.issuer.key: {key}: cannot be created: {locked} is not writable"
        locked.chmod(0o700)
        key.write_text("key")
        locked.chmod(0o500)
        message = errorFor(mapping, "auth.issuer.key")
        assert message == f"auth.issuer.key: {key}.crt: cannot be created: {locked} is not writable"
        locked.chmod(0o700)
        (locked / "signing.key.crt").write_text("certificate")
        locked.chmod(0o500)
        assert parseConfig(mapping).auth.key == str(key)
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(asRoot, reason="root reads files whatever their mode")
def test_authFilesMustBeReadable(files, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("alice:x\n")
    secret.chmod(0)
    message = errorFor(authWith("htpasswd", realm="r", path=str(secret)), "auth.htpasswd.path")
    assert "Permission denied" in message


def test_exampleAuthMethodsParse(files, tmp_path):
    """Each commented-out method of the example file, uncommented, is a valid configuration."""
    text = EXAMPLE.read_text()
    block = text[text.index("\n# auth:\n") + 1:]
    block = block[: block.index("\n\n")]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else "" for line in block.splitlines())
    methods = yaml.safe_load(uncommented)["auth"]
    assert list(methods) == ["htpasswd", "token", "silly", "issuer"]
    replacements = {
        "path": files["htpasswd"], "htpasswd": files["htpasswd"], "policy": files["policy"],
        "rootcertbundle": files["bundle"], "jwks": files["jwks"],
        "key": str(tmp_path / "signing.key"),
    }
    for method, parameters in methods.items():
        parameters = {k: replacements.get(k, v) for k, v in parameters.items()}
        config = parseConfig({"auth": {method: parameters}})
        assert type(config.auth).__name__.lower() == f"{method}auth"


# -- policy and validation ----------------------------------------------------


def test_policy():
    classes = ["image", "plugin"]
    config = parseConfig({"policy": {"repository": {"classes": classes}}})
    assert config.policy.repositoryClasses == ("image", "plugin")


def test_badPolicy():
    assert "expected a list of strings" in errorFor(
        {"policy": {"repository": {"classes": "image"}}}, "policy.repository.classes"
    )
    assert "unknown key" in errorFor({"policy": {"repositories": {}}}, "policy.repositories")


def test_validation():
    validation = parseConfig(
        {
            "validation": {
                "disabled": True,
                "manifests": {
                    "urls": {
                        "allow": [r"^https?://([^/]+\.)*example\.com/"],
                        "deny": [r"^https?://www\.example\.com/"],
                    }
                },
            }
        }
    ).validation
    assert validation == ValidationConfig(
        disabled=True,
        manifestURLsAllow=(r"^https?://([^/]+\.)*example\.com/",),
        manifestURLsDeny=(r"^https?://www\.example\.com/",),
    )


def test_validationEnabledFalseChangesNothingAsInDistribution():
    config = parseConfig({"validation": {"enabled": False}})
    assert config.validation.disabled is False
    assert config.warnings[0].startswith("validation.enabled: ignored (")


def test_validationEnabledTrueWinsAsInDistribution():
    config = parseConfig({"validation": {"enabled": True, "disabled": True}})
    assert config.validation.disabled is False
    assert config.warnings[0].startswith("validation.disabled: ignored (")


def test_validationEnabledTrueAlone():
    config = parseConfig({"validation": {"enabled": True}})
    assert config.validation.disabled is False
    assert config.warnings == ()


@pytest.mark.parametrize("which", ["allow", "deny"])
def test_badRegularExpression(which):
    key = f"validation.manifests.urls.{which}"
    message = errorFor(nested(key, ["^ok$", "(unclosed"]), f"{key}[1]")
    assert "bad regular expression '(unclosed'" in message


def test_badValidation():
    key = "validation.disabled"
    assert "expected a boolean" in errorFor(nested(key, "yes"), key)
    key = "validation.manifests.urls.allow"
    assert "expected a list of strings" in errorFor(nested(key, "x"), key)
    assert "not supported yet" in errorFor(
        {"validation": {"manifests": {"indexes": {"platforms": "all"}}}},
        "validation.manifests.indexes",
    )


# -- Refused, ignored and unknown keys ----------------------------------------


def test_middlewareIsRefused():
    message = errorFor({"middleware": {"storage": [{"name": "cloudfront"}]}}, "middleware")
    assert "not supported yet by registryd 0.1.0 (refusing to start" in message


@pytest.mark.parametrize("value", [None, {}])
def test_emptySectionsAreAccepted(value):
    keys = ("proxy", "notifications", "middleware")
    config = parseConfig({key: value for key in keys})
    assert config == defaultConfig()


def test_proxy():
    config = parseConfig(
        {"proxy": {"remoteurl": "https://registry-1.docker.io/", "username": "u", "password": "p", "ttl": "2h"}}
    )
    assert config.proxy == ProxyConfig(
        remoteurl="https://registry-1.docker.io", username="u", password="p", ttl=7200.0
    )
    assert "password" not in repr(config.proxy)  # never in logs
    assert parseConfig({"proxy": {"remoteurl": "http://up:5000"}}).proxy.ttl == 168 * 3600.0


@pytest.mark.parametrize(
    "proxy, key",
    [
        ({"username": "u"}, "proxy.remoteurl"),
        ({"remoteurl": "ftp://x"}, "proxy.remoteurl"),
        ({"remoteurl": "http://x", "username": "u"}, "proxy.password"),
        ({"remoteurl": "http://x", "password": "p"}, "proxy.username"),
        ({"remoteurl": "http://x", "ttl": "soon"}, "proxy.ttl"),
        ({"remoteurl": "http://x", "other": 1}, "proxy.other"),
    ],
)
def test_proxyErrors(proxy, key):
    assert errorFor({"proxy": proxy}, key).startswith(key + ":")


def test_notifications():
    config = parseConfig(
        {
            "notifications": {
                "events": {"includereferences": True},
                "spooldirectory": "/var/spool/registryd",
                "endpoints": [
                    {
                        "name": "listener",
                        "url": "https://l.example.com/events",
                        "headers": {"Authorization": ["Bearer t"]},
                        "timeout": "500ms",
                        "threshold": 5,
                        "backoff": "2s",
                        "ignoredmediatypes": ["application/octet-stream"],
                        "ignore": {"mediatypes": ["text/plain"], "actions": ["pull"]},
                    },
                    {"name": "off", "url": "https://off.example.com", "disabled": True},
                ],
            }
        }
    )
    assert config.notifications == NotificationsConfig(
        endpoints=(
            NotificationEndpoint(
                name="listener",
                url="https://l.example.com/events",
                headers={"Authorization": ("Bearer t",)},
                timeout=0.5,
                threshold=5,
                backoff=2.0,
                ignoredMediaTypes=("application/octet-stream", "text/plain"),
                ignoredActions=("pull",),
            ),
        ),
        includeReferences=True,
        spoolDirectory="/var/spool/registryd",
    )


@pytest.mark.parametrize(
    "notifications, key",
    [
        ({"endpoints": {"name": "x"}}, "notifications.endpoints"),
        ({"endpoints": [{"url": "http://x"}]}, "notifications.endpoints[0].name"),
        ({"endpoints": [{"name": "a"}]}, "notifications.endpoints[0].url"),
        ({"endpoints": [{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}]}, "notifications.endpoints[1].name"),
        ({"endpoints": [{"name": "a", "url": "http://x", "ignore": {"actions": ["eat"]}}]}, "notifications.endpoints[0].ignore.actions[0]"),
        ({"endpoints": [{"name": "a", "url": "http://x", "threshold": 0}]}, "notifications.endpoints[0].threshold"),
        ({"endpoints": [{"name": "a", "url": "http://x", "bogus": 1}]}, "notifications.endpoints[0].bogus"),
        ({"events": {"other": 1}}, "notifications.events.other"),
    ],
)
def test_notificationsErrors(notifications, key):
    assert errorFor({"notifications": notifications}, key).startswith(key + ":")


@pytest.mark.parametrize("key", ["health", "redis", "reporting", "compatibility", "catalog"])
def test_ignoredTopLevelKeysAreReported(key):
    config = parseConfig({key: {"something": True}})
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith(f"{key}: ignored (")


def test_ignoredLogKeysAreReported():
    config = parseConfig({"log": {"hooks": [{"type": "mail"}], "reportcaller": True}})
    assert config.warnings == (
        "log.hooks: ignored (registryd has no log hooks)",
        "log.reportcaller: ignored (registryd does not log callers)",
    )


def test_distributionStockConfig():
    """The configuration Distribution's image ships with loads, naming what it ignores."""
    config = parseConfig(
        {
            "version": 0.1,
            "log": {"fields": {"service": "registry"}},
            "storage": {
                "cache": {"blobdescriptor": "inmemory"},
                "filesystem": {"rootdirectory": "/var/lib/registry"},
            },
            "http": {"addr": ":5000", "headers": {"X-Content-Type-Options": ["nosniff"]}},
            "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
        }
    )
    assert config.storage.rootdirectory == "/var/lib/registry"
    assert config.http.listen == ("tcp:5000",)
    assert config.log.fields == {"service": "registry"}
    assert [w.split(":")[0] for w in config.warnings] == ["storage.cache", "health"]


@pytest.mark.parametrize(
    "mapping, key",
    [
        ({"storgae": {}}, "storgae"),
        ({"storage": {"delete": {"enabeld": True}}}, "storage.delete.enabeld"),
        ({"storage": {"maintenance": {"uploadpurging": {"agee": "1h"}}}},
         "storage.maintenance.uploadpurging.agee"),
        ({"storage": {"maintenance": {"gc": {}}}}, "storage.maintenance.gc"),
        ({"storage": {"filesystem": {"root": "/x"}}}, "storage.filesystem.root"),
        ({"storage": {"ftp": {}}}, "storage.ftp"),
        ({"log": {"accesslog": {"enabled": True}}}, "log.accesslog.enabled"),
        ({"http": {"port": 5000}}, "http.port"),
        (nested("validation.manifests.urls.block", []), "validation.manifests.urls.block"),
        ({7: "x"}, "7"),
    ],
)
def test_unknownKeys(mapping, key):
    assert errorFor(mapping, key) == f"{key}: unknown key"


def test_longValuesAreTruncated():
    message = errorFor({"storage": {"delete": {"enabled": "x" * 500}}}, "storage.delete.enabled")
    assert len(message) < 150
    assert message.endswith("...")


def test_multiLineValuesStayOnOneLine():
    message = errorFor({"storage": {"delete": {"enabled": "a\nb\nc"}}}, "storage.delete.enabled")
    assert "'a\\nb\\nc'" in message


@pytest.mark.parametrize("document", [None, [], ["storage"], "storage", 5])
def test_topLevelMustBeAMapping(document):
    with pytest.raises(ConfigError) as caught:
        parseConfig(document, source="r.yaml")
    checkMessage(caught.value, "r.yaml")


# -- Reading files ------------------------------------------------------------


def test_loadConfig(tmp_path):
    path = tmp_path / "registryd.yaml"
    path.write_text(
        "version: 0.1\n"
        "storage:\n"
        "  filesystem:\n"
        "    rootdirectory: /srv/registry\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        "  addr: '[::1]:5000'\n"
    )
    config = loadConfig(str(path))
    assert config.storage.rootdirectory == "/srv/registry"
    assert config.storage.deleteEnabled is True
    assert config.http.listen == ("tcp6:5000:interface=\\:\\:1",)
    assert loadConfig(path) == config  # a Path works too


def checkFileError(path, expected):
    with pytest.raises(ConfigError) as caught:
        loadConfig(str(path))
    message = checkMessage(caught.value, str(path))
    assert expected in message
    return message


@pytest.mark.parametrize("content", ["", "\n", "# only a comment\n", "---\n"])
def test_emptyFile(tmp_path, content):
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    checkFileError(path, "the configuration is empty")


def test_invalidYAML(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("http:\n  addr: [1, 2\nstorage: {}\n")
    message = checkFileError(path, "invalid YAML at line ")
    assert re.search(r"line \d+, column \d+", message)


def test_keyErrorsInFilesStartWithTheKey(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("storage:\n  delete:\n    enabled: yes please\n")
    with pytest.raises(ConfigError) as caught:
        loadConfig(path)
    assert str(caught.value) == "storage.delete.enabled: expected a boolean, got 'yes please'"


def test_duplicateKeys(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("storage:\n  inmemory: {}\nhttp: {}\nstorage:\n  filesystem: {}\n")
    message = checkFileError(path, "duplicate key 'storage'")
    assert "line 4" in message


def test_mergeKeysMayOverride(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text(
        "purging: &purging {enabled: true, age: 1h}\n"
        "storage:\n"
        "  maintenance:\n"
        "    uploadpurging:\n"
        "      <<: *purging\n"
        "      age: 2h\n"
    )
    with pytest.raises(ConfigError) as caught:
        loadConfig(path)
    # only the anchor's holder is unknown: the merge itself was accepted
    assert str(caught.value) == "purging: unknown key"


def test_pythonTagsAreNotConstructed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("version: !!python/object/apply:os.system ['true']\n")
    checkFileError(path, "invalid YAML")


def test_impossibleDate(tmp_path):
    path = tmp_path / "date.yaml"
    path.write_text("version: 2001-02-30\n")
    checkFileError(path, "invalid YAML")


def test_notText(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"version: \x81\xc3\n")
    checkFileError(path, "invalid YAML")


def test_missingFile(tmp_path):
    checkFileError(tmp_path / "missing.yaml", "cannot read: No such file or directory")


def test_directoryIsNotAFile(tmp_path):
    checkFileError(tmp_path, "cannot read: Is a directory")


@pytest.mark.skipif(asRoot, reason="root reads files whatever their mode")
def test_unreadableFile(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("version: 0.1\n")
    path.chmod(0)
    checkFileError(path, "cannot read: Permission denied")


# -- Command-line overrides ---------------------------------------------------


def test_listenOverride():
    config = withOverrides(defaultConfig(), listen=["tcp:8080", "unix:/tmp/r.sock"])
    assert config.http.listen == ("tcp:8080", "unix:/tmp/r.sock")
    assert config.http.headers == defaultConfig().http.headers


@pytest.mark.parametrize("listen", [None, [], ()])
def test_noListenOverrideKeepsTheFile(listen):
    config = parseConfig({"http": {"addr": ":6000"}})
    assert withOverrides(config, listen=listen).http.listen == ("tcp:6000",)


@pytest.mark.parametrize("listen", [["tcp:8080", "nonsense"], [8080]])
def test_badListenOverride(listen):
    with pytest.raises(ConfigError) as caught:
        withOverrides(defaultConfig(), listen=listen)
    checkMessage(caught.value, "--listen")


def test_storageRootOverrideSwitchesToFilesystem(tmp_path):
    config = parseConfig({"storage": {"inmemory": {}, "delete": {"enabled": True}}})
    overridden = withOverrides(config, storageRoot=str(tmp_path))
    assert overridden.storage.driver == "filesystem"
    assert overridden.storage.rootdirectory == str(tmp_path)
    assert overridden.storage.deleteEnabled is True
    assert config.storage.driver == "inmemory"  # the original is untouched
    assert withOverrides(config, storageRoot=tmp_path).storage.rootdirectory == str(tmp_path)


def test_emptyStorageRootOverride():
    with pytest.raises(ConfigError) as caught:
        withOverrides(defaultConfig(), storageRoot="")
    checkMessage(caught.value, "--storage-root")


def test_noOverrides():
    config = parseConfig({"storage": "inmemory"})
    assert withOverrides(config) == config


# -- The storage root ---------------------------------------------------------

ROOT_KEY = "storage.filesystem.rootdirectory"


def rootedAt(path):
    return withOverrides(defaultConfig(), storageRoot=str(path))


def checkRootError(config, expected, create=True):
    with pytest.raises(ConfigError) as caught:
        checkStorageRoot(config, create=create)
    message = checkMessage(caught.value, ROOT_KEY)
    assert message.startswith(f"{ROOT_KEY}: {config.storage.rootdirectory}: ")
    assert expected in message


def test_missingRootIsCreated(tmp_path):
    root = tmp_path / "a" / "b" / "root"
    checkStorageRoot(rootedAt(root))
    assert root.is_dir()


def test_existingRootIsAccepted(tmp_path):
    (tmp_path / "keep").write_text("x")
    checkStorageRoot(rootedAt(tmp_path))
    assert (tmp_path / "keep").read_text() == "x"


def test_checkingOnlyCreatesNothing(tmp_path):
    root = tmp_path / "a" / "root"
    checkStorageRoot(rootedAt(root), create=False)
    assert not (tmp_path / "a").exists()


def test_rootThatIsAFile(tmp_path):
    root = tmp_path / "file"
    root.write_text("x")
    checkRootError(rootedAt(root), "not a directory")
    checkRootError(rootedAt(root), "not a directory", create=False)


def test_rootUnderAFile(tmp_path):
    (tmp_path / "file").write_text("x")
    root = tmp_path / "file" / "root"
    checkRootError(rootedAt(root), "cannot create")
    checkRootError(rootedAt(root), f"cannot be created: {tmp_path / 'file'} is not a directory",
                   create=False)


@pytest.mark.skipif(asRoot, reason="root writes to directories whatever their mode")
def test_rootNotWritable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        checkRootError(rootedAt(locked), "not readable and writable")
        checkRootError(rootedAt(locked / "root"), "cannot create: Permission denied")
        checkRootError(rootedAt(locked / "root"), "is not writable", create=False)
    finally:
        locked.chmod(0o700)


def test_inmemoryHasNoRoot(tmp_path):
    (tmp_path / "file").write_text("x")
    config = parseConfig(
        {"storage": {"inmemory": None}}
    )
    config = dataclasses.replace(
        config, storage=dataclasses.replace(config.storage, rootdirectory=str(tmp_path / "file"))
    )
    checkStorageRoot(config)  # no error: the root is not used


# -- The example file ---------------------------------------------------------


def test_exampleFileLoadsWithoutWarnings():
    config = loadConfig(EXAMPLE)
    assert config.warnings == ()
    # it spells out the defaults, apart from one example log field
    assert config == dataclasses.replace(
        defaultConfig(), log=LogConfig(fields={"service": "registry"})
    )


SUPPORTED_KEYS = """
    version log level formatter accesslog disabled fields storage filesystem rootdirectory
    maxthreads inmemory delete enabled redirect disable maintenance uploadpurging age interval
    dryrun readonly http addr net listen prefix host secret relativeurls headers tls
    certificate key clientcas minimumtls policy repository classes validation manifests urls
    allow deny auth proxy notifications htpasswd realm path token issuer rootcertbundle jwks
    autoredirect silly expiration
""".split()


@pytest.mark.parametrize("key", SUPPORTED_KEYS)
def test_exampleFileExplainsEveryKey(key):
    lines = [line.strip() for line in EXAMPLE.read_text().splitlines() if line.strip()]
    pattern = re.compile(rf"(#\s*)?{re.escape(key)}:")
    index = next(i for i, line in enumerate(lines) if pattern.match(line))
    # the line just above is a comment (which, for a commented-out key, is not a key itself)
    above = lines[index - 1]
    assert above.startswith("#") and not re.match(r"#\s*[a-z]+:", above), key
