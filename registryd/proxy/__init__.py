"""
The pull-through cache (the configuration's C{proxy} section): an
L{IRegistry} that serves what the local registry holds and fetches the rest
from an upstream registry, storing it as it goes.

L{makeProxyRegistry} is the wiring: the service serves the registry it
returns and runs its expiry every L{expiryInterval} seconds.
"""

from twisted.logger import Logger

from registryd.proxy.cache import ProxyRegistry
from registryd.proxy.upstream import Upstream, UpstreamError, UpstreamUnavailable, makeClient

__all__ = ["ProxyRegistry", "Upstream", "UpstreamError", "UpstreamUnavailable", "expiryInterval", "makeProxyRegistry"]

log = Logger()


def makeProxyRegistry(config, local, reactor):
    """
    The pull-through cache C{config.proxy} describes, over C{local} (the
    L{registryd.storage.registry.Registry} it stores into).

    @return: C{(registry, expire)}: the L{ProxyRegistry} to serve, and a
        zero-argument callable removing expired content (returns a Deferred
        that does not fail, for a L{TimerService}).  Call C{registry.close()}
        when the service stops.
    """
    proxy = config.proxy
    client, pool = makeClient(reactor)
    upstream = Upstream(
        proxy.remoteurl, client, reactor, username=proxy.username, password=proxy.password, pool=pool
    )
    registry = ProxyRegistry(local, upstream, proxy.ttl, reactor)

    def expire():
        d = registry.expire()
        d.addErrback(lambda failure: log.failure("proxy cache: expiry failed", failure))
        return d

    return registry, expire


def expiryInterval(ttl):
    """How often to look for expired content: a quarter of C{ttl}, within 1 s and 1 h."""
    return min(max(ttl / 4, 1.0), 3600.0)
