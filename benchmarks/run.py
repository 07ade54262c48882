"""
registryd against CNCF Distribution 2.8 (Debian's docker-registry), side by
side on loopback, measured in alternation (A B, B A, A B ...) and reported as
medians and ratios registryd / Distribution.

    .venv/bin/python benchmarks/run.py [--rounds 3] [--duration 3] [--workers N] [--only NAME ...]

Needs wrk, hey, curl and docker-registry (Debian packages).  HEAD requests
are driven by hey: Debian's wrk 4.1 cannot parse HEAD answers.  Prints a table and
writes benchmarks/results/latest.json.
"""

import argparse
import hashlib
import http.client
import json
import mmap
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import load  # noqa: E402
from load import location  # noqa: E402
from content import DOCKER_MANIFEST, OCI_MANIFEST, digestOf, writeImage, writeLayerBlob  # noqa: E402
from servers import HERE, Distribution, Registryd  # noqa: E402

MiB = 1024 * 1024
ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
BIG = 256 * MiB
SHA256, LOOPBACK, DISK = "sha256 MiB/s", "loopback TCP MiB/s", "fsync'd disk write MiB/s"
DIRECT = "fsync'd O_DIRECT disk write MiB/s"


# The machine's own limits.


def sha256Rate():
    data = os.urandom(BIG)
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    return BIG / MiB / (time.perf_counter() - start)


