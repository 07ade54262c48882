"""
Wiring: the one place concrete drivers, the registry and the web meet.

Embedders use L{makeRegistry} and L{makeResource} to put the registry in
their own L{Site}; L{RegistryService} is the whole daemon (listeners, storage
thread pool, upload purging) that the twistd plugin runs.
"""

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from registryd.config import defaultConfig
from registryd.driver.deferred import inThreadPool
from registryd.driver.filesystem import FilesystemDriver
from registryd.driver.memory import MemoryDriver
from registryd.storage.purge import purgeUploads
from registryd.storage.registry import Registry, urlPolicy
from registryd.web.api import RegistryAPI
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
        driver = FilesystemDriver(storage.rootdirectory, reactor, threadpool)
    validation = config.validation
    return Registry(
        driver,
        deleteEnabled=storage.deleteEnabled,
        compute=inThreadPool(reactor, threadpool),
        urlPolicy=urlPolicy(
            validation.manifestURLsAllow, validation.manifestURLsDeny, validation.disabled
        ),
    )


def makeResource(config=None, registry=None, reactor=None):
    """
    The registry's HTTP resource, to mount at the root of a L{RegistrySite}
    (or any L{Site}, at the cost of spooling upload bodies).

    @param registry: Serve this L{IRegistry} (e.g. one shared with other
        code); by default one is made from C{config}.
    """
    config = config or defaultConfig()
    if registry is None:
        registry = makeRegistry(config, reactor)
    return RegistryAPI(
        registry,
        readOnly=config.storage.readonly,
        host=config.http.host,
        relativeURLs=config.http.relativeURLs,
        headers=config.http.headers,
        repositoryClasses=config.policy.repositoryClasses,
    ).resource()


class RegistryService(MultiService):
    """The registry daemon: its listeners, its storage threads, its chores."""

    def __init__(self, config, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self._threadpool = ThreadPool(
            minthreads=2, maxthreads=config.storage.maxthreads, name="registryd-storage"
        )
        self.registry = makeRegistry(config, reactor, self._threadpool)
        self.site = RegistrySite(
            makeResource(config, self.registry), accessLogEnabled=config.log.accesslog
        )
        for endpoint in config.http.listen:
            strports.service(endpoint, self.site, reactor=reactor).setServiceParent(self)
        purging = config.storage.uploadPurging
        if purging.enabled and not config.storage.readonly:
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
        d = super().stopService()
        if d is None:
            self._threadpool.stop()
            return None
        return d.addBoth(lambda result: (self._threadpool.stop(), result)[1])
