import copy
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registryd import errors
from registryd.manifest import (
    DOCKER_IMAGE_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_PLUGIN_CONFIG,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    EMPTY_DESCRIPTOR,
    MANIFEST_TYPES,
    OCI_EMPTY,
    OCI_IMAGE_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_MESSAGE,
    Descriptor,
    Platform,
    parseManifest,
)
from registryd.reference import Digest

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
SBOM = "application/spdx+json"


def blob(name, mediaType=LAYER, size=None):
    data = name.encode()
    return {"mediaType": mediaType, "digest": Digest.of(data), "size": size or len(data)}


def ociManifest(**extra):
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": blob("config", OCI_IMAGE_CONFIG),
        "layers": [blob("layer0"), blob("layer1")],
    }
    body.update(extra)
    return body


def dockerManifest(**extra):
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": blob("config", DOCKER_IMAGE_CONFIG),
        "layers": [blob("layer0", DOCKER_LAYER)],
    }
    body.update(extra)
    return body


def entry(name, mediaType, os="linux", architecture="amd64", **platform):
    platform = {"architecture": architecture, "os": os, **platform}
    return {**blob(name, mediaType), "platform": platform}


def ociIndex(**extra):
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            entry("arm", OCI_MANIFEST, architecture="arm64", variant="v8"),
            entry("amd", OCI_MANIFEST),
        ],
    }
    body.update(extra)
    return body


def dockerList(**extra):
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            entry("amd", DOCKER_MANIFEST),
            entry(
                "win", DOCKER_MANIFEST, os="windows",
                **{"os.version": "10.0.17763.1879", "os.features": ["win32k"]},
            ),
        ],
    }
    body.update(extra)
    return body


def parse(body, contentType=None):
    return parseManifest(json.dumps(body).encode(), contentType)


