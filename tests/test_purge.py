"""Upload purging: sessions older than the configured age are removed."""

import time

from dataclasses import replace

import pytest_twisted
from twisted.application.internet import TimerService
from twisted.internet.task import Clock

from registryd.config import defaultConfig
from registryd.driver.memory import MemoryDriver
from registryd.service import RegistryService
from registryd.storage import paths
from registryd.storage.purge import purgeUploads
from registryd.storage.registry import Registry
from registryd.storage.uploads import formatStartedAt

DAY = 86400.0
NOW = 1_800_000_000.0


async def session(driver, name, uploadID, startedAt):
    await driver.putContent(paths.uploadData(name, uploadID), b"partial")
    if startedAt is not None:
        await driver.putContent(paths.uploadStartedAt(name, uploadID), formatStartedAt(startedAt).encode())


OLD = "00000000-0000-4000-8000-000000000001"
NEW = "00000000-0000-4000-8000-000000000002"
NESTED = "00000000-0000-4000-8000-000000000003"


@pytest_twisted.ensureDeferred
async def test_purgesOnlyOldSessions():
    driver = MemoryDriver()
    await session(driver, "a", OLD, NOW - 8 * DAY)
    await session(driver, "a", NEW, NOW - 1 * DAY)
    await session(driver, "deep/name/x", NESTED, NOW - 30 * DAY)
    purged = await purgeUploads(driver, 7 * DAY, now=NOW)
    assert sorted(purged) == sorted([paths.upload("a", OLD), paths.upload("deep/name/x", NESTED)])
    assert await driver.list(paths.uploads("a")) == [paths.upload("a", NEW)]
    assert await driver.list(paths.uploads("deep/name/x")) == []


@pytest_twisted.ensureDeferred
async def test_dryRunDeletesNothing():
    driver = MemoryDriver()
    await session(driver, "a", OLD, NOW - 8 * DAY)
    assert await purgeUploads(driver, 7 * DAY, now=NOW, dryrun=True) == [paths.upload("a", OLD)]
    assert await driver.list(paths.uploads("a")) == [paths.upload("a", OLD)]


@pytest_twisted.ensureDeferred
async def test_sessionWithoutStartedAtUsesModificationTime():
    driver = MemoryDriver()
    await session(driver, "a", OLD, None)
    now = time.time()
    assert await purgeUploads(driver, 7 * DAY, now=now) == []  # just written
    assert await purgeUploads(driver, 7 * DAY, now=now + 8 * DAY) == [paths.upload("a", OLD)]


@pytest_twisted.ensureDeferred
async def test_emptyStorage():
    assert await purgeUploads(MemoryDriver(), DAY) == []


@pytest_twisted.ensureDeferred
async def test_purgedSessionIsUnknown():
    registry = Registry(MemoryDriver())
    upload = await registry.repository("a").blobs.createUpload()
    await upload.write(b"abc")
    await upload.close()
    await purgeUploads(registry.driver, -1)
    try:
        await registry.repository("a").blobs.resumeUpload(upload.id)
    except Exception as e:
        assert getattr(e, "code", None) == "BLOB_UPLOAD_UNKNOWN"
    else:
        raise AssertionError("a purged session was resumed")


def purgingConfig(readonly=False, enabled=True):
    config = defaultConfig()
    storage = replace(
        config.storage,
        driver="inmemory",
        readonly=readonly,
        uploadPurging=replace(config.storage.uploadPurging, enabled=enabled, age=60.0, interval=3600.0),
    )
    return replace(config, storage=storage, http=replace(config.http, listen=("tcp:0:interface=127.0.0.1",)))


@pytest_twisted.ensureDeferred
async def test_serviceRunsPurgingPeriodically():
    service = RegistryService(purgingConfig())
    timers = [s for s in service if isinstance(s, TimerService)]
    assert len(timers) == 1
    assert timers[0].step == 3600.0
    driver = service.registry.driver
    await session(driver, "a", OLD, 0.0)  # 1970
    clock = Clock()
    timers[0].clock = clock
    service.startService()
    try:
        assert await driver.list(paths.uploads("a")) == []  # the first run is at start
        await session(driver, "a", OLD, 0.0)
        clock.advance(3600)
        assert await driver.list(paths.uploads("a")) == []
    finally:
        await service.stopService()


def test_noPurgingWhenDisabledOrReadOnly():
    for config in (purgingConfig(enabled=False), purgingConfig(readonly=True)):
        assert not [s for s in RegistryService(config) if isinstance(s, TimerService)]
