import os
import subprocess
import sys
from pathlib import Path

import pytest

from registryd import __version__
from registryd.cli import main

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
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"{path}: auth: not supported yet by registryd")
    assert "Traceback" not in result.stderr


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
