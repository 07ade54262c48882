"""
Authentication with real clients against the real twistd process: skopeo with
--creds against htpasswd and against the built-in token issuer, oras-py login,
and TLS listeners.  Refused pushes leave nothing in storage.
"""

import base64
import json
import os

import pytest

from registryd.auth.htpasswd import addUser
from tests.interop.layouts import assertSameImage, randomLayers, readImage

pytestmark = pytest.mark.interop

POLICY = """
groups:
  team: [alice]
rules:
  - repositories: ["public/**"]
    anonymous: [pull]
  - repositories: ["team/**", "public/**"]
    groups: {team: [pull, push, delete]}
catalog: {users: [alice]}
"""


@pytest.fixture
def users(tmp_path):
    path = str(tmp_path / "htpasswd")
    addUser(path, "alice", "alice-secret", rounds=4)
    addUser(path, "bob", "bob-secret", rounds=4)
    return path


def storedRepositories(root):
    repositories = os.path.join(root, "docker/registry/v2/repositories")
    found = []
    for directory, subdirectories, _ in os.walk(repositories):
        if "_manifests" in subdirectories:
            found.append(os.path.relpath(directory, repositories))
    return sorted(found)


def storedBlobs(root):
    blobs = os.path.join(root, "docker/registry/v2/blobs")
    return sorted(name for _, _, files in os.walk(blobs) for name in files)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_skopeoWithHtpasswd(registryd, skopeo, ociLayout, users, tmp_path):
    registry = registryd(config={"auth": {"htpasswd": {"realm": "registryd test", "path": users}}})
    layout = ociLayout()
    image = layout.addImage("v1", layers=randomLayers("htpasswd", [3000, 50000]))

    # No credentials, and bad ones: refused, and nothing stored.
    for flags in ([], ["--dest-creds", "alice:wrong"], ["--dest-creds", "mallory:alice-secret"]):
        result = skopeo.copy(layout.reference("v1"), registry.docker("team/app", "v1"), *flags, check=False)
        assert result.returncode != 0
        assert "unauthorized" in result.stderr.lower() or "authentication required" in result.stderr.lower()
    assert storedRepositories(registry.root) == []
    assert storedBlobs(registry.root) == []
    status, headers, _ = registry.request("GET", "/v2/")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="registryd test"'

    skopeo.copy(layout.reference("v1"), registry.docker("team/app", "v1"), "--dest-creds", "alice:alice-secret")
    out = tmp_path / "out"
    skopeo.copy(registry.docker("team/app", "v1"), f"oci:{out}:v1", "--src-creds", "bob:bob-secret")
    assertSameImage(readImage(out, "v1"), image)
    log = registry.log()
    assert "failed login" in log and "alice-secret" not in log and "wrong" not in log.split("failed login")[0][-200:]


@pytest.fixture
def issuerRegistry(registryd, users, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "keys").mkdir()
    return registryd(
        config={
            "auth": {
                "issuer": {
                    "service": "registryd.test",
                    "htpasswd": users,
                    "policy": str(policy),
                    "key": str(tmp_path / "keys" / "signing.key"),
                }
            }
        }
    )


def test_skopeoWithBuiltInIssuer(issuerRegistry, skopeo, ociLayout, tmp_path):
    registry = issuerRegistry
    status, headers, _ = registry.request("GET", "/v2/")
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="http://{registry.host}/token",service="registryd.test"')
    layout = ociLayout()
    image = layout.addImage("v1", layers=randomLayers("issuer", [4000, 20000]))

    # alice (team) may push; bob may not; nobody anonymous may.
    skopeo.copy(layout.reference("v1"), registry.docker("team/app", "v1"), "--dest-creds", "alice:alice-secret")
    for flags in (["--dest-creds", "bob:bob-secret"], ["--dest-creds", "alice:wrong"], []):
        result = skopeo.copy(layout.reference("v1"), registry.docker("team/other", "v1"), *flags, check=False)
        assert result.returncode != 0, flags
    assert storedRepositories(registry.root) == ["team/app"]

    out = tmp_path / "out"
    skopeo.copy(registry.docker("team/app", "v1"), f"oci:{out}:v1", "--src-creds", "alice:alice-secret")
    assertSameImage(readImage(out, "v1"), image)
    # bob cannot read team/app.
    result = skopeo.copy(registry.docker("team/app", "v1"), f"oci:{out}:bob", "--src-creds", "bob:bob-secret", check=False)
    assert result.returncode != 0

    # Public repositories: alice pushes, anyone pulls anonymously.
    skopeo.copy(layout.reference("v1"), registry.docker("public/app", "v1"), "--dest-creds", "alice:alice-secret")
    skopeo.copy(registry.docker("public/app", "v1"), f"oci:{out}:anonymous")
    assertSameImage(readImage(out, "anonymous"), image)


