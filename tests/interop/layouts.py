"""
OCI image layouts built on disk in Python, for the interop tests.

Everything is deterministic: tar members carry fixed metadata, gzip streams a
zero mtime, and file contents come from a seeded generator, so one seed gives
the same digests on every run and no test depends on an external image.

An image is gzip tar layers, a config and a manifest; an index is an OCI image
index whose entries carry platforms.  umoci cannot write a multi-platform
index, so the index JSON is written here by hand.  L{readImage} and
L{readIndex} read back a layout a client wrote, so a round trip compares like
with like.
"""

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass, field

OCI_LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_EPOCH = 946684800  # 2000-01-01T00:00:00Z: fixed tar mtimes


def sha256(data):
    """The C{sha256:...} digest of C{data}."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value):
    """JSON as Go's encoder writes it: compact, keys in the order given."""
    return json.dumps(value, separators=(",", ":")).encode()


def pretty(value):
    """Indented JSON: bytes a registry must keep as they are, not re-serialize."""
    return json.dumps(value, indent=3).encode() + b"\n"


def randomBytes(seed, size):
    """C{size} incompressible bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


def tarLayer(files):
    """
    An uncompressed tar of C{files}, a mapping of path to bytes (parent
    directories are added), with fixed owner, mode and mtime.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                directory = "/".join(parts[:i])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = _EPOCH
                    archive.addfile(info)
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mode = 0o644
            info.mtime = _EPOCH
            archive.addfile(info, io.BytesIO(files[path]))
    return buffer.getvalue()


def gzipped(data):
    """C{data} gzip-compressed with a zero header mtime (reproducible)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass
class Layer:
    """One layer: compressed bytes as stored, and the uncompressed tar's digest."""

    data: bytes
    diffID: str
    mediaType: str = OCI_LAYER_GZIP

    @property
    def digest(self):
        return sha256(self.data)


def makeLayer(files):
    """A gzip tar L{Layer} of C{files} (path to bytes)."""
    tar = tarLayer(files)
    return Layer(gzipped(tar), sha256(tar))


def randomLayers(seed, sizes):
    """
    One layer per entry of C{sizes}, each holding one file of that many random
    bytes under C{/layerN/}, seeded from C{seed} (different seeds, different
    digests).
    """
    return [
        makeLayer({f"layer{i}/{seed}-{i}.bin": randomBytes(f"{seed}/{i}", size)})
        for i, size in enumerate(sizes)
    ]


def descriptor(mediaType, data, **extra):
    return {"mediaType": mediaType, "digest": sha256(data), "size": len(data), **extra}


@dataclass
class Image:
    """
    An image's bytes: the manifest, the config and the layers (compressed), in
    the manifest's order.
    """

    manifest: bytes
    config: bytes
    layers: list  # of bytes
    mediaType: str = OCI_MANIFEST

    @property
    def digest(self):
        return sha256(self.manifest)

    @property
    def configDigest(self):
        return sha256(self.config)

    @property
    def layerDigests(self):
        return [sha256(layer) for layer in self.layers]

    def blobs(self):
        """Digest to bytes, config and layers."""
        return {sha256(b): b for b in [self.config, *self.layers]}

    def parsed(self):
        return json.loads(self.manifest)

    @property
    def platform(self):
        config = json.loads(self.config)
        return config.get("os"), config.get("architecture")


@dataclass
class Index:
    """An image index's bytes and the images it lists, in its order."""

    manifest: bytes
    images: list = field(default_factory=list)  # of Image
    mediaType: str = OCI_INDEX

    @property
    def digest(self):
        return sha256(self.manifest)

    def parsed(self):
        return json.loads(self.manifest)

    def image(self, os, architecture):
        """The listed image whose index entry has this platform."""
        for entry, image in zip(self.parsed()["manifests"], self.images):
            platform = entry.get("platform", {})
            if (platform.get("os"), platform.get("architecture")) == (os, architecture):
                return image
        raise KeyError((os, architecture))


def imageConfig(layers, os="linux", architecture="amd64", name="interop"):
    """An OCI image config for C{layers} (their diffIDs, in order)."""
    return {
        "created": "2000-01-01T00:00:00Z",
        "architecture": architecture,
        "os": os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/true"],
            "Labels": {"test": name},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diffID for layer in layers]},
        "history": [
            {"created": "2000-01-01T00:00:00Z", "created_by": f"{name} layer {i}"}
            for i in range(len(layers))
        ],
    }


