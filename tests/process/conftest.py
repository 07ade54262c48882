import pytest

from tests.process.twistd import Twistd


@pytest.fixture
def twistd(tmp_path):
    """Start C{twistd -n registryd ARGS...} in a temporary directory; stopped at teardown."""
    started = []

    def start(*arguments, cwd=None):
        process = Twistd(list(arguments), str(cwd or tmp_path), str(tmp_path / "twistd.log"))
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
