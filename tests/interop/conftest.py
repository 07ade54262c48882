"""
Fixtures for interop tests: real registries as child processes, real clients
as subprocesses, OCI layouts built on disk.

  - C{registryd(root=None, *, delete=False, config=None)}: start C{twistd -n
    registryd --config FILE} on a free loopback port; returns a
    L{RegistrydProcess}.
  - C{distribution(root=None, *, delete=True, config=None)}: start Debian's
    C{docker-registry serve FILE} (CNCF Distribution 2.8) the same way;
    returns a L{DistributionProcess}.
  - C{ociLayout(name="layout")}: an empty L{OCILayout} under the test's
    temporary directory.
  - C{clientEnvironment}: an environment whose HOME, XDG dirs, TMPDIR,
    registries.conf and auth file all live in the test's temporary directory.
  - C{policyFile}: a containers policy.json accepting anything.
  - C{skopeo}: a L{Skopeo} runner using both.

Both registry classes share L{RegistryHTTP}: C{request()}, C{call()} with
repeated headers, C{manifest()}, C{blob()}, C{tags()}, C{catalog()}.

Tests skip only when a tool's binary is missing, and say which.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import time

import pytest
import yaml

from tests.interop.layouts import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    OCILayout,
    sha256,
)
from tests.process.twistd import Twistd

ALL_MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
APT_PACKAGES = {"skopeo": "skopeo", "docker-registry": "docker-registry", "umoci": "umoci"}


def requireTool(name):
    """The tool's path; skip the test if it is not installed."""
    path = shutil.which(name)
    if path is None:
        package = APT_PACKAGES.get(name, name)
        pytest.skip(f"{name} is not installed (Debian package {package!r}; .ci/install adds it)")
    return path


