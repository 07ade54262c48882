"""
Notifications: events about pushes, pulls, mounts and deletes, POSTed to
webhooks in CNCF Distribution's envelope.

L{events} says what happened, L{queue} keeps each endpoint's events in
order across restarts, L{sink} delivers them, and L{notifier} is the service
that ties them together.  L{makeNotifier} builds it from the configuration.
"""

import os


def makeNotifier(config, reactor, instance=0):
    """
    The L{Notifier} C{config.notifications} asks for, or None when it names
    no endpoint.

    Undelivered events are spooled in C{notifications.spooldirectory}, else
    in C{notifications} inside the filesystem storage root (beside
    C{docker/}, where neither registryd nor Distribution looks); with
    in-memory storage and no spool directory they are kept in memory only.
    Worker processes (C{instance} > 0) spool in their own subdirectory.
    """
    notifications = config.notifications
    if not notifications.endpoints:
        return None
    spoolDirectory = notifications.spoolDirectory
    if spoolDirectory is None and config.storage.driver == "filesystem":
        spoolDirectory = os.path.join(config.storage.rootdirectory, "notifications")
    if spoolDirectory is not None and instance:
        spoolDirectory = os.path.join(spoolDirectory, f"worker-{instance}")
    # Imported only when there is somewhere to deliver: the HTTP client
    # weighs a MiB and more in every process.
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    from registryd.notifications.notifier import Notifier

    pool = HTTPConnectionPool(reactor)
    client = HTTPClient(Agent(reactor, pool=pool))
    return Notifier(notifications, spoolDirectory, client, reactor, pool=pool)
