"""--workers N: processes sharing the listening socket, any of them serving any request."""

import hashlib
import os
import signal
import subprocess
import time

from tests.process.twistd import environment, twistdCommand


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def cpuTicks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_workersShareTheLoad(twistd, tmp_path):
    process = twistd(
        "--listen", "tcp:0:interface=127.0.0.1", "--storage-root", str(tmp_path / "root"), "--workers", "2"
    )
    deadline = time.monotonic() + 30
    while not children(process.process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (worker,) = children(process.process.pid)
    # The worker listens on the same port (it adopted the socket).
    from tests.process.twistd import listeningPorts

    while process.port not in listeningPorts(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listeningPorts(worker) == [process.port]
    before = {pid: cpuTicks(pid) for pid in (process.process.pid, worker)}
    # Many connections in parallel: both processes take some.
    wrk = subprocess.run(
        ["wrk", "-t2", "-c32", "-d2s", f"http://{process.host}/v2/"], capture_output=True, text=True
    )
    assert "Requests/sec" in wrk.stdout, wrk.stderr
    used = {pid: cpuTicks(pid) - before[pid] for pid in before}
    assert all(ticks > 10 for ticks in used.values()), used
    # What one process stored, another serves: push and pull many times.
    for i in range(20):
        data = os.urandom(1000) + bytes([i])
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = process.request("POST", f"/v2/w/blobs/uploads/?digest={digest}", data)
        assert status == 201
        status, _, body = process.request("GET", f"/v2/w/blobs/{digest}")
        assert (status, body) == (200, data)


def test_deadWorkerIsReplacedAndAllStopTogether(tmp_path):
    from tests.process.twistd import Twistd

    process = Twistd(
        ["--listen", "tcp:0:interface=127.0.0.1", "--storage-root", str(tmp_path / "root"), "--workers", "3"],
        str(tmp_path),
        str(tmp_path / "log"),
    ).start()
    try:
        deadline = time.monotonic() + 30
        while len(children(process.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first = children(process.process.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        while time.monotonic() < deadline:
            now = children(process.process.pid)
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.1)
        replaced = children(process.process.pid)
        assert len(replaced) == 2 and first[0] not in replaced
        assert process.request("GET", "/v2/")[0] == 200
    finally:
        process.stop()
    for pid in replaced:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_sslStringCannotBeShared(tmp_path):
    from registryd.cli import main

    assert main(["make-cert", "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")]) == 0
    result = subprocess.run(
        twistdCommand("--listen", "ssl:0:privateKey=k.pem:certKey=c.pem", "--workers", "2"),
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "registryd: --workers: cannot share the listener 'ssl:0:privateKey=k.pem:certKey=c.pem' "
        "between processes (use tcp: listeners, with http.tls for TLS)"
    ]
