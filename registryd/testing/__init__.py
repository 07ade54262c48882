"""
A real registry for your tests: L{startRegistry} listens on an ephemeral
loopback port, in this process and reactor, and L{RunningRegistry.stop}
tears it down with no connection left behind (as trial insists).

Under trial::

    class MyTest(TestCase):
        @inlineCallbacks
        def setUp(self):
            self.registry = yield startRegistry()
            self.addCleanup(self.registry.stop)

Under pytest-twisted::

    @pytest_twisted.async_yield_fixture
    async def registry():
        running = await startRegistry()
        yield running
        await running.stop()

C{running.url} is e.g. C{"http://127.0.0.1:41234"}; C{running.registry} is
the L{registryd.interfaces.IRegistry} behind it, for arranging content directly.
"""

import tempfile
from dataclasses import replace

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.protocols.policies import WrappingFactory

from registryd.concurrency import deferred
from registryd.config import defaultConfig
from registryd.proxy import makeProxyRegistry
from registryd.service import makeRegistry, makeResource
from registryd.transport import writeAtOnce
from registryd.web.site import RegistrySite


class RunningRegistry:
    """A registry listening on loopback until L{stop}."""

    def __init__(self, port, factory, registry, url, root):
        self._port = port
        self._factory = factory
        self.registry = registry
        self.url = url
        self.host = url.split("://", 1)[1]
        self.root = root

    @deferred
    async def stop(self):
        """Stop listening and close every open connection."""
        await self._port.stopListening()
        await self._factory.closeAll()


class _TrackingFactory(WrappingFactory):
    """Knows every open connection, so it can close them all."""

    def __init__(self, wrappedFactory):
        super().__init__(wrappedFactory)
        self._closing = {}

    def closeAll(self):
        """@return: Deferred firing when every connection has closed."""
        closing = []
        for protocol in list(self.protocols):
            closing.append(self._closing.setdefault(protocol, Deferred()))
            protocol.transport.abortConnection()
        return gatherResults(closing)

    def unregisterProtocol(self, protocol):
        super().unregisterProtocol(protocol)
        done = self._closing.pop(protocol, None)
        if done is not None:
            done.callback(None)


@deferred
async def startRegistry(storage="inmemory", root=None, config=None, reactor=None):
    """
    Start a registry on C{127.0.0.1}, port chosen by the system.

    @param storage: C{"inmemory"} or C{"filesystem"}.
    @param root: The filesystem root (default: a new temporary directory).
    @param config: A L{registryd.config.Config} for the other options
        (deletes, read-only, ...); its storage and listeners are overridden.
    @return: Deferred firing with a L{RunningRegistry}.
    """
    if reactor is None:
        from twisted.internet import reactor
    config = config or defaultConfig()
    if storage == "filesystem" and root is None:
        root = tempfile.mkdtemp(prefix="registryd-test-")
    config = replace(
        config,
        storage=replace(config.storage, driver=storage, rootdirectory=root or ""),
    )
    registry = makeRegistry(config, reactor)
    if config.proxy is not None:
        registry, _ = makeProxyRegistry(config, registry, reactor)
    factory = _TrackingFactory(RegistrySite(makeResource(config, registry), accessLogEnabled=False))
    # Connections as the daemon's listeners make them.
    port = writeAtOnce(await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory))
    url = f"http://127.0.0.1:{port.getHost().port}"
    return RunningRegistry(port, factory, registry, url, root)