def freePort():
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merged(base, extra):
    """C{base} with C{extra} merged in, mappings recursively."""
    result = dict(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


# Talking HTTP to either registry -------------------------------------------


class RegistryHTTP:
    """HTTP helpers for a registry reachable at C{self.host} (C{"127.0.0.1:PORT"})."""

    def call(self, method, path, headers=(), body=None, timeout=120):
        """
        One request; C{headers} is a sequence of C{(name, value)}, so a name
        may repeat (as skopeo sends several C{Accept} lines).

        @return: C{(status, headers, body)}; C{headers} is an
            L{http.client.HTTPMessage}.
        """
        connection = http.client.HTTPConnection(self.host, timeout=timeout)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def manifest(self, repository, reference, accept=ALL_MANIFEST_TYPES, method="GET"):
        """
        GET (or HEAD) a manifest, one C{Accept} line per type.

        @return: C{(status, headers, body)}.
        """
        return self.call(
            method,
            f"/v2/{repository}/manifests/{reference}",
            [("Accept", mediaType) for mediaType in accept],
        )

    def assertServes(self, repository, reference, data, mediaType):
        """A manifest GET for C{reference} answers exactly C{data}, its digest and type."""
        status, headers, body = self.manifest(repository, reference)
        assert status == 200, f"GET manifest {repository}:{reference} on {self.name}: {status} {body[:500]!r}"
        assert body == data, f"{self.name} serves other bytes for {repository}:{reference}"
        assert headers["Docker-Content-Digest"] == sha256(data)
        assert headers["Content-Type"] == mediaType

    def assertServesImage(self, repository, reference, image):
        """C{image} (an L{Image}): its manifest at C{reference}, its config and layers."""
        self.assertServes(repository, reference, image.manifest, image.mediaType)
        for digest, data in image.blobs().items():
            assert self.blob(repository, digest) == data, f"{self.name}: blob {digest} differs"

    def assertServesIndex(self, repository, reference, index):
        """C{index} (an L{Index}) at C{reference}, and each of its images by digest."""
        self.assertServes(repository, reference, index.manifest, index.mediaType)
        for image in index.images:
            self.assertServesImage(repository, image.digest, image)

    def blob(self, repository, digest):
        """A blob's bytes; fails the test unless the answer is 200."""
        status, _, body = self.call("GET", f"/v2/{repository}/blobs/{digest}")
        assert status == 200, f"GET blob {repository}@{digest} on {self.name}: {status} {body[:500]!r}"
        return body

    def tags(self, repository):
        """The C{tags/list} answer, parsed."""
        status, _, body = self.call("GET", f"/v2/{repository}/tags/list")
        assert status == 200, f"tags/list {repository} on {self.name}: {status} {body[:500]!r}"
        return json.loads(body)

    def catalog(self):
        """The C{_catalog} answer, parsed."""
        status, _, body = self.call("GET", "/v2/_catalog")
        assert status == 200, f"_catalog on {self.name}: {status} {body[:500]!r}"
        return json.loads(body)

    def docker(self, repository, reference=None):
        """skopeo's C{docker://} name for a repository (and tag or digest) here."""
        if reference is None:
            return f"docker://{self.host}/{repository}"
        separator = "@" if ":" in reference else ":"
        return f"docker://{self.host}/{repository}{separator}{reference}"


class RegistrydProcess(Twistd, RegistryHTTP):
    """A running C{twistd -n registryd}, serving C{root}."""

    name = "registryd"

    def __init__(self, arguments, cwd, logPath, root):
        super().__init__(arguments, cwd, logPath)
        self.root = root


class DistributionProcess(RegistryHTTP):
    """
    A running Debian C{docker-registry serve CONFIG} (CNCF Distribution 2.8),
    serving C{root}; its log goes to C{logPath}.
    """

    name = "distribution"

    def __init__(self, configPath, root, logPath):
        self.configPath = configPath
        self.root = root
        self.logPath = logPath
        self.process = None
        self.port = None

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def start(self, config, timeout=30, attempts=3):
        """
        Write C{config} with a free port as C{http.addr}, start, and wait until
        C{GET /v2/} answers 200; a lost race for the port means another try.
        """
        binary = requireTool("docker-registry")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        for _ in range(attempts):
            self.port = freePort()
            config = merged(config, {"http": {"addr": self.host}})
            with open(self.configPath, "w") as f:
                yaml.safe_dump(config, f)
            with open(self.logPath, "ab") as log:
                self.process = subprocess.Popen(
                    [binary, "serve", self.configPath],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=os.path.dirname(self.configPath),
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    status, _, _ = self.call("GET", "/v2/", timeout=5)
                except OSError:
                    status = None
                if status == 200:
                    return self
                time.sleep(0.05)
            else:
                self.stop()
                raise RuntimeError(f"docker-registry did not start: {self.log()}")
        raise RuntimeError(f"docker-registry exited {self.process.returncode}: {self.log()}")

    def log(self):
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, headers=None, timeout=120):
        """As L{Twistd.request}: C{(status, headers, body)}."""
        return self.call(method, path, list((headers or {}).items()), body, timeout)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# Registries ------------------------------------------------------------------


@pytest.fixture
def registryd(tmp_path):
    """
    C{registryd(root=None, *, delete=False, config=None)}: start the real
    C{twistd -n registryd --config FILE --listen tcp:0:interface=127.0.0.1}.

    The file sets C{storage.filesystem.rootdirectory} (C{root}, default a
    fresh directory under C{tmp_path}) and C{storage.delete.enabled}
    (C{delete}); C{config} is a mapping merged over that.  Several may run
    in one test; all are stopped at teardown.
    """
    started = []

    def start(root=None, *, delete=False, config=None):
        n = len(started)
        root = os.fspath(root or tmp_path / f"registryd-root-{n}")
        settings = merged(
            {
                "version": 0.1,
                "storage": {
                    "filesystem": {"rootdirectory": root},
                    "delete": {"enabled": delete},
                },
            },
            config,
        )
        configPath = tmp_path / f"registryd-{n}.yaml"
        configPath.write_text(yaml.safe_dump(settings))
        process = RegistrydProcess(
            ["--config", str(configPath), "--listen", "tcp:0:interface=127.0.0.1"],
            str(tmp_path),
            str(tmp_path / f"registryd-{n}.log"),
            root,
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def distribution(tmp_path):
    """
    C{distribution(root=None, *, delete=True, config=None)}: start Debian's
    C{docker-registry} (Distribution 2.8.2) on a free loopback port, no auth,
    C{http.secret} set, log level warn; C{root} defaults to a fresh directory
    under C{tmp_path}; C{config} is a mapping merged over that.  Skips the
    test if the binary is missing.  Stopped at teardown.
    """
    requireTool("docker-registry")
    started = []

    def start(root=None, *, delete=True, config=None):
        n = len(started)
        root = os.fspath(root or tmp_path / f"distribution-root-{n}")
        settings = merged(
            {
                "version": 0.1,
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {
                    "filesystem": {"rootdirectory": root},
                    "delete": {"enabled": delete},
                },
                "http": {"secret": "interop-test-secret"},
            },
            config,
        )
        process = DistributionProcess(
            str(tmp_path / f"distribution-{n}.yaml"), root, str(tmp_path / f"distribution-{n}.log")
        )
        started.append(process)
        return process.start(settings)

    yield start
    for process in started:
        process.stop()


# Layouts -------------------------------------------------------------------


@pytest.fixture
def ociLayout(tmp_path):
    """C{ociLayout(name="layout")}: a new, empty L{OCILayout} at C{tmp_path / name}."""

    def make(name="layout"):
        return OCILayout(tmp_path / name)

    return make


# Clients ---------------------------------------------------------------------


@pytest.fixture
def clientEnvironment(tmp_path):
    """
    The environment for container clients (skopeo, podman, ...): HOME, the
    XDG directories and TMPDIR under C{tmp_path/client}, an empty
    registries.conf (C{CONTAINERS_REGISTRIES_CONF}) and an empty auth file
    (C{REGISTRY_AUTH_FILE}), so no test depends on this machine's settings.
    """
    base = tmp_path / "client"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "REGISTRY_", "CONTAINERS_"))}
    directories = {
        "HOME": "home",
        "XDG_CONFIG_HOME": "config",
        "XDG_DATA_HOME": "data",
        "XDG_CACHE_HOME": "cache",
        "XDG_RUNTIME_DIR": "run",
        "TMPDIR": "tmp",
    }
    for variable, name in directories.items():
        (base / name).mkdir(parents=True, exist_ok=True)
        env[variable] = str(base / name)
    (base / "run").chmod(0o700)
    registries = base / "registries.conf"
    registries.write_text("unqualified-search-registries = []\n")
    env["CONTAINERS_REGISTRIES_CONF"] = str(registries)
    auth = base / "auth.json"
    auth.write_text('{"auths": {}}\n')
    env["REGISTRY_AUTH_FILE"] = str(auth)
    return env


