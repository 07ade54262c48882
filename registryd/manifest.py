"""
Parsing and validation of the four manifest formats the registry serves.

Pure functions over bytes: the PUT handler validates a push with them, and
storage re-parses a stored manifest to learn its type and references, so both
agree on one set of rules. Every way a document can be wrong surfaces as
MANIFEST_INVALID whose message names the offending field.

A JSON C{null} in an optional field counts as absent, as it does for
Distribution's Go decoder, so Go clients that serialise nil fields still push.
"""

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from registryd import errors
from registryd.reference import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST})

DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

# The OCI empty descriptor: artifacts with no config point at the blob b"{}".
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

_OCI_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX})
_INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})

# Distribution's resource policy classes, keyed by manifest then config type.
_CLASSES = {
    DOCKER_MANIFEST: {DOCKER_IMAGE_CONFIG: "image", DOCKER_PLUGIN_CONFIG: "plugin"},
    OCI_MANIFEST: {OCI_IMAGE_CONFIG: "image"},
}

SCHEMA1_MESSAGE = (
    "Docker schema 1 manifests are deprecated and not supported; "
    "push a schema 2 or OCI manifest"
)

# RFC 6838 type "/" subtype, without parameters.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")
# JSON joins escaped surrogate pairs, so any surrogate left in a str is a lone
# one, which cannot be encoded when the string is served back as UTF-8.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# urlsplit tolerates what a URL cannot hold unescaped: spaces and controls.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
# Descriptor sizes are int64 for Go clients and for Distribution.
_MAX_SIZE = 2**63 - 1

_JSON_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


@dataclass(frozen=True)
class Platform:
    """The platform an index entry runs on (OCI image index C{platform})."""

    architecture: str
    os: str
    variant: str | None = None
    osVersion: str | None = None
    osFeatures: tuple[str, ...] = ()

    def toJSON(self):
        """The OCI JSON object, optional fields omitted when empty."""
        result = {"architecture": self.architecture, "os": self.os}
        if self.osVersion is not None:
            result["os.version"] = self.osVersion
        if self.osFeatures:
            result["os.features"] = list(self.osFeatures)
        if self.variant is not None:
            result["variant"] = self.variant
        return result


@dataclass(frozen=True)
class Descriptor:
    """
    A reference to content by media type, digest and size (OCI descriptor).

    C{annotations} is left out of the hash so descriptors can go in sets.
    """

    mediaType: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict | None = field(default=None, hash=False)
    artifactType: str | None = None
    platform: Platform | None = None

    def toJSON(self):
        """The OCI JSON object, optional fields omitted when empty."""
        result = {"mediaType": self.mediaType}
        if self.artifactType is not None:
            result["artifactType"] = self.artifactType
        result["digest"] = str(self.digest)
        result["size"] = self.size
        if self.urls:
            result["urls"] = list(self.urls)
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        if self.platform is not None:
            result["platform"] = self.platform.toJSON()
        return result


EMPTY_DESCRIPTOR = Descriptor(OCI_EMPTY, Digest.of(b"{}"), 2)


@dataclass(frozen=True)
class Manifest:
    """
    A validated manifest and the exact bytes it was pushed as.

    @ivar artifactType: What the referrers API reports: the C{artifactType}
        field, else for an OCI image manifest its config media type (OCI
        Distribution 1.1). Always None for Docker formats, which cannot be
        referrers.
    """

    mediaType: str
    payload: bytes = field(repr=False)
    digest: Digest
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifactType: str | None
    annotations: dict | None = field(hash=False)

    @property
    def isIndex(self):
        return self.mediaType in _INDEX_TYPES

    def blobReferences(self):
        """Config and every layer: the blobs a push must find in the repository."""
        if self.config is None:
            return ()
        return (self.config,) + self.layers

    def manifestReferences(self):
        """The manifests an index or list points to."""
        return self.manifests

    def resourceClass(self):
        """
        The policy class Distribution assigns: C{"image"}, C{"plugin"}, or None
        for indexes and lists.

        Call it only when a class policy is configured: like Distribution, a
        config type outside the known classes (any OCI artifact) is refused.

        @raise errors.Denied: The config media type belongs to no class.
        """
        if self.isIndex:
            return None
        try:
            return _CLASSES[self.mediaType][self.config.mediaType]
        except KeyError:
            raise errors.Denied(
                message=f"unknown manifest class for {self.config.mediaType}"
            ) from None

    def descriptor(self):
        """This manifest as a descriptor, as the referrers API lists it."""
        return Descriptor(
            self.mediaType,
            self.digest,
            len(self.payload),
            annotations=self.annotations,
            artifactType=self.artifactType,
        )

    def platformEntry(self, os="linux", architecture="amd64"):
        """The first index entry for that platform, or None."""
        for entry in self.manifests:
            platform = entry.platform
            if (
                platform is not None
                and platform.os == os
                and platform.architecture == architecture
            ):
                return entry
        return None


