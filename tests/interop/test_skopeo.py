"""
skopeo (Debian's, 1.9) against the real C{twistd -n registryd}: OCI layouts
built here are copied to the registry and back, and every scenario compares
the bytes and digests that come back (manifest, config, layers), not just
skopeo's exit status.
"""

import json
import os
import socket
import ssl
import time

import pytest

from tests.interop.layouts import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    assertSameImage,
    assertSameIndex,
    randomLayers,
    readImage,
    readIndex,
    sha256,
)

pytestmark = pytest.mark.interop


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param([20_000, 40_000, 60_000], id="small"),
        pytest.param([30_000, 3_000_000, 10_000, 50_000], id="3MB"),
    ],
)
def test_copyRoundTrip(registryd, skopeo, ociLayout, tmp_path, sizes):
    """
    oci:DIR:tag -> docker://registryd/repo:tag -> oci:OTHER:tag gives back the
    same manifest, config and layers, byte for byte; the registry serves them
    by tag and digest as pushed.
    """
    layout = ociLayout()
    image = layout.addImage("v1", layers=randomLayers("roundtrip", sizes))
    registry = registryd()

    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "v1"))
    registry.assertServesImage("lib/app", "v1", image)
    registry.assertServes("lib/app", image.digest, image.manifest, OCI_MANIFEST)

    out = tmp_path / "out"
    skopeo.copy(registry.docker("lib/app", "v1"), f"oci:{out}:v1")
    assertSameImage(readImage(out, "v1"), image)

    # By digest too.
    skopeo.copy(registry.docker("lib/app", image.digest), f"oci:{out}:bydigest")
    assertSameImage(readImage(out, "bydigest"), image)


def test_copyAllIndex(registryd, skopeo, ociLayout, tmp_path):
    """
    C{--all} pushes an image index with two platforms and both images; the
    index and each image come back byte for byte.
    """
    layout = ociLayout()
    index = layout.addIndex("multi")
    registry = registryd()

    skopeo.copy(layout.reference("multi"), registry.docker("lib/multi", "multi"), "--all")
    registry.assertServesIndex("lib/multi", "multi", index)
    registry.assertServes("lib/multi", index.digest, index.manifest, OCI_INDEX)

    out = tmp_path / "out"
    skopeo.copy(registry.docker("lib/multi", "multi"), f"oci:{out}:multi", "--all")
    assertSameIndex(readIndex(out, "multi"), index)


@pytest.mark.parametrize(
    "platforms, wanted",
    [
        pytest.param((("linux", "amd64"), ("linux", "arm64")), ("linux", "arm64"), id="arch-arm64"),
        pytest.param((("linux", "amd64"), ("linux", "arm64")), ("linux", "amd64"), id="arch-amd64"),
        pytest.param((("linux", "amd64"), ("freebsd", "amd64")), ("freebsd", "amd64"), id="os-freebsd"),
        pytest.param((("linux", "amd64"), ("freebsd", "amd64")), ("linux", "amd64"), id="os-linux"),
    ],
)
def test_overridePlatform(registryd, skopeo, ociLayout, tmp_path, platforms, wanted):
    """
    Copying one image out of a pushed index with C{--override-os} /
    C{--override-arch} resolves the matching entry: that image's manifest,
    config and layers, byte for byte, and nothing of the other.
    """
    layout = ociLayout()
    index = layout.addIndex("multi", platforms=platforms)
    registry = registryd()
    skopeo.copy(layout.reference("multi"), registry.docker("lib/multi", "multi"), "--all")

    out = tmp_path / "out"
    os_, architecture = wanted
    skopeo.copy(
        registry.docker("lib/multi", "multi"),
        f"oci:{out}:single",
        globalFlags=["--override-os", os_, "--override-arch", architecture],
    )
    expected = index.image(os_, architecture)
    back = readImage(out, "single")
    assertSameImage(back, expected)
    assert back.platform == wanted
    (other,) = [image for image in index.images if image is not expected]
    stored = set(os.listdir(out / "blobs" / "sha256"))
    assert not stored & {d.split(":")[1] for d in [other.digest, *other.layerDigests]}


