"""Every registry-level contract suite, against the memory and the filesystem drivers."""

import pytest

from registryd.driver.filesystem import FilesystemDriver
from registryd.driver.memory import MemoryDriver
from registryd.storage.registry import Registry
from registryd.testing import contracts

SUITES = [
    contracts.RegistryContract,
    contracts.BlobStoreContract,
    contracts.ManifestServiceContract,
    contracts.TagServiceContract,
    contracts.ReferrersIndexContract,
]


class OnMemory:
    @pytest.fixture
    def registry(self):
        return Registry(MemoryDriver(), deleteEnabled=True)


class OnFilesystem:
    @pytest.fixture
    def registry(self, tmp_path):
        return Registry(FilesystemDriver(str(tmp_path)), deleteEnabled=True)


for _suite in SUITES:
    for _storage in (OnMemory, OnFilesystem):
        _name = f"Test{_suite.__name__.removesuffix('Contract')}{_storage.__name__}"
        globals()[_name] = type(_name, (_storage, _suite), {})
