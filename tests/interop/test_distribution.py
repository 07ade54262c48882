"""
registryd and CNCF Distribution 2.8 (Debian's C{docker-registry}) on the same
storage root: what one writes, the other serves byte for byte, and both list
the same tags and repositories.

Content goes in with skopeo, so both registries are written the way real
clients write them: an OCI image under two tags, an image index with two
platforms (C{--all}), a Docker schema 2 image (C{--format v2s2}) and a
three-component repository name.
"""

import json
import subprocess
from dataclasses import dataclass

import pytest
import yaml

from tests.interop.conftest import requireTool
from tests.interop.layouts import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    assertSameImage,
    assertSameIndex,
    readImage,
    readIndex,
    sha256,
)

pytestmark = pytest.mark.interop


@dataclass
class Pushed:
    """What L{push} put in a registry."""

    image: object  # Image, at lib/app:v1 and lib/app:latest
    index: object  # Index, at lib/multi:multi
    docker: bytes  # the schema 2 manifest at docker/app:v1
    dockerImage: object  # the Image it was converted from
    nested: object  # Image at a/b/c:x


TAGS = {"lib/app": ["latest", "v1"], "lib/multi": ["multi"], "docker/app": ["v1"], "a/b/c": ["x"]}


def push(skopeo, layout, registry):
    """Push the test content to C{registry} with skopeo."""
    image = layout.addImage("v1", seed="app")
    index = layout.addIndex("multi")
    dockerImage = layout.addImage("docker", seed="docker")
    nested = layout.addImage("nested", seed="nested")
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "v1"))
    skopeo.copy(layout.reference("v1"), registry.docker("lib/app", "latest"))
    skopeo.copy(layout.reference("multi"), registry.docker("lib/multi", "multi"), "--all")
    skopeo.copy(layout.reference("docker"), registry.docker("docker/app", "v1"), "--format", "v2s2")
    skopeo.copy(layout.reference("nested"), registry.docker("a/b/c", "x"))
    status, _, docker = registry.manifest("docker/app", "v1")
    assert status == 200, docker
    assert json.loads(docker)["mediaType"] == DOCKER_MANIFEST
    return Pushed(image, index, docker, dockerImage, nested)


def assertServesPushed(registry, pushed):
    """C{registry} serves everything L{push} pushed, byte for byte."""
    registry.assertServesImage("lib/app", "v1", pushed.image)
    registry.assertServesImage("lib/app", "latest", pushed.image)
    registry.assertServes("lib/app", pushed.image.digest, pushed.image.manifest, OCI_MANIFEST)
    registry.assertServesIndex("lib/multi", "multi", pushed.index)
    registry.assertServes("lib/multi", pushed.index.digest, pushed.index.manifest, OCI_INDEX)
    registry.assertServes("docker/app", "v1", pushed.docker, DOCKER_MANIFEST)
    registry.assertServes("docker/app", sha256(pushed.docker), pushed.docker, DOCKER_MANIFEST)
    for digest, data in pushed.dockerImage.blobs().items():
        assert registry.blob("docker/app", digest) == data
    registry.assertServesImage("a/b/c", "x", pushed.nested)


def assertAgree(writer, reader):
    """Both registries answer the same tags lists, catalog and HEADs."""
    assert reader.catalog() == writer.catalog() == {"repositories": sorted(TAGS)}
    for repository, tags in TAGS.items():
        assert reader.tags(repository) == writer.tags(repository) == {"name": repository, "tags": tags}
        for tag in tags:
            answers = []
            for registry in (writer, reader):
                status, headers, _ = registry.manifest(repository, tag, method="HEAD")
                answers.append(
                    (status, headers["Docker-Content-Digest"], headers["Content-Type"], headers["Content-Length"])
                )
            assert answers[0] == answers[1], (repository, tag, answers)


def assertPullsBack(skopeo, registry, pushed, out):
    """skopeo pulls everything back from C{registry} unchanged."""
    out.mkdir()
    skopeo.copy(registry.docker("lib/app", "latest"), f"oci:{out / 'app'}:latest")
    assertSameImage(readImage(out / "app", "latest"), pushed.image)
    skopeo.copy(registry.docker("lib/multi", "multi"), f"oci:{out / 'multi'}:multi", "--all")
    assertSameIndex(readIndex(out / "multi", "multi"), pushed.index)
    skopeo.copy(registry.docker("docker/app", "v1"), f"dir:{out / 'docker'}")
    assert (out / "docker" / "manifest.json").read_bytes() == pushed.docker
    for digest, data in pushed.dockerImage.blobs().items():
        assert (out / "docker" / digest.split(":")[1]).read_bytes() == data
    skopeo.copy(registry.docker("a/b/c", "x"), f"oci:{out / 'nested'}:x")
    assertSameImage(readImage(out / "nested", "x"), pushed.nested)


