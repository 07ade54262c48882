import pytest

from registryd.driver.memory import MemoryDriver
from registryd.testing.contracts import StorageDriverContract


class TestMemoryDriver(StorageDriverContract):
    @pytest.fixture
    def driver(self):
        return MemoryDriver()
