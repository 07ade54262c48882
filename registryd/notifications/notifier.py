"""
The notifications service: every event to every endpoint that wants it.

One L{EventQueue} and one L{HTTPSink} per configured endpoint.  The queues
are restored from the spool when the L{Notifier} is made, so events emitted
before the service starts are queued behind those of the previous run; the
sinks deliver while the service runs.  L{Notifier.emit} never waits: it
renders the event once and appends it to each queue.
"""

import hashlib
import json
import os
import re

from twisted.application.service import Service
from twisted.internet.defer import gatherResults
from twisted.logger import Logger

from registryd.notifications.queue import EventQueue
from registryd.notifications.sink import HTTPSink

log = Logger()


def spoolName(endpoint):
    """
    The directory of C{endpoint}'s spool: its name made safe for a file
    name, plus a hash of it so that two names never share one.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", endpoint)[:64]
    return f"{safe}-{hashlib.sha256(endpoint.encode('utf-8')).hexdigest()[:12]}"


class Notifier(Service):
    """
    Sends events to the endpoints of a L{NotificationsConfig}.

    @param spoolDirectory: Where each endpoint's undelivered events are
        spooled (in a subdirectory named by L{spoolName}); None keeps them in
        memory only, lost on exit.
    @param httpClient: The L{treq.client.HTTPClient} deliveries use.
    @param clock: The L{IReactorTime} for timeouts, back-off and syncing.
    @param pool: The L{HTTPConnectionPool} of C{httpClient}, if the
        notifier owns it: its connections are closed when the service stops.
    """

    name = "notifications"

    def __init__(self, config, spoolDirectory, httpClient, clock, pool=None):
        self._includeReferences = config.includeReferences
        self._spoolDirectory = spoolDirectory
        self._pool = pool
        self._endpoints = []
        for endpoint in config.endpoints:
            directory = None
            if spoolDirectory is not None:
                directory = os.path.join(spoolDirectory, spoolName(endpoint.name))
            queue = EventQueue(endpoint.name, endpoint.queueLimit, clock, directory)
            self._endpoints.append((endpoint, queue, HTTPSink(endpoint, queue, httpClient, clock)))

    def emit(self, event):
        """Queue L{Event} C{event} for each endpoint whose filters let it through."""
        record = None
        for endpoint, queue, _ in self._endpoints:
            if event.ignoredBy(endpoint):
                continue
            if record is None:
                rendered = event.toJSON(self._includeReferences)
                record = json.dumps(rendered, separators=(",", ":")).encode("utf-8")
            queue.put(record)

    def startService(self):
        super().startService()
        if self._spoolDirectory is None:
            log.warn(
                "notifications: no spool directory (in-memory storage and no"
                " notifications.spooldirectory): undelivered events are lost on exit"
            )
        else:
            self._warnOrphans()
        for _, _, sink in self._endpoints:
            sink.start()

    def stopService(self):
        super().stopService()
        stopped = gatherResults([sink.stop() for _, _, sink in self._endpoints])

        def stoppedDelivering(_):
            for _, queue, _ in self._endpoints:
                queue.close()
            if self._pool is not None:
                return self._pool.closeCachedConnections()

        return stopped.addCallback(stoppedDelivering)

    def _warnOrphans(self):
        """A spool no endpoint reads any more (one renamed or removed) is worth a word."""
        known = {spoolName(endpoint.name) for endpoint, _, _ in self._endpoints}
        for entry in sorted(os.listdir(self._spoolDirectory)):
            path = os.path.join(self._spoolDirectory, entry)
            if entry in known or not os.path.isdir(path):
                continue
            if any(name.startswith("segment-") for name in os.listdir(path)):
                log.warn(
                    "notifications: {path} holds events of an endpoint no longer"
                    " configured; they are not sent",
                    path=path,
                )