def parseManifest(payload, contentType):
    """
    Parse and validate a pushed or stored manifest.

    @param payload: The manifest's bytes, kept as they are.
    @param contentType: The request's C{Content-Type} (parameters allowed), or
        None. It decides the format only when the body has no C{mediaType}.
    @return: A L{Manifest}.
    @raise errors.ManifestInvalid: Any problem, its message naming the field.
    """
    body = _load(payload)
    declared = _declaredType(contentType)
    _refuseSchema1(body, declared)
    version = body.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise _invalid("schemaVersion", _missingOr(version, "the integer 2"))
    mediaType = _mediaTypeOf(body, declared)
    if mediaType in _INDEX_TYPES:
        return _index(body, mediaType, payload)
    return _imageManifest(body, mediaType, payload)


def _load(payload):
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.ManifestInvalid(
            message=f"manifest is not valid UTF-8 (byte {e.start})"
        ) from None
    try:
        body = json.loads(text, parse_constant=_refuseConstant)
    except json.JSONDecodeError as e:
        problem = f"{e.msg} at line {e.lineno} column {e.colno}"
    except ValueError:
        # From _refuseConstant, or int() refusing a number thousands of digits long.
        problem = "a number is not finite or is too long"
    except RecursionError:
        problem = "nested too deeply"
    else:
        if type(body) is not dict:
            raise errors.ManifestInvalid(
                message=f"manifest must be a JSON object, not {_kind(body)}"
            )
        return body
    raise errors.ManifestInvalid(message=f"manifest is not valid JSON: {problem}")


def _refuseConstant(name):
    """Refuse NaN and Infinity, which Python's json accepts but JSON lacks."""
    raise ValueError(name)


def _declaredType(contentType):
    if not contentType:
        return None
    return contentType.partition(";")[0].strip().lower() or None


def _refuseSchema1(body, declared):
    bodyType = body.get("mediaType")
    version = body.get("schemaVersion")
    if (
        declared in SCHEMA1_TYPES
        or (type(bodyType) is str and bodyType in SCHEMA1_TYPES)
        or (type(version) is int and version == 1)
        or "signatures" in body
        or "fsLayers" in body
    ):
        raise errors.ManifestInvalid(message=SCHEMA1_MESSAGE)


def _mediaTypeOf(body, declared):
    """The body's C{mediaType}, else the Content-Type, else the OCI shape."""
    mediaType = body.get("mediaType")
    if mediaType is not None:
        if type(mediaType) is not str:
            raise _invalid("mediaType", f"must be a string, got {_kind(mediaType)}")
        if mediaType not in MANIFEST_TYPES:
            raise _invalid(
                "mediaType", f"unsupported manifest media type {_show(mediaType)}"
            )
        if declared in MANIFEST_TYPES and declared != mediaType:
            raise errors.ManifestInvalid(
                detail={"field": "mediaType"},
                message=f"mediaType {mediaType} does not match Content-Type {declared}",
            )
        return mediaType
    if declared in _OCI_TYPES:
        return declared
    if declared in MANIFEST_TYPES:
        raise _invalid("mediaType", f"required in the body when Content-Type is {declared}")
    # The OCI image spec's guidance for documents that carry no type.
    if body.get("manifests") is not None:
        return OCI_INDEX
    if body.get("config") is not None:
        return OCI_MANIFEST
    raise errors.ManifestInvalid(
        message="cannot determine manifest media type: no mediaType field, "
        "no manifest Content-Type, and neither config nor manifests"
    )


def _imageManifest(body, mediaType, payload):
    if body.get("manifests") is not None:
        raise _invalid("manifests", "not allowed in an image manifest")
    config = _descriptor(_required(body, "config"), "config")
    layers = _descriptors(_required(body, "layers"), "layers")
    if mediaType == OCI_MANIFEST:
        subject, artifactType, annotations = _ociFields(body)
        artifactType = artifactType or config.mediaType
    else:
        subject = artifactType = annotations = None
    return Manifest(
        mediaType, payload, Digest.of(payload), config, layers, (), subject,
        artifactType, annotations,
    )


def _index(body, mediaType, payload):
    for key in ("config", "layers"):
        if body.get(key) is not None:
            raise _invalid(key, "not allowed in an index")
    manifests = _descriptors(_required(body, "manifests"), "manifests")
    if mediaType == OCI_INDEX:
        subject, artifactType, annotations = _ociFields(body)
    else:
        subject = artifactType = annotations = None
        for i, entry in enumerate(manifests):
            if entry.mediaType not in MANIFEST_TYPES:
                raise _invalid(
                    f"manifests[{i}].mediaType",
                    f"a manifest list can only reference manifests, "
                    f"got {_show(entry.mediaType)}",
                )
    return Manifest(
        mediaType, payload, Digest.of(payload), None, (), manifests, subject,
        artifactType, annotations,
    )


def _ociFields(body):
    """The OCI 1.1 fields Docker formats do not have."""
    subject = body.get("subject")
    if subject is not None:
        subject = _descriptor(subject, "subject")
    return (
        subject,
        _mediaTypeField(body, "", "artifactType"),
        _stringMapField(body, "", "annotations"),
    )