def test_formatV2S2(registryd, skopeo, ociLayout, tmp_path):
    """
    C{--format v2s2} stores a Docker schema 2 manifest: the registry serves it
    with that media type, over the same config and layer bytes; skopeo gets
    the very bytes back (C{dir:}) and can convert it back to OCI.
    """
    layout = ociLayout()
    image = layout.addImage("v1")
    registry = registryd()
    skopeo.copy(layout.reference("v1"), registry.docker("lib/docker", "v1"), "--format", "v2s2")

    # Asked for any type, or for schema 2 alone, the registry answers schema 2.
    for accept in [(OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX), (DOCKER_MANIFEST,)]:
        status, headers, body = registry.manifest("lib/docker", "v1", accept=accept)
        assert status == 200, body
        assert headers["Content-Type"] == DOCKER_MANIFEST
        assert headers["Docker-Content-Digest"] == sha256(body)
    manifest = json.loads(body)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert manifest["config"]["digest"] == image.configDigest
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER_GZIP] * 3
    assert [layer["digest"] for layer in manifest["layers"]] == image.layerDigests
    for digest, data in image.blobs().items():
        assert registry.blob("lib/docker", digest) == data
    # HEAD agrees with GET.
    status, headers, _ = registry.manifest("lib/docker", "v1", method="HEAD")
    assert (status, headers["Docker-Content-Digest"]) == (200, sha256(body))
    assert int(headers["Content-Length"]) == len(body)

    # dir: keeps the manifest exactly as served.
    directory = tmp_path / "dir"
    skopeo.copy(registry.docker("lib/docker", "v1"), f"dir:{directory}")
    assert (directory / "manifest.json").read_bytes() == body
    for digest, data in image.blobs().items():
        assert (directory / digest.split(":")[1]).read_bytes() == data

    # Back into an OCI layout: same config and layers under an OCI manifest.
    out = tmp_path / "out"
    skopeo.copy(registry.docker("lib/docker", "v1"), f"oci:{out}:v1")
    back = readImage(out, "v1")
    assert back.parsed()["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert back.config == image.config
    assert back.layers == image.layers


def test_copyBetweenRepositories(registryd, skopeo, ociLayout, tmp_path):
    """
    docker:// to docker:// on one registry (skopeo may mount blobs from the
    source repository): the destination serves the same bytes.
    """
    layout = ociLayout()
    image = layout.addImage("v1")
    registry = registryd()
    skopeo.copy(layout.reference("v1"), registry.docker("src/app", "v1"))
    skopeo.copy(registry.docker("src/app", "v1"), registry.docker("dst/app", "copied"))
    registry.assertServesImage("dst/app", "copied", image)
    out = tmp_path / "out"
    skopeo.copy(registry.docker("dst/app", "copied"), f"oci:{out}:v1")
    assertSameImage(readImage(out, "v1"), image)


def test_listTags(registryd, skopeo, ociLayout):
    """C{skopeo list-tags} lists every pushed tag, as C{tags/list} does."""
    layout = ociLayout()
    layout.addImage("v1", seed="one")
    layout.addImage("v2", seed="two")
    registry = registryd()
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "v1"))
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "latest"))
    skopeo.copy(layout.reference("v2"), registry.docker("lib/app", "v2"))
    skopeo.copy(layout.reference("v2"), registry.docker("other", "only"))

    listed = skopeo.listTags(registry.docker("lib/app"))
    assert listed["Repository"] == f"{registry.host}/lib/app"
    assert sorted(listed["Tags"]) == ["latest", "v1", "v2"]
    assert registry.tags("lib/app") == {"name": "lib/app", "tags": ["latest", "v1", "v2"]}
    assert skopeo.listTags(registry.docker("other"))["Tags"] == ["only"]