def test_tokenEndpointDirectly(issuerRegistry):
    registry = issuerRegistry
    status, _, body = registry.request(
        "GET",
        "/token?service=registryd.test&scope=repository:team/app:pull,push&scope=registry:catalog:*",
        headers={"Authorization": basic("alice", "alice-secret")},
    )
    assert status == 200
    token = json.loads(body)["token"]
    status, _, body = registry.request("GET", "/v2/_catalog", headers={"Authorization": f"Bearer {token}"})
    assert status == 200
    # bob gets a token without the catalog: 403 (asking again cannot help).
    status, _, body = registry.request(
        "GET", "/token?service=registryd.test&scope=registry:catalog:*",
        headers={"Authorization": basic("bob", "bob-secret")},
    )
    bobToken = json.loads(body)["token"]
    status, _, body = registry.request("GET", "/v2/_catalog", headers={"Authorization": f"Bearer {bobToken}"})
    assert status == 403 and json.loads(body)["errors"][0]["code"] == "DENIED"
    # Anonymous without the scope: 401, with a challenge to log in.
    status, _, body = registry.request("GET", "/token?service=registryd.test&scope=registry:catalog:*")
    anonymous = json.loads(body)["token"]
    status, headers, _ = registry.request("GET", "/v2/_catalog", headers={"Authorization": f"Bearer {anonymous}"})
    assert status == 401 and 'scope="registry:catalog:*"' in headers["WWW-Authenticate"]


def test_orasLoginPushPull(issuerRegistry, tmp_path):
    oras = pytest.importorskip("oras.client")
    registry = issuerRegistry
    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(b"pushed after oras login\n" * 100)
    client = oras.OrasClient(hostname=registry.host, insecure=True)
    client.login(username="alice", password="alice-secret", hostname=registry.host, tls_verify=False)
    client.push(target=f"{registry.host}/team/oras:v1", files=[str(artifact)], disable_path_validation=True)
    out = tmp_path / "pulled"
    files = client.pull(target=f"{registry.host}/team/oras:v1", outdir=str(out))
    assert [open(f, "rb").read() for f in files] == [artifact.read_bytes()]
    assert storedRepositories(registry.root) == ["team/oras"]
    # (A bad password is refused by the token endpoint: oras-py then retries
    # with back-off for a minute, so that case is tested with skopeo above.)


def test_tlsListener(skopeo, ociLayout, tmp_path):
    """http.tls in the configuration: skopeo pushes and pulls over HTTPS."""
    import http.client
    import ssl

    import yaml

    from registryd.cli import main
    from tests.interop.conftest import RegistrydProcess

    (tmp_path / "tls").mkdir()
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert main(["make-cert", "--cert", str(cert), "--key", str(key)]) == 0
    root = tmp_path / "root"
    config = tmp_path / "tls.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "storage": {"filesystem": {"rootdirectory": str(root)}},
                "http": {"addr": "127.0.0.1:0", "tls": {"certificate": str(cert), "key": str(key)}},
            }
        )
    )
    registry = RegistrydProcess(["--config", str(config)], str(tmp_path), str(tmp_path / "tls.log"), str(root))
    registry.start()
    try:
        layout = ociLayout()
        image = layout.addImage("v1", layers=randomLayers("tls", [5000]))
        skopeo.copy(layout.reference("v1"), registry.docker("tls/app", "v1"))
        out = tmp_path / "out"
        skopeo.copy(registry.docker("tls/app", "v1"), f"oci:{out}:v1")
        assertSameImage(readImage(out, "v1"), image)
        # It is TLS, with the configured certificate.
        context = ssl.create_default_context(cafile=str(cert))
        connection = http.client.HTTPSConnection(f"localhost:{registry.port}", context=context, timeout=10)
        connection.request("GET", "/v2/")
        assert connection.getresponse().status == 200
    finally:
        registry.stop()


def test_refusedBeforeTheBodyIsAccepted(registryd, users):
    """A client waiting on 100-continue is refused without being asked for its body."""
    import socket

    registry = registryd(config={"auth": {"htpasswd": {"realm": "r", "path": users}}})
    sock = socket.create_connection(("127.0.0.1", registry.port), timeout=10)
    try:
        sock.sendall(
            b"POST /v2/team/app/blobs/uploads/?digest=sha256:" + b"0" * 64 + b" HTTP/1.1\r\n"
            b"Host: registry\r\nContent-Length: 104857600\r\nExpect: 100-continue\r\n"
            b"Authorization: " + basic("alice", "wrong").encode() + b"\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 401")
    assert b"100 Continue" not in answer
    assert storedRepositories(registry.root) == []
    assert not os.path.exists(os.path.join(registry.root, "docker/registry/v2/repositories"))
