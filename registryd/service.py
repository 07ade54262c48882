"""
Wiring: the one place concrete drivers, the registry and the web meet.

Embedders use L{makeRegistry} and L{makeResource} to put the registry in
their own L{Site}; L{RegistryService} is the whole daemon (listeners, storage
thread pool, upload purging) that the twistd plugin runs.
"""

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

import os

from registryd.config import HtpasswdAuth, SillyAuth, TokenAuth, defaultConfig
from registryd.concurrency import inThreadPool
from registryd.driver.filesystem import FilesystemDriver
from registryd.driver.memory import MemoryDriver
from registryd.notifications import makeNotifier
from registryd.storage.purge import purgeUploads
from registryd.storage.registry import Registry, urlPolicy
from registryd.tls import listeners, tlsFactory
from registryd.transport import writeAtOnce
from registryd.workers import FIRST_INHERITED_FD, WorkerPool, familyOf
from registryd.web.api import RegistryAPI
from registryd.web.responses import URLs
from registryd.web.site import RegistrySite

log = Logger()


def makeRegistry(config, reactor=None, threadpool=None):
    """
    The L{registryd.interfaces.IRegistry} C{config.storage} describes.

    @param threadpool: Runs the filesystem driver's calls and hashing
        (default: the reactor's).
    """
    if reactor is None:
        from twisted.internet import reactor
    if threadpool is None:
        threadpool = reactor.getThreadPool()
    storage = config.storage
    if storage.driver == "inmemory":
        driver = MemoryDriver()
    else:
        driver = FilesystemDriver(storage.rootdirectory, reactor, threadpool, storage.directwrites)
    validation = config.validation
    return Registry(
        driver,
        deleteEnabled=storage.deleteEnabled,
        compute=inThreadPool(reactor, threadpool),
        urlPolicy=urlPolicy(
            validation.manifestURLsAllow, validation.manifestURLsDeny, validation.disabled
        ),
    )


def makeAuth(config):
    """
    The L{IAccessController} the C{auth} section asks for (None: no
    authentication), and the resources to serve beside the API by path
    (the built-in issuer's token endpoint).
    """
    auth = config.auth
    if auth is None:
        return None, {}
    # Imported only when configured, as the proxy and notifications are: a
    # process then holds only the code it serves with (JWT and the HTTP
    # client weighed 2.7 MiB in each process).
    from registryd.auth.controllers import htpasswdController, sillyController, tokenController
    from registryd.auth.htpasswd import Htpasswd

    if isinstance(auth, HtpasswdAuth):
        return htpasswdController(auth.realm, Htpasswd(auth.path)), {}
    if isinstance(auth, SillyAuth):
        return sillyController(auth.realm, auth.service), {}
    from registryd.auth.issuer import TokenIssuer
    from registryd.auth.keys import ephemeralSigningKey, loadOrCreateSigningKey
    from registryd.auth.policy import Policy
    from registryd.auth.token import TokenVerifier, loadCertificates, loadJWKS

    if isinstance(auth, TokenAuth):
        verifier = TokenVerifier(
            auth.issuer,
            auth.service,
            certificates=loadCertificates(auth.rootcertbundle) if auth.rootcertbundle else (),
            jwks=loadJWKS(auth.jwks) if auth.jwks else None,
        )
        return tokenController(auth.realm, auth.service, verifier), {}
    # The built-in issuer: tokens it signs are verified with its own key.
    if auth.key is not None:
        key = loadOrCreateSigningKey(auth.key)
    elif config.storage.driver == "filesystem":
        key = loadOrCreateSigningKey(os.path.join(config.storage.rootdirectory, "token-signing.key"))
    else:
        key = ephemeralSigningKey()
    policy = Policy.fromFile(auth.policy)
    issuer = TokenIssuer(auth.issuer, auth.service, key, Htpasswd(auth.htpasswd), policy, auth.expiration)
    verifier = TokenVerifier(auth.issuer, auth.service, certificates=[key.certificate])
    realm = auth.realm or URLs(config.http.host).absolute(auth.path)
    return tokenController(realm, auth.service, verifier), {auth.path: issuer.resource()}


def makeResource(config=None, registry=None, reactor=None, events=None):
    """
    The registry's HTTP resource, to mount at the root of a L{RegistrySite}
    (or any L{Site}, at the cost of spooling upload bodies).

    @param registry: Serve this L{IRegistry} (e.g. one shared with other
        code); by default one is made from C{config}.
    @param events: Told of pushes, pulls, mounts and deletes (a
        L{registryd.notifications.notifier.Notifier}), or None.
    """
    config = config or defaultConfig()
    if registry is None:
        registry = makeRegistry(config, reactor)
        if config.proxy is not None:
            from registryd.proxy import makeProxyRegistry

            # Cached content is not expired here: RegistryService does that.
            registry, _ = makeProxyRegistry(config, registry, reactor)
    readOnly = config.storage.readonly
    if config.proxy is not None:
        readOnly = "this registry is a pull-through cache"
    controller, extra = makeAuth(config)
    return RegistryAPI(
        registry,
        readOnly=readOnly,
        host=config.http.host,
        relativeURLs=config.http.relativeURLs,
        headers=config.http.headers,
        repositoryClasses=config.policy.repositoryClasses,
        accessController=controller,
        events=events,
    ).resource(extra)


