"""
buildah and podman (Debian: buildah 1.28, podman 4.3) against a real
C{twistd -n registryd}.

What was found on these machines (root, no container daemon, no internet,
a Firecracker VM without a systemd user session): both run, as root, with
private storage given as C{--root DIR --runroot DIR --storage-driver vfs}
(podman also C{--tmpdir DIR --events-backend none}) and an environment whose
HOME, XDG directories, TMPDIR, containers.conf, storage.conf,
registries.conf, auth file and signature policy all live in the test's
temporary directory (L{tests.interop.realclients.ContainerTools}).  Pushes
and pulls need C{--tls-verify=false} and C{--signature-policy FILE} (a
policy.json accepting anything).  No container is ever run: the image is
built with C{buildah from scratch} + C{buildah copy} + C{buildah commit}, and
its content is read with C{podman image mount}, which on vfs is a plain
directory.  Both C{--format oci} and C{--format v2s2} pushes work.

So these tests skip only when the C{buildah} or C{podman} binary is
missing (Debian packages C{buildah} and C{podman}).  One more fact: with
C{--tls-verify=false} they (like skopeo) first try HTTPS on the port and
fall back to plain HTTP only once the TLS handshake fails; containers/image
gives a handshake 10 s.  A server that never answers the ClientHello costs
every push and pull those 10 s, where Distribution answers C{400} at once.
Also: podman 4.3 refuses a C{--runroot} longer than 50 characters, so the
runroot lives in a short directory of its own under /tmp.

Every step compares digests and bytes: the manifest registryd serves hashes
to the digest the client wrote (C{--digestfile}) and to
C{Docker-Content-Digest}; its config is the image ID; the layer registryd
serves unpacks to the file that went in; podman's pulled image has that ID,
that manifest digest and that file.
"""

import gzip
import io
import json
import os
import socket
import ssl
import tarfile
import time

import pytest

from tests.interop.realclients import ContainerTools, requireBinary, sha256, startRegistry

pytestmark = pytest.mark.interop

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = {"oci": OCI_MANIFEST, "v2s2": DOCKER_MANIFEST}
LOCAL = "localhost/interop/scratch:1"
# containers/image's TLS handshake timeout; an answer must come well before.
TLS_HANDSHAKE_TIMEOUT = 10.0
PROMPT = 5.0


@pytest.fixture
def registry(tmp_path):
    """A real registryd, stopped at teardown."""
    process = startRegistry(tmp_path)
    yield process
    process.stop()


@pytest.fixture
def newTools(tmp_path):
    """
    C{newTools(name)}: buildah and podman with private storage and
    environment under C{tmp_path / name}; cleaned up at teardown.  Skips
    the test if either binary is missing.
    """
    buildah, podman = requireBinary("buildah"), requireBinary("podman")
    made = []

    def make(name):
        made.append(ContainerTools(str(tmp_path / name), buildah, podman))
        return made[-1]

    yield make
    for tools in made:
        tools.close()


@pytest.fixture
def tools(newTools):
    """The first set of buildah and podman, with their own storage."""
    return newTools("containers")


def buildImage(tools, tmp_path, content):
    """
    C{buildah from scratch}, copy C{content} in as C{/hello.txt}, commit as
    L{LOCAL}.

    @return: The image ID (the config's sha256, as hex).
    """
    source = tmp_path / "hello.txt"
    source.write_bytes(content)
    container = tools.buildah("from", "scratch").strip().splitlines()[-1]
    tools.buildah("copy", container, str(source), "/hello.txt")
    tools.buildah("config", "--label", "org.example.interop=registryd", container)
    imageID = tools.buildah(
        "commit", "--signature-policy", tools.policy, container, LOCAL
    ).strip().splitlines()[-1]
    tools.buildah("rm", container)
    return imageID


def fileInLayer(blob, name):
    """The bytes of C{name} in a (possibly gzipped) layer tarball."""
    data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.name.lstrip("./") == name:
                return tar.extractfile(member).read()
    raise AssertionError(f"{name} not in layer: {[m.name for m in tar.getmembers()]}")


