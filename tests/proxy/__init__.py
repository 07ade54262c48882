"""
Tests of the pull-through cache, and what they share:

  - L{TCPProxy}: a loopback TCP proxy (in threads) put between the cache and
    its upstream, which records request lines, throttles the upstream's
    answers, or stalls one of them after some bytes;
  - the C{upstreamDistribution} fixture: Debian's Distribution as an
    upstream, with or without htpasswd authentication;
  - blocking HTTP helpers pushing images to a real registry (registryd or
    Distribution), with Basic credentials or a bearer token.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
from urllib.parse import urlencode, urlsplit

from twisted.internet import reactor

import pytest

from registryd.auth.htpasswd import addUser
from tests.interop.conftest import DistributionProcess, merged, requireTool

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Connection:
    def __init__(self, downstream, upstream):
        self.downstream = downstream
        self.upstream = upstream
        self.sent = 0  # bytes of answers forwarded on this connection
        self.stallAt = None
        self.closed = threading.Event()
        self.tail = b""

    def close(self):
        self.closed.set()
        for sock in (self.downstream, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class TCPProxy:
    """
    Forwards connections on C{127.0.0.1:<port>} to C{target} (C{"host:port"}).

    @ivar requests: C{(method, path)} of every request line seen, in order.
    @ivar rate: Bytes per second the upstream's answers are forwarded at
        (None: as fast as they come).
    @ivar forwarded: Bytes of answers forwarded so far, on all connections.
    """

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.url = f"http://{self.host}"
        self.requests = []
        self.rate = None
        self.forwarded = 0
        self._stall = None
        self._lock = threading.Lock()
        self._connections = []
        self._threads = []
        self._closing = False
        self._start(self._accept)

    def _start(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stall(self, pattern, after=0):
        """Stall the answer to the next request whose path contains C{pattern}, after C{after} bytes."""
        self._stall = (pattern, after)

    def count(self, method, pathPart):
        """How many C{method} requests had C{pathPart} in their path."""
        return sum(1 for m, p in self.requests if m == method and pathPart in p)

    def _accept(self):
        while not self._closing:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                downstream.close()
                continue
            connection = _Connection(downstream, upstream)
            with self._lock:
                self._connections.append(connection)
            self._start(self._up, connection)
            self._start(self._down, connection)

    def _up(self, connection):
        """Requests: forwarded as they are; request lines noted."""
        try:
            while data := connection.downstream.recv(65536):
                seen = connection.tail + data
                for match in _REQUEST_LINE.finditer(seen):
                    method, path = match.group(1).decode(), match.group(2).decode()
                    self.requests.append((method, path))
                    if self._stall is not None and self._stall[0] in path:
                        connection.stallAt = connection.sent + self._stall[1]
                        self._stall = None
                connection.tail = seen[-200:]
                connection.upstream.sendall(data)
        except OSError:
            pass
        connection.close()

    def _down(self, connection):
        """Answers: throttled or stalled as configured."""
        try:
            while data := connection.upstream.recv(65536):
                if connection.stallAt is not None:
                    allowed = max(connection.stallAt - connection.sent, 0)
                    if len(data) > allowed:
                        connection.downstream.sendall(data[:allowed])
                        connection.sent += allowed
                        self.forwarded += allowed
                        connection.closed.wait()  # stalled until someone gives up
                        return
                connection.downstream.sendall(data)
                connection.sent += len(data)
                self.forwarded += len(data)
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        connection.close()

    def close(self):
        self._closing = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                connection.close()
        for thread in self._threads:
            thread.join(5)


# Pushing to a real registry over HTTP (blocking) ------------------------------


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(host, method, path, body=None, headers=None, timeout=60):
    """One request; C{(status, headers, body)}."""
    connection = http.client.HTTPConnection(host, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def bearerToken(host, service, scope, user, password):
    """A token from a registryd built-in issuer at C{http://host/token}."""
    query = urlencode({"service": service, "scope": scope})
    status, _, body = call(host, "GET", f"/token?{query}", headers={"Authorization": basic(user, password)})
    assert status == 200, body
    return "Bearer " + json.loads(body)["token"]


def pushBlob(host, name, data, authorization=None):
    headers = {"Authorization": authorization} if authorization else {}
    status, answer, body = call(host, "POST", f"/v2/{name}/blobs/uploads/", b"", headers)
    assert status == 202, (status, body)
    location = urlsplit(answer["Location"])
    path = location.path + "?" + (location.query + "&" if location.query else "") + f"digest={sha256(data)}"
    status, _, body = call(
        host, "PUT", path, data, {**headers, "Content-Type": "application/octet-stream"}, timeout=300
    )
    assert status == 201, (status, body)
    return sha256(data)


def pushManifest(host, name, reference, payload, mediaType=OCI_MANIFEST, authorization=None):
    headers = {"Content-Type": mediaType}
    if authorization:
        headers["Authorization"] = authorization
    status, _, body = call(host, "PUT", f"/v2/{name}/manifests/{reference}", payload, headers)
    assert status == 201, (status, body)
    return sha256(payload)


def imageManifest(config, layers):
    """An OCI image manifest's bytes (indented, to be served as they are)."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(l), "size": len(l)} for l in layers],
    }
    return json.dumps(document, indent=3).encode() + b"\n"


class Pushed:
    """An image pushed by L{pushImage}: its manifest and blobs."""

    def __init__(self, manifest, config, layers):
        self.manifest = manifest
        self.digest = sha256(manifest)
        self.config = config
        self.layers = layers

    def blobs(self):
        return {sha256(b): b for b in [self.config, *self.layers]}


def pushImage(host, name, tag, layers, seed="image", authorization=None):
    """Push an OCI image of C{layers} (bytes) to C{name:tag}; return a L{Pushed}."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    for blob in [config, *layers]:
        pushBlob(host, name, blob, authorization)
    manifest = imageManifest(config, layers)
    pushManifest(host, name, tag, manifest, authorization=authorization)
    return Pushed(manifest, config, layers)


# Distribution as the upstream ---------------------------------------------------


class UpstreamDistribution(DistributionProcess):
    """A Distribution whose every request (its readiness check too) carries C{authorization}."""

    authorization = None

    def call(self, method, path, headers=(), body=None, timeout=120):
        if self.authorization is not None:
            headers = [*headers, ("Authorization", self.authorization)]
        return super().call(method, path, headers, body, timeout)


@pytest.fixture
def upstreamDistribution(tmp_path):
    """
    C{upstreamDistribution(users=None, config=None)}: start Debian's
    C{docker-registry} on a free loopback port; with C{users} (a mapping of
    name to password) behind htpasswd authentication, its requests from the
    test made as the first user.  Stopped at teardown.
    """
    requireTool("docker-registry")
    started = []

    def start(users=None, config=None):
        n = len(started)
        root = str(tmp_path / f"upstream-root-{n}")
        settings = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": root}, "delete": {"enabled": True}},
            "http": {"secret": "proxy-test-secret"},
        }
        process = UpstreamDistribution(
            str(tmp_path / f"upstream-{n}.yaml"), root, str(tmp_path / f"upstream-{n}.log")
        )
        if users:
            path = str(tmp_path / f"upstream-{n}.htpasswd")
            for user, password in users.items():
                addUser(path, user, password, rounds=4)
            settings["auth"] = {"htpasswd": {"realm": "upstream", "path": path}}
            process.authorization = basic(*next(iter(users.items())))
        started.append(process)
        return process.start(merged(settings, config))

    yield start
    for process in started:
        process.stop()


def blobPath(root, digest):
    """Where a filesystem registry under C{root} keeps a blob's bytes."""
    algorithm, hex = digest.split(":")
    return os.path.join(root, "docker/registry/v2/blobs", algorithm, hex[:2], hex, "data")


class ShiftedClock:
    """The reactor's clock, moved forward by C{offset} seconds when asked."""

    def __init__(self):
        self.offset = 0.0

    def seconds(self):
        return reactor.seconds() + self.offset

    def callLater(self, delay, f, *args, **kwargs):
        return reactor.callLater(delay, f, *args, **kwargs)