class _Listener(Service):
    """Listens on an endpoint, keeping the port so workers can share it."""

    def __init__(self, endpoint, factory, shared):
        self._endpoint = endpoint
        self._factory = factory
        self._shared = shared
        self.port = None

    def startService(self):
        super().startService()
        d = self._endpoint.listen(self._factory)
        failures = []
        d.addCallbacks(self._listening, failures.append)
        if failures:
            # A port that cannot be bound fails the start (and twistd) instead
            # of being logged while nothing listens.
            failures[0].raiseException()

    def _listening(self, port):
        port = writeAtOnce(port)
        self.port = acceptOneAtATime(port) if self._shared else port

    def stopService(self):
        super().stopService()
        if self.port is not None:
            return self.port.stopListening()


def acceptOneAtATime(port):
    """
    Accept one connection per wake-up: the processes sharing a socket all
    wake, and a port taking a burst at once would leave the others none (so
    one process would serve every connection a client opens together).
    Twisted's port raises its count after each wake-up that used it all, so
    the count is set back after every one.
    """
    if not hasattr(port, "numberAccepts"):
        return port
    accept = port.doRead

    def doRead():
        try:
            return accept()
        finally:
            port.numberAccepts = 1

    port.numberAccepts = 1
    port.doRead = doRead
    return port


class _Adopted(Service):
    """A worker's listener: a socket the first process opened, adopted."""

    def __init__(self, reactor, fd, factory):
        self._reactor = reactor
        self._fd = fd
        self._factory = factory
        self.port = None

    def startService(self):
        super().startService()
        port = self._reactor.adoptStreamPort(self._fd, familyOf(self._fd), self._factory)
        self.port = acceptOneAtATime(writeAtOnce(port))

    def stopService(self):
        super().stopService()
        return self.port.stopListening()


class RegistryService(MultiService):
    """
    The registry daemon: its listeners, its storage threads, its chores.

    @param workers: Processes serving the listeners in all (see
        L{registryd.workers}); this one starts the others.
    @param workerIndex: Set in a worker process: its number (from 1).  It
        adopts the first process's sockets and leaves the chores to it.
    @param workerCommand: The command line a worker runs (for the first
        process, with C{workers} > 1).
    """

    def __init__(self, config, reactor=None, workers=1, workerIndex=None, workerCommand=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        master = workerIndex is None
        self._threadpool = ThreadPool(
            minthreads=2, maxthreads=config.storage.maxthreads, name="registryd-storage"
        )
        self.registry = makeRegistry(config, reactor, self._threadpool)
        served = self.registry
        self._proxy = None
        if config.proxy is not None:
            from registryd.proxy import expiryInterval, makeProxyRegistry

            served, expire = makeProxyRegistry(config, self.registry, reactor)
            self._proxy = served
            if master:
                TimerService(expiryInterval(config.proxy.ttl), expire).setServiceParent(self)
        notifier = makeNotifier(config, reactor, instance=workerIndex or 0)
        if notifier is not None:
            # Before the listeners: started before them, stopped after them.
            notifier.setServiceParent(self)
        self.site = RegistrySite(
            makeResource(config, served, events=notifier),
            accessLogEnabled=config.log.accesslog,
        )
        if master:
            ports = [_Listener(endpoint, self.site, workers > 1) for _, endpoint in listeners(config, reactor)]
            for listener in ports:
                listener.setServiceParent(self)
            if workers > 1:
                WorkerPool(
                    reactor, workers - 1, lambda: [listener.port for listener in ports], workerCommand
                ).setServiceParent(self)
        else:
            factory = self.site if config.http.tls is None else tlsFactory(config.http.tls, self.site)
            for offset in range(len(config.http.listen)):
                _Adopted(reactor, FIRST_INHERITED_FD + offset, factory).setServiceParent(self)
        purging = config.storage.uploadPurging
        if master and purging.enabled and not config.storage.readonly:
            TimerService(
                purging.interval,
                self._purge,
                purging.age,
                purging.dryrun,
            ).setServiceParent(self)

    def _purge(self, age, dryrun):
        d = purgeUploads(self.registry.driver, age, dryrun=dryrun)
        d.addErrback(lambda f: log.failure("upload purging failed", f))
        return d

    def startService(self):
        for warning in self.config.warnings:
            log.warn("configuration: {warning}", warning=warning)
        self._threadpool.start()
        super().startService()
        log.info(
            "registryd serving {driver} storage on {listen}",
            driver=self.config.storage.driver,
            listen=", ".join(self.config.http.listen),
        )

    def stopService(self):
        if self._proxy is not None:
            self._proxy.close()
        d = super().stopService()
        if d is None:
            self._threadpool.stop()
            return None
        return d.addBoth(lambda result: (self._threadpool.stop(), result)[1])
