"""
Fixtures for the conformance suite: real C{twistd -n registryd} processes,
one of each kind per test module, and a fresh repository name per test.
"""

import re
import uuid

import pytest

from tests.conformance.client import Client
from tests.process.twistd import Twistd


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "conformance: OCI Distribution Spec 1.1 requirements, against real twistd"
    )


def _start(factory, label, settings):
    """
    Start a registry whose configuration file holds C{settings} (YAML lines
    under C{storage:}/C{http:}), serving a fresh storage root.
    """
    directory = factory.mktemp(label)
    root = directory / "storage"
    config = directory / "registryd.yaml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {root}\n"
        + settings
    )
    process = Twistd(
        [
            "--listen", "tcp:0:interface=127.0.0.1",
            "--storage-root", str(root),
            "--config", str(config),
        ],
        str(directory),
        str(directory / "twistd.log"),
    )
    process.start()
    return process


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A client of a registry with deletes enabled (absolute Locations)."""
    process = _start(tmp_path_factory, "deletes", "  delete:\n    enabled: true\n")
    yield Client(process.host)
    process.stop()


@pytest.fixture(scope="module")
def noDeleteRegistry(tmp_path_factory):
    """A client of a registry with deletes disabled (the default)."""
    process = _start(tmp_path_factory, "nodeletes", "  delete:\n    enabled: false\n")
    yield Client(process.host)
    process.stop()


@pytest.fixture(scope="module")
def relativeRegistry(tmp_path_factory):
    """A client of a registry that hands out relative C{Location}s and C{Link}s."""
    process = _start(
        tmp_path_factory,
        "relative",
        "  delete:\n    enabled: true\nhttp:\n  relativeurls: true\n",
    )
    yield Client(process.host)
    process.stop()


@pytest.fixture
def name(request):
    """A repository name no other test uses: C{conformance/<test>-<random>}."""
    return repositoryName(request.node.name)


@pytest.fixture
def otherName(request):
    """A second fresh repository name, for tests across two repositories."""
    return repositoryName(request.node.name + "-other")


def repositoryName(label):
    words = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:80]
    return f"conformance/{words}-{uuid.uuid4().hex[:8]}"
