"""
The C{registryd} command: tools around the server, which runs under twistd.

Each tool is a subcommand, so more can join without changing how the existing
ones are called.  Problems are reported as one line and an exit status, never
a traceback: the reader is an operator or a deployment script.
"""

import argparse
import sys

from registryd import __version__
from registryd.config import ConfigError, checkStorageRoot, loadConfig


def _checkConfig(options):
    """Validate a file as the server would, without creating or listening on anything."""
    path = options.file
    try:
        config = loadConfig(path)
        checkStorageRoot(config, create=False)
    except ConfigError as e:
        # A problem with the whole file is already reported under its name.
        print(str(e) if e.key == path else f"{path}: {e}", file=sys.stderr)
        return 1
    for line in config.warnings:
        print(f"warning: {line}")
    print(f"{path}: ok")
    return 0


def _parser():
    parser = argparse.ArgumentParser(
        prog="registryd",
        description="Tools for registryd; the registry itself runs as `twistd registryd`.",
    )
    parser.add_argument("--version", action="version", version=f"registryd {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check-config",
        help="validate a configuration file",
        description="Validate FILE as the registry would read it, and list ignored keys.",
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(run=_checkConfig)
    return parser


def main(argv=None):
    """Run the command line C{argv} (default: C{sys.argv[1:]}); return the exit status."""
    try:
        options = _parser().parse_args(argv)
    except SystemExit as e:
        # argparse exits after --version, --help and usage errors.
        return e.code
    return options.run(options)


if __name__ == "__main__":
    sys.exit(main())
