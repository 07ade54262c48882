"""
The two servers under comparison, started on loopback with equivalent
settings: filesystem storage, no authentication, logging at warn.
"""

import os
import socket
import subprocess
import sys
import time
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(HERE)
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
DISTRIBUTION = "/usr/bin/docker-registry"


def freePort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peakRSS(pid):
    """Peak resident set (VmHWM) of process C{pid} and its children, in bytes."""
    total = 0
    for candidate in [pid] + _children(pid):
        try:
            with open(f"/proc/{candidate}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


class Server:
    name = None

    def __init__(self, root, workdir):
        self.root = root
        self.workdir = workdir
        self.port = freePort()
        self.process = None

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        log = open(os.path.join(self.workdir, f"{self.name}.log"), "ab")
        self.process = subprocess.Popen(
            self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=self.environment()
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection(self.host, timeout=2)
                connection.request("GET", "/v2/")
                if connection.getresponse().status == 200:
                    return self
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def environment(self):
        return dict(os.environ)

    def peakRSS(self):
        return peakRSS(self.process.pid)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Registryd(Server):
    name = "registryd"

    def __init__(self, root, workdir, workers=None):
        super().__init__(root, workdir)
        self.workers = workers

    def command(self):
        config = os.path.join(self.workdir, "registryd.yaml")
        with open(config, "w") as f:
            f.write(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.root}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n"
            )
        extra = ["--workers", str(self.workers)] if self.workers else []
        return [TWISTD, "-n", "--pidfile=", "registryd", "--config", config, *extra]

    def environment(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = REPOSITORY + os.pathsep + env.get("PYTHONPATH", "")
        return env


class Distribution(Server):
    name = "distribution"

    def command(self):
        config = os.path.join(self.workdir, "distribution.yaml")
        with open(config, "w") as f:
            f.write(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.root}\n  delete:\n    enabled: true\n"
                "  cache:\n    blobdescriptor: inmemory\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: benchmark-secret\n"
            )
        return [DISTRIBUTION, "serve", config]
