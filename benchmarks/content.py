"""
Content for the benchmark, written straight into a storage root in CNCF
Distribution's layout (both servers read it), so setting up thousands of
tags or repositories costs seconds, not minutes of pushes.
"""

import hashlib
import json
import os

ROOT = "docker/registry/v2"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def digestOf(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def writeBlob(root, data):
    digest = digestOf(data)
    hexdigest = digest[7:]
    path = os.path.join(root, ROOT, "blobs/sha256", hexdigest[:2], hexdigest, "data")
    if not os.path.exists(path):
        _write(path, data)
    return digest


def _link(root, relative, digest):
    _write(os.path.join(root, ROOT, "repositories", relative, "link"), digest.encode())


def writeImage(root, name, tags=(), mediaType=OCI_MANIFEST, seed=""):
    """A config, a layer and a manifest linked into repository C{name}, tagged C{tags}."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = b"layer " + seed.encode() * 10
    configType = (
        "application/vnd.oci.image.config.v1+json"
        if mediaType == OCI_MANIFEST
        else "application/vnd.docker.container.image.v1+json"
    )
    layerType = (
        "application/vnd.oci.image.layer.v1.tar+gzip"
        if mediaType == OCI_MANIFEST
        else "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    for blob in (config, layer):
        digest = writeBlob(root, blob)
        _link(root, f"{name}/_layers/sha256/{digest[7:]}", digest)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediaType,
            "config": {"mediaType": configType, "digest": digestOf(config), "size": len(config)},
            "layers": [{"mediaType": layerType, "digest": digestOf(layer), "size": len(layer)}],
        },
        indent=2,
    ).encode()
    digest = writeBlob(root, manifest)
    _link(root, f"{name}/_manifests/revisions/sha256/{digest[7:]}", digest)
    for tag in tags:
        _link(root, f"{name}/_manifests/tags/{tag}/current", digest)
        _link(root, f"{name}/_manifests/tags/{tag}/index/sha256/{digest[7:]}", digest)
    return digest, manifest


def writeLayerBlob(root, name, data):
    digest = writeBlob(root, data)
    _link(root, f"{name}/_layers/sha256/{digest[7:]}", digest)
    return digest
