"""
oras-py (PyPI C{oras}, 0.2) against a real C{twistd -n registryd}.

oras-py's high-level C{push()} cannot set a manifest's C{artifactType}, so
the artifact tests build the OCI 1.1 manifest themselves and hand blobs and
manifest to oras-py's own upload calls: C{upload_blob} (POST then one PUT)
and C{chunked_upload} (POST, one C{PATCH} with C{Content-Range} per chunk,
then the closing PUT), then C{upload_manifest}.  Pulls go through oras-py's
C{pull()}, C{get_manifest()} and C{download_blob()}.  oras-py has no call
for the referrers API, so that is read over plain HTTP and checked field by
field.

Every scenario compares the bytes and digests that came back, not exit codes.
"""

import json
import math
import os
from urllib.parse import urlencode

import pytest

from tests.interop.realclients import fileDigest, getJSON, logged, sha256, startRegistry

pytest.importorskip("oras.provider", reason="oras-py (PyPI 'oras') is not installed")
from oras.oci import Subject  # noqa: E402
from oras.provider import Registry  # noqa: E402

pytestmark = pytest.mark.interop

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DESCRIPTOR = {"mediaType": EMPTY, "digest": sha256(b"{}"), "size": 2}
TITLE = "org.opencontainers.image.title"
BUNDLE_TYPE = "application/vnd.example.bundle.v1"
SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
SBOM_CONFIG_TYPE = "application/vnd.example.sbom.config.v1+json"
CHUNK = 256 * 1024


@pytest.fixture
def registry(tmp_path):
    """A real registryd (deletes disabled), stopped at teardown."""
    process = startRegistry(tmp_path)
    yield process
    process.stop()


@pytest.fixture
def orasClient(registry):
    """oras-py's registry client for it, over plain HTTP."""
    return Registry(hostname=registry.host, insecure=True)


