import pytest_twisted

from tests.support import SETUPS, makeClient

collect_ignore = ["trial"]


@pytest_twisted.async_yield_fixture(params=SETUPS)
async def client(request):
    """An API client for each setup: StubTreq, socket + memory, socket + filesystem."""
    c = await makeClient(request.param)
    yield c
    await c.close()
