"""Building and pushing manifests of every kind for the API tests."""

import json

from registryd.manifest import (
    DOCKER_IMAGE_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_IMAGE_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)
from tests.support import digestOf, pushBlob

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ALL_TYPES = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


def descriptor(mediaType, data, **extra):
    return {"mediaType": mediaType, "digest": digestOf(data), "size": len(data), **extra}


def encode(document):
    # Deliberately odd spacing: the registry must serve the exact bytes.
    return json.dumps(document, indent=3, sort_keys=False).encode() + b"\n"


def imageManifest(config, layers, mediaType=OCI_MANIFEST, configType=None, **fields):
    layerType = OCI_LAYER if mediaType == OCI_MANIFEST else DOCKER_LAYER
    configType = configType or (OCI_IMAGE_CONFIG if mediaType == OCI_MANIFEST else DOCKER_IMAGE_CONFIG)
    document = {
        "schemaVersion": 2,
        "mediaType": mediaType,
        "config": descriptor(configType, config),
        "layers": [descriptor(layerType, layer) for layer in layers],
        **fields,
    }
    return encode(document)


def index(entries, mediaType=OCI_INDEX, **fields):
    """C{entries}: (payload, mediaType, platform dict or None)."""
    manifests = []
    for payload, entryType, platform in entries:
        entry = descriptor(entryType, payload)
        if platform:
            entry["platform"] = platform
        manifests.append(entry)
    return encode({"schemaVersion": 2, "mediaType": mediaType, "manifests": manifests, **fields})


async def putManifest(client, name, reference, payload, mediaType, expect=201):
    r = await client.request(
        "PUT", f"/v2/{name}/manifests/{reference}", headers={"Content-Type": mediaType}, body=payload
    )
    assert r.status == expect, r.body
    return r


async def pushImage(client, name, tag=None, mediaType=OCI_MANIFEST, seed=b"", configType=None, **fields):
    """Push a config, two layers and the manifest; return (digest, payload)."""
    config = b'{"architecture":"amd64","os":"linux","seed":"%s"}' % seed
    layers = [b"layer one " + seed, b"layer two " + seed]
    for blob in [config, *layers]:
        await pushBlob(client, name, blob)
    payload = imageManifest(config, layers, mediaType, configType, **fields)
    await putManifest(client, name, tag or digestOf(payload), payload, mediaType)
    return digestOf(payload), payload
