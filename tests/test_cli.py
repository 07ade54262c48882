import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from registryd import __version__
from registryd.auth.htpasswd import Htpasswd
from registryd.cli import main
from registryd.config import parseConfig

REPOSITORY = Path(__file__).parent.parent
EXAMPLE = REPOSITORY / "etc" / "registryd.yaml"


def run(*args, cwd):
    """Run the real command in a fresh interpreter, as the console script would."""
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    return subprocess.run(
        [sys.executable, "-m", "registryd.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def writeConfig(directory, text):
    path = directory / "registryd.yaml"
    path.write_text(text)
    return str(path)


def test_version(capsys):
    assert main(["--version"]) == 0
    out, err = capsys.readouterr()
    assert out == f"registryd {__version__}\n"
    assert err == ""


def test_noArgumentsIsAUsageError(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: registryd")


def test_unknownCommandIsAUsageError(capsys):
    assert main(["serve-forever"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_checkConfigNeedsAFile(capsys):
    assert main(["check-config"]) == 2
    assert "FILE" in capsys.readouterr().err


def test_checkConfigOk(tmp_path, capsys):
    path = writeConfig(tmp_path, f"storage:\n  filesystem:\n    rootdirectory: {tmp_path}/r\n")
    assert main(["check-config", path]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok\n"
    assert err == ""


def test_checkConfigListsWarnings(tmp_path, capsys):
    path = writeConfig(
        tmp_path, "storage:\n  inmemory:\n  cache:\n    blobdescriptor: inmemory\nhealth: {}\n"
    )
    assert main(["check-config", path]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        "warning: storage.cache: ignored (registryd caches in process)",
        "warning: health: ignored (registryd has no health checks yet)",
        f"{path}: ok",
    ]


def test_checkConfigError(tmp_path, capsys):
    path = writeConfig(tmp_path, "storage:\n  delete:\n    enabled: yes please\n")
    assert main(["check-config", path]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{path}: storage.delete.enabled: expected a boolean, got 'yes please'\n"


def test_checkConfigNamesAnUnreadableFileOnce(tmp_path, capsys):
    path = str(tmp_path / "missing.yaml")
    assert main(["check-config", path]) == 1
    assert capsys.readouterr().err == f"{path}: cannot read: No such file or directory\n"


def test_checkConfigInvalidYAML(tmp_path, capsys):
    path = writeConfig(tmp_path, "http: [\n")
    assert main(["check-config", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: invalid YAML at line ")
    assert err.count("\n") == 1


def test_checkConfigCreatesNoStorageRoot(tmp_path, capsys):
    root = tmp_path / "not" / "yet"
    path = writeConfig(tmp_path, f"storage:\n  filesystem:\n    rootdirectory: {root}\n")
    assert main(["check-config", path]) == 0
    assert not (tmp_path / "not").exists()


def test_checkConfigChecksTheStorageRoot(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    root = tmp_path / "file" / "root"
    path = writeConfig(tmp_path, f"storage:\n  filesystem:\n    rootdirectory: {root}\n")
    assert main(["check-config", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: storage.filesystem.rootdirectory: {root}: cannot be created")
    assert err.count("\n") == 1


# -- The real command ---------------------------------------------------------


def test_exampleConfigurationChecksOkWithoutWarnings(tmp_path):
    result = run("check-config", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{EXAMPLE}: ok\n"
    assert result.stderr == ""
    # its relative root was checked, not created
    assert not (tmp_path / "data").exists()


def test_realCommandReportsOneLineAndStatus1(tmp_path):
    path = writeConfig(tmp_path, "version: 0.1\nauth:\n  silly:\n    realm: r\n")
    result = run("check-config", path, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{path}: auth.silly.service: required\n"


def test_checkConfigListsTheSillyAuthWarning(tmp_path, capsys):
    path = writeConfig(
        tmp_path, "storage: inmemory\nauth:\n  silly:\n    realm: r\n    service: s\n"
    )
    assert main(["check-config", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "warning: auth.silly: any Authorization header is accepted; for development only",
        f"{path}: ok",
    ]


@pytest.mark.parametrize(
    "args, status, stream, start",
    [
        (["--version"], 0, "stdout", f"registryd {__version__}\n"),
        ([], 2, "stderr", "usage: registryd"),
    ],
)
def test_realCommandVersionAndUsage(tmp_path, args, status, stream, start):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == status
    assert getattr(result, stream).startswith(start)


# -- make-cert ----------------------------------------------------------------


def certificateIn(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def sans(certificate):
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in names]


def test_makeCertDefaults(tmp_path, capsys):
    out = tmp_path / "tls"
    assert main(["make-cert", "--out", str(out)]) == 0
    certPath, keyPath = out / "cert.pem", out / "key.pem"
    certificate = certificateIn(certPath)
    assert sans(certificate) == ["localhost", "127.0.0.1"]
    assert certificate.issuer == certificate.subject
    days = (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days
    assert days == 365
    assert stat.S_IMODE(os.stat(keyPath).st_mode) == 0o600
    with open(keyPath, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    assert key.public_key() == certificate.public_key()
    out, err = capsys.readouterr()
    assert err == ""
    assert str(certPath) in out and str(keyPath) in out
    # the snippet is configuration that loads
    snippet = yaml.safe_load(out[out.index("http:\n"):])
    assert snippet == {"http": {"tls": {"certificate": str(certPath), "key": str(keyPath)}}}
    config = parseConfig(snippet)
    assert config.http.tls.certificate == str(certPath)


def test_makeCertHostnamesAndDays(tmp_path, capsys):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    arguments = ["make-cert", "--cert", str(cert), "--key", str(key), "--days", "30",
                 "--hostname", "registry.example.com", "--hostname", "::1",
                 "--hostname", "*.example.com"]
    assert main(arguments) == 0
    certificate = certificateIn(cert)
    assert sans(certificate) == ["registry.example.com", "::1", "*.example.com"]
    assert (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days == 30
    common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert common[0].value == "registry.example.com"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_makeCertKeyIsPrivateWhateverTheUmask(tmp_path):
    old = os.umask(0)
    try:
        assert main(["make-cert", "--out", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "key.pem").st_mode) == 0o600


def test_makeCertDoesNotReplaceFiles(tmp_path, capsys):
    (tmp_path / "key.pem").write_text("precious")
    assert main(["make-cert", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"registryd make-cert: {tmp_path / 'key.pem'} exists (--force replaces it)\n"
    )
    assert (tmp_path / "key.pem").read_text() == "precious"
    assert not (tmp_path / "cert.pem").exists()
    assert main(["make-cert", "--out", str(tmp_path), "--force"]) == 0
    assert certificateIn(tmp_path / "cert.pem").public_key() == serialization.load_pem_private_key(
        (tmp_path / "key.pem").read_bytes(), password=None
    ).public_key()


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["--cert", "c.pem"],
        ["--key", "k.pem"],
        ["--out", ".", "--cert", "c.pem", "--key", "k.pem"],
    ],
)
def test_makeCertNeedsSomewhereToWrite(tmp_path, capsys, arguments):
    assert main(["make-cert", *arguments]) == 2
    assert capsys.readouterr().err == (
        "registryd make-cert: give --out DIR, or --cert FILE and --key FILE\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--hostname", "bad host"], "not a host name or IP address: 'bad host'"),
        (["--hostname=-x.example.com"], "not a host name or IP address: '-x.example.com'"),
        (["--hostname=a..b"], "not a host name or IP address: 'a..b'"),
        (["--days", "0"], "expected at least 1 day, got 0"),
    ],
)
def test_makeCertBadArguments(tmp_path, capsys, arguments, expected):
    assert main(["make-cert", "--out", str(tmp_path), *arguments]) == 1
    assert capsys.readouterr().err == f"registryd make-cert: {expected}\n"
    assert list(tmp_path.iterdir()) == []


def test_makeCertSameFileTwice(tmp_path, capsys):
    path = str(tmp_path / "both.pem")
    assert main(["make-cert", "--cert", path, "--key", path]) == 1
    assert "name the same file" in capsys.readouterr().err


def test_makeCertUnwritableDirectory(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["make-cert", "--out", str(tmp_path / "file" / "tls")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("registryd make-cert: ") and err.count("\n") == 1


# -- add-user -----------------------------------------------------------------


def test_addUserFromStdin(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "htpasswd")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\n"))
    assert main(["add-user", path, "alice", "--password-stdin"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: added alice\n"
    assert err == ""
    assert "s3cret" not in out + err
    htpasswd = Htpasswd(path)
    assert htpasswd.check("alice", "s3cret pass")
    assert not htpasswd.check("alice", "s3cret pass\n")
    with open(path, "rb") as f:
        (line,) = f.read().splitlines()
    assert line.startswith(b"alice:$2")


def test_addUserReplacesTheUser(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "htpasswd")
    for user, password in (("alice", "one"), ("bob", "two"), ("alice", "three")):
        monkeypatch.setattr("sys.stdin", io.StringIO(password))
        assert main(["add-user", path, user, "--password-stdin"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"{path}: changed the password of alice"
    htpasswd = Htpasswd(path)
    assert htpasswd.users() == {"alice", "bob"}
    assert htpasswd.check("alice", "three")
    assert not htpasswd.check("alice", "one")
    assert htpasswd.check("bob", "two")
    with open(path, "rb") as f:
        assert sum(line.startswith(b"alice:") for line in f) == 1


def test_addUserPrompts(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "htpasswd")
    prompts = []

    def getpass(prompt):
        prompts.append(prompt)
        return "typed secret"

    monkeypatch.setattr("getpass.getpass", getpass)
    assert main(["add-user", path, "alice"]) == 0
    assert prompts == ["Password: ", "Password again: "]
    out, err = capsys.readouterr()
    assert "typed secret" not in out + err
    assert Htpasswd(path).check("alice", "typed secret")


def test_addUserPromptedPasswordsDiffer(tmp_path, capsys, monkeypatch):
    path = tmp_path / "htpasswd"
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["add-user", str(path), "alice"]) == 1
    assert capsys.readouterr().err == "registryd add-user: the passwords differ\n"
    assert not path.exists()


def test_addUserPasswordOptionWarns(tmp_path, capsys):
    path = str(tmp_path / "htpasswd")
    assert main(["add-user", path, "alice", "--password", "visible"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: added alice\n"
    assert err.startswith("registryd add-user: warning: a password on the command line")
    assert "visible" not in out + err
    assert Htpasswd(path).check("alice", "visible")


@pytest.mark.parametrize(
    "stdin, expected",
    [
        ("", "empty password"),
        ("\n", "empty password"),
        ("two\nlines\n", "expected one line on standard input"),
    ],
)
def test_addUserBadPasswordFromStdin(tmp_path, capsys, monkeypatch, stdin, expected):
    path = tmp_path / "htpasswd"
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(["add-user", str(path), "alice", "--password-stdin"]) == 1
    assert capsys.readouterr().err == f"registryd add-user: {expected}\n"
    assert not path.exists()


def test_addUserBadName(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt: pytest.fail("asked for a password"))
    assert main(["add-user", str(tmp_path / "htpasswd"), "al:ice"]) == 1
    assert capsys.readouterr().err == "registryd add-user: invalid user name 'al:ice'\n"


def test_addUserPasswordSourcesExcludeEachOther(tmp_path, capsys):
    path = str(tmp_path / "htpasswd")
    assert main(["add-user", path, "alice", "--password-stdin", "--password", "x"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_addUserUnwritableFile(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("pw"))
    path = tmp_path / "missing" / "htpasswd"
    assert main(["add-user", str(path), "alice", "--password-stdin"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("registryd add-user: ") and err.count("\n") == 1


# -- print-key-bundle ---------------------------------------------------------


def test_printKeyBundleCreatesTheKeyAndPrintsItsCertificate(tmp_path, capsys):
    path = str(tmp_path / "token-signing.key")
    assert main(["print-key-bundle", path]) == 0
    out, err = capsys.readouterr()
    assert err == f"registryd print-key-bundle: created a new signing key in {path}\n"
    certificate = x509.load_pem_x509_certificate(out.encode())
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    assert certificate.public_key() == key.public_key()
    # the same key the next time, and nothing said about creating it
    assert main(["print-key-bundle", path]) == 0
    again, err = capsys.readouterr()
    assert again == out
    assert err == ""


def test_printKeyBundleJWKS(tmp_path, capsys):
    path = str(tmp_path / "token-signing.key")
    assert main(["print-key-bundle", path]) == 0
    certificate = x509.load_pem_x509_certificate(capsys.readouterr().out.encode())
    assert main(["print-key-bundle", path, "--jwks"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    jwks = json.loads(out)
    (key,) = jwks["keys"]
    assert key["kty"] == "EC" and "d" not in key  # the public key only
    public = ECAlgorithm.from_jwk(json.dumps(key))
    assert public.public_numbers() == certificate.public_key().public_numbers()


def test_printKeyBundleOutputIsWhatTokenAuthTakes(tmp_path, capsys):
    """Both outputs are accepted as auth.token's rootcertbundle and jwks."""
    path = str(tmp_path / "token-signing.key")
    assert main(["print-key-bundle", path]) == 0
    (tmp_path / "bundle.pem").write_text(capsys.readouterr().out)
    assert main(["print-key-bundle", path, "--jwks"]) == 0
    (tmp_path / "keys.jwks").write_text(capsys.readouterr().out)
    config = parseConfig(
        {
            "auth": {
                "token": {
                    "realm": "https://registry.example.com/token",
                    "service": "s",
                    "issuer": "registryd",
                    "rootcertbundle": str(tmp_path / "bundle.pem"),
                    "jwks": str(tmp_path / "keys.jwks"),
                }
            }
        }
    )
    assert config.auth.jwks == str(tmp_path / "keys.jwks")


def test_printKeyBundleBadKey(tmp_path, capsys):
    path = tmp_path / "not-a-key"
    path.write_text("not a key")
    assert main(["print-key-bundle", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"registryd print-key-bundle: {path}: ")
    assert err.count("\n") == 1


def test_printKeyBundleWrongKeyType(tmp_path, capsys):
    path = tmp_path / "rsa.key"
    key = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert main(["print-key-bundle", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"registryd print-key-bundle: {path}: ")
    assert err.count(str(path)) == 1


# -- The real command, for the new tools --------------------------------------


def test_realCommandMakeCertAddUserAndPrintKeyBundle(tmp_path):
    result = run("make-cert", "--out", "tls", "--hostname", "registry.test", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sans(certificateIn(tmp_path / "tls" / "cert.pem")) == ["registry.test"]

    result = subprocess.run(
        [sys.executable, "-m", "registryd.cli", "add-user", "htpasswd", "alice",
         "--password-stdin"],
        input="from a pipe\n",
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPOSITORY)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "htpasswd: added alice\n"
    assert "from a pipe" not in result.stdout + result.stderr
    assert Htpasswd(str(tmp_path / "htpasswd")).check("alice", "from a pipe")

    result = run("print-key-bundle", "signing.key", "--jwks", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "keys" in json.loads(result.stdout)

    # and a configuration using all of it checks out
    path = writeConfig(
        tmp_path,
        "storage: inmemory\n"
        "http:\n  addr: 127.0.0.1:5443\n  tls:\n"
        "    certificate: tls/cert.pem\n    key: tls/key.pem\n"
        "auth:\n  htpasswd:\n    realm: registry\n    path: htpasswd\n",
    )
    result = run("check-config", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: ok\n"