def writeFile(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def uploadBlob(registry, client, container, path, mediaType, chunked=False, title=None):
    """
    Upload the file at C{path} with oras-py (C{upload_blob} skips a blob the
    repository already has and answers a made-up 200 for it); fail the test
    unless the registry then has the blob, with the right digest and size.

    @return: Its descriptor.
    """
    layer = {"mediaType": mediaType, "digest": fileDigest(path), "size": os.path.getsize(path)}
    if chunked:
        response = client.chunked_upload(str(path), container, layer, chunk_size=CHUNK)
        assert response.status_code == 201, (
            f"chunked upload of {path.name}: {response.status_code} {response.text[:500]!r}"
        )
    else:
        response = client.upload_blob(str(path), container, layer)
        assert response.status_code in (200, 201), (
            f"upload of {path.name}: {response.status_code} {response.text[:500]!r}"
        )
    if response.status_code == 201:
        assert response.headers["Docker-Content-Digest"] == layer["digest"]
    path = f"/v2/{container.api_prefix}/blobs/{layer['digest']}"
    status, headers, _ = registry.request("HEAD", path)
    assert status == 200, f"HEAD {layer['digest']} after upload: {status}"
    assert int(headers["Content-Length"]) == layer["size"]
    assert headers["Docker-Content-Digest"] == layer["digest"]
    if title is not None:
        layer["annotations"] = {TITLE: title}
    return layer


def pushManifest(client, registry, repository, reference, manifest):
    """
    PUT C{manifest} with oras-py's C{upload_manifest}; check the answer.

    @return: C{(digest, size, response)}: the digest and size of the bytes
        oras-py sent, and the L{requests.Response}.
    """
    container = client.get_container(f"{registry.host}/{repository}{reference}")
    response = client.upload_manifest(manifest, container)
    sent = response.request.body
    assert response.status_code == 201, (
        f"manifest PUT: {response.status_code} {response.text[:500]!r}"
    )
    digest = sha256(sent)
    assert response.headers["Docker-Content-Digest"] == digest
    return digest, len(sent), response


def pushBundle(client, registry, tmp_path, repository="interop/bundle", tag="v1"):
    """
    Push a three-file artifact with C{artifactType} L{BUNDLE_TYPE}, the
    empty config, a 3 MiB file through oras-py's chunked (PATCH) upload and
    two small files (one empty) through its POST + PUT upload.

    @return: C{(files, manifest, digest, size)}; C{files} maps title to bytes.
    """
    files = {
        "notes.txt": b"registryd interop notes\n" * 40,
        "data.bin": os.urandom(3 * 1024 * 1024 + 123),
        "empty.txt": b"",
    }
    source = tmp_path / "source"
    container = client.get_container(f"{registry.host}/{repository}:{tag}")
    configFile = writeFile(source / "config.json", b"{}")
    config = uploadBlob(registry, client, container, configFile, EMPTY)
    assert config == EMPTY_DESCRIPTOR
    layers = [
        uploadBlob(
            registry,
            client,
            container,
            writeFile(source / name, data),
            "application/vnd.example.file.v1",
            chunked=(name == "data.bin"),
            title=name,
        )
        for name, data in files.items()
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_TYPE,
        "config": config,
        "layers": layers,
        "annotations": {"org.example.purpose": "registryd interop"},
    }
    digest, size, _ = pushManifest(client, registry, repository, f":{tag}", manifest)
    return files, manifest, digest, size


def test_artifactPushedWithArtifactTypeIsPulledBack(registry, orasClient, tmp_path):
    """
    A several-file artifact with a custom C{artifactType}, its big file sent
    in real C{PATCH} chunks, comes back through oras-py's C{pull()} byte for
    byte, and its manifest comes back with the digest it was pushed with.
    """
    files, manifest, digest, size = pushBundle(orasClient, registry, tmp_path)

    # The big file really went up in PATCH requests, one per chunk.
    patches = logged(registry, "PATCH", "/v2/interop/bundle/blobs/uploads/")
    assert len(patches) == math.ceil(len(files["data.bin"]) / CHUNK)
    assert all(status == 202 for _, _, status in patches), patches

    # Pulled by oras-py, file by file.
    outdir = tmp_path / "pulled"
    pulled = orasClient.pull(target=f"{registry.host}/interop/bundle:v1", outdir=str(outdir))
    assert sorted(os.path.basename(path) for path in pulled) == sorted(files)
    for name, data in files.items():
        assert (outdir / name).read_bytes() == data, name

    # The manifest oras-py reads back, by tag and by digest.
    container = orasClient.get_container(f"{registry.host}/interop/bundle:v1")
    assert orasClient.get_manifest(container) == manifest
    byDigest = orasClient.get_container(f"{registry.host}/interop/bundle@{digest}")
    assert orasClient.get_manifest(byDigest)["artifactType"] == BUNDLE_TYPE

    # The exact bytes, their type and digest.
    headers, parsed, body = getJSON(registry, "/v2/interop/bundle/manifests/v1", OCI_MANIFEST)
    assert sha256(body) == digest and len(body) == size
    assert headers["Docker-Content-Digest"] == digest
    assert headers["Content-Type"] == OCI_MANIFEST
    assert parsed["artifactType"] == BUNDLE_TYPE

    # Every blob, downloaded by oras-py, hashes to its descriptor.
    for layer in [manifest["config"], *manifest["layers"]]:
        out = tmp_path / "blobs" / layer["digest"].replace(":", "-")
        orasClient.download_blob(container, layer["digest"], str(out))
        assert fileDigest(out) == layer["digest"]
        assert out.stat().st_size == layer["size"]


def test_highLevelChunkedPushAndPull(registry, orasClient, tmp_path):
    """
    oras-py's own C{push(do_chunked=True)} of a file and a directory (sent
    as tar+gzip) with manifest annotations, and its C{pull()}, round-trip.
    """
    workdir = tmp_path / "work"
    blob = writeFile(workdir / "model.bin", os.urandom(700 * 1024))
    writeFile(workdir / "tree" / "a.txt", b"alpha\n")
    writeFile(workdir / "tree" / "sub" / "b.txt", os.urandom(5000))
    target = f"{registry.host}/interop/high/level:latest"
    response = orasClient.push(
        target=target,
        files=[str(blob), str(workdir / "tree")],
        disable_path_validation=True,
        manifest_annotations={"org.example.kind": "high-level"},
        do_chunked=True,
        chunk_size=64 * 1024,
        quiet=True,
    )
    assert response.status_code == 201
    digest = sha256(response.request.body)
    assert response.headers["Docker-Content-Digest"] == digest

    patches = logged(registry, "PATCH", "/v2/interop/high/level/blobs/uploads/")
    assert len(patches) >= math.ceil(blob.stat().st_size / (64 * 1024))

    outdir = tmp_path / "pulled"
    orasClient.pull(target=target, outdir=str(outdir))
    assert (outdir / "model.bin").read_bytes() == blob.read_bytes()
    assert (outdir / "tree" / "a.txt").read_bytes() == b"alpha\n"
    b = ("tree", "sub", "b.txt")
    assert outdir.joinpath(*b).read_bytes() == workdir.joinpath(*b).read_bytes()

    manifest = orasClient.get_manifest(orasClient.get_container(target))
    assert manifest["annotations"] == {"org.example.kind": "high-level"}
    _, _, body = getJSON(registry, "/v2/interop/high/level/manifests/latest", OCI_MANIFEST)
    assert sha256(body) == digest


def test_referrerIsDiscoveredThroughReferrersAPI(registry, orasClient, tmp_path):
    """
    A signature-like artifact whose C{subject} is the bundle's manifest, and
    an SBOM-like one pushed with oras-py's own C{push(subject=...)}, are
    listed by C{GET /v2/<name>/referrers/<digest>} with their artifact
    types, digests, sizes and annotations; the artifactType filter and the
    signature's round-trip through oras-py are checked too.
    """
    repository = "interop/bundle"
    _, _, subjectDigest, subjectSize = pushBundle(orasClient, registry, tmp_path, repository)
    subject = {"mediaType": OCI_MANIFEST, "digest": subjectDigest, "size": subjectSize}

    # The signature: artifactType set, empty config, pushed by digest.
    signature = json.dumps({"signed": subjectDigest, "by": "interop"}).encode()
    container = orasClient.get_container(f"{registry.host}/{repository}:v1")
    configFile = writeFile(tmp_path / "sig" / "config.json", b"{}")
    uploadBlob(registry, orasClient, container, configFile, EMPTY)
    signatureFile = writeFile(tmp_path / "sig" / "signature.json", signature)
    signatureLayer = uploadBlob(registry, orasClient, container, signatureFile, SIGNATURE_TYPE)
    signatureManifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": EMPTY_DESCRIPTOR,
        "layers": [signatureLayer],
        "subject": subject,
        "annotations": {
            "org.example.signer": "interop",
            "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
        },
    }
    signatureDigest = sha256(json.dumps(signatureManifest).encode())
    _, signatureSize, response = pushManifest(
        orasClient, registry, repository, f"@{signatureDigest}", signatureManifest
    )
    assert sha256(response.request.body) == signatureDigest
    assert response.headers.get("OCI-Subject") == subjectDigest

    # The SBOM: no artifactType, a config of its own media type, pushed by
    # oras-py's push(subject=...) to a tag.
    sbomConfig = writeFile(tmp_path / "sbom" / "config.json", b'{"format": "example-sbom"}')
    sbomFile = writeFile(tmp_path / "sbom" / "sbom.json", b'{"packages": ["registryd"]}')
    response = orasClient.push(
        target=f"{registry.host}/{repository}:sbom",
        files=[str(sbomFile)],
        disable_path_validation=True,
        manifest_config=f"{sbomConfig}:{SBOM_CONFIG_TYPE}",
        subject=Subject(**subject),
        quiet=True,
    )
    assert response.status_code == 201
    sbomDigest = sha256(response.request.body)
    sbomSize = len(response.request.body)
    assert response.headers["Docker-Content-Digest"] == sbomDigest
    assert response.headers.get("OCI-Subject") == subjectDigest

    # Discovery.
    headers, index, _ = getJSON(registry, f"/v2/{repository}/referrers/{subjectDigest}")
    assert headers["Content-Type"] == OCI_INDEX
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    byDigest = {d["digest"]: d for d in index["manifests"]}
    assert set(byDigest) == {signatureDigest, sbomDigest}
    assert byDigest[signatureDigest] == {
        "mediaType": OCI_MANIFEST,
        "digest": signatureDigest,
        "size": signatureSize,
        "artifactType": SIGNATURE_TYPE,
        "annotations": signatureManifest["annotations"],
    }
    sbom = byDigest[sbomDigest]
    assert (sbom["mediaType"], sbom["size"], sbom["artifactType"]) == (
        OCI_MANIFEST,
        sbomSize,
        SBOM_CONFIG_TYPE,
    )

    # Filtered by artifactType (query-encoded: a bare "+" would mean a space).
    query = urlencode({"artifactType": SIGNATURE_TYPE})
    headers, index, _ = getJSON(registry, f"/v2/{repository}/referrers/{subjectDigest}?{query}")
    assert headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in index["manifests"]] == [signatureDigest]

    # A digest nothing refers to: an empty index, not an error.
    _, index, _ = getJSON(registry, f"/v2/{repository}/referrers/{sha256(b'nothing')}")
    assert index["manifests"] == []

    # The signature read back through oras-py, bytes and subject.
    signed = orasClient.get_container(f"{registry.host}/{repository}@{signatureDigest}")
    assert orasClient.get_manifest(signed) == signatureManifest
    out = tmp_path / "signature.out"
    orasClient.download_blob(signed, signatureLayer["digest"], str(out))
    assert out.read_bytes() == signature
