"""
The C{registryd} command: tools around the server, which runs under twistd.

Each tool is a subcommand, so more can join without changing how the existing
ones are called.  Problems are reported as one line and an exit status, never
a traceback: the reader is an operator or a deployment script.
"""

import argparse
import getpass
import json
import os
import sys

import yaml

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


def _fail(command, problem):
    print(f"registryd {command}: {problem}", file=sys.stderr)
    return 1


def _makeCert(options):
    """Write a self-signed certificate and its key, and show how to configure them."""
    from registryd.tls import DEFAULT_HOSTNAMES, selfSignedCertificate

    toDirectory = options.out is not None
    toFiles = (options.cert, options.key) != (None, None)
    if toDirectory == toFiles or (toFiles and None in (options.cert, options.key)):
        print(
            "registryd make-cert: give --out DIR, or --cert FILE and --key FILE",
            file=sys.stderr,
        )
        return 2
    if options.out is not None:
        certPath = os.path.join(options.out, "cert.pem")
        keyPath = os.path.join(options.out, "key.pem")
    else:
        certPath, keyPath = options.cert, options.key
    if os.path.abspath(certPath) == os.path.abspath(keyPath):
        return _fail("make-cert", "--cert and --key name the same file")
    hostnames = options.hostname or list(DEFAULT_HOSTNAMES)
    try:
        certificate, key = selfSignedCertificate(hostnames, options.days)
    except ValueError as e:
        return _fail("make-cert", e)
    if not options.force:
        for path in (certPath, keyPath):
            if os.path.lexists(path):
                return _fail("make-cert", f"{path} exists (--force replaces it)")
    try:
        if options.out is not None:
            os.makedirs(options.out, exist_ok=True)
        _writeNew(keyPath, key, options.force, private=True)
        _writeNew(certPath, certificate, options.force)
    except OSError as e:
        return _fail("make-cert", f"{e.filename}: {e.strerror or e}")
    tls = {"certificate": os.path.abspath(certPath), "key": os.path.abspath(keyPath)}
    snippet = yaml.safe_dump({"http": {"tls": tls}}, default_flow_style=False, sort_keys=False)
    print(f"certificate: {certPath} (for {', '.join(hostnames)}; valid {options.days} days)")
    print(f"key:         {keyPath} (mode 0600)")
    print()
    print("A self-signed certificate, for trying registryd out: clients have to be")
    print("told to trust the certificate itself (for Docker, copy it to")
    print("/etc/docker/certs.d/HOST:PORT/ca.crt).  In the configuration file:")
    print()
    sys.stdout.write(snippet)
    return 0


def _writeNew(path, data, replace, private=False):
    """
    Write a new file (replacing an old one only if C{replace}); a
    C{private} one is only ever readable by its owner.
    """
    if replace and os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        if private:
            os.fchmod(f.fileno(), 0o600)  # exactly, whatever the umask
        f.write(data)


def _readPassword(options):
    """The password, from stdin, the option or the terminal; ValueError if unusable."""
    if options.password_stdin:
        password = sys.stdin.read()
        if password.endswith("\n"):
            password = password[:-1]
        if password.endswith("\r"):
            password = password[:-1]
        if "\n" in password or "\r" in password:
            raise ValueError("expected one line on standard input")
    elif options.password is not None:
        print(
            "registryd add-user: warning: a password on the command line can be seen by "
            "other users and stays in shell history; prefer --password-stdin",
            file=sys.stderr,
        )
        password = options.password
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password again: ")
        except EOFError:
            raise ValueError("no password given") from None
        if password != again:
            raise ValueError("the passwords differ")
    if not password:
        raise ValueError("empty password")
    return password


