"""
The twistd plugin's options: C{twistd -n registryd [--config FILE]
[--listen ENDPOINT ...] [--storage-root DIR]}.  Command-line options override
the file; with none at all the registry serves ./data on 127.0.0.1:5000.
"""

import sys

from twisted.python import usage

from registryd.config import (
    ConfigError,
    checkStorageRoot,
    defaultConfig,
    loadConfig,
    withOverrides,
)
from registryd.logs import chooseFor
from registryd.service import RegistryService


class Options(usage.Options):
    synopsis = "[--config FILE] [--listen ENDPOINT ...] [--storage-root DIR]"
    longdesc = "An OCI Distribution 1.1 / Docker Registry V2 server."
    optParameters = [
        ["config", "c", None, "YAML configuration file (Distribution's keys)."],
        ["storage-root", None, None, "Filesystem storage root (default ./data)."],
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
        except ConfigError as e:
            # One line, no usage text, no traceback: the operator fixes the key.
            print(f"registryd: {e}", file=sys.stderr)
            raise SystemExit(1)
        self["configuration"] = config
        if self.parent is not None:
            chooseFor(self.parent, config.log)


def makeService(options):
    return RegistryService(options["configuration"])
