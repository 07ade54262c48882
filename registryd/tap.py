"""
The twistd plugin's options: C{twistd -n registryd [--config FILE]
[--listen ENDPOINT ...] [--storage-root DIR] [--workers N]}.  Command-line
options override the file; with none at all the registry serves ./data on
127.0.0.1:5000.
"""

import os
import sys

from twisted.python import usage

from registryd.config import (
    ConfigError,
    checkStorageRoot,
    defaultConfig,
    loadConfig,
    withOverrides,
)
from registryd import memory
from registryd.logs import chooseFor
from registryd.service import RegistryService


# Listeners a worker process can adopt from the first one: plain sockets
# (TLS from http.tls is added by each process; an ssl: string's is not).
_SHAREABLE = ("tcp:", "tcp6:", "unix:")


class Options(usage.Options):
    synopsis = "[--config FILE] [--listen ENDPOINT ...] [--storage-root DIR] [--workers N]"
    longdesc = "An OCI Distribution 1.1 / Docker Registry V2 server."
    optParameters = [
        ["config", "c", None, "YAML configuration file (Distribution's keys)."],
        ["storage-root", None, None, "Filesystem storage root (default ./data)."],
        ["workers", None, 1, "Processes serving the listeners (one CPython process uses one core).", int],
        ["worker", None, None, "(internal) this is worker process N, adopting its listeners.", int],
    ]

    def __init__(self):
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint):
        """
        A Twisted server endpoint string to serve on, e.g.
        tcp:5000:interface=127.0.0.1 (repeatable; default that one).
        """
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def postOptions(self):
        try:
            config = loadConfig(self["config"]) if self["config"] else defaultConfig()
            config = withOverrides(
                config, listen=self["listen"] or None, storageRoot=self["storage-root"]
            )
            checkStorageRoot(config)
            if self["workers"] < 1:
                raise ConfigError("--workers", f"expected at least 1, got {self['workers']}")
            if self["workers"] > 1:
                for description in config.http.listen:
                    if not description.startswith(_SHAREABLE):
                        raise ConfigError(
                            "--workers",
                            f"cannot share the listener {description!r} between processes "
                            "(use tcp: listeners, with http.tls for TLS)",
                        )
        except ConfigError as e:
            # One line, no usage text, no traceback: the operator fixes the key.
            print(f"registryd: {e}", file=sys.stderr)
            raise SystemExit(1)
        self["configuration"] = config
        self["workerCommand"] = self._workerCommand()
        if self.parent is not None:
            chooseFor(self.parent, config.log)

    def _workerCommand(self):
        """This daemon again, in the foreground, with the same registryd options."""
        twistd = ["-n", "--pidfile="]
        if self.parent is not None and self.parent.get("logfile"):
            twistd += ["--logfile", self.parent["logfile"]]
        registryd = []
        if self["config"]:
            registryd += ["--config", os.path.abspath(self["config"])]
        for endpoint in self["listen"]:
            registryd += ["--listen", endpoint]
        if self["storage-root"]:
            registryd += ["--storage-root", os.path.abspath(self["storage-root"])]
        run = "from twisted.scripts.twistd import run; run()"
        return [sys.executable, "-c", run, *twistd, "registryd", *registryd]


def makeService(options):
    from twisted.internet import reactor

    memory.returnLargeBuffers(reactor.callLater)
    memory.freezeWhenRunning(reactor)
    return RegistryService(
        options["configuration"],
        workers=options["workers"],
        workerIndex=options["worker"],
        workerCommand=options["workerCommand"],
    )