def invalid(body, contentType=None):
    """Parse, expecting MANIFEST_INVALID; return the message."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(errors.ManifestInvalid) as info:
        parseManifest(payload, contentType)
    assert info.value.code == "MANIFEST_INVALID"
    assert info.value.status == 400
    return info.value.message


def desc(name, mediaType=LAYER, **kwargs):
    b = blob(name, mediaType)
    return Descriptor(b["mediaType"], b["digest"], b["size"], **kwargs)


# Valid manifests


def test_ociManifest():
    m = parse(ociManifest(), OCI_MANIFEST)
    assert m.mediaType == OCI_MANIFEST
    assert m.config == desc("config", OCI_IMAGE_CONFIG)
    assert m.layers == (desc("layer0"), desc("layer1"))
    assert m.manifests == ()
    assert m.subject is None
    assert m.annotations is None
    assert not m.isIndex
    assert m.blobReferences() == (m.config,) + m.layers
    assert m.manifestReferences() == ()
    assert isinstance(m.config.digest, Digest)


def test_payloadAndDigestAreByteExact():
    payload = (
        b'{ "layers":[],\n  "schemaVersion" : 2,"config":'
        + json.dumps(blob("config", OCI_IMAGE_CONFIG)).encode()
        + b',"mediaType":"' + OCI_MANIFEST.encode() + b'"}\n'
    )
    m = parseManifest(payload, OCI_MANIFEST)
    assert m.payload == payload
    assert m.digest == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert isinstance(m.digest, Digest)


def test_contentTypeParametersAndCaseIgnored():
    m = parse(ociManifest(), "Application/VND.oci.image.manifest.v1+json ; charset=utf-8")
    assert m.mediaType == OCI_MANIFEST


@pytest.mark.parametrize(
    "contentType", [None, "", "application/json", "application/octet-stream", "text/plain; x=y"]
)
def test_bodyMediaTypeDecidesWhenContentTypeIsNotAManifestType(contentType):
    assert parse(dockerManifest(), contentType).mediaType == DOCKER_MANIFEST
    assert parse(ociIndex(), contentType).mediaType == OCI_INDEX


@pytest.mark.parametrize("mediaType", [OCI_MANIFEST, OCI_INDEX])
def test_ociTypeFromContentTypeWhenBodyHasNone(mediaType):
    body = ociManifest() if mediaType == OCI_MANIFEST else ociIndex()
    del body["mediaType"]
    assert parse(body, mediaType).mediaType == mediaType


def test_ociTypeInferredFromShape():
    manifest, index = ociManifest(), ociIndex()
    del manifest["mediaType"], index["mediaType"]
    assert parse(manifest, "application/json").mediaType == OCI_MANIFEST
    assert parse(index, None).mediaType == OCI_INDEX


def test_ociIndex():
    m = parse(ociIndex(), OCI_INDEX)
    assert m.isIndex
    assert m.config is None
    assert m.layers == ()
    assert m.blobReferences() == ()
    assert m.artifactType is None
    assert m.manifestReferences() == m.manifests
    assert m.manifests[0] == desc(
        "arm", OCI_MANIFEST, platform=Platform("arm64", "linux", variant="v8")
    )
    assert m.manifests[1].platform == Platform("amd64", "linux")


def test_ociIndexAcceptsAnyMediaTypeForEntries():
    m = parse(ociIndex(manifests=[blob("x", SBOM)]))
    assert m.manifests[0].mediaType == SBOM
    assert m.manifests[0].platform is None


def test_dockerManifest():
    m = parse(dockerManifest(), DOCKER_MANIFEST)
    assert m.mediaType == DOCKER_MANIFEST
    assert m.config.mediaType == DOCKER_IMAGE_CONFIG
    assert m.layers == (desc("layer0", DOCKER_LAYER),)
    assert m.artifactType is None


def test_dockerFormatsIgnoreOciFields():
    extra = {
        "subject": blob("s", OCI_MANIFEST),
        "artifactType": SBOM,
        "annotations": {"a": "b"},
    }
    for body in (dockerManifest(**extra), dockerList(**extra)):
        m = parse(body)
        assert (m.subject, m.artifactType, m.annotations) == (None, None, None)


def test_dockerList():
    m = parse(dockerList(), DOCKER_LIST)
    assert m.isIndex
    assert m.manifests[0] == desc("amd", DOCKER_MANIFEST, platform=Platform("amd64", "linux"))
    assert m.manifests[1].platform == Platform(
        "amd64", "windows", osVersion="10.0.17763.1879", osFeatures=("win32k",)
    )


def test_dockerListAcceptsEveryServableManifestType():
    entries = [blob(t, t) for t in sorted(MANIFEST_TYPES)]
    m = parse(dockerList(manifests=entries))
    assert {e.mediaType for e in m.manifests} == MANIFEST_TYPES


def test_emptyLayersAccepted():
    assert parse(ociManifest(layers=[])).layers == ()
    assert parse(dockerManifest(layers=[])).layers == ()


def test_emptyDescriptor():
    assert EMPTY_DESCRIPTOR == Descriptor(
        OCI_EMPTY,
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        2,
    )


def test_artifactWithEmptyConfig():
    body = ociManifest(
        artifactType=SBOM, config=EMPTY_DESCRIPTOR.toJSON(), layers=[blob("sbom", SBOM)]
    )
    m = parse(body)
    assert m.config == EMPTY_DESCRIPTOR
    assert m.artifactType == SBOM


def test_artifactTypeFallsBackToConfigMediaType():
    assert parse(ociManifest()).artifactType == OCI_IMAGE_CONFIG
    assert parse(ociManifest(config=blob("chart", HELM_CONFIG))).artifactType == HELM_CONFIG


def test_artifactTypeFieldWinsOverConfig():
    m = parse(ociManifest(artifactType=SBOM, config=blob("chart", HELM_CONFIG)))
    assert m.artifactType == SBOM


def test_indexArtifactType():
    assert parse(ociIndex(artifactType=SBOM)).artifactType == SBOM
    assert parse(ociIndex()).artifactType is None


def test_subject():
    subject = blob("subject", OCI_MANIFEST)
    expected = desc("subject", OCI_MANIFEST)
    assert parse(ociManifest(subject=subject)).subject == expected
    assert parse(ociIndex(subject=subject)).subject == expected


def test_annotations():
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    layer = {**blob("layer0"), "annotations": {"title": "x"}}
    m = parse(ociManifest(annotations=annotations, layers=[layer]))
    assert m.annotations == annotations
    assert m.layers[0].annotations == {"title": "x"}
    assert parse(ociIndex(annotations=annotations)).annotations == annotations


def test_foreignLayers():
    foreign = {**blob("base", FOREIGN_LAYER), "urls": ["https://example.com/base.tar"]}
    m = parse(dockerManifest(layers=[foreign, blob("top", DOCKER_LAYER)]))
    assert m.layers[0].urls == ("https://example.com/base.tar",)
    assert m.blobReferences() == (m.config, m.layers[0], m.layers[1])


def test_descriptorArtifactTypeAndSha512():
    data = b"x"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    child = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1, "artifactType": SBOM}
    m = parse(ociIndex(manifests=[child]))
    assert m.manifests[0].artifactType == SBOM
    assert m.manifests[0].digest == digest


def test_nullOptionalFieldsCountAsAbsent():
    layer = {**blob("layer0"), "urls": None, "annotations": None, "platform": None}
    m = parse(ociManifest(layers=[layer], subject=None, annotations=None, artifactType=None))
    assert m.layers == (desc("layer0"),)
    assert (m.subject, m.annotations, m.artifactType) == (None, None, OCI_IMAGE_CONFIG)


def test_unknownFieldsIgnored():
    layer = {**blob("layer0"), "data": "e30=", "x-custom": [1, {"y": None}]}
    m = parse(ociManifest(layers=[layer], extension={"a": 1}))
    assert m.layers == (desc("layer0"),)


def test_descriptorOfManifest():
    annotations = {"a": "b"}
    payload = json.dumps(ociManifest(artifactType=SBOM, annotations=annotations)).encode()
    m = parseManifest(payload, None)
    assert m.descriptor() == Descriptor(
        OCI_MANIFEST, Digest.of(payload), len(payload), annotations=annotations, artifactType=SBOM
    )
    assert m.descriptor().annotations == annotations


def test_descriptorToJSONOmitsEmptyFields():
    assert desc("x").toJSON() == {"mediaType": LAYER, "digest": Digest.of(b"x"), "size": 1}


def test_descriptorToJSONRoundTrips():
    full = {
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM,
        "digest": Digest.of(b"x"),
        "size": 1,
        "urls": ["http://example.com/x"],
        "annotations": {"a": "b"},
        "platform": {
            "architecture": "amd64",
            "os": "windows",
            "os.version": "10",
            "os.features": ["win32k"],
            "variant": "v1",
        },
    }
    d = parse(ociIndex(manifests=[full])).manifests[0]
    assert d.toJSON() == full
    assert json.loads(json.dumps(d.toJSON())) == full


def test_descriptorsAreHashable():
    d = parse(ociManifest(layers=[{**blob("l"), "annotations": {"a": "b"}}])).layers[0]
    assert d in {d}


def test_platformEntry():
    m = parse(dockerList())
    assert m.platformEntry() == m.manifests[0]
    assert m.platformEntry(os="windows") == m.manifests[1]
    assert m.platformEntry(architecture="arm64") is None
    index = parse(ociIndex())
    assert index.platformEntry(architecture="arm64").platform.variant == "v8"
    assert parse(ociManifest()).platformEntry() is None


def test_platformEntryPicksFirstMatch():
    m = parse(dockerList(manifests=[entry("a", DOCKER_MANIFEST), entry("b", DOCKER_MANIFEST)]))
    assert m.platformEntry().digest == Digest.of(b"a")


@pytest.mark.parametrize(
    "body, expected",
    [
        (dockerManifest(), "image"),
        (dockerManifest(config=blob("c", DOCKER_PLUGIN_CONFIG)), "plugin"),
        (ociManifest(), "image"),
        (ociIndex(), None),
        (dockerList(), None),
    ],
)
def test_resourceClass(body, expected):
    assert parse(body).resourceClass() == expected


@pytest.mark.parametrize(
    "body, configType",
    [
        (dockerManifest(config=blob("c", OCI_IMAGE_CONFIG)), OCI_IMAGE_CONFIG),
        (ociManifest(config=blob("c", DOCKER_IMAGE_CONFIG)), DOCKER_IMAGE_CONFIG),
        (ociManifest(config=EMPTY_DESCRIPTOR.toJSON()), OCI_EMPTY),
    ],
)
def test_resourceClassDeniesUnknownConfig(body, configType):
    m = parse(body)
    with pytest.raises(errors.Denied) as info:
        m.resourceClass()
    assert info.value.code == "DENIED"
    assert info.value.status == 403
    assert info.value.message == f"unknown manifest class for {configType}"


# Invalid documents


@pytest.mark.parametrize("payload", [b"\xff\xfe{\x00}\x00", b'{"a": "\xc3"}'])
def test_notUTF8(payload):
    assert invalid(payload).startswith("manifest is not valid UTF-8")


def test_byteOrderMarkRefused():
    assert invalid(b"\xef\xbb\xbf{}").startswith("manifest is not valid JSON")


@pytest.mark.parametrize(
    "payload", [b"", b"{", b'{"schemaVersion": 2,}', b"{} {}", b"{'a': 1}"]
)
def test_notJSON(payload):
    assert invalid(payload).startswith("manifest is not valid JSON")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nonFiniteNumbersAreNotJSON(constant):
    assert invalid(b'{"schemaVersion": 2, "x": ' + constant + b"}").startswith(
        "manifest is not valid JSON"
    )


def test_hugeIntegerIsNotAccepted():
    assert "not valid JSON" in invalid(b'{"schemaVersion": ' + b"9" * 5000 + b"}")


def test_deepNesting():
    assert "nested too deeply" in invalid(b"[" * 100000 + b"]" * 100000)


@pytest.mark.parametrize("body", [[], "manifest", 2, None, True])
def test_topLevelMustBeObject(body):
    assert "must be a JSON object" in invalid(body)


@pytest.mark.parametrize(
    "body, contentType",
    [
        ({"schemaVersion": 1, "name": "a", "tag": "b"}, None),
        (ociManifest(), DOCKER_SCHEMA1),
        (ociManifest(), DOCKER_SCHEMA1_SIGNED + "; charset=utf-8"),
        (ociManifest(mediaType=DOCKER_SCHEMA1), None),
        (ociManifest(signatures=[]), None),
        (ociManifest(fsLayers=[]), OCI_MANIFEST),
    ],
)
def test_schema1Refused(body, contentType):
    assert invalid(body, contentType) == SCHEMA1_MESSAGE


@pytest.mark.parametrize("version", [2.0, "2", True, 3, [2]])
def test_schemaVersionMustBeInteger2(version):
    message = invalid(ociManifest(schemaVersion=version))
    assert message.startswith("schemaVersion: must be the integer 2, got ")


def test_schemaVersionRequired():
    body = ociManifest()
    assert invalid({**body, "schemaVersion": None}) == "schemaVersion: required"
    del body["schemaVersion"]
    assert invalid(body) == "schemaVersion: required"


@pytest.mark.parametrize("mediaType", ["application/json", OCI_IMAGE_CONFIG, 7, ["x"]])
def test_bodyMediaTypeMustBeServable(mediaType):
    assert invalid(ociManifest(mediaType=mediaType)).startswith("mediaType: ")


def test_bodyMediaTypeMustMatchContentType():
    message = invalid(ociManifest(), DOCKER_MANIFEST)
    assert message == f"mediaType {OCI_MANIFEST} does not match Content-Type {DOCKER_MANIFEST}"


@pytest.mark.parametrize("contentType", [DOCKER_MANIFEST, DOCKER_LIST])
def test_dockerTypesRequireBodyMediaType(contentType):
    body = dockerManifest()
    del body["mediaType"]
    assert invalid(body, contentType) == (
        f"mediaType: required in the body when Content-Type is {contentType}"
    )


def test_cannotDetermineMediaType():
    message = invalid({"schemaVersion": 2, "layers": []}, "application/json")
    assert message.startswith("cannot determine manifest media type")


def test_manifestsAndConfigTogether():
    body = ociManifest(manifests=[])
    assert invalid(body) == "manifests: not allowed in an image manifest"
    del body["mediaType"]
    assert invalid(body) == "config: not allowed in an index"


@pytest.mark.parametrize("key", ["config", "layers"])
def test_indexMustNotHaveManifestFields(key):
    assert invalid(ociIndex(**{key: []})) == f"{key}: not allowed in an index"
    assert invalid(dockerList(**{key: []})) == f"{key}: not allowed in an index"


@pytest.mark.parametrize("body", [ociManifest, dockerManifest])
@pytest.mark.parametrize("key", ["config", "layers"])
def test_imageManifestFieldsRequired(body, key):
    document = body()
    del document[key]
    assert invalid(document) == f"{key}: required"


@pytest.mark.parametrize("body", [ociIndex, dockerList])
def test_indexManifestsRequired(body):
    document = body()
    del document["manifests"]
    assert invalid(document) == "manifests: required"


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"config": "sha256:abc"}, "config: must be an object, got a string"),
        ({"layers": {}}, "layers: must be an array, got an object"),
        ({"layers": [blob("a"), 5]}, "layers[1]: must be an object, got a number"),
        ({"subject": []}, "subject: must be an object, got an array"),
    ],
)
def test_structureTypes(extra, message):
    assert invalid(ociManifest(**extra)) == message


def test_indexManifestsMustBeArray():
    assert invalid(ociIndex(manifests={})) == "manifests: must be an array, got an object"


def test_dockerListEntriesMustBeManifests():
    message = invalid(dockerList(manifests=[blob("a", LAYER)]))
    assert message.startswith("manifests[0].mediaType: a manifest list can only reference")


def withLayer(**fields):
    """An OCI manifest whose second layer has these fields changed."""
    layer = blob("bad")
    for key, value in fields.items():
        if value is ...:
            del layer[key]
        else:
            layer[key] = value
    return ociManifest(layers=[blob("ok"), layer])


@pytest.mark.parametrize(
    "mediaType",
    [
        "foo",
        "a/b/c",
        "image/ png",
        "/x",
        "x/",
        "application/json; charset=utf-8",
        "-a/b",
        "a/" + "b" * 128,
        "applicatión/json",
        "",
        5,
    ],
)
def test_descriptorMediaTypeGrammar(mediaType):
    assert invalid(withLayer(mediaType=mediaType)).startswith("layers[1].mediaType: ")


def test_descriptorMediaTypeAcceptsRestrictedNameCharacters():
    mediaType = "a1!#$&^_.+-/" + "b" * 127
    assert parse(withLayer(mediaType=mediaType)).layers[1].mediaType == mediaType


def test_descriptorMediaTypeRequired():
    assert invalid(withLayer(mediaType=...)) == "layers[1].mediaType: required"


@pytest.mark.parametrize(
    "digest",
    ["sha256:xyz", "md5:d41d8cd98f00b204e9800998ecf8427e", "nodigest", "SHA256:" + "a" * 64],
)
def test_descriptorDigestInvalidIsManifestInvalid(digest):
    message = invalid(withLayer(digest=digest))
    assert message.startswith(f"layers[1].digest: invalid digest {digest!r}")


@pytest.mark.parametrize("digest, problem", [(..., "required"), (123, "must be a string")])
def test_descriptorDigestRequiredString(digest, problem):
    assert invalid(withLayer(digest=digest)).startswith(f"layers[1].digest: {problem}")


def test_subjectDigestInvalid():
    message = invalid(ociManifest(subject={**blob("s", OCI_MANIFEST), "digest": "sha256:"}))
    assert message.startswith("subject.digest: invalid digest")


@pytest.mark.parametrize("size", [-1, 1.0, 1.5, True, "12", 2**63, ...])
def test_descriptorSize(size):
    assert invalid(withLayer(size=size)).startswith("layers[1].size: ")


def test_descriptorSizeBounds():
    assert parse(withLayer(size=0)).layers[1].size == 0
    assert parse(withLayer(size=2**63 - 1)).layers[1].size == 2**63 - 1


@pytest.mark.parametrize(
    "urls, where",
    [
        ("https://example.com", "layers[1].urls"),
        ([5], "layers[1].urls[0]"),
        (["https://ok.example/", "://example.com/x"], "layers[1].urls[1]"),
        (["/relative/path"], "layers[1].urls[0]"),
        (["http://"], "layers[1].urls[0]"),
        (["https://exa mple.com/"], "layers[1].urls[0]"),
        (["http://[::1/x"], "layers[1].urls[0]"),
        (["example.com/x"], "layers[1].urls[0]"),
    ],
)
def test_descriptorUrls(urls, where):
    assert invalid(withLayer(urls=urls)).startswith(f"{where}: ")


@pytest.mark.parametrize(
    "annotations, where",
    [
        ([], "layers[1].annotations"),
        ({"a": 1}, "layers[1].annotations['a']"),
        ({"a": None}, "layers[1].annotations['a']"),
    ],
)
def test_descriptorAnnotations(annotations, where):
    assert invalid(withLayer(annotations=annotations)).startswith(f"{where}: ")


@pytest.mark.parametrize("body", [ociManifest, ociIndex])
def test_manifestAnnotations(body):
    assert invalid(body(annotations={"a": ["b"]})).startswith("annotations['a']: must be a string")
    assert invalid(body(annotations="a=b")).startswith("annotations: must be an object")


def test_loneSurrogateInKeptStrings():
    payload = json.dumps(ociManifest(annotations={"a": "\ud800"})).encode()
    assert "\\ud800" in payload.decode()
    assert invalid(payload).startswith("annotations['a']: contains an unpaired")
    pair = json.dumps(ociManifest(annotations={"a": "\U0001f600"})).encode()
    assert parseManifest(pair, None).annotations == {"a": "\U0001f600"}


@pytest.mark.parametrize(
    "platform, where",
    [
        ("linux/amd64", ""),
        ({"os": "linux"}, ".architecture"),
        ({"architecture": "", "os": "linux"}, ".architecture"),
        ({"architecture": "amd64"}, ".os"),
        ({"architecture": "amd64", "os": 1}, ".os"),
        ({"architecture": "amd64", "os": "linux", "variant": 8}, ".variant"),
        ({"architecture": "amd64", "os": "w", "os.version": 1}, ".os.version"),
        ({"architecture": "amd64", "os": "w", "os.features": "x"}, ".os.features"),
        ({"architecture": "amd64", "os": "w", "os.features": [1]}, ".os.features[0]"),
    ],
)
def test_platform(platform, where):
    body = ociIndex(manifests=[{**blob("a", OCI_MANIFEST), "platform": platform}])
    assert invalid(body).startswith(f"manifests[0].platform{where}: ")


@pytest.mark.parametrize("artifactType", ["sbom", 5, "a/b; x=y"])
def test_artifactTypeGrammar(artifactType):
    assert invalid(ociManifest(artifactType=artifactType)).startswith("artifactType: ")
    assert invalid(ociIndex(artifactType=artifactType)).startswith("artifactType: ")
    child = {**blob("a", OCI_MANIFEST), "artifactType": artifactType}
    assert invalid(ociIndex(manifests=[child])).startswith("manifests[0].artifactType: ")


def test_errorDetailNamesField():
    with pytest.raises(errors.ManifestInvalid) as info:
        parse(withLayer(digest="sha256:xyz"))
    assert info.value.detail == {"field": "layers[1].digest"}
    assert json.loads(info.value.envelope())["errors"][0]["code"] == "MANIFEST_INVALID"


def test_longValuesAreTruncatedInMessages():
    message = invalid(withLayer(digest="sha256:" + "z" * 100000))
    assert len(message) < 400


# Fuzzing: whatever the input, the only failure is MANIFEST_INVALID.

jsonValues = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
contentTypes = st.none() | st.sampled_from(
    sorted(MANIFEST_TYPES) + [DOCKER_SCHEMA1, "application/json", "", ";", "a/b; c=d"]
) | st.text(max_size=20)


def checkParses(payload, contentType):
    try:
        m = parseManifest(payload, contentType)
    except errors.ManifestInvalid:
        return
    assert m.mediaType in MANIFEST_TYPES
    try:
        m.resourceClass()
    except errors.Denied:
        pass
    m.descriptor().toJSON()
    for d in m.blobReferences() + m.manifestReferences():
        json.dumps(d.toJSON()).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), contentTypes)
def test_fuzzBytes(payload, contentType):
    checkParses(payload, contentType)


@settings(max_examples=300, deadline=None)
@given(jsonValues, contentTypes)
def test_fuzzJSONValues(value, contentType):
    checkParses(json.dumps(value).encode(), contentType)


def paths(value, prefix=()):
    """Every path into a JSON document, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from paths(child, prefix + (i,))


TEMPLATES = [
    ociManifest(
        subject=blob("s", OCI_MANIFEST),
        annotations={"a": "b"},
        artifactType=SBOM,
        layers=[{**blob("l"), "urls": ["https://x.example/l"], "annotations": {"k": "v"}}],
    ),
    dockerManifest(),
    ociIndex(subject=blob("s", OCI_MANIFEST), annotations={"a": "b"}),
    dockerList(),
]


@settings(max_examples=500, deadline=None)
@given(st.data(), contentTypes)
def test_fuzzMutatedManifests(data, contentType):
    document = copy.deepcopy(data.draw(st.sampled_from(TEMPLATES)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(paths(document))[1:]))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(jsonValues)
    checkParses(json.dumps(document).encode(), contentType)
