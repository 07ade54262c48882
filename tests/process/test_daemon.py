"""The real C{twistd -n registryd}: options, configuration file, startup errors."""

import hashlib
import json
import os
import socket
import subprocess

import pytest

from tests.process.twistd import environment, twistdCommand


def push(process, name, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, body = process.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data)
    assert status == 201, body
    return digest


def blobFile(root, digest):
    hexdigest = digest.split(":")[1]
    return os.path.join(root, "docker/registry/v2/blobs/sha256", hexdigest[:2], hexdigest, "data")


def portFree(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_noOptionsServesDefault(twistd, tmp_path):
    """C{twistd -n registryd} alone: 127.0.0.1:5000, filesystem storage in ./data."""
    if not portFree(5000):
        pytest.skip("port 5000 is in use on this machine")
    process = twistd()
    assert process.port == 5000
    status, headers, body = process.request("GET", "/v2/")
    assert (status, json.loads(body)) == (200, {})
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    digest = push(process, "lib/app", b"default storage")
    with open(blobFile(tmp_path / "data", digest), "rb") as f:
        assert f.read() == b"default storage"


def test_listenAndStorageRoot(twistd, tmp_path):
    root = tmp_path / "elsewhere"
    process = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", str(root))
    digest = push(process, "a", b"rooted")
    with open(blobFile(root, digest), "rb") as f:
        assert f.read() == b"rooted"
    assert not (tmp_path / "data").exists()


def test_listenRepeatable(twistd, tmp_path):
    process = twistd("--listen", "tcp:0:interface=127.0.0.1", "--listen", "tcp:0:interface=127.0.0.1")
    assert len(process.ports) == 2
    for port in process.ports:
        process.port = port
        assert process.request("GET", "/v2/")[0] == 200


def test_configFileAndOverrides(twistd, tmp_path):
    root = tmp_path / "configured"
    config = tmp_path / "registry.yaml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:1\n  headers:\n    X-Test: [configured]\n"
    )
    # --listen overrides http.addr (port 1 would fail to bind).
    process = twistd("--config", str(config), "--listen", "tcp:0:interface=127.0.0.1")
    digest = push(process, "a", b"configured")
    status, headers, _ = process.request("DELETE", f"/v2/a/blobs/{digest}")
    assert status == 202  # storage.delete.enabled from the file
    assert headers["X-Test"] == "configured"
    with open(blobFile(root, digest), "rb") as f:
        assert f.read() == b"configured"
    # --storage-root overrides the file's root.
    other = tmp_path / "override"
    process.stop()
    process = twistd("--config", str(config), "--listen", "tcp:0:interface=127.0.0.1", "--storage-root", str(other))
    digest = push(process, "a", b"overridden")
    assert os.path.exists(blobFile(other, digest))
    assert not os.path.exists(blobFile(root, digest))


@pytest.mark.parametrize(
    "yaml, arguments, key",
    [
        ("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ./d\n  bogus: 1\n", [], "storage.bogus"),
        ("version: 0.1\nstorage:\n  delete:\n    enabled: perhaps\n", [], "storage.delete.enabled"),
        ("version: 0.1\nhttp:\n  listen: ['nonsense:endpoint']\n", [], "http.listen[0]"),
        ("version: 0.1\n", ["--listen", "tcp:notaport"], "--listen"),
        ("version: 0.1\nauth:\n  htpasswd:\n    realm: r\n    path: /x\n", [], "auth"),
        ("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ./afile/root\n", [], "storage.filesystem.rootdirectory"),
        ("version: [unclosed\n", [], "registry.yaml"),
    ],
)
def test_badConfigurationOneLine(tmp_path, yaml, arguments, key):
    (tmp_path / "afile").write_text("not a directory")
    config = tmp_path / "registry.yaml"
    config.write_text(yaml)
    result = subprocess.run(
        twistdCommand("--config", str(config), *arguments),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0]
    assert "Traceback" not in result.stdout.decode() + result.stderr.decode()


def test_consoleScriptVersion():
    from registryd import __version__

    result = subprocess.run(
        [os.path.join(os.path.dirname(twistdCommand()[0]), "registryd"), "--version"],
        capture_output=True,
        env=environment(),
        timeout=30,
    )
    if result.returncode != 0 and b"No such file" in result.stderr:
        pytest.skip("the registryd console script is not installed in this environment")
    assert result.stdout.decode().strip() == f"registryd {__version__}"


def test_logLevelFormatterAndFields(twistd, tmp_path):
    """log.level filters, log.formatter json writes JSON lines, log.fields are on every event."""
    config = tmp_path / "registry.yaml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n  formatter: json\n  fields:\n    service: registry\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n"
    )
    process = twistd("--config", str(config), "--listen", "tcp:0:interface=127.0.0.1")
    process.request("GET", "/v2/")
    process.stop()
    events = [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]
    access = [e for e in events if e.get("log_namespace") == "registryd.access"]
    assert access and access[0]["method"] == "GET" and access[0]["status"] == 200
    assert all(e.get("service") == "registry" for e in events)


def test_logLevelWarnHidesInfo(twistd, tmp_path):
    config = tmp_path / "registry.yaml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n"
    )
    process = twistd("--config", str(config), "--listen", "tcp:0:interface=127.0.0.1")
    assert process.request("GET", "/v2/")[0] == 200
    process.stop()
    log = process.log()
    assert "GET /v2/" not in log
    assert "registryd serving" not in log


def test_tlsThroughAnEndpointString(twistd, tmp_path):
    """--listen ssl:...: the endpoint string alone makes a TLS listener."""
    import http.client
    import ssl

    from registryd.cli import main

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    assert main(["make-cert", "--cert", str(cert), "--key", str(key)]) == 0
    process = twistd(
        "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        "--storage-root", str(tmp_path / "root"),
    )
    context = ssl.create_default_context(cafile=str(cert))
    connection = http.client.HTTPSConnection(f"localhost:{process.port}", context=context, timeout=10)
    connection.request("GET", "/v2/")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"{}")
    assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