class OCILayout:
    """
    An OCI image layout directory being written: C{oci-layout}, C{index.json}
    and C{blobs/sha256/...}.  Tags are C{org.opencontainers.image.ref.name}
    annotations in C{index.json}, as skopeo's C{oci:DIR:TAG} reads them.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": OCI_LAYOUT_VERSION}, f)
        self._entries = []
        self._writeIndex()

    def __str__(self):
        return self.path

    def reference(self, tag):
        """skopeo's name for C{tag} in this layout."""
        return f"oci:{self.path}:{tag}"

    def writeBlob(self, data):
        digest = sha256(data)
        path = os.path.join(self.path, "blobs", "sha256", digest.split(":")[1])
        with open(path, "wb") as f:
            f.write(data)
        return digest

    def tag(self, tag, mediaType, data):
        """Point C{tag} at the blob C{data} of C{mediaType} (replacing the tag)."""
        self._entries = [e for e in self._entries if e["annotations"][REF_NAME] != tag]
        self._entries.append(descriptor(mediaType, data, annotations={REF_NAME: tag}))
        self._writeIndex()

    def _writeIndex(self):
        index = {"schemaVersion": 2, "manifests": self._entries}
        with open(os.path.join(self.path, "index.json"), "wb") as f:
            f.write(canonical(index))

    def addImage(
        self,
        tag=None,
        layers=None,
        os="linux",
        architecture="amd64",
        seed="image",
        encode=pretty,
        annotations=None,
    ):
        """
        Write an image's blobs; tag its manifest if C{tag} is given.

        @param layers: L{Layer}s; by default three random ones of 20-60 KB.
        @param encode: How the manifest JSON is turned into bytes.
        @return: The L{Image}.
        """
        if layers is None:
            layers = randomLayers(seed, [20_000, 40_000, 60_000])
        config = canonical(imageConfig(layers, os, architecture, name=seed))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [
                {"mediaType": layer.mediaType, "digest": layer.digest, "size": len(layer.data)}
                for layer in layers
            ],
        }
        if annotations:
            manifest["annotations"] = annotations
        image = Image(encode(manifest), config, [layer.data for layer in layers])
        for blob in [*image.layers, image.config, image.manifest]:
            self.writeBlob(blob)
        if tag is not None:
            self.tag(tag, OCI_MANIFEST, image.manifest)
        return image

    def addIndex(self, tag, platforms=(("linux", "amd64"), ("linux", "arm64")), seed="index", encode=pretty):
        """
        Write one image per C{(os, architecture)} in C{platforms} (different
        layers each) and an image index listing them with their platforms;
        tag the index.

        @return: The L{Index}.
        """
        images = [
            self.addImage(
                os=os_,
                architecture=architecture,
                seed=f"{seed}-{os_}-{architecture}",
                layers=randomLayers(f"{seed}-{os_}-{architecture}", [15_000, 25_000]),
            )
            for os_, architecture in platforms
        ]
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, image.manifest, platform={"architecture": a, "os": o})
                for image, (o, a) in zip(images, platforms)
            ],
        }
        result = Index(encode(index), images)
        self.writeBlob(result.manifest)
        self.tag(tag, OCI_INDEX, result.manifest)
        return result


def assertSameImage(actual, expected):
    """Same manifest, config and layer bytes, hence the same digests."""
    assert actual.digest == expected.digest
    assert actual.configDigest == expected.configDigest
    assert actual.layerDigests == expected.layerDigests
    assert actual.manifest == expected.manifest
    assert actual.config == expected.config
    assert actual.layers == expected.layers


def assertSameIndex(actual, expected):
    """Same index bytes and the same images behind it."""
    assert actual.digest == expected.digest
    assert actual.manifest == expected.manifest
    assert len(actual.images) == len(expected.images)
    for a, e in zip(actual.images, expected.images):
        assertSameImage(a, e)


# Reading layouts back --------------------------------------------------------


def layoutIndex(path):
    with open(os.path.join(path, "index.json"), "rb") as f:
        return json.load(f)


def layoutBlob(path, digest):
    """The bytes of blob C{digest} in the layout at C{path}, checked against the digest."""
    algorithm, hexdigest = digest.split(":")
    with open(os.path.join(path, "blobs", algorithm, hexdigest), "rb") as f:
        data = f.read()
    assert sha256(data) == digest, f"blob {digest} in {path} does not match its digest"
    return data


def layoutTags(path):
    return sorted(
        e["annotations"][REF_NAME]
        for e in layoutIndex(path)["manifests"]
        if REF_NAME in e.get("annotations", {})
    )


def layoutEntry(path, tag):
    """The C{index.json} descriptor tagged C{tag} in the layout at C{path}."""
    entries = [
        e for e in layoutIndex(path)["manifests"] if e.get("annotations", {}).get(REF_NAME) == tag
    ]
    assert len(entries) == 1, f"{len(entries)} entries tagged {tag!r} in {path}/index.json"
    return entries[0]


def _image(path, manifest, mediaType):
    parsed = json.loads(manifest)
    return Image(
        manifest,
        layoutBlob(path, parsed["config"]["digest"]),
        [layoutBlob(path, layer["digest"]) for layer in parsed["layers"]],
        mediaType=mediaType,
    )


def readImage(path, tag):
    """The L{Image} tagged C{tag} in the layout at C{path} (which must be a manifest)."""
    entry = layoutEntry(path, tag)
    assert entry["mediaType"] in (OCI_MANIFEST, DOCKER_MANIFEST), entry
    return _image(path, layoutBlob(path, entry["digest"]), entry["mediaType"])


def readIndex(path, tag):
    """The L{Index} tagged C{tag} in the layout at C{path}, with all its images."""
    entry = layoutEntry(path, tag)
    assert entry["mediaType"] in (OCI_INDEX, DOCKER_LIST), entry
    manifest = layoutBlob(path, entry["digest"])
    images = [
        _image(path, layoutBlob(path, e["digest"]), e["mediaType"])
        for e in json.loads(manifest)["manifests"]
    ]
    return Index(manifest, images, mediaType=entry["mediaType"])