def checkServedImage(registry, repository, tag, digest, mediaType, imageID, content):
    """
    The manifest registryd serves for C{repository:tag} has type
    C{mediaType} and digest C{digest}; its config is the image C{imageID};
    its one layer unpacks to C{hello.txt} with C{content}.
    """
    status, headers, body = registry.request(
        "GET",
        f"/v2/{repository}/manifests/{tag}",
        headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"},
    )
    assert status == 200, body[:500]
    assert headers["Content-Type"] == mediaType
    assert headers["Docker-Content-Digest"] == digest
    assert sha256(body) == digest
    manifest = json.loads(body)
    assert manifest["mediaType"] == mediaType
    assert manifest["config"]["digest"] == "sha256:" + imageID

    for descriptor in [manifest["config"], *manifest["layers"]]:
        status, _, blob = registry.request("GET", f"/v2/{repository}/blobs/{descriptor['digest']}")
        assert status == 200
        assert sha256(blob) == descriptor["digest"] and len(blob) == descriptor["size"]
    (layer,) = manifest["layers"]
    _, _, blob = registry.request("GET", f"/v2/{repository}/blobs/{layer['digest']}")
    assert fileInLayer(blob, "hello.txt") == content
    _, _, config = registry.request("GET", f"/v2/{repository}/blobs/{manifest['config']['digest']}")
    assert json.loads(config)["config"]["Labels"]["org.example.interop"] == "registryd"
    return manifest


def checkPulledImage(tools, reference, digest, imageID, content):
    """podman's copy of C{reference} has ID C{imageID}, digest C{digest} and the file."""
    (inspected,) = json.loads(tools.podman("image", "inspect", reference))
    assert inspected["Id"] == imageID
    assert inspected["Digest"] == digest
    name = reference.rsplit(":", 1)[0]
    assert f"{name}@{digest}" in inspected["RepoDigests"]
    mountpoint = tools.podman("image", "mount", reference).strip()
    try:
        with open(os.path.join(mountpoint, "hello.txt"), "rb") as f:
            assert f.read() == content
    finally:
        tools.podman("image", "unmount", reference)


@pytest.mark.parametrize("format", ["oci", "v2s2"])
def test_buildahPushPodmanPullPodmanPush(registry, tools, newTools, tmp_path, format):
    """
    An image built from scratch is pushed by buildah in C{format}, removed
    locally, pulled back by podman (same ID, same manifest digest, same
    file), pushed by podman to another repository in the same format and
    pulled from there by a podman with empty storage.
    """
    content = b"hello from registryd interop\n" + os.urandom(4096).hex().encode()
    imageID = buildImage(tools, tmp_path, content)
    mediaType = MANIFEST_TYPES[format]

    # buildah push.
    digestFile = tmp_path / f"buildah-{format}.digest"
    remote = f"{registry.host}/interop/podman/built"
    tools.buildah(
        "push",
        "--signature-policy", tools.policy,
        "--tls-verify=false",
        "--format", format,
        "--digestfile", str(digestFile),
        LOCAL,
        f"docker://{remote}:{format}",
    )
    digest = digestFile.read_text().strip()
    checkServedImage(registry, "interop/podman/built", format, digest, mediaType, imageID, content)

    # Gone locally.
    tools.buildah("rmi", "--force", LOCAL)
    assert tools.podman("images", "--quiet").strip() == ""

    # podman pull.
    pulledID = tools.podman(
        "pull", "--signature-policy", tools.policy, "--tls-verify=false", f"{remote}:{format}"
    ).strip().splitlines()[-1]
    assert pulledID == imageID
    checkPulledImage(tools, f"{remote}:{format}", digest, imageID, content)

    # podman push to another repository, then a pull into empty storage.
    digestFile = tmp_path / f"podman-{format}.digest"
    again = f"{registry.host}/interop/podman/again"
    tools.podman(
        "push",
        "--signature-policy", tools.policy,
        "--tls-verify=false",
        "--format", format,
        "--digestfile", str(digestFile),
        f"{remote}:{format}",
        f"docker://{again}:{format}",
    )
    pushedDigest = digestFile.read_text().strip()
    checkServedImage(
        registry, "interop/podman/again", format, pushedDigest, mediaType, imageID, content
    )

    fresh = newTools("fresh")
    assert fresh.podman("images", "--quiet").strip() == ""
    fresh.podman(
        "pull", "--signature-policy", fresh.policy, "--tls-verify=false", f"{again}:{format}"
    )
    checkPulledImage(fresh, f"{again}:{format}", pushedDigest, imageID, content)


