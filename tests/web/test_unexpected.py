"""An unexpected failure: logged with its traceback, answered 500 UNKNOWN without it."""

import pytest_twisted
from treq.testing import StubTreq
from twisted.logger import formatEvent, globalLogPublisher

from registryd.driver.memory import MemoryDriver
from registryd.storage.registry import Registry
from registryd.web.api import RegistryAPI
from tests.support import StubClient


class Exploding:
    """A driver whose reads fail in a way nothing expects."""

    def __init__(self):
        self._inner = MemoryDriver()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def getContent(self, path):
        raise RuntimeError("disk on fire at /secret/internal/path")


@pytest_twisted.ensureDeferred
async def test_unexpectedErrorIs500WithoutTraceback():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        registry = Registry(Exploding())
        client = StubClient.__new__(StubClient)
        client._stub = StubTreq(RegistryAPI(registry).resource())
        client.url = "http://registry.test"
        r = await client.request("GET", "/v2/a/manifests/latest")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert r.status == 500
    assert r.json() == {"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": None}]}
    assert b"Traceback" not in r.body and b"fire" not in r.body
    failures = [e for e in events if e.get("log_failure") is not None]
    assert failures
    assert "disk on fire" in failures[0]["log_failure"].getTraceback()
    assert "GET /v2/a/manifests/latest" in formatEvent(failures[0])
