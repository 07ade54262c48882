"""Running the real C{twistd -n registryd} as a child process, for tests."""

import http.client
import os
import signal
import subprocess
import sys
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def listeningPorts(pid):
    """The TCP ports process C{pid} listens on, sorted (from /proc, whatever it logs)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return sorted(ports)


def environment():
    """The child's environment: this checkout first on the path, so its plugin is found."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPOSITORY + os.pathsep + env.get("PYTHONPATH", "")
    return env


def twistdCommand(*arguments):
    return [TWISTD, "-n", "--pidfile=", "registryd", *arguments]


class Twistd:
    """A running C{twistd -n registryd}; its log goes to C{logPath}."""

    def __init__(self, arguments, cwd, logPath):
        self.arguments = arguments
        self.expectedPorts = max(1, sum(1 for a in arguments if a == "--listen"))
        self.cwd = cwd
        self.logPath = logPath
        self.process = None
        self.port = None

    def start(self, timeout=30):
        self._log = open(self.logPath, "ab")
        self._offset = self._log.tell()
        self.process = subprocess.Popen(
            twistdCommand(*self.arguments),
            cwd=self.cwd,
            env=environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = listeningPorts(self.process.pid)
            if len(ports) >= self.expectedPorts:
                self.ports = ports
                self.port = ports[0]
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"twistd exited {self.process.returncode}: {self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"twistd did not start: {self.log()}")

    def log(self):
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=120):
        connection = http.client.HTTPConnection(self.host, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def peakRSS(self):
        """The process's peak resident set (VmHWM), in bytes."""
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    def kill(self):
        """Kill -9: no chance to flush or clean up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if not self._log.closed:
            self._log.close()
