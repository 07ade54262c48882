"""
Helpers for the interop tests that drive real clients (oras-py, python-dxf,
podman, buildah) against a real C{twistd -n registryd} child process.

Nothing here is a pytest fixture: each test module declares its own
fixtures from these functions, so the modules stand on their own.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import yaml

from tests.process.twistd import Twistd

POLICY = {"default": [{"type": "insecureAcceptAnything"}]}

# The Debian package each binary comes from, for skip messages and .ci/install.
DEBIAN_PACKAGES = {"podman": "podman", "buildah": "buildah"}

# One access-log line as registryd writes it:
# "... [registryd.access#info] 127.0.0.1 PATCH /v2/a/blobs/uploads/ID 202 0 0.0012s"
_ACCESS = re.compile(r"\[registryd\.access#\w+\] (\S+) ([A-Z]+) (\S+) (\d{3})")


def requireBinary(name):
    """The path of binary C{name}; skip the test, naming its package, if it is missing."""
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES.get(name, name)
        pytest.skip(f"{name} is not installed (Debian package {package!r})")
    return path


def sha256(data):
    """The OCI digest (C{sha256:HEX}) of C{data}."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fileDigest(path):
    """The OCI digest of the file at C{path}, read in 1 MiB pieces."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            hasher.update(piece)
    return "sha256:" + hasher.hexdigest()


def startRegistry(directory, *, delete=False, name="registryd"):
    """
    Start C{twistd -n registryd --config FILE --listen tcp:0:interface=127.0.0.1}
    with its storage, configuration and log under C{directory}.

    @param delete: The configuration's C{storage.delete.enabled}.
    @return: The started L{Twistd}; the caller stops it.
    """
    directory = os.fspath(directory)
    root = os.path.join(directory, f"{name}-root")
    config = os.path.join(directory, f"{name}.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(
            {
                "version": "0.1",
                "storage": {
                    "filesystem": {"rootdirectory": root},
                    "delete": {"enabled": delete},
                },
            },
            f,
        )
    process = Twistd(
        ["--config", config, "--listen", "tcp:0:interface=127.0.0.1"],
        directory,
        os.path.join(directory, f"{name}.log"),
    )
    return process.start()


def accessLog(process, timeout=10):
    """
    The requests C{process} (a L{Twistd}) has logged so far, as
    C{(method, path, status)} tuples in order, the marker excluded.

    A request is logged just after its answer is written, so a client can
    hold the answer before the line exists.  The reactor handles one thing
    at a time, so once a marker request sent afterwards is logged, every
    answer a client already holds is logged too.
    """
    marker = f"/v2/_logged/{uuid.uuid4().hex}"
    process.request("HEAD", marker)
    deadline = time.monotonic() + timeout
    while True:
        lines = [
            (match.group(2), match.group(3), int(match.group(4)))
            for match in _ACCESS.finditer(process.log())
        ]
        if any(path == marker for _, path, _ in lines):
            return [line for line in lines if not line[1].startswith("/v2/_logged/")]
        assert time.monotonic() < deadline, f"{marker} was never logged"
        time.sleep(0.01)


def logged(process, method, prefix):
    """The logged C{method} requests whose path starts with C{prefix}, in order."""
    return [e for e in accessLog(process) if e[0] == method and e[1].startswith(prefix)]


def getJSON(process, path, accept=None):
    """
    GET C{path}; fail the test unless the answer is 200.

    @return: C{(headers, parsed body, raw body)}.
    """
    headers = {"Accept": accept} if accept else None
    status, headers, body = process.request("GET", path, headers=headers)
    assert status == 200, f"GET {path}: {status} {body[:500]!r}"
    return headers, json.loads(body), body


def run(command, *, env=None, timeout=300, cwd=None):
    """
    Run C{command}; fail the test with its output unless it exits 0.

    @return: Its standard output, as text.
    """
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} exited {result.returncode}\n"
        f"stderr:\n{result.stderr}\nstdout:\n{result.stdout}"
    )
    return result.stdout


class ContainerTools:
    """
    buildah and podman, each with private storage (C{--root}, C{--runroot},
    C{--storage-driver vfs}) and a private environment under C{base}: HOME,
    XDG directories, TMPDIR, containers.conf, storage.conf, registries.conf,
    the auth file and the signature policy all live there, so nothing
    depends on this machine's configuration.
    """

    def __init__(self, base, buildah, podman):
        self.base = base
        self.buildahBinary = buildah
        self.podmanBinary = podman
        directories = {}
        for name in ("home", "config", "data", "cache", "run", "tmp", "root", "podman-tmp"):
            path = os.path.join(base, name)
            os.makedirs(path, exist_ok=True)
            directories[name] = path
        os.chmod(directories["run"], 0o700)
        self.root = directories["root"]
        # podman 4.3 refuses a runroot longer than 50 characters ("the
        # specified runroot is longer than 50 characters"), which pytest's
        # tmp_path always is: the runroot gets a short directory of its own,
        # removed by close().
        short = "/tmp" if os.path.isdir("/tmp") else None
        self.runroot = tempfile.mkdtemp(prefix="rd-run-", dir=short)
        assert len(self.runroot) <= 50, self.runroot
        self.podmanTmp = directories["podman-tmp"]
        self.policy = self._write("policy.json", json.dumps(POLICY))
        registries = self._write("registries.conf", "unqualified-search-registries = []\n")
        auth = self._write("auth.json", '{"auths": {}}\n')
        storage = self._write(
            "storage.conf",
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.root}"\nrunroot = "{self.runroot}"\n',
        )
        containers = self._write(
            "containers.conf",
            '[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\n',
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("XDG_", "REGISTRY_", "CONTAINERS_", "BUILDAH_", "STORAGE_"))
        }
        env.update(
            HOME=directories["home"],
            XDG_CONFIG_HOME=directories["config"],
            XDG_DATA_HOME=directories["data"],
            XDG_CACHE_HOME=directories["cache"],
            XDG_RUNTIME_DIR=directories["run"],
            TMPDIR=directories["tmp"],
            CONTAINERS_REGISTRIES_CONF=registries,
            CONTAINERS_STORAGE_CONF=storage,
            CONTAINERS_CONF=containers,
            REGISTRY_AUTH_FILE=auth,
        )
        self.env = env

    def close(self):
        """Remove the runroot, which lives outside C{base}."""
        shutil.rmtree(self.runroot, ignore_errors=True)

    def _write(self, name, text):
        path = os.path.join(self.base, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _storage(self):
        return ["--root", self.root, "--runroot", self.runroot, "--storage-driver", "vfs"]

    def buildah(self, *arguments, timeout=300):
        """Run C{buildah} with the private storage; its standard output."""
        command = [self.buildahBinary, *self._storage(), *arguments]
        return run(command, env=self.env, timeout=timeout)

    def podman(self, *arguments, timeout=300):
        """Run C{podman} with the private storage; its standard output."""
        return run(
            [
                self.podmanBinary,
                *self._storage(),
                "--tmpdir",
                self.podmanTmp,
                "--events-backend",
                "none",
                *arguments,
            ],
            env=self.env,
            timeout=timeout,
        )