@pytest.fixture
def policyFile(tmp_path):
    """A containers policy.json that accepts any image (skopeo's C{--policy})."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    return str(path)


class Skopeo:
    """
    Runs C{skopeo --policy P --registries-conf F --registries.d D ARGS...}
    with a private environment; a non-zero exit fails the test with skopeo's
    stderr.  (skopeo 1.9 ignores C{CONTAINERS_REGISTRIES_CONF}: the flag is
    what keeps /etc/containers/registries.conf out.)
    """

    def __init__(self, binary, env, policy, registriesConf, registriesD, timeout=180):
        self.binary = binary
        self.env = env
        self.policy = policy
        self.registriesConf = registriesConf
        self.registriesD = registriesD
        self.timeout = timeout

    def command(self, *arguments):
        return [
            self.binary,
            "--policy",
            self.policy,
            "--registries-conf",
            self.registriesConf,
            "--registries.d",
            self.registriesD,
            *arguments,
        ]

    def run(self, *arguments, check=True, timeout=None, text=True):
        """
        Run skopeo; global flags (C{--override-arch}, ...) go first in
        C{arguments}.

        @param text: Decode stdout and stderr (else C{stdout} is bytes, as
            C{inspect --raw} wants).
        @return: The L{subprocess.CompletedProcess}.
        """
        command = self.command(*arguments)
        result = subprocess.run(
            command,
            env=self.env,
            capture_output=True,
            text=text,
            timeout=timeout or self.timeout,
        )
        if check:
            stderr = result.stderr if text else result.stderr.decode("utf-8", "replace")
            stdout = result.stdout if text else result.stdout[:2000]
            assert result.returncode == 0, (
                f"{' '.join(command)} exited {result.returncode}\n"
                f"stderr:\n{stderr}\nstdout:\n{stdout}"
            )
        return result

    def copy(self, source, destination, *flags, globalFlags=(), check=True):
        """C{skopeo copy} with TLS verification off on both sides."""
        return self.run(
            *globalFlags,
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            *flags,
            source,
            destination,
            check=check,
        )

    def inspect(self, reference, *flags, globalFlags=(), check=True, text=True):
        """C{skopeo inspect --tls-verify=false}; returns the completed process."""
        return self.run(
            *globalFlags, "inspect", "--tls-verify=false", *flags, reference, check=check, text=text
        )

    def listTags(self, reference, check=True):
        """C{skopeo list-tags --tls-verify=false}, parsed."""
        result = self.run("list-tags", "--tls-verify=false", reference, check=check)
        return json.loads(result.stdout) if result.returncode == 0 else result

    def delete(self, reference, check=True):
        return self.run("delete", "--tls-verify=false", reference, check=check)


@pytest.fixture
def skopeo(tmp_path, clientEnvironment, policyFile):
    """A L{Skopeo} runner; skips the test if skopeo is not installed."""
    binary = requireTool("skopeo")
    registriesD = tmp_path / "client" / "registries.d"
    registriesD.mkdir(parents=True, exist_ok=True)
    return Skopeo(
        binary,
        clientEnvironment,
        policyFile,
        clientEnvironment["CONTAINERS_REGISTRIES_CONF"],
        str(registriesD),
    )