def test_inspect(registryd, skopeo, ociLayout):
    """
    C{skopeo inspect} reports the pushed digest, layers and config fields;
    C{--raw} prints the pushed manifest's bytes and C{--config --raw} the
    config's.
    """
    layout = ociLayout()
    image = layout.addImage("v1", seed="inspected")
    index = layout.addIndex("multi")
    registry = registryd()
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "v1"))
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "v1.0"))
    skopeo.copy(layout.reference("multi"), registry.docker("lib/app", "multi"), "--all")

    info = json.loads(skopeo.inspect(registry.docker("lib/app", "v1")).stdout)
    assert info["Digest"] == image.digest
    assert info["Layers"] == image.layerDigests
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Labels"] == {"test": "inspected"}
    assert sorted(info["RepoTags"]) == ["multi", "v1", "v1.0"]

    raw = skopeo.inspect(registry.docker("lib/app", "v1"), "--raw", text=False).stdout
    assert raw == image.manifest
    config = skopeo.inspect(registry.docker("lib/app", "v1"), "--config", "--raw", text=False).stdout
    assert config == image.config

    raw = skopeo.inspect(registry.docker("lib/app", "multi"), "--raw", text=False).stdout
    assert raw == index.manifest
    arm = index.image("linux", "arm64")
    config = skopeo.inspect(
        registry.docker("lib/app", "multi"),
        "--config",
        "--raw",
        globalFlags=["--override-os", "linux", "--override-arch", "arm64"],
        text=False,
    ).stdout
    assert config == arm.config


def test_delete(registryd, skopeo, ociLayout, tmp_path):
    """
    With C{storage.delete.enabled}, C{skopeo delete} removes the manifest: it
    is 404 by digest and by tag, skopeo can no longer copy it, and what else
    was in the repository stays.
    """
    layout = ociLayout()
    image = layout.addImage("v1", seed="doomed")
    kept = layout.addImage("v2", seed="kept")
    registry = registryd(delete=True)
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "v1"))
    skopeo.copy(layout.reference("v2"), registry.docker("lib/app", "v2"))
    registry.assertServes("lib/app", "v1", image.manifest, OCI_MANIFEST)

    skopeo.delete(registry.docker("lib/app", "v1"))

    for reference in [image.digest, "v1"]:
        status, _, body = registry.manifest("lib/app", reference)
        assert status == 404, (reference, body)
        assert json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        status, _, _ = registry.manifest("lib/app", reference, method="HEAD")
        assert status == 404, reference
    assert "v1" not in registry.tags("lib/app")["tags"]
    failed = skopeo.copy(registry.docker("lib/app", "v1"), f"oci:{tmp_path / 'out'}:v1", check=False)
    assert failed.returncode != 0
    registry.assertServesImage("lib/app", "v2", kept)


def test_deleteDisabled(registryd, skopeo, ociLayout):
    """Without C{storage.delete.enabled}, C{skopeo delete} fails and the manifest stays."""
    layout = ociLayout()
    image = layout.addImage("v1")
    registry = registryd(delete=False)
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "v1"))
    failed = skopeo.delete(registry.docker("lib/app", "v1"), check=False)
    assert failed.returncode != 0, failed.stdout
    status, _, body = registry.call("DELETE", f"/v2/lib/app/manifests/{image.digest}")
    assert status == 405, body
    assert json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
    registry.assertServesImage("lib/app", "v1", image)


def clientHello():
    """The first TLS record a client sends to 127.0.0.1."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        connection.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("server", ["registryd", "distribution"])
def test_tlsProbeAnsweredAtOnce(request, skopeo, server):
    """
    With TLS verification off, skopeo (like every Go client) first tries
    HTTPS and falls back to plain HTTP only once the TLS handshake fails.
    Distribution answers a ClientHello on its plain-HTTP port at once with an
    HTTP 400 (Go's client then reports "server gave HTTP response to HTTPS
    client" and retries over HTTP); a server that waits for a request line
    makes every skopeo command sit out Go's 10 s TLS handshake timeout.
    """
    registry = request.getfixturevalue(server)()
    with socket.create_connection(("127.0.0.1", registry.port), timeout=5) as connection:
        connection.sendall(clientHello())
        started = time.monotonic()
        try:
            answer = connection.recv(64)
        except TimeoutError:
            answer = None
        elapsed = time.monotonic() - started
    assert answer is not None and elapsed < 2, (
        f"{server} sent nothing for {elapsed:.1f} s after a TLS ClientHello"
        " (Go clients wait 10 s for the handshake, then retry over HTTP)"
    )
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer

    started = time.monotonic()
    skopeo.listTags(registry.docker("nothing/here"), check=False)
    assert time.monotonic() - started < 5
