"""
The real thing: C{twistd -n registryd} with notifications configured, a
real HTTP receiver in this process, and plain C{http.client} requests.
"""

import hashlib
import json
import os
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registryd.notifications.events import EVENTS_MEDIA_TYPE
from registryd.notifications.notifier import spoolName
from tests.process.twistd import Twistd

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BLOB = "application/octet-stream"
USER_AGENT = "delivery-test/1.0"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Receiver:
    """
    A webhook receiver: records the events of each 2xx-answered POST by
    path; answers 500 to the next C{failures} POSTs; L{stop} takes it down.
    """

    def __init__(self):
        self.port = 0
        self.posts = []  # (path, headers, events)
        self.attempts = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._server = None

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.failures > 0
                    if failing:
                        receiver.failures -= 1
                    else:
                        receiver.posts.append((self.path, self.headers, json.loads(body)["events"]))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path="/events"):
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self, path=None):
        with self._lock:
            return [e for p, _, events in self.posts if path in (None, p) for e in events]

    def waitFor(self, count, path=None, timeout=20):
        """The first C{count} events (of C{path}), once they have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(path)
            if len(events) >= count:
                return events
            time.sleep(0.02)
        raise AssertionError(f"{len(self.events(path))} events of {count} arrived: {self.events(path)}")


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def registry(tmp_path):
    """C{start(endpoints)} runs registryd notifying C{endpoints} (YAML text); stopped at teardown."""
    started = []

    def start(endpoints):
        config = tmp_path / "registry.yaml"
        config.write_text(
            "version: 0.1\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n"
            "  delete:\n    enabled: true\n"
            "notifications:\n"
            "  endpoints:\n" + endpoints
        )
        process = Twistd(
            ["--config", str(config), "--listen", "tcp:0:interface=127.0.0.1"],
            str(tmp_path),
            str(tmp_path / "twistd.log"),
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def endpoint(name, url, extra=""):
    """One endpoint, with back-off short enough for a test."""
    return (
        f"    - name: {name}\n"
        f"      url: {url}\n"
        "      timeout: 2s\n"
        "      threshold: 2\n"
        "      backoff: 20ms\n"
        "      maxbackoff: 100ms\n"
        "      headers:\n        X-Hook-Secret: [s3cret]\n"
    ) + extra


def digestOf(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def call(process, method, path, body=None, headers=None, expect=None):
    status, responseHeaders, content = process.request(
        method, path, body, {"User-Agent": USER_AGENT, **(headers or {})}
    )
    if expect is not None:
        assert status == expect, (method, path, status, content)
    return responseHeaders, content


def pushBlob(process, name, data):
    call(process, "POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(data)}", data, expect=201)
    return digestOf(data)


def pushImage(process, name, tag, seed=b""):
    config = b'{"seed": "%s"}' % seed
    layer = b"layer " + seed
    for blob in (config, layer):
        pushBlob(process, name, blob)
    payload = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digestOf(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digestOf(layer), "size": len(layer)}],
        }
    ).encode()
    call(process, "PUT", f"/v2/{name}/manifests/{tag}", payload, {"Content-Type": OCI_MANIFEST}, expect=201)
    return digestOf(config), digestOf(layer), digestOf(payload), payload


def summary(events):
    """What each event is about, in order: (action, repository, digest or tag)."""
    return [
        (e["action"], e["target"]["repository"], e["target"].get("digest") or e["target"].get("tag"))
        for e in events
    ]


def test_pushPullMountDeleteEvents(receiver, registry):
    process = registry(endpoint("hook", receiver.url()))
    config, layer, manifest, payload = pushImage(process, "lib/app", "v1")
    _, content = call(process, "GET", "/v2/lib/app/manifests/v1", headers={"Accept": OCI_MANIFEST}, expect=200)
    assert content == payload
    call(process, "HEAD", "/v2/lib/app/manifests/v1", headers={"Accept": OCI_MANIFEST}, expect=200)
    call(process, "GET", f"/v2/lib/app/blobs/{layer}", expect=200)
    call(process, "HEAD", f"/v2/lib/app/blobs/{layer}", expect=200)
    call(process, "POST", f"/v2/other/blobs/uploads/?mount={layer}&from=lib/app", expect=201)
    call(process, "DELETE", "/v2/lib/app/manifests/v1", expect=202)
    call(process, "DELETE", f"/v2/lib/app/manifests/{manifest}", expect=202)
    call(process, "DELETE", f"/v2/other/blobs/{layer}", expect=202)

    events = receiver.waitFor(9)
    host = f"127.0.0.1:{process.port}"
    base = f"http://{host}/v2"
    assert summary(events) == [
        ("push", "lib/app", config),
        ("push", "lib/app", layer),
        ("push", "lib/app", manifest),
        ("pull", "lib/app", manifest),
        ("pull", "lib/app", layer),
        ("mount", "other", layer),
        ("delete", "lib/app", "v1"),
        ("delete", "lib/app", manifest),
        ("delete", "other", layer),
    ]
    time.sleep(0.3)
    assert len(receiver.events()) == 9  # HEADs are not pulls

    push, pull, mount = events[2], events[4], events[5]
    assert push["target"] == {
        "mediaType": OCI_MANIFEST,
        "size": len(payload),
        "digest": manifest,
        "length": len(payload),
        "repository": "lib/app",
        "url": f"{base}/lib/app/manifests/{manifest}",
        "tag": "v1",
    }
    assert pull["target"] == {
        "mediaType": BLOB,
        "size": len(b"layer "),
        "digest": layer,
        "length": len(b"layer "),
        "repository": "lib/app",
        "url": f"{base}/lib/app/blobs/{layer}",
    }
    assert mount["target"]["fromRepository"] == "lib/app"
    assert mount["target"]["url"] == f"{base}/other/blobs/{layer}"
    assert events[3]["target"]["tag"] == "v1"
    assert events[6]["target"] == {"repository": "lib/app", "tag": "v1"}
    assert events[7]["target"] == {"digest": manifest, "repository": "lib/app"}

    methods = ["POST", "POST", "PUT", "GET", "GET", "POST", "DELETE", "DELETE", "DELETE"]
    assert [e["request"]["method"] for e in events] == methods
    for e in events:
        assert set(e) == {"id", "timestamp", "action", "target", "request", "actor", "source"}
        assert RFC3339.match(e["timestamp"])
        assert e["request"]["host"] == host
        assert e["request"]["useragent"] == USER_AGENT
        assert e["request"]["addr"].startswith("127.0.0.1:")
        assert e["actor"] == {}
        assert e["source"]["addr"].endswith(f":{process.port}")
    assert len({e["id"] for e in events}) == 9
    assert len({e["source"]["instanceID"] for e in events}) == 1
    uuid.UUID(events[0]["source"]["instanceID"])
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    for _, headers, _ in receiver.posts:
        assert headers["Content-Type"] == EVENTS_MEDIA_TYPE
        assert headers["X-Hook-Secret"] == "s3cret"


def test_orderAndRetryAfterTheReceiverFails(receiver, registry):
    process = registry(endpoint("hook", receiver.url()))
    receiver.failures = 4
    digests = [pushBlob(process, "a", b"blob %d" % n) for n in range(6)]
    events = receiver.waitFor(6)
    assert [e["target"]["digest"] for e in events] == digests
    assert receiver.attempts > 4  # the failed ones, then deliveries
    time.sleep(0.3)
    assert len(receiver.events()) == 6  # each delivered once


def test_deliveredOnceTheReceiverIsBack(receiver, registry, tmp_path):
    process = registry(endpoint("hook", receiver.url()))
    first = pushBlob(process, "a", b"first")
    receiver.waitFor(1)
    receiver.stop()
    later = [pushBlob(process, "a", b"later %d" % n) for n in range(3)]
    time.sleep(0.5)  # several refused connections
    receiver.start()
    events = receiver.waitFor(4)
    assert [e["target"]["digest"] for e in events] == [first, *later]
    assert "failed in a row" in process.log()  # threshold 2: logged as down


@pytest.mark.parametrize("stop", ["stop", "kill"])
def test_redeliveryAfterRestart(receiver, registry, tmp_path, stop):
    config = endpoint("hook", receiver.url())
    process = registry(config)
    delivered = pushBlob(process, "a", b"delivered")
    receiver.waitFor(1)
    receiver.stop()
    spooled = [pushBlob(process, "a", b"spooled %d" % n) for n in range(3)]
    getattr(process, stop)()
    spool = tmp_path / "root" / "notifications" / spoolName("hook")
    assert any(name.startswith("segment-") for name in os.listdir(spool))

    receiver.start()
    time.sleep(0.2)
    assert len(receiver.events()) == 1  # nobody has sent them: they are on disk
    process = registry(config)
    after = pushBlob(process, "a", b"after restart")
    events = receiver.waitFor(5)
    assert [e["target"]["digest"] for e in events] == [delivered, *spooled, after]
    time.sleep(0.3)
    assert len(receiver.events()) == 5  # the first was not sent again


def test_filters(receiver, registry):
    process = registry(
        endpoint("nopull", receiver.url("/nopull"), "      ignore:\n        actions: [pull]\n")
        + endpoint("noblobs", receiver.url("/noblobs"), f"      ignoredmediatypes: [{BLOB}]\n")
        + endpoint("nomanifests", receiver.url("/nomanifests"), f"      ignore:\n        mediatypes: [{OCI_MANIFEST}]\n")
    )
    config, layer, manifest, _ = pushImage(process, "a", "v1")
    call(process, "GET", "/v2/a/manifests/v1", headers={"Accept": OCI_MANIFEST}, expect=200)
    call(process, "GET", f"/v2/a/blobs/{layer}", expect=200)
    # Every endpoint gets this delete, and each endpoint's events arrive in
    # order: once it is in, anything filtered out would have been in too.
    call(process, "DELETE", "/v2/a/manifests/v1", expect=202)
    expected = {
        "/nopull": [("push", "a", config), ("push", "a", layer), ("push", "a", manifest), ("delete", "a", "v1")],
        "/noblobs": [("push", "a", manifest), ("pull", "a", manifest), ("delete", "a", "v1")],
        "/nomanifests": [("push", "a", config), ("push", "a", layer), ("pull", "a", layer), ("delete", "a", "v1")],
    }
    for path, events in expected.items():
        arrived = receiver.waitFor(len(events), path)
        assert summary(arrived) == events, path
    time.sleep(0.3)
    for path, events in expected.items():
        assert len(receiver.events(path)) == len(events), path
