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
from registryd.storage.uploads import newUploadID, startedAtOf

DAY = 86400.0
NOW = 1_800_000_000.0


async def session(driver, name, startedAt, hashStates=()):
    """A session as registryd keeps one: its file, and saved hash states beside it."""
    uploadID = newUploadID(startedAt)
    await driver.putContent(paths.uploadData(name, uploadID), b"partial")
    for offset in hashStates:
        await driver.putContent(paths.uploadHashState(name, uploadID, offset), b"state")
    return uploadID


async def legacySession(driver, name, uploadID, startedAt):
    """A session directory as Distribution leaves one, with or without its startedat."""
    directory = f"{paths.uploads(name)}/{uploadID}"
    await driver.putContent(f"{directory}/data", b"partial")
    if startedAt is not None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(startedAt)) + ".123456789Z"
        await driver.putContent(f"{directory}/startedat", stamp.encode())
    return directory


def test_uploadIDsCarryTheirStartTime():
    uploadID = newUploadID(NOW + 0.25)
    assert uploadID[14] == "7"  # a UUID version 7
    assert startedAtOf(uploadID) == NOW + 0.25
    assert newUploadID(NOW) != newUploadID(NOW)
    assert startedAtOf("00000000-0000-4000-8000-000000000001") is None  # version 4
    assert startedAtOf("../../x") is None


@pytest_twisted.ensureDeferred
async def test_purgesOnlyOldSessions():
    driver = MemoryDriver()
    old = await session(driver, "a", NOW - 8 * DAY, hashStates=[100, 200])
    new = await session(driver, "a", NOW - 1 * DAY, hashStates=[100])
    nested = await session(driver, "deep/name/x", NOW - 30 * DAY)
    purged = await purgeUploads(driver, 7 * DAY, now=NOW)
    assert sorted(purged) == sorted(
        [
            paths.uploadData("a", old),
            paths.uploadHashState("a", old, 100),
            paths.uploadHashState("a", old, 200),
            paths.uploadData("deep/name/x", nested),
        ]
    )
    assert sorted(await driver.list(paths.uploads("a"))) == [
        paths.uploadData("a", new),
        paths.uploadHashState("a", new, 100),
    ]
    assert await driver.list(paths.uploads("deep/name/x")) == []


@pytest_twisted.ensureDeferred
async def test_dryRunDeletesNothing():
    driver = MemoryDriver()
    old = await session(driver, "a", NOW - 8 * DAY)
    assert await purgeUploads(driver, 7 * DAY, now=NOW, dryrun=True) == [paths.uploadData("a", old)]
    assert await driver.list(paths.uploads("a")) == [paths.uploadData("a", old)]


@pytest_twisted.ensureDeferred
async def test_legacySessionDirectories():
    """Distribution's session directories are dated by startedat, or else their modification time."""
    driver = MemoryDriver()
    now = time.time()
    old = await legacySession(driver, "a", "00000000-0000-4000-8000-000000000001", now - 8 * DAY)
    young = await legacySession(driver, "a", "00000000-0000-4000-8000-000000000002", now - 1 * DAY)
    undated = await legacySession(driver, "a", "00000000-0000-4000-8000-000000000003", None)
    assert await purgeUploads(driver, 7 * DAY, now=now) == [old]
    assert sorted(await driver.list(paths.uploads("a"))) == sorted([young, undated])
    assert sorted(await purgeUploads(driver, 7 * DAY, now=now + 8 * DAY)) == sorted([young, undated])


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
    await session(driver, "a", 0.0)  # 1970
    clock = Clock()
    timers[0].clock = clock
    service.startService()
    try:
        assert await driver.list(paths.uploads("a")) == []  # the first run is at start
        await session(driver, "a", 0.0)
        clock.advance(3600)
        assert await driver.list(paths.uploads("a")) == []
    finally:
        await service.stopService()


def test_noPurgingWhenDisabledOrReadOnly():
    for config in (purgingConfig(enabled=False), purgingConfig(readonly=True)):
        assert not [s for s in RegistryService(config) if isinstance(s, TimerService)]