def _addUser(options):
    """Add a user to an htpasswd file, or change their password."""
    from registryd.auth.htpasswd import addUser

    path, user = options.file, options.user
    # What addUser refuses, refused before asking for a password.
    if not user or ":" in user or "\n" in user:
        return _fail("add-user", f"invalid user name {user!r}")
    try:
        password = _readPassword(options)
    except ValueError as e:
        return _fail("add-user", e)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    try:
        with open(path, "rb") as f:
            existing = any(line.partition(b":")[0] == user.encode() for line in f)
    except FileNotFoundError:
        existing = False
    except OSError as e:
        return _fail("add-user", f"{path}: {e.strerror or e}")
    try:
        addUser(path, user, password)
    except ValueError as e:
        return _fail("add-user", e)
    except OSError as e:
        return _fail("add-user", f"{e.filename or path}: {e.strerror or e}")
    print(f"{path}: {'changed the password of' if existing else 'added'} {user}")
    return 0


def _printKeyBundle(options):
    """Print the built-in issuer's certificate (or JWKS), creating its key if missing."""
    from cryptography.exceptions import UnsupportedAlgorithm

    from registryd.auth.keys import loadOrCreateSigningKey

    path = options.keyfile
    existed = os.path.lexists(path)
    try:
        key = loadOrCreateSigningKey(path)
        if options.jwks:
            output = json.dumps(key.jwks(), indent=2) + "\n"
        else:
            output = key.certificatePEM().decode("ascii")
    except OSError as e:
        return _fail("print-key-bundle", f"{e.filename or path}: {e.strerror or e}")
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        # e.g. not a PEM key, an encrypted one, not an EC P-256 one
        problem = " ".join(str(e).split()) or type(e).__name__
        if not problem.startswith(path):
            problem = f"{path}: {problem}"
        return _fail("print-key-bundle", problem)
    if not existed:
        print(f"registryd print-key-bundle: created a new signing key in {path}", file=sys.stderr)
    sys.stdout.write(output)
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

    makeCert = commands.add_parser(
        "make-cert",
        help="write a self-signed TLS certificate and key, for trying it out",
        description=(
            "Write a new key (EC P-256, mode 0600) and a self-signed certificate for "
            "the host names, and print the http.tls configuration that uses them.  "
            "For trying registryd out: clients must be told to trust the certificate."
        ),
    )
    makeCert.add_argument(
        "--hostname",
        metavar="NAME",
        action="append",
        help="a host name or IP address the certificate is for (repeatable; "
        "default: localhost and 127.0.0.1)",
    )
    makeCert.add_argument(
        "--days", type=int, default=365, metavar="N", help="days it is valid (default: 365)"
    )
    makeCert.add_argument("--out", metavar="DIR", help="write DIR/cert.pem and DIR/key.pem")
    makeCert.add_argument("--cert", metavar="FILE", help="write the certificate to FILE")
    makeCert.add_argument("--key", metavar="FILE", help="write the key to FILE")
    makeCert.add_argument("--force", action="store_true", help="replace existing files")
    makeCert.set_defaults(run=_makeCert)

    add = commands.add_parser(
        "add-user",
        help="add a user to an htpasswd file, or change their password",
        description=(
            "Add USER with a bcrypt hash of their password to the htpasswd FILE "
            "(created if missing), replacing any entry USER had.  The password is "
            "asked for twice unless given with --password-stdin."
        ),
    )
    add.add_argument("file", metavar="FILE")
    add.add_argument("user", metavar="USER")
    source = add.add_mutually_exclusive_group()
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    source.add_argument(
        "--password",
        metavar="PASSWORD",
        help="the password (visible to other users: for scripts that cannot use stdin)",
    )
    add.set_defaults(run=_addUser)

    bundle = commands.add_parser(
        "print-key-bundle",
        help="print the built-in token issuer's certificate",
        description=(
            "Print the certificate of the auth.issuer signing key in KEYFILE (created "
            "if missing), for auth.token.rootcertbundle of registries that accept "
            "this issuer's tokens; with --jwks, its JSON Web Key Set instead."
        ),
    )
    bundle.add_argument("keyfile", metavar="KEYFILE")
    bundle.add_argument("--jwks", action="store_true", help="print a JSON Web Key Set")
    bundle.set_defaults(run=_printKeyBundle)
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