def loopbackRate(total=1024 * MiB):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def sink():
        connection, _ = server.accept()
        buffer = bytearray(4 * MiB)
        while connection.recv_into(buffer):
            pass
        connection.close()

    thread = threading.Thread(target=sink)
    thread.start()
    client = socket.create_connection(server.getsockname())
    chunk = os.urandom(4 * MiB)
    start = time.perf_counter()
    for _ in range(total // len(chunk)):
        client.sendall(chunk)
    client.close()
    thread.join()
    server.close()
    return total / MiB / (time.perf_counter() - start)


def fsyncRate(path):
    """
    Write BIG bytes to a new file C{path} and fsync it.  The file is left in
    place (the caller removes it later): freeing it at once would hand its
    page-cache pages to the next push, and on these VMs a buffered write
    into pages freed a moment ago (which the host backs already) runs
    several times faster than into fresh ones.
    """
    chunk = os.urandom(8 * MiB)
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(BIG // len(chunk)):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return BIG / MiB / (time.perf_counter() - start)


def directRate(path):
    """
    As L{fsyncRate}, but written past the page cache (O_DIRECT), as
    registryd writes the bulk of an upload: on these VMs a buffered write
    of new data is bound by the kernel's copy into fresh page-cache pages
    (2.5 ms of processor time a MiB), not by the disk.
    """
    chunk = mmap.mmap(-1, 8 * MiB)  # page-aligned, as O_DIRECT wants
    chunk.write(os.urandom(8 * MiB))
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT)
    try:
        for offset in range(0, BIG, len(chunk)):
            os.pwrite(fd, chunk, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    return BIG / MiB / (time.perf_counter() - start)


# Clients.


def request(host, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(host, timeout=600)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


_WRK = re.compile(r"Requests/sec:\s+([\d.]+)")
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url, connections, duration, headers=()):
    """requests/s, p50 ms, p99 ms of GETs from wrk."""
    command = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run(command + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses from {url}")
    latencies = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(output)}
    return float(_WRK.search(output).group(1)), latencies["50"], latencies["99"]


_HEY_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_HEY_LATENCY = re.compile(r"(50|99)%+ in ([\d.]+) secs")
_HEY_STATUS = re.compile(r"\[(\d+)\]\s+(\d+) responses")


def hey(url, connections, duration, headers=(), method="HEAD"):
    """
    requests/s, p50 ms, p99 ms from hey: wrk 4.1 waits for a body after a
    HEAD answer's Content-Length, so it cannot drive HEAD requests.
    """
    command = ["hey", "-z", f"{duration}s", "-c", str(connections), "-m", method, "-disable-compression"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run(command + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    statuses = {int(code): int(n) for code, n in _HEY_STATUS.findall(output)}
    if set(statuses) != {200}:
        raise RuntimeError(f"hey saw statuses {statuses} from {url}")
    latencies = {p: float(v) * 1000 for p, v in _HEY_LATENCY.findall(output)}
    return float(_HEY_RATE.search(output).group(1)), latencies["50"], latencies["99"]


def withDigest(path, digest):
    """An upload's URL with the digest that closes it."""
    return f"{path}{'&' if '?' in path else '?'}digest={digest}"


def pushMonolithic(host, name, data, digest):
    start = time.perf_counter()
    status, headers, _ = request(host, "POST", f"/v2/{name}/blobs/uploads/")
    assert status == 202, status
    status, _, body = request(host, "PUT", withDigest(location(headers["Location"]), digest), data)
    assert status == 201, (status, body)
    return len(data) / MiB / (time.perf_counter() - start)


def pushChunked(host, name, data, digest, chunk=8 * MiB):
    start = time.perf_counter()
    status, headers, _ = request(host, "POST", f"/v2/{name}/blobs/uploads/")
    path = location(headers["Location"])
    view = memoryview(data)
    for offset in range(0, len(data), chunk):
        piece = view[offset : offset + chunk]
        status, headers, _ = request(
            host, "PATCH", path, piece,
            {"Content-Range": f"{offset}-{offset + len(piece) - 1}", "Content-Type": "application/octet-stream"},
        )
        assert status == 202, status
        path = location(headers["Location"])
    status, _, body = request(host, "PUT", withDigest(path, digest))
    assert status == 201, (status, body)
    return len(data) / MiB / (time.perf_counter() - start)


def smallPush(host, name, data):
    """A 4 KiB push as clients make it: POST, then PUT the bytes with the digest."""
    status, headers, body = yield load.requestBytes(host, "POST", f"/v2/{name}/blobs/uploads/")
    assert status == 202, (status, body)
    path = location(headers["location"])
    status, _, body = yield load.requestBytes(host, "PUT", withDigest(path, digestOf(data)), data)
    assert status == 201, (status, body)


def manifestPut(host, name, tag, payload):
    status, _, body = yield load.requestBytes(host, "PUT", f"/v2/{name}/manifests/{tag}", payload, [("Content-Type", OCI_MANIFEST)])
    assert status == 201, (status, body)


PULLS = 4  # transfers per stream and sample


def curlPulls(url, times):
    """A curl fetching C{url} C{times} times over one connection."""
    command = ["curl", "-s", "-w", "%{http_code}\\n"]
    for _ in range(times):
        command += ["-o", "/dev/null", url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def pull(host, path, streams):
    """
    MiB/s of C{streams} curls each pulling the blob L{PULLS} times in a row:
    one transfer lasts about 80 ms here, so a sample of one was as much
    the luck of the moment (and curl's start) as the server.
    """
    start = time.perf_counter()
    processes = [curlPulls(f"http://{host}{path}", PULLS) for _ in range(streams)]
    for process in processes:
        codes = process.communicate()[0].split()
        assert codes == ["200"] * PULLS, codes
    return BIG * PULLS * streams / MiB / (time.perf_counter() - start)


def walk(host, path):
    """
    Milliseconds to fetch a whole listing following Link headers, and the
    items, over one connection as clients walk listings (Distribution 2.8
    ignores n and answers one page; registryd pages as the spec says).
    """
    connection = http.client.HTTPConnection(host, timeout=600)
    start = time.perf_counter()
    items = 0
    try:
        while path:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, (response.status, body[:200])
            document = json.loads(body)
            items += len(document.get("tags") or document.get("repositories") or [])
            link = response.headers.get("Link")
            path = None
            if link:
                target = urlsplit(link.split(";")[0].strip("<> "))
                path = f"{target.path}?{target.query}"
    finally:
        connection.close()
    return (time.perf_counter() - start) * 1000, items


# The run.


class Bench:
    def __init__(self, arguments):
        self.arguments = arguments
        self.work = tempfile.mkdtemp(prefix="registryd-bench-")
        self.results = {}
        self.big = os.urandom(BIG)
        self.pushes = 0
        self.probes = {LOOPBACK: [], DISK: []}  # MiB/s

    def newBlob(self):
        """
        A 256 MiB blob neither server stores yet, and its digest: pushing
        the same blob again measures the registries' handling of a
        duplicate (written, then dropped), not storing a new layer.
        """
        self.pushes += 1
        data = self.pushes.to_bytes(8, "big") + self.big[8:]
        return data, digestOf(data)

    def smallPushes(self, host, name):
        """2,000 pushes of new 4 KiB blobs over 16 connections, into 16 repositories."""
        blobs = [os.urandom(4096) for _ in range(2000)]
        return load.run(host, 16, (smallPush(host, f"{name}-{i % 16}", data) for i, data in enumerate(blobs)))

    def prepare(self, root):
        os.makedirs(root)
        writeImage(root, "bench/manifests", ["oci"], OCI_MANIFEST, "oci")
        writeImage(root, "bench/manifests", ["docker"], DOCKER_MANIFEST, "docker")
        self.layer = writeLayerBlob(root, "bench/pull", self.big)
        tags = [f"t{i:05d}" for i in range(5000)]
        writeImage(root, "bench/tags5k", tags, OCI_MANIFEST, "tags")
        writeImage(root, "bench/tags10k", [f"t{i:05d}" for i in range(10000)], OCI_MANIFEST, "tags")
        for i in range(1000):
            writeImage(root, f"catalog/repo{i:04d}", ["latest"], OCI_MANIFEST, "catalog")
        _, self.manifest = writeImage(root, "bench/manifests", [], OCI_MANIFEST, "oci")

    def servers(self):
        # Each root written afresh, not copied from one seed: the 256 MiB
        # blob copied with shutil (which copies with sendfile) pulled 18%
        # slower than the same bytes written with write(), as a registry or
        # a download writes them (3,964 against 4,806 MiB/s, one registryd
        # stream; the page cache holds the two differently).
        roots = {}
        for kind in (Registryd, Distribution):
            roots[kind] = os.path.join(self.work, kind.name)
            self.prepare(roots[kind])
        # The seeds on disk before anything is measured: the kernel's writeback
        # of them would otherwise compete with the first metrics.
        os.sync()
        servers = []
        for kind, root in roots.items():
            workdir = os.path.join(self.work, f"{kind.name}-run")
            os.makedirs(workdir)
            server = kind(root, workdir, self.arguments.workers) if kind is Registryd else kind(root, workdir)
            servers.append(server.start())
        return servers

    def metrics(self):
        d = self.arguments.duration
        layerDigest = self.layer
        metrics = []
        for c in (1, 16, 64):
            metrics.append((f"manifest GET c{c}", "rps", lambda s, c=c: wrk(f"http://{s.host}/v2/bench/manifests/manifests/oci", c, d, [f"Accept: {ACCEPT}"])))
            metrics.append((f"manifest HEAD c{c} (hey)", "rps", lambda s, c=c: hey(f"http://{s.host}/v2/bench/manifests/manifests/docker", c, d, [f"Accept: {ACCEPT}"])))
            metrics.append((f"blob HEAD c{c} (hey)", "rps", lambda s, c=c: hey(f"http://{s.host}/v2/bench/pull/blobs/{layerDigest}", c, d)))
        counter = iter(range(10**9))
        metrics += [
            ("push 256 MiB monolithic", "MiB/s", lambda s: pushMonolithic(s.host, f"push/mono{next(counter)}", *self.newBlob())),
            ("push 256 MiB in 8 MiB chunks", "MiB/s", lambda s: pushChunked(s.host, f"push/chunked{next(counter)}", *self.newBlob())),
            # Before the 4 KiB pushes: on ext4 without a journal each inode
            # allocation skips those freed in the last minutes, Distribution's
            # pushes free five each (30,000 a metric), and registryd's PUTs
            # measured right after them ran 8% slower (2,298/s against 2,496).
            ("2000 manifest PUTs, c8", "PUTs/s", lambda s: load.run(s.host, 8, (manifestPut(s.host, "bench/manifests", f"p{next(counter)}", self.manifest) for _ in range(2000)))),
            ("2000 pushes of 4 KiB, c16", "pushes/s", lambda s: self.smallPushes(s.host, f"small/r{next(counter)}")),
            ("pull 256 MiB, 1 stream", "MiB/s", lambda s: pull(s.host, f"/v2/bench/pull/blobs/{layerDigest}", 1)),
            ("pull 256 MiB, 4 streams", "MiB/s", lambda s: pull(s.host, f"/v2/bench/pull/blobs/{layerDigest}", 4)),
            ("Range read 1 MiB, c16", "rps", lambda s: wrk(f"http://{s.host}/v2/bench/pull/blobs/{layerDigest}", 16, d, ["Range: bytes=1048576-2097151"])),
            ("tags/list walk, 5,000 tags", "ms", lambda s: walk(s.host, "/v2/bench/tags5k/tags/list?n=1000")[0]),
            ("tags/list walk, 10,000 tags", "ms", lambda s: walk(s.host, "/v2/bench/tags10k/tags/list?n=1000")[0]),
            ("_catalog walk, 1,000 repositories", "ms", lambda s: walk(s.host, "/v2/_catalog?n=100")[0]),
        ]
        only = self.arguments.only
        return [m for m in metrics if not only or any(o.lower() in m[0].lower() for o in only)]

    def run(self):
        limits = {SHA256: sha256Rate()}
        servers = self.servers()
        limits[DIRECT] = directRate(os.path.join(self.work, "direct-probe"))
        try:
            rows = []
            for name, unit, measure in self.metrics():
                samples = {s.name: [] for s in servers}
                bound = boundOf(name)
                for turn in range(self.arguments.rounds):
                    if bound is not None:
                        self.probe(bound)
                    # A B, then B A: neither server always follows the other
                    # into a disk or a cache the other has just worked.
                    for server in servers if turn % 2 == 0 else servers[::-1]:
                        samples[server.name].append(measure(server))
                rows.append((name, unit, samples))
                print(f"  measured {name}", file=sys.stderr)
            rss = {s.name: s.peakRSS() / MiB for s in servers}
            for limit, values in self.probes.items():
                if not values:
                    self.probe(limit)
                limits[limit] = statistics.median(values)
        finally:
            for server in servers:
                server.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        return limits, rows, rss

    def probe(self, limit):
        """
        A limit as the next round of transfers finds it: the disk's and the
        loopback's swing from minute to minute here (recently freed blocks,
        where the scheduler puts the two ends), so each is probed just before
        each round of the transfers measured against it.
        """
        values = self.probes[limit]
        if limit == DISK:
            values.append(fsyncRate(os.path.join(self.work, f"fsync-probe-{len(values)}")))
        else:
            values.append(loopbackRate())


def boundOf(name):
    """
    The machine's limit a transfer metric is measured against: a push
    against min(sha256, fsync'd disk writes), since it hashes and stores
    each byte, a pull against loopback TCP.  None for others.
    """
    if name.startswith("push 256 MiB"):
        return DISK  # sha256 too, a steady processor rate probed once
    if name.startswith("pull 256 MiB"):
        return LOOPBACK
    return None


def limitOf(name, limits):
    """The bound of a transfer metric: its rate, and what it is."""
    if boundOf(name) == DISK:
        return min((limits[SHA256], "sha256"), (limits[DISK], "fsync'd disk writes"))
    return limits[LOOPBACK], "loopback TCP"


def summarise(samples):
    """Medians, and the samples in the order taken (a round's drift shows there)."""
    if isinstance(samples[0], tuple):
        return {
            "value": statistics.median(s[0] for s in samples),
            "p50 ms": statistics.median(s[1] for s in samples),
            "p99 ms": statistics.median(s[2] for s in samples),
            "samples": [s[0] for s in samples],
        }
    return {"value": statistics.median(samples), "samples": samples}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=None, help="registryd --workers")
    parser.add_argument("--only", nargs="*", help="metrics whose name contains one of these")
    arguments = parser.parse_args()
    bench = Bench(arguments)
    limits, rows, rss = bench.run()
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": vars(arguments),
        "limits": limits,
        "probes MiB/s": bench.probes,
        "metrics": [],
        "peak RSS MiB": rss,
    }
    print(f"\nmachine: {os.cpu_count()} CPUs, {platform.platform()}")
    for name, value in limits.items():
        probes = bench.probes.get(name, ())
        each = f" (median of {', '.join(f'{v:,.0f}' for v in probes)}, one before each round)" if len(probes) > 1 else ""
        print(f"  {name}: {value:,.0f}{each}")
    print("\n| metric | unit | registryd | Distribution | ratio | registryd p50/p99 ms | Distribution p50/p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, unit, samples in rows:
        ours, theirs = summarise(samples["registryd"]), summarise(samples["distribution"])
        ratio = ours["value"] / theirs["value"] if theirs["value"] else float("nan")
        latency = lambda s: f"{s['p50 ms']:.2f} / {s['p99 ms']:.2f}" if "p50 ms" in s else ""
        print(f"| {name} | {unit} | {ours['value']:,.2f} | {theirs['value']:,.2f} | {ratio:.2f} | {latency(ours)} | {latency(theirs)} |")
        report["metrics"].append({"name": name, "unit": unit, "registryd": ours, "distribution": theirs, "ratio": ratio})
    print(f"| peak RSS | MiB | {rss['registryd']:,.0f} | {rss['distribution']:,.0f} | {rss['registryd'] / rss['distribution']:.2f} | | |")
    bound = [m for m in report["metrics"] if boundOf(m["name"])]
    if bound:
        print("\n| transfer | bound by | limit MiB/s | registryd | Distribution |")
        print("|---|---|---|---|---|")
    for metric in bound:
        limit, what = limitOf(metric["name"], limits)
        for server in ("registryd", "distribution"):
            metric[server]["fraction of limit"] = metric[server]["value"] / limit
        print(
            f"| {metric['name']} | {what} | {limit:,.0f} | {metric['registryd']['fraction of limit']:.0%} "
            f"| {metric['distribution']['fraction of limit']:.0%} |"
        )
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "latest.json"), "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
