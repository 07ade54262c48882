"""
Large blobs through the real twistd process: a 1 GiB chunked upload and
download with bounded server memory; resuming an upload across a kill -9.
"""

import hashlib
import http.client
import os

GiB = 1024 * 1024 * 1024
CHUNK = 64 * 1024 * 1024
BLOCK = os.urandom(1024 * 1024)


def content(offset, length):
    """Deterministic, incompressible bytes: block i is BLOCK with i stamped in."""
    out = bytearray()
    while length > 0:
        index, within = divmod(offset, len(BLOCK))
        block = index.to_bytes(8, "big") + BLOCK[8:]
        piece = block[within : within + length]
        out += piece
        offset += len(piece)
        length -= len(piece)
    return bytes(out)


def patch(process, location, offset, data):
    connection = http.client.HTTPConnection(process.host, timeout=300)
    try:
        connection.request(
            "PATCH",
            location,
            body=data,
            headers={"Content-Range": f"{offset}-{offset + len(data) - 1}", "Content-Type": "application/octet-stream"},
        )
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        connection.close()


def test_oneGiBChunkedUploadAndDownloadBoundedMemory(twistd, tmp_path):
    process = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", str(tmp_path / "root"))
    status, headers, _ = process.request("POST", "/v2/big/blobs/uploads/")
    assert status == 202
    location = headers["Location"].split(process.host, 1)[-1]
    hasher = hashlib.sha256()
    for offset in range(0, GiB, CHUNK):
        data = content(offset, CHUNK)
        hasher.update(data)
        status, headers = patch(process, location, offset, data)
        assert status == 202
        assert headers["Range"] == f"0-{offset + CHUNK - 1}"
        location = headers["Location"].split(process.host, 1)[-1]
    digest = "sha256:" + hasher.hexdigest()
    status, headers, body = process.request("PUT", f"{location}?digest={digest}")
    assert status == 201, body
    # Download, streaming, and check every byte.
    connection = http.client.HTTPConnection(process.host, timeout=300)
    connection.request("GET", f"/v2/big/blobs/{digest}")
    response = connection.getresponse()
    assert response.status == 200
    assert int(response.headers["Content-Length"]) == GiB
    check = hashlib.sha256()
    received = 0
    while chunk := response.read(8 * 1024 * 1024):
        check.update(chunk)
        received += len(chunk)
    connection.close()
    assert received == GiB
    assert "sha256:" + check.hexdigest() == digest
    peak = process.peakRSS()
    assert peak < 200 * 1024 * 1024, f"peak RSS {peak / 1048576:.0f} MiB"


def test_uploadResumesAfterKill9(twistd, tmp_path):
    """Upload state lives in storage: a new process continues what a killed one started."""
    root = str(tmp_path / "root")
    first = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", root)
    status, headers, _ = first.request("POST", "/v2/a/blobs/uploads/")
    location = headers["Location"].split(first.host, 1)[-1]
    data = content(0, 3_000_000)
    status, headers = patch(first, location, 0, data[:1_000_000])
    assert status == 202
    first.kill()
    second = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", root)
    status, headers, _ = second.request("GET", location)
    assert status == 204
    assert headers["Range"] == "0-999999"
    status, headers = patch(second, location, 1_000_000, data[1_000_000:2_000_000])
    assert status == 202
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers, body = second.request(
        "PUT", f"{location}?digest={digest}", body=data[2_000_000:], headers={"Content-Range": "2000000-2999999"}
    )
    assert status == 201, body
    # What the client was told is stored survives another kill -9.
    second.kill()
    third = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", root)
    status, _, body = third.request("GET", f"/v2/a/blobs/{digest}")
    assert (status, body == data) == (200, True)


def test_twoProcessesShareUploads(twistd, tmp_path):
    """A session started by one process is continued and finished by another."""
    root = str(tmp_path / "root")
    one = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", root)
    two = twistd("--listen", "tcp:0:interface=127.0.0.1", "--storage-root", root)
    status, headers, _ = one.request("POST", "/v2/a/blobs/uploads/")
    location = headers["Location"].split(one.host, 1)[-1]
    data = content(5, 2_500_000)
    assert patch(one, location, 0, data[:1_000_000])[0] == 202
    assert patch(two, location, 1_000_000, data[1_000_000:2_000_000])[0] == 202
    assert patch(one, location, 2_000_000, data[2_000_000:])[0] == 202
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, body = two.request("PUT", f"{location}?digest={digest}")
    assert status == 201, body
    status, _, body = one.request("GET", f"/v2/a/blobs/{digest}")
    assert body == data
