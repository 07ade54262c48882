"""
Delivery to an endpoint (L{HTTPSink}) and the fan-out to endpoints
(L{Notifier}), over L{StubTreq} with a L{Clock}: every wait is exact.
"""

import json
import os
from dataclasses import replace

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from treq.testing import StubTreq

from registryd.config import NotificationEndpoint, NotificationsConfig, defaultConfig
from registryd.manifest import Descriptor
from registryd.notifications import makeNotifier
from registryd.notifications.events import EVENTS_MEDIA_TYPE, Event, Target
from registryd.notifications.notifier import Notifier, spoolName
from registryd.notifications.queue import EventQueue
from registryd.notifications.sink import HTTPSink
from registryd.reference import Digest

URL = "http://receiver.test/events"


class Receiver(Resource):
    """
    Records each POST; answers C{status} (after C{failures} 500s), or
    never when C{hang}.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.posts = []  # (path, headers, envelope)
        self.attempts = 0
        self.failures = 0
        self.status = 200
        self.hang = False

    def render_POST(self, request):
        self.attempts += 1
        if self.hang:
            return NOT_DONE_YET
        if self.failures:
            self.failures -= 1
            request.setResponseCode(500)
            return b"down"
        request.setResponseCode(self.status)
        if 200 <= self.status < 300:
            self.posts.append((request.path.decode(), request.requestHeaders, json.loads(request.content.read())))
        return b"thanks"

    def events(self, path=None):
        return [e for p, _, envelope in self.posts if path in (None, p) for e in envelope["events"]]


def record(n):
    return json.dumps({"n": n}).encode()


def endpoint(**fields):
    defaults = dict(name="hook", url=URL, timeout=2.0, threshold=3, backoff=1.0, maxBackoff=4.0)
    return NotificationEndpoint(**{**defaults, **fields})


@pytest.fixture
def receiver():
    return Receiver()


@pytest.fixture
def stub(receiver):
    return StubTreq(receiver)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settle(stub, clock):
    """Run what is due now: queue wake-ups, then the in-memory HTTP exchange."""

    def settle():
        clock.advance(0)
        stub.flush()

    return settle


def startSink(stub, clock, queue=None, **fields):
    queue = queue if queue is not None else EventQueue("hook", 100, clock)
    sink = HTTPSink(endpoint(**fields), queue, stub, clock)
    sink.start()
    return sink, queue


def test_deliversInAnEnvelope(settle, receiver, stub, clock):
    sink, queue = startSink(stub, clock, headers={"Authorization": ("Bearer s3cret",)})
    queue.put(record(1))
    queue.put(record(2))
    settle()
    [(path, headers, envelope)] = receiver.posts
    assert envelope == {"events": [{"n": 1}, {"n": 2}]}
    assert path == "/events"
    assert headers.getRawHeaders("content-type") == [EVENTS_MEDIA_TYPE]
    assert headers.getRawHeaders("authorization") == ["Bearer s3cret"]
    assert len(queue) == 0
    queue.put(record(3))
    settle()
    assert receiver.events() == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_batchesKeepOrder(settle, receiver, stub, clock):
    queue = EventQueue("hook", 100, clock)
    for n in range(20):
        queue.put(record(n))
    startSink(stub, clock, queue)
    settle()
    assert [len(envelope["events"]) for _, _, envelope in receiver.posts] == [16, 4]
    assert receiver.events() == [{"n": n} for n in range(20)]


def test_retryBacksOffExponentiallyUpToTheBound(settle, receiver, stub, clock):
    receiver.failures = 5
    sink, queue = startSink(stub, clock)
    queue.put(record(1))
    settle()
    assert receiver.attempts == 1
    # Waits of 1, 2, 4, then 4 (maxBackoff) seconds between tries.
    for wait, attempts in [(1, 2), (2, 3), (4, 4), (4, 5), (4, 6)]:
        clock.advance(wait - 0.01)
        settle()
        assert receiver.attempts == attempts - 1
        clock.advance(0.01)
        settle()
        assert receiver.attempts == attempts
    assert receiver.events() == [{"n": 1}]
    assert (len(queue), sink.failures) == (0, 0)
    # After a delivery the back-off starts over.
    receiver.failures = 1
    queue.put(record(2))
    settle()
    clock.advance(1)
    settle()
    assert receiver.events() == [{"n": 1}, {"n": 2}]


def test_orderKeptAcrossFailures(settle, receiver, stub, clock):
    receiver.failures = 3
    sink, queue = startSink(stub, clock)
    queue.put(record(1))
    settle()
    queue.put(record(2))
    clock.advance(1)
    settle()
    queue.put(record(3))
    assert receiver.events() == []
    assert len(queue) == 3
    clock.advance(2)
    settle()
    clock.advance(4)
    settle()
    assert receiver.events() == [{"n": 1}, {"n": 2}, {"n": 3}]


@pytest.mark.parametrize("status", [302, 404, 500, 503])
def test_non2xxIsAFailure(settle, receiver, stub, clock, status):
    receiver.status = status
    sink, queue = startSink(stub, clock)
    queue.put(record(1))
    settle()
    assert (receiver.attempts, len(queue), sink.failures) == (1, 1, 1)
    receiver.status = 204
    clock.advance(1)
    settle()
    assert receiver.events() == [{"n": 1}]
    assert len(queue) == 0


def test_timeoutIsAFailure(settle, receiver, stub, clock):
    receiver.hang = True
    sink, queue = startSink(stub, clock, timeout=2.0)
    queue.put(record(1))
    settle()
    assert receiver.attempts == 1
    clock.advance(1.99)
    settle()
    assert sink.failures == 0
    with capturedLogs() as logs:
        clock.advance(0.01)
        settle()
    assert sink.failures == 1
    assert [e["problem"] for e in logs if "problem" in e] == ["no answer within 2.0s"]
    receiver.hang = False
    clock.advance(1)  # the back-off
    settle()
    assert receiver.attempts == 2
    assert receiver.events() == [{"n": 1}]


class RefusingClient:
    """An HTTP client whose every connection is refused."""

    def __init__(self):
        self.posts = 0

    def post(self, url, **kwargs):
        self.posts += 1
        return fail(ConnectionRefusedError())


def test_connectionErrorIsAFailure(clock):
    client = RefusingClient()
    sink, queue = startSink(client, clock)
    queue.put(record(1))
    clock.advance(0)
    assert (client.posts, sink.failures) == (1, 1)
    clock.advance(1)
    assert client.posts == 2
    assert len(queue) == 1


def test_thresholdLogsDownOnceThenBack(settle, receiver, stub, clock):
    receiver.failures = 4
    sink, queue = startSink(stub, clock, threshold=3)
    with capturedLogs() as logs:
        queue.put(record(1))
        settle()
        for wait in (1, 2, 4, 4):
            clock.advance(wait)
            settle()
    assert receiver.events() == [{"n": 1}]
    [down] = [e for e in logs if e.get("log_level") == LogLevel.warn]
    assert (down["name"], down["failures"], down["problem"]) == ("hook", 3, "answered 500")
    [back] = [e for e in logs if e.get("log_level") == LogLevel.info and "again" in e["log_format"]]
    assert back["failures"] == 4


def test_stopKeepsUndeliveredEvents(settle, receiver, stub, clock):
    receiver.hang = True
    sink, queue = startSink(stub, clock)
    queue.put(record(1))
    settle()
    stopped = sink.stop()
    assert stopped.called
    clock.advance(100)
    settle()
    assert receiver.attempts == 1
    assert len(queue) == 1
    queue.put(record(2))
    settle()
    assert receiver.attempts == 1  # nothing is sent after stop


def test_stopWhileWaitingForEvents(stub, clock):
    sink, queue = startSink(stub, clock)
    assert sink.stop().called
    assert sink.stop().called  # twice is harmless


# -- The notifier -------------------------------------------------------------


def event(action="push", mediaType="application/octet-stream", references=()):
    return Event(
        id=f"id-{action}-{mediaType}",
        timestamp=0.0,
        action=action,
        target=Target("lib/app", mediaType, "sha256:" + "0" * 64, 3, references=references),
        request={"id": "r", "method": "PUT", "useragent": ""},
        actor={},
        source={"addr": "here:5000", "instanceID": "i"},
    )


def notifications(*endpoints, includeReferences=False):
    return NotificationsConfig(endpoints=endpoints, includeReferences=includeReferences)


def test_notifierFansOutThroughFilters(settle, receiver, stub, clock):
    config = notifications(
        endpoint(name="all", url="http://receiver.test/all"),
        endpoint(name="nopull", url="http://receiver.test/nopull", ignoredActions=("pull",)),
        endpoint(
            name="noblobs", url="http://receiver.test/noblobs", ignoredMediaTypes=("application/octet-stream",)
        ),
    )
    notifier = Notifier(config, None, stub, clock)
    notifier.startService()
    manifest = "application/vnd.oci.image.manifest.v1+json"
    for action, mediaType in [("push", "application/octet-stream"), ("push", manifest), ("pull", manifest)]:
        notifier.emit(event(action, mediaType))
    settle()

    def seen(path):
        return [(e["action"], e["target"]["mediaType"]) for e in receiver.events(path)]

    assert seen("/all") == [("push", "application/octet-stream"), ("push", manifest), ("pull", manifest)]
    assert seen("/nopull") == [("push", "application/octet-stream"), ("push", manifest)]
    assert seen("/noblobs") == [("push", manifest), ("pull", manifest)]
    assert receiver.events("/all")[0] == event().toJSON()
    notifier.stopService()


@pytest.mark.parametrize("include", [False, True])
def test_notifierIncludesReferencesWhenAsked(settle, receiver, stub, clock, include):
    layer = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", Digest("sha256:" + "1" * 64), 10)
    notifier = Notifier(notifications(endpoint(), includeReferences=include), None, stub, clock)
    notifier.startService()
    notifier.emit(event(references=(layer,)))
    settle()
    [sent] = receiver.events()
    assert sent["target"].get("references") == ([layer.toJSON()] if include else None)


def test_notifierStopLeavesSpoolForTheNextStart(settle, receiver, stub, clock, tmp_path):
    receiver.failures = 1
    config = notifications(endpoint())
    notifier = Notifier(config, str(tmp_path), stub, clock)
    notifier.startService()
    notifier.emit(event("push"))
    notifier.emit(event("pull"))
    settle()
    assert receiver.events() == []
    assert notifier.stopService().called
    clock.advance(100)
    settle()
    assert receiver.attempts == 1
    # The next process: the queue is read back from the spool.
    again = Notifier(config, str(tmp_path), stub, clock)
    again.emit(event("delete", None))  # before it starts: queued behind the others
    again.startService()
    settle()
    assert [e["action"] for e in receiver.events()] == ["push", "pull", "delete"]
    again.stopService()
    third = Notifier(config, str(tmp_path), stub, clock)
    third.startService()
    settle()
    assert len(receiver.events()) == 3  # delivered ones are not sent again


def test_notifierWarnsOfMemoryOnlyQueues(stub, clock):
    notifier = Notifier(notifications(endpoint()), None, stub, clock)
    with capturedLogs() as logs:
        notifier.startService()
    assert any("lost on exit" in e["log_format"] for e in logs if e.get("log_level") == LogLevel.warn)
    notifier.stopService()


def test_notifierWarnsOfAnOrphanedSpool(stub, clock, tmp_path):
    Notifier(notifications(endpoint(name="old")), str(tmp_path), stub, clock).emit(event())
    renamed = Notifier(notifications(endpoint(name="new")), str(tmp_path), stub, clock)
    with capturedLogs() as logs:
        renamed.startService()
    [orphan] = [e for e in logs if e.get("log_level") == LogLevel.warn]
    assert "old" in orphan["path"]
    renamed.stopService()


def test_stoppingClosesOwnedPool(stub, clock):
    class Pool:
        closed = False

        def closeCachedConnections(self):
            self.closed = True
            return Deferred()

    pool = Pool()
    notifier = Notifier(notifications(endpoint()), None, stub, clock, pool=pool)
    notifier.startService()
    notifier.stopService()
    assert pool.closed


def test_makeNotifierSpoolsWhereConfigured(tmp_path):
    base = defaultConfig()
    assert makeNotifier(base, Clock()) is None  # no endpoints, no notifier
    config = replace(
        base,
        notifications=notifications(endpoint()),
        storage=replace(base.storage, rootdirectory=str(tmp_path / "root")),
    )

    def spooledIn(config, directory):
        makeNotifier(config, Clock()).emit(event())
        spool = directory / spoolName("hook")
        return any(name.startswith("segment-") for name in os.listdir(spool))

    assert spooledIn(config, tmp_path / "root" / "notifications")
    configured = replace(config, notifications=replace(config.notifications, spoolDirectory=str(tmp_path / "spool")))
    assert spooledIn(configured, tmp_path / "spool")
    before = sorted(p for p in tmp_path.rglob("*"))
    inMemory = replace(config, storage=replace(config.storage, driver="inmemory"))
    makeNotifier(inMemory, Clock()).emit(event())
    assert sorted(p for p in tmp_path.rglob("*")) == before