def _required(obj, key):
    value = obj.get(key)
    if value is None:
        raise _invalid(key, "required")
    return value


def _descriptors(value, where):
    if type(value) is not list:
        raise _invalid(where, f"must be an array, got {_kind(value)}")
    return tuple(_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


# Field checkers take the parent's path and build the field's only on error:
# the GET path parses stored manifests, so the valid case should be cheap.


def _descriptor(value, where):
    if type(value) is not dict:
        raise _invalid(where, f"must be an object, got {_kind(value)}")
    mediaType = _mediaTypeField(value, where, "mediaType", required=True)

    digest = value.get("digest")
    if type(digest) is not str:
        raise _invalid(_at(where, "digest"), _missingOr(digest, "a string"))
    try:
        digest = Digest.parse(digest)
    except errors.DigestInvalid as e:
        raise _invalid(
            _at(where, "digest"), f"invalid digest {_show(digest)}: {e.message}"
        ) from None

    size = value.get("size")
    if type(size) is not int or not 0 <= size <= _MAX_SIZE:
        raise _invalid(_at(where, "size"), _missingOr(size, "an integer from 0 to 2^63-1"))

    urls = value.get("urls")
    if urls is None:
        urls = ()
    elif type(urls) is not list:
        raise _invalid(_at(where, "urls"), f"must be an array, got {_kind(urls)}")
    else:
        urls = tuple(_url(url, f"{where}.urls[{i}]") for i, url in enumerate(urls))

    platform = value.get("platform")
    if platform is not None:
        platform = _platform(platform, f"{where}.platform")

    return Descriptor(
        mediaType,
        digest,
        size,
        urls=urls,
        annotations=_stringMapField(value, where, "annotations"),
        artifactType=_mediaTypeField(value, where, "artifactType"),
        platform=platform,
    )


def _mediaTypeField(obj, where, key, required=False):
    value = obj.get(key)
    if value is None and not required:
        return None
    if type(value) is not str:
        raise _invalid(_at(where, key), _missingOr(value, "a string"))
    if not _MEDIA_TYPE.fullmatch(value):
        raise _invalid(_at(where, key), f"invalid media type {_show(value)}")
    return value


def _stringMapField(obj, where, key):
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not dict:
        raise _invalid(_at(where, key), f"must be an object, got {_kind(value)}")
    for name, item in value.items():
        if type(item) is not str or _SURROGATE.search(name) or _SURROGATE.search(item):
            itemWhere = f"{_at(where, key)}[{_show(name)}]"
            _text(name, itemWhere)
            _text(item, itemWhere)
    return value


def _url(value, where):
    _text(value, where)
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    # RFC 3986 syntax only: which schemes and hosts a registry accepts is
    # its policy (validation.manifests.urls), checked when the manifest is stored.
    if (
        parts is None
        or not parts.scheme
        or not (parts.netloc or parts.path)
        or (parts.scheme in ("http", "https") and not parts.netloc)
        or _URL_FORBIDDEN.search(value)
    ):
        raise _invalid(where, f"not an absolute URL: {_show(value)}")
    return value


def _platform(value, where):
    if type(value) is not dict:
        raise _invalid(where, f"must be an object, got {_kind(value)}")
    features = value.get("os.features")
    if features is None:
        features = ()
    elif type(features) is not list:
        raise _invalid(f"{where}.os.features", f"must be an array, got {_kind(features)}")
    else:
        features = tuple(
            _text(item, f"{where}.os.features[{i}]") for i, item in enumerate(features)
        )
    return Platform(
        _textField(value, where, "architecture", required=True),
        _textField(value, where, "os", required=True),
        variant=_textField(value, where, "variant"),
        osVersion=_textField(value, where, "os.version"),
        osFeatures=features,
    )


def _textField(obj, where, key, required=False):
    value = obj.get(key)
    if value is None and not required:
        return None
    if required and not value:
        raise _invalid(_at(where, key), _missingOr(value, "a non-empty string"))
    if type(value) is not str or _SURROGATE.search(value):
        return _text(value, _at(where, key))
    return value


def _text(value, where):
    """A string the registry keeps and may serialise again."""
    if type(value) is not str:
        raise _invalid(where, f"must be a string, got {_kind(value)}")
    if _SURROGATE.search(value):
        raise _invalid(where, "contains an unpaired UTF-16 surrogate escape")
    return value


def _at(where, key):
    return f"{where}.{key}" if where else key


def _missingOr(value, expected):
    return "required" if value is None else f"must be {expected}, got {_show(value)}"


def _invalid(where, problem):
    return errors.ManifestInvalid(detail={"field": where}, message=f"{where}: {problem}")


def _kind(value):
    return _JSON_KINDS[type(value)]


def _show(value):
    """A short rendering of a bad value for an error message."""
    if type(value) is str:
        return repr(value[:100] + "..." if len(value) > 100 else value)
    if type(value) in (dict, list):
        return _kind(value)
    return json.dumps(value)