def test_registrydRootServedByDistribution(registryd, distribution, skopeo, ociLayout, tmp_path):
    """
    skopeo pushes to registryd; Distribution, started on registryd's root,
    serves every manifest and blob byte for byte, skopeo pulls them back
    from it unchanged, and both list the same tags and repositories.
    """
    writer = registryd()
    pushed = push(skopeo, ociLayout(), writer)
    assertServesPushed(writer, pushed)

    reader = distribution(writer.root)
    assertServesPushed(reader, pushed)
    assertAgree(writer, reader)
    assertPullsBack(skopeo, reader, pushed, tmp_path / "out")


def test_distributionRootServedByRegistryd(registryd, distribution, skopeo, ociLayout, tmp_path):
    """
    skopeo pushes to Distribution; registryd, started on Distribution's root,
    serves every manifest and blob byte for byte, skopeo pulls them back from
    it unchanged, and both list the same tags and repositories.
    """
    writer = distribution()
    pushed = push(skopeo, ociLayout(), writer)
    assertServesPushed(writer, pushed)

    reader = registryd(writer.root)
    assertServesPushed(reader, pushed)
    assertAgree(writer, reader)
    assertPullsBack(skopeo, reader, pushed, tmp_path / "out")


def test_registrydRootAfterRestartByDistribution(registryd, distribution, skopeo, ociLayout):
    """
    The root registryd wrote is complete on disk: with registryd stopped,
    Distribution alone serves it.
    """
    writer = registryd()
    layout = ociLayout()
    image = layout.addImage("v1", seed="stopped")
    skopeo.copy(layout.reference("v1"), writer.docker("lib/app", "v1"))
    writer.stop()

    reader = distribution(writer.root)
    reader.assertServesImage("lib/app", "v1", image)
    assert reader.tags("lib/app") == {"name": "lib/app", "tags": ["v1"]}
    assert reader.catalog() == {"repositories": ["lib/app"]}


def assertGone(registry, repository, tag, digest):
    for reference in (tag, digest):
        status, _, body = registry.manifest(repository, reference)
        assert status == 404, f"{registry.name} still serves {repository}:{reference}: {body[:200]!r}"
    assert tag not in (registry.tags(repository)["tags"] or [])


def test_deletesSeenByEachOther(registryd, distribution, skopeo, ociLayout):
    """
    A manifest deleted through one registry is gone from the other on the
    same root (by digest, by tag, from the tags list); what was not deleted
    stays served by both.
    """
    layout = ociLayout()
    one = layout.addImage("one", seed="one")
    two = layout.addImage("two", seed="two")
    kept = layout.addImage("kept", seed="kept")
    first = registryd(delete=True)
    for tag in ("one", "two", "kept"):
        skopeo.copy(layout.reference(tag), first.docker("lib/app", tag))
    second = distribution(first.root, delete=True)
    second.assertServesImage("lib/app", "one", one)

    skopeo.delete(first.docker("lib/app", "one"))
    assertGone(first, "lib/app", "one", one.digest)
    assertGone(second, "lib/app", "one", one.digest)

    second.assertServesImage("lib/app", "two", two)
    first.assertServesImage("lib/app", "two", two)
    skopeo.delete(second.docker("lib/app", "two"))
    assertGone(second, "lib/app", "two", two.digest)
    assertGone(first, "lib/app", "two", two.digest)

    for registry in (first, second):
        registry.assertServesImage("lib/app", "kept", kept)
        assert registry.tags("lib/app") == {"name": "lib/app", "tags": ["kept"]}


def test_distributionGarbageCollectsARegistrydRoot(registryd, skopeo, ociLayout, tmp_path):
    """
    Distribution's own garbage collector, with --delete-untagged, runs on a
    root registryd wrote (tags without Distribution's history index):
    the untagged image and its blobs go, the tagged ones stay served.
    """
    binary = requireTool("docker-registry")
    layout = ociLayout()
    old = layout.addImage("old", seed="gc-old")
    new = layout.addImage("new", seed="gc-new")
    kept = layout.addImage("kept", seed="gc-kept")
    writer = registryd(delete=True)
    skopeo.copy(layout.reference("old"), writer.docker("lib/app", "v1"))
    skopeo.copy(layout.reference("new"), writer.docker("lib/app", "v1"))  # old is untagged now
    skopeo.copy(layout.reference("kept"), writer.docker("lib/app", "kept"))
    writer.stop()

    config = tmp_path / "gc.yaml"
    config.write_text(
        yaml.safe_dump({"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(writer.root)}}})
    )
    result = subprocess.run(
        [binary, "garbage-collect", "--delete-untagged", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    reader = registryd(writer.root)
    reader.assertServesImage("lib/app", "v1", new)
    reader.assertServesImage("lib/app", "kept", kept)
    status, _, _ = reader.manifest("lib/app", old.digest)
    assert status == 404
    gone = set(old.blobs()) - set(new.blobs()) - set(kept.blobs())
    assert gone
    for digest in gone:
        status, _, _ = reader.call("HEAD", f"/v2/lib/app/blobs/{digest}")
        assert status == 404, digest