def test_podmanPullsByDigest(registry, tools, newTools, tmp_path):
    """
    A pull by digest (C{repo@sha256:...}) gets the manifest pushed under a
    tag, and podman's C{image exists} agrees afterwards.
    """
    content = b"pulled by digest\n"
    imageID = buildImage(tools, tmp_path, content)
    digestFile = tmp_path / "digest"
    remote = f"{registry.host}/interop/bydigest"
    tools.buildah(
        "push",
        "--signature-policy", tools.policy,
        "--tls-verify=false",
        "--digestfile", str(digestFile),
        LOCAL,
        f"docker://{remote}:v1",
    )
    digest = digestFile.read_text().strip()
    tools.buildah("rmi", "--force", LOCAL)

    fresh = newTools("fresh")
    pulledID = fresh.podman(
        "pull", "--signature-policy", fresh.policy, "--tls-verify=false", f"{remote}@{digest}"
    ).strip().splitlines()[-1]
    assert pulledID == imageID
    fresh.podman("image", "exists", f"{remote}@{digest}")
    (inspected,) = json.loads(fresh.podman("image", "inspect", f"{remote}@{digest}"))
    assert inspected["Digest"] == digest
    mountpoint = fresh.podman("image", "mount", f"{remote}@{digest}").strip()
    try:
        with open(os.path.join(mountpoint, "hello.txt"), "rb") as f:
            assert f.read() == content
    finally:
        fresh.podman("image", "unmount", f"{remote}@{digest}")


def clientHello():
    """The bytes of a real TLS ClientHello, as a client probing for HTTPS sends."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        connection.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("a TLS handshake completed with no server")


def test_tlsProbeIsAnsweredAtOnce(registry):
    """
    A TLS ClientHello sent to the plain-HTTP port (how podman, buildah and
    skopeo probe for HTTPS under C{--tls-verify=false}) gets an answer or a
    closed connection at once, not silence until the client's handshake
    timeout; Distribution answers C{HTTP/1.1 400 Bad Request} and closes.
    """
    with socket.create_connection(("127.0.0.1", registry.port), timeout=PROMPT) as connection:
        connection.sendall(clientHello())
        try:
            answer = connection.recv(1024)
        except TimeoutError:
            answer = None
    assert answer is not None, (
        f"no answer and no close {PROMPT:.0f} s after a TLS ClientHello: clients "
        f"probing for HTTPS wait out their handshake timeout on every connection"
    )
    assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:200]


def test_pushAndPullDoNotWaitOutTLSHandshakeTimeout(registry, tools, newTools, tmp_path):
    """
    A buildah push and a podman pull of a one-file image, with
    C{--tls-verify=false}, each finish well inside containers/image's 10 s
    TLS handshake timeout: the HTTPS probe must fail fast.
    """
    buildImage(tools, tmp_path, b"quick\n")
    remote = f"{registry.host}/interop/quick:v1"
    started = time.monotonic()
    tools.buildah(
        "push",
        "--signature-policy", tools.policy,
        "--tls-verify=false",
        LOCAL,
        f"docker://{remote}",
    )
    pushed = time.monotonic() - started
    fresh = newTools("fresh")
    started = time.monotonic()
    fresh.podman("pull", "--signature-policy", fresh.policy, "--tls-verify=false", remote)
    pulled = time.monotonic() - started
    assert max(pushed, pulled) < TLS_HANDSHAKE_TIMEOUT * 0.8, (
        f"buildah push took {pushed:.1f} s, podman pull {pulled:.1f} s: each waited for the "
        f"TLS handshake timeout ({TLS_HANDSHAKE_TIMEOUT:.0f} s) before falling back to HTTP"
    )
