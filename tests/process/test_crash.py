"""
A registry killed (-9) in the middle of pushes: what a client was told is
stored is served by the next process, and nothing half-written is visible.
"""

import hashlib
import http.client
import json
import os
import threading
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
NAME = "crash/app"
WRITERS = 4


def digestOf(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pushBlob(connection, data):
    connection.request("POST", f"/v2/{NAME}/blobs/uploads/?digest={digestOf(data)}", body=data)
    response = connection.getresponse()
    response.read()
    return response.status


def descriptor(mediaType, data):
    return {"mediaType": mediaType, "digest": digestOf(data), "size": len(data)}


def test_acknowledgedPushesSurviveKill9AndNothingIsHalfWritten(twistd, tmp_path):
    root = str(tmp_path / "root")
    first = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", root)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    base = http.client.HTTPConnection(first.host, timeout=30)
    assert pushBlob(base, config) == 201
    base.close()
    acknowledged = {"blobs": {}, "tags": {}}
    lock = threading.Lock()

    def writer(w):
        # New layers and new tagged manifests, for as long as the registry answers.
        connection = http.client.HTTPConnection(first.host, timeout=30)
        try:
            for i in range(100000):
                layer = os.urandom(2000) + f"{w}-{i}".encode()
                if pushBlob(connection, layer) != 201:
                    return
                with lock:
                    acknowledged["blobs"][digestOf(layer)] = layer
                manifest = json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
                    }
                ).encode()
                tag = f"w{w}-{i}"
                connection.request("PUT", f"/v2/{NAME}/manifests/{tag}", body=manifest, headers={"Content-Type": OCI_MANIFEST})
                response = connection.getresponse()
                response.read()
                if response.status != 201:
                    return
                with lock:
                    acknowledged["tags"][tag] = manifest
        except (OSError, http.client.HTTPException):
            return  # killed
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged["tags"]) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.kill()
    for thread in threads:
        thread.join(30)
    assert len(acknowledged["tags"]) >= 200

    second = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", root)
    connection = http.client.HTTPConnection(second.host, timeout=30)

    def get(path, headers=None):
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()

    for digest, layer in acknowledged["blobs"].items():
        assert get(f"/v2/{NAME}/blobs/{digest}")[::2] == (200, layer)
    status, _, body = get(f"/v2/{NAME}/tags/list?n=100000")
    assert status == 200
    listed = json.loads(body)["tags"]
    assert set(acknowledged["tags"]) <= set(listed)
    # Every tag listed is whole, the acknowledged ones and any the kill cut off
    # before its answer: a manifest of blobs that are all there.
    for tag in listed:
        status, headers, manifest = get(f"/v2/{NAME}/manifests/{tag}", {"Accept": OCI_MANIFEST})
        assert status == 200, (tag, manifest)
        assert headers["Docker-Content-Digest"] == digestOf(manifest)
        if tag in acknowledged["tags"]:
            assert manifest == acknowledged["tags"][tag]
        for blob in json.loads(manifest)["layers"] + [json.loads(manifest)["config"]]:
            connection.request("HEAD", f"/v2/{NAME}/blobs/{blob['digest']}")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, blob
    connection.close()
