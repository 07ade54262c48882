"""
The registry's configuration: one YAML file read into frozen dataclasses.

Keys are spelled as in CNCF Distribution's C{config.yml}, so an existing
Distribution file can be brought along.  Every key in the file is accounted
for, because a key that is quietly dropped is a registry that quietly behaves
differently:

  - a key registryd uses is type-checked and converted;
  - a Distribution key registryd has no use for is accepted and named in
    L{Config.warnings};
  - a Distribution key whose absence would change what the registry does
    (C{proxy}, C{notifications}, C{middleware}, ...) is refused while
    registryd does not support it;
  - anything else is an unknown key, apart from registryd's own few
    (C{http.listen}, C{auth.issuer}), which are documented as such.

Every failure is a one-line L{ConfigError} starting with the dotted key, since
whoever reads it is about to edit that key.  A key given as null means the
same as a key left out.  The twistd plugin, the C{registryd} command and
embedders all read configuration through this module.
"""

import ipaddress
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import yaml

from registryd import __version__

_NOT_YET = f"not supported yet by registryd {__version__}"
_DEFAULT_ADDR = "127.0.0.1:5000"
_ROOT_KEY = "storage.filesystem.rootdirectory"


class ConfigError(Exception):
    """
    One line naming the key and the problem, e.g.
    C{"storage.delete.enabled: expected a boolean, got 'yes please'"}.

    @ivar key: The dotted key path (C{"http.listen[0]"}, C{"--listen"}), or the
        file's name for a problem with the whole file.
    @ivar problem: What is wrong with it.
    """

    def __init__(self, key, problem):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class LogConfig:
    """C{log}: how much is logged, in which format, with which fixed fields."""

    level: str = "info"
    formatter: str = "text"
    accesslog: bool = True
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class UploadPurging:
    """
    C{storage.maintenance.uploadpurging}: the periodic removal of uploads that
    were started and abandoned.  Durations are in seconds.
    """

    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dryrun: bool = False


@dataclass(frozen=True)
class StorageConfig:
    """
    C{storage}: where content lives and what may be done to it.

    @ivar driver: C{"filesystem"} or C{"inmemory"}.
    @ivar rootdirectory: The filesystem driver's root (relative to the
        working directory if relative).
    @ivar maxthreads: Size of the thread pool the filesystem driver's
        blocking calls run in.
    @ivar directwrites: Whether the filesystem driver writes the bulk of
        large uploads past the page cache (registryd's own key).
    """

    driver: str = "filesystem"
    rootdirectory: str = "./data"
    maxthreads: int = 16
    directwrites: bool = True
    deleteEnabled: bool = False
    readonly: bool = False
    uploadPurging: UploadPurging = field(default_factory=UploadPurging)
    redirectDisable: bool = False


@dataclass(frozen=True)
class TLSConfig:
    """
    C{http.tls}: what L{registryd.tls} serves on every listener of
    L{HTTPConfig.listen} when it is set.

    @ivar certificate: PEM file: the certificate, then any chain.
    @ivar key: PEM file: its unencrypted private key.
    @ivar clientCAs: PEM files of the CAs a client certificate is required
        from; empty asks for none.
    @ivar minimumTLS: C{"tls1.2"} or C{"tls1.3"}.
    """

    certificate: str
    key: str
    clientCAs: tuple[str, ...] = ()
    minimumTLS: str = "tls1.2"


@dataclass(frozen=True)
class HTTPConfig:
    """
    C{http}: how the registry is reached.

    @ivar listen: Twisted server endpoint strings, one listener each (see
        L{registryd.tls.listeners}).
    @ivar host: The externally reachable URL, for absolute C{Location}s.
    @ivar headers: Extra headers for every response, name to values.
    @ivar tls: TLS served on every listener of C{listen}, or None.  It is
        only set with C{listen} derived from C{http.addr} (C{tcp:} or C{tcp6:}
        strings); endpoint strings written in C{http.listen} or given with
        C{--listen} are used as written, C{ssl:} for TLS.
    """

    listen: tuple[str, ...] = ("tcp:5000:interface=127.0.0.1",)
    host: str | None = None
    prefix: str = "/"
    secret: str | None = None
    headers: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"X-Content-Type-Options": ("nosniff",)}
    )
    tls: TLSConfig | None = None
    relativeURLs: bool = False


@dataclass(frozen=True)
class PolicyConfig:
    """C{policy.repository.classes}: the repository classes accepted, if restricted."""

    repositoryClasses: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationConfig:
    """
    C{validation}: which foreign-layer URLs pushed manifests may carry.  The
    patterns are source text; each has been compiled once to check it.
    """

    disabled: bool = False
    manifestURLsAllow: tuple[str, ...] = ()
    manifestURLsDeny: tuple[str, ...] = ()


@dataclass(frozen=True)
class HtpasswdAuth:
    """
    C{auth.htpasswd}: HTTP Basic authentication against an htpasswd file of
    bcrypt entries; every authenticated user may do everything.

    @ivar realm: The C{realm} of the C{Basic} challenge.
    @ivar path: The htpasswd file (it existed and was readable at load time).
    """

    realm: str
    path: str


@dataclass(frozen=True)
class TokenAuth:
    """
    C{auth.token}: Bearer tokens (JWTs) from a token server elsewhere, as in
    Distribution's token authentication.  At least one of C{rootcertbundle}
    and C{jwks} is set.

    @ivar realm: The token server's URL, sent in the C{Bearer} challenge.
    @ivar service: The registry's name: the challenge's C{service} and the
        audience tokens must be for.
    @ivar issuer: The C{iss} tokens must carry.
    @ivar rootcertbundle: PEM file of certificates whose keys (or whose
        chains, for tokens carrying C{x5c}) sign tokens, or None.
    @ivar jwks: JSON Web Key Set file of keys that sign tokens, or None.
    """

    realm: str
    service: str
    issuer: str
    rootcertbundle: str | None = None
    jwks: str | None = None


@dataclass(frozen=True)
class SillyAuth:
    """
    C{auth.silly}: any C{Authorization} header is accepted; without one the
    client is challenged.  For development only.
    """

    realm: str
    service: str


@dataclass(frozen=True, kw_only=True)
class IssuerAuth:
    """
    C{auth.issuer}, registryd's own key (not Distribution's): a built-in
    token server.  Clients log in at C{path} with the users of C{htpasswd},
    get tokens for what C{policy} grants them, and present them as with
    C{auth.token}.

    @ivar service: The registry's name, the tokens' audience.
    @ivar issuer: The tokens' C{iss}.
    @ivar htpasswd: The htpasswd file of users.
    @ivar policy: The file of who may do what.
    @ivar key: The signing key's file, created if missing; None for
        C{token-signing.key} in the storage root, left to the service.
    @ivar expiration: Seconds a token is valid.
    @ivar realm: The token URL sent in challenges; None builds it from each
        request as C{<scheme>://<Host><path>}.
    @ivar path: Where the token endpoint is served.
    """

    service: str
    issuer: str = "registryd"
    htpasswd: str
    policy: str
    key: str | None = None
    expiration: float = 300.0
    realm: str | None = None
    path: str = "/token"


@dataclass(frozen=True)
class ProxyConfig:
    """
    C{proxy}: run as a pull-through cache of another registry (Distribution's
    keys).  Pushes and deletes are refused.

    @ivar remoteurl: The upstream registry's base URL.
    @ivar username: Credentials for the upstream, or None (anonymous).
    @ivar password: See C{username}.
    @ivar ttl: Seconds a cached tag is trusted before it is checked with the
        upstream again, and after which unused cached content is removed.
    """

    remoteurl: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ttl: float = 168 * 3600.0


@dataclass(frozen=True)
class NotificationEndpoint:
    """
    One of C{notifications.endpoints}: where events are POSTed.

    @ivar headers: Extra request headers, C{{name: (values, ...)}}.
    @ivar timeout: Seconds a delivery may take.
    @ivar threshold: Failures in a row before the endpoint is counted as
        down (logged; delivery goes on with back-off).
    @ivar backoff: Seconds to wait after a failure, doubling up to
        C{maxbackoff}.
    @ivar ignoredMediaTypes: Events whose target has one of these media types
        are not sent (C{ignoredmediatypes} and C{ignore.mediatypes}).
    @ivar ignoredActions: Actions (push, pull, delete, mount) not sent.
    @ivar queueLimit: Events held for the endpoint (in memory and spooled)
        beyond which new ones are counted and logged as dropped.
    """

    name: str
    url: str
    headers: dict = field(default_factory=dict)
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    maxBackoff: float = 300.0
    ignoredMediaTypes: tuple[str, ...] = ()
    ignoredActions: tuple[str, ...] = ()
    queueLimit: int = 100000


@dataclass(frozen=True)
class NotificationsConfig:
    """
    C{notifications}: events about pushes, pulls, deletes and mounts, sent to
    HTTP endpoints in Distribution's envelope.

    @ivar endpoints: The enabled L{NotificationEndpoint}s.
    @ivar includeReferences: C{events.includereferences}: list a manifest's
        references in its events.
    @ivar spoolDirectory: registryd's C{notifications.spooldirectory}: where
        undelivered events wait across restarts; None for
        C{notifications} beside the filesystem storage root (in-memory
        storage: events are kept in memory only).
    """

    endpoints: tuple[NotificationEndpoint, ...] = ()
    includeReferences: bool = False
    spoolDirectory: str | None = None


@dataclass(frozen=True)
class Config:
    """
    The whole configuration.

    @ivar auth: The one authentication method, or None for none.
    @ivar warnings: One line per key that was accepted but has no effect, and
        one per setting that is for development only.
    """

    version: str = "0.1"
    log: LogConfig = field(default_factory=LogConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    auth: HtpasswdAuth | TokenAuth | SillyAuth | IssuerAuth | None = None
    proxy: ProxyConfig | None = None
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    warnings: tuple[str, ...] = ()


def defaultConfig():
    """The configuration used when no file is given."""
    return Config()


def loadConfig(path):
    """
    Read and validate the YAML file at C{path}.

    @raise ConfigError: The file cannot be read, is not YAML, or is not a
        valid configuration.
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(name, f"cannot read: {e.strerror or e}") from None
    try:
        mapping = yaml.load(data, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(name, _yamlProblem(e)) from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        # ValueError: a well-formed but impossible value, e.g. 2001-02-30.
        raise ConfigError(name, f"invalid YAML: {_oneLine(e)}") from None
    return parseConfig(mapping, source=name)


def parseConfig(mapping, source="<config>"):
    """
    Validate C{mapping}, a parsed YAML document, into a L{Config}.

    @param source: Names the document in a whole-document error.
    @raise ConfigError: The first problem found.
    """
    if mapping is None:
        raise ConfigError(source, "the configuration is empty")
    if not isinstance(mapping, dict):
        raise ConfigError(
            source, f"expected a mapping of configuration keys, got {_show(mapping)}"
        )
    warnings = []
    top = _Section(mapping, "", warnings)
    version = top.get("version", _version, "0.1")
    log = _log(top)
    storage = _storage(top)
    http = _http(top.section("http"))
    policy = top.section("policy")
    repository = policy.section("repository")
    classes = repository.get("classes", _strings, ())
    repository.finish()
    policy.finish()
    validation = _validation(top.section("validation"))
    auth = _auth(top.section("auth"))
    proxy = _proxy(top.section("proxy"))
    notifications = _notifications(top.section("notifications"))
    top.refuse("middleware", "refusing to start without the middleware this file asks for")
    top.ignore("health", "registryd has no health checks yet")
    top.ignore("redis", "registryd does not use redis")
    top.ignore("reporting", "registryd has no error reporting services")
    top.ignore("compatibility", "registryd has no schema 1 options")
    top.ignore("catalog", "registryd has no catalog options yet")
    top.finish()
    return Config(
        version=version,
        log=log,
        storage=storage,
        http=http,
        policy=PolicyConfig(repositoryClasses=classes),
        validation=validation,
        auth=auth,
        proxy=proxy,
        notifications=notifications,
        warnings=tuple(warnings),
    )


def withOverrides(config, listen=None, storageRoot=None):
    """
    Apply command-line options, which win over the file.

    @param listen: Endpoint strings replacing C{http.listen}, used as written
        (so C{http.tls}, which applies to C{http.addr}, no longer applies);
        None or empty keeps the file's.
    @param storageRoot: A directory: storage becomes the filesystem driver
        rooted there.
    @raise ConfigError: An endpoint string or the root is not usable.
    """
    if listen:
        listen = tuple(listen)
        for description in listen:
            if not isinstance(description, str):
                raise _expected("--listen", "an endpoint string", description)
            _checkEndpoint(description, "--listen")
        config = replace(config, http=replace(config.http, listen=listen, tls=None))
    if storageRoot is not None:
        storageRoot = os.fspath(storageRoot)
        if not storageRoot:
            raise ConfigError("--storage-root", "expected a directory, got ''")
        storage = replace(config.storage, driver="filesystem", rootdirectory=storageRoot)
        config = replace(config, storage=storage)
    return config


def checkStorageRoot(config, create=True):
    """
    Make sure the filesystem driver can use its root, before anything listens.

    @param create: Create a missing root (with its parents).  If false, only
        check that the nearest existing ancestor would let it be created, so
        that checking a configuration changes nothing.
    @raise ConfigError: The root is not, or cannot become, a readable and
        writable directory.
    """
    if config.storage.driver != "filesystem":
        return
    root = config.storage.rootdirectory

    def fail(problem):
        raise ConfigError(_ROOT_KEY, f"{root}: {problem}")

    if not os.path.exists(root):
        if not create:
            ancestor = os.path.dirname(os.path.abspath(root))
            while not os.path.exists(ancestor):
                ancestor = os.path.dirname(ancestor)
            if not os.path.isdir(ancestor):
                fail(f"cannot be created: {ancestor} is not a directory")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                fail(f"cannot be created: {ancestor} is not writable")
            return
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as e:
            fail(f"cannot create: {e.strerror or e}")
    if not os.path.isdir(root):
        fail("not a directory")
    if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        fail("not readable and writable")


# -- Reading sections ---------------------------------------------------------


class _Section:
    """
    One mapping of the document at a dotted path.  Each key read is marked as
    handled, so that L{finish} can refuse the ones nothing asked for.
    """

    def __init__(self, value, path, warnings):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _expected(path, "a mapping", value)
        self._items = value
        self._path = path
        self._warnings = warnings
        self._handled = set()

    def key(self, name):
        return f"{self._path}.{name}" if self._path else str(name)

    def names(self):
        return list(self._items)

    def has(self, name):
        return self._items.get(name) is not None

    def require(self, name, check):
        """The value at C{name} passed through C{check(value, key)}; it must be given."""
        value = self.get(name, check)
        if value is None:
            raise ConfigError(self.key(name), "required")
        return value

    def raw(self, name):
        self._handled.add(name)
        return self._items.get(name)

    def get(self, name, check, default=None):
        """The value at C{name} passed through C{check(value, key)}, or C{default}."""
        value = self.raw(name)
        return default if value is None else check(value, self.key(name))

    def section(self, name, shortForm=False):
        """
        The mapping at C{name}.  With C{shortForm}, a bare string stands for a
        mapping with that one key, as Distribution allows for C{storage}.
        """
        value = self.raw(name)
        if shortForm and isinstance(value, str):
            value = {value: None}
        return _Section(value, self.key(name), self._warnings)

    def warn(self, line):
        self._warnings.append(line)

    def ignore(self, name, reason):
        if name in self._items:
            self.warn(f"{self.key(name)}: ignored ({reason})")
        self._handled.add(name)

    def refuse(self, name, reason):
        """Refuse a key whose absence would change behaviour, unless it is empty."""
        if self.raw(name) not in (None, {}, [], ""):
            raise ConfigError(self.key(name), f"{_NOT_YET} ({reason})")

    def finish(self):
        for name in self._items:
            if name not in self._handled:
                raise ConfigError(self.key(name), "unknown key")


def _log(top):
    log = top.section("log")
    level = log.get("level", _level)
    legacyLevel = top.get("loglevel", _level)
    if legacyLevel is not None:
        # Distribution's deprecated spelling, which it still honours.
        if level is None:
            level = legacyLevel
            top.warn("loglevel: deprecated, use log.level")
        else:
            top.warn("loglevel: ignored (log.level is set)")
    accesslog = log.section("accesslog")
    disabled = accesslog.get("disabled", _bool, False)
    accesslog.finish()
    config = LogConfig(
        level=level or "info",
        formatter=log.get("formatter", _choice("text", "json"), "text"),
        accesslog=not disabled,
        fields=log.get("fields", _fields, {}),
    )
    log.ignore("hooks", "registryd has no log hooks")
    log.ignore("reportcaller", "registryd does not log callers")
    log.finish()
    return config


_DRIVERS = ("filesystem", "inmemory")
_OTHER_DRIVERS = ("azure", "gcs", "s3", "s3-aws", "swift", "oss")


def _storage(top):
    storage = top.section("storage", shortForm=True)
    drivers = [n for n in storage.names() if n in _DRIVERS + _OTHER_DRIVERS]
    if len(drivers) > 1:
        raise ConfigError(
            "storage", f"expected exactly one storage driver, got {', '.join(drivers)}"
        )
    driver = drivers[0] if drivers else "filesystem"
    if driver in _OTHER_DRIVERS:
        raise ConfigError(
            storage.key(driver), f"{_NOT_YET} (its storage drivers are filesystem and inmemory)"
        )
    parameters = storage.section(driver)
    rootdirectory, maxthreads = StorageConfig.rootdirectory, StorageConfig.maxthreads
    directwrites = StorageConfig.directwrites
    if driver == "filesystem":
        rootdirectory = parameters.get("rootdirectory", _string, rootdirectory)
        maxthreads = parameters.get("maxthreads", _count(1), maxthreads)
        directwrites = parameters.get("directwrites", _bool, directwrites)
    parameters.finish()

    delete = storage.section("delete")
    deleteEnabled = delete.get("enabled", _bool, False)
    delete.finish()
    redirect = storage.section("redirect")
    redirectDisable = redirect.get("disable", _bool, False)
    redirect.finish()

    maintenance = storage.section("maintenance")
    purging = maintenance.section("uploadpurging")
    defaults = UploadPurging()
    uploadPurging = UploadPurging(
        enabled=purging.get("enabled", _bool, defaults.enabled),
        age=purging.get("age", _duration, defaults.age),
        interval=purging.get("interval", _duration, defaults.interval),
        dryrun=purging.get("dryrun", _bool, defaults.dryrun),
    )
    purging.finish()
    readonly = maintenance.section("readonly")
    readonlyEnabled = readonly.get("enabled", _bool, False)
    readonly.finish()
    maintenance.finish()

    storage.ignore("cache", "registryd caches in process")
    storage.ignore("tag", "registryd has no tag lookup options")
    storage.finish()
    return StorageConfig(
        driver=driver,
        rootdirectory=rootdirectory,
        maxthreads=maxthreads,
        directwrites=directwrites,
        deleteEnabled=deleteEnabled,
        readonly=readonlyEnabled,
        uploadPurging=uploadPurging,
        redirectDisable=redirectDisable,
    )


def _http(http):
    tls = _tls(http.section("tls"))
    net = http.get("net", _choice("tcp", "unix"), "tcp")
    addr = http.get("addr", _string)
    listen = http.get("listen", _strings)
    if listen is not None:
        if addr is not None:
            raise ConfigError("http.listen", "give http.addr or http.listen, not both")
        if http.has("net"):
            raise ConfigError(
                "http.net", "applies to http.addr only (endpoint strings name their transport)"
            )
        if tls is not None:
            raise ConfigError(
                "http.tls", "applies to http.addr only (write ssl: endpoints in http.listen)"
            )
        if not listen:
            raise ConfigError("http.listen", "expected at least one endpoint string")
        for i, description in enumerate(listen):
            _checkEndpoint(description, f"http.listen[{i}]")
    else:
        if addr is None and net == "unix":
            raise ConfigError("http.addr", "a socket path is required when http.net is unix")
        listen = (_endpointForAddr(addr or _DEFAULT_ADDR, net, tls),)
        _checkEndpoint(listen[0], "http.addr")

    prefix = http.get("prefix", _string, "/")
    if prefix != "/":
        raise ConfigError("http.prefix", f"{_NOT_YET} (only '/')")
    config = HTTPConfig(
        listen=listen,
        host=http.get("host", _url),
        prefix=prefix,
        secret=http.get("secret", _string),
        headers=http.get("headers", _headers, HTTPConfig().headers),
        tls=tls,
        relativeURLs=http.get("relativeurls", _bool, False),
    )
    http.ignore("debug", "registryd has no debug server")
    http.ignore("draintimeout", "registryd has no drain timeout yet")
    http.ignore("http2", "registryd has no HTTP/2 options")
    http.ignore("h2c", "registryd has no HTTP/2 options")
    http.finish()
    return config


def _tls(tls):
    if not tls.names():
        return None
    certificate = tls.get("certificate", _certificateFile)
    key = tls.get("key", _privateKeyFile)
    clientCAs = tls.get("clientcas", _certificateFiles, ())
    minimumTLS = tls.get("minimumtls", _choice("tls1.2", "tls1.3"), "tls1.2")
    tls.refuse("ciphersuites", "refusing to offer ciphers this file does not allow")
    tls.refuse("clientauth", "client certificates given in clientcas are always required")
    tls.refuse("letsencrypt", "give certificate and key instead")
    tls.finish()
    for name, value in (("certificate", certificate), ("key", key)):
        if value is None:
            raise ConfigError(tls.key(name), "required when http.tls is given")
    config = TLSConfig(certificate, key, clientCAs, minimumTLS)
    from registryd.tls import ServerTLS

    try:
        ServerTLS.fromConfig(config)
    except (OSError, ValueError) as e:
        raise ConfigError(
            "http.tls", f"cannot use this certificate and key: {_reason(e)}"
        ) from None
    return config


def _validation(validation):
    disabled = validation.get("disabled", _bool, False)
    enabled = validation.get("enabled", _bool)
    # Distribution runs validation when enabled or not disabled, so its
    # deprecated "enabled: false" changes nothing; neither does it here.
    if enabled is False:
        validation.warn(
            "validation.enabled: ignored (false has no effect, as in Distribution; "
            "use validation.disabled: true)"
        )
    elif enabled and disabled:
        validation.warn(
            "validation.disabled: ignored (validation.enabled: true wins, as in Distribution)"
        )
        disabled = False
    manifests = validation.section("manifests")
    urls = manifests.section("urls")
    allow = urls.get("allow", _patterns, ())
    deny = urls.get("deny", _patterns, ())
    urls.finish()
    manifests.refuse("indexes", "refusing to accept indexes without the checks this file asks for")
    manifests.finish()
    validation.finish()
    return ValidationConfig(disabled=disabled, manifestURLsAllow=allow, manifestURLsDeny=deny)


_AUTH_METHODS = ("htpasswd", "token", "silly", "issuer")


def _auth(auth):
    """
    C{auth}: one method, or None.  A method named with no parameters is that
    method missing its required keys, not no authentication.
    """
    methods = [name for name in auth.names() if name in _AUTH_METHODS]
    if len(methods) > 1:
        raise ConfigError(
            "auth", f"more than one method ({', '.join(methods)}); give exactly one"
        )
    result = None
    if methods:
        (method,) = methods
        parameters = auth.section(method)
        result = _AUTH_PARSERS[method](parameters)
        parameters.finish()
    auth.finish()
    return result


def _htpasswdAuth(htpasswd):
    return HtpasswdAuth(
        realm=htpasswd.require("realm", _headerValue),
        path=htpasswd.require("path", _readableFile),
    )


def _tokenAuth(token):
    realm = token.require("realm", _headerURL)
    service = token.require("service", _headerValue)
    issuer = token.require("issuer", _headerValue)
    rootcertbundle = token.get("rootcertbundle", _certificateFile)
    jwks = token.get("jwks", _jwksFile)
    if token.get("autoredirect", _bool, False):
        raise ConfigError(
            token.key("autoredirect"), f"{_NOT_YET} (set realm to the token server's URL)"
        )
    token.get("autoredirectpath", _string)
    token.ignore("autoredirectpath", "it applies only with autoredirect: true")
    token.get("signingalgorithms", _strings)
    token.ignore("signingalgorithms", "registryd does not restrict token algorithms this way yet")
    if rootcertbundle is None and jwks is None:
        raise ConfigError(
            token.key("rootcertbundle"), "required unless auth.token.jwks is given"
        )
    return TokenAuth(realm, service, issuer, rootcertbundle, jwks)


def _sillyAuth(silly):
    config = SillyAuth(
        realm=silly.require("realm", _headerValue),
        service=silly.require("service", _headerValue),
    )
    silly.warn("auth.silly: any Authorization header is accepted; for development only")
    return config


def _issuerAuth(issuer):
    return IssuerAuth(
        service=issuer.require("service", _headerValue),
        issuer=issuer.get("issuer", _headerValue, IssuerAuth.issuer),
        htpasswd=issuer.require("htpasswd", _readableFile),
        policy=issuer.require("policy", _readableFile),
        key=issuer.get("key", _signingKeyFile),
        expiration=issuer.get("expiration", _duration, IssuerAuth.expiration),
        realm=issuer.get("realm", _headerURL),
        path=issuer.get("path", _tokenPath, IssuerAuth.path),
    )


_AUTH_PARSERS = {
    "htpasswd": _htpasswdAuth,
    "token": _tokenAuth,
    "silly": _sillyAuth,
    "issuer": _issuerAuth,
}


# -- Values -------------------------------------------------------------------


def _proxy(proxy):
    """C{proxy}, or None when absent or empty (a plain registry)."""
    if not proxy.names():
        return None
    remoteurl = proxy.require("remoteurl", _url).rstrip("/")
    username = proxy.get("username", _string)
    password = proxy.get("password", _string)
    if (username is None) != (password is None):
        raise ConfigError(proxy.key("password" if username else "username"), "required with the other")
    ttl = proxy.get("ttl", _duration, 168 * 3600.0)
    proxy.finish()
    return ProxyConfig(remoteurl=remoteurl, username=username, password=password, ttl=ttl)


_ACTIONS = ("push", "pull", "delete", "mount")


def _notifications(notifications):
    events = notifications.section("events")
    includeReferences = events.get("includereferences", _bool, False)
    events.finish()
    spoolDirectory = notifications.get("spooldirectory", _string)
    raw = notifications.raw("endpoints")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise _expected(notifications.key("endpoints"), "a list of endpoints", raw)
    endpoints = []
    names = set()
    for i, item in enumerate(raw):
        endpoint = _Section(item, notifications.key(f"endpoints[{i}]"), notifications._warnings)
        name = endpoint.require("name", _string)
        if name in names:
            raise ConfigError(endpoint.key("name"), f"another endpoint is named {name!r}")
        names.add(name)
        url = endpoint.require("url", _url)
        disabled = endpoint.get("disabled", _bool, False)
        headers = endpoint.get("headers", _headers, {})
        timeout = endpoint.get("timeout", _duration, 1.0)
        threshold = endpoint.get("threshold", _count(1), 10)
        backoff = endpoint.get("backoff", _duration, 1.0)
        maxBackoff = endpoint.get("maxbackoff", _duration, 300.0)
        ignored = list(endpoint.get("ignoredmediatypes", _strings, ()))
        ignore = endpoint.section("ignore")
        ignored += ignore.get("mediatypes", _strings, ())
        actions = ignore.get("actions", _strings, ())
        for j, action in enumerate(actions):
            if action not in _ACTIONS:
                raise ConfigError(ignore.key(f"actions[{j}]"), f"expected one of {', '.join(_ACTIONS)}, got {_show(action)}")
        ignore.finish()
        queueLimit = endpoint.get("queuelimit", _count(1), 100000)
        endpoint.finish()
        if disabled:
            continue
        endpoints.append(
            NotificationEndpoint(
                name=name,
                url=url,
                headers=headers,
                timeout=timeout,
                threshold=threshold,
                backoff=backoff,
                maxBackoff=max(maxBackoff, backoff),
                ignoredMediaTypes=tuple(ignored),
                ignoredActions=tuple(actions),
                queueLimit=queueLimit,
            )
        )
    notifications.finish()
    return NotificationsConfig(
        endpoints=tuple(endpoints), includeReferences=includeReferences, spoolDirectory=spoolDirectory
    )


def _show(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _oneLine(text):
    return " ".join(str(text).split())


def _reason(error):
    return _oneLine(error) or type(error).__name__


def _expected(key, what, value):
    return ConfigError(key, f"expected {what}, got {_show(value)}")


def _version(value, key):
    # YAML reads an unquoted 0.1 as a float.
    if isinstance(value, bool) or value not in ("0.1", 0.1):
        raise _expected(key, "'0.1'", value)
    return "0.1"


def _bool(value, key):
    if not isinstance(value, bool):
        raise _expected(key, "a boolean", value)
    return value


def _string(value, key):
    if not isinstance(value, str) or not value:
        raise _expected(key, "a non-empty string", value)
    return value


def _strings(value, key):
    if not isinstance(value, list):
        raise _expected(key, "a list of strings", value)
    for i, item in enumerate(value):
        _string(item, f"{key}[{i}]")
    return tuple(value)


def _choice(*options):
    def check(value, key):
        if not isinstance(value, str) or value.lower() not in options:
            raise _expected(key, "one of " + ", ".join(options), value)
        return value.lower()

    return check


_level = _choice("error", "warn", "info", "debug")


def _count(minimum):
    def check(value, key):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _expected(key, f"an integer of at least {minimum}", value)
        return value

    return check


_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6,
    "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
_DURATION_PART = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
_DURATION = re.compile(rf"(?:{_DURATION_PART})+")


def _parseDuration(text):
    """Seconds in a Go duration such as C{"1h30m"}, or None if it is not one."""
    if not _DURATION.fullmatch(text):
        return None
    return sum(
        float(number) * _DURATION_UNITS[unit]
        for number, unit in re.findall(_DURATION_PART, text)
    )


def _duration(value, key):
    """
    A positive duration in seconds: a Go duration string as Distribution
    takes, or a bare number, which is seconds (Distribution would read
    nanoseconds).
    """
    if isinstance(value, str):
        seconds = _parseDuration(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise _expected(key, "a positive duration such as '24h' or '1h30m', or seconds", value)
    return seconds


def _fields(value, key):
    if not isinstance(value, dict):
        raise _expected(key, "a mapping", value)
    for name in value:
        if not isinstance(name, str):
            raise _expected(key, "string field names", name)
    return dict(value)


def _url(value, key):
    _string(value, key)
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _expected(key, "an absolute http:// or https:// URL", value)
    return value


# RFC 9110 token characters: anything else cannot be a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _headers(value, key):
    if not isinstance(value, dict):
        raise _expected(key, "a mapping of header names to lists of values", value)
    headers = {}
    for name, values in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"{key}.{name}", "not a valid header name")
        itemKey = f"{key}.{name}"
        if not isinstance(values, list) or not values:
            raise _expected(itemKey, "a list of strings", values)
        for i, item in enumerate(values):
            if not isinstance(item, str) or set(item) & {"\r", "\n", "\0"}:
                raise _expected(f"{itemKey}[{i}]", "a string without line breaks", item)
        headers[name] = tuple(values)
    return headers


def _patterns(value, key):
    patterns = _strings(value, key)
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigError(
                f"{key}[{i}]", f"bad regular expression {_show(pattern)}: {e}"
            ) from None
    return patterns


# Printable ASCII but the quote and the backslash: a value that goes
# between quotes in a WWW-Authenticate header as it is.
_HEADER_VALUE = re.compile(r'[ !#-\[\]-~]+')


def _headerValue(value, key):
    _string(value, key)
    if not _HEADER_VALUE.fullmatch(value):
        raise _expected(
            key, "printable ASCII without '\"' or '\\' (it is sent in WWW-Authenticate)", value
        )
    return value


def _headerURL(value, key):
    return _headerValue(_url(value, key), key)


# RFC 3986 path characters.
_URL_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)+")


def _tokenPath(value, key):
    _string(value, key)
    if not _URL_PATH.fullmatch(value):
        raise _expected(key, "a URL path starting with '/'", value)
    if value.rstrip("/") in ("", "/v2") or value.startswith("/v2/"):
        raise ConfigError(key, f"{value}: the token endpoint needs a path of its own, outside /v2/")
    return value


def _readableFile(value, key):
    _string(value, key)
    try:
        with open(value, "rb"):
            pass
    except OSError as e:
        raise ConfigError(key, f"{value}: cannot read: {e.strerror or e}") from None
    return value


def _loadableFile(value, key, load):
    """A readable file that C{load(path)} accepts."""
    _readableFile(value, key)
    try:
        load(value)
    except (OSError, ValueError) as e:
        raise ConfigError(key, f"{value}: {_reason(e)}") from None
    return value


def _certificateFile(value, key):
    """A readable file of PEM certificates."""
    from registryd.tls import readCertificates

    return _loadableFile(value, key, readCertificates)


def _certificateFiles(value, key):
    paths = _strings(value, key)
    for i, path in enumerate(paths):
        _certificateFile(path, f"{key}[{i}]")
    return paths


def _privateKeyFile(value, key):
    """A readable file holding an unencrypted PEM private key."""
    from registryd.tls import readPrivateKey

    return _loadableFile(value, key, readPrivateKey)


def _jwksFile(value, key):
    """A readable JSON Web Key Set: C{{"keys": [...]}} with at least one key."""
    _readableFile(value, key)
    try:
        with open(value, "rb") as f:
            document = json.load(f)
    except OSError as e:
        raise ConfigError(key, f"{value}: cannot read: {e.strerror or e}") from None
    except ValueError as e:  # also UnicodeDecodeError
        raise ConfigError(key, f"{value}: not JSON: {_reason(e)}") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ConfigError(key, f'{value}: expected a JSON Web Key Set ({{"keys": [...]}})')
    if not keys:
        raise ConfigError(key, f"{value}: the key set has no keys")
    return value


def _signingKeyFile(value, key):
    """
    The issuer's key file: readable if it exists, and in a writable directory
    unless it and its certificate (C{KEY.crt}, see L{registryd.auth.keys})
    both exist, since whichever is missing is created at startup.
    """
    _string(value, key)
    missing = value
    if os.path.lexists(value):
        _readableFile(value, key)
        missing = value + ".crt"
        if os.path.exists(missing):
            return value
    directory = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(directory):
        raise ConfigError(key, f"{missing}: cannot be created: {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(key, f"{missing}: cannot be created: {directory} is not writable")
    return value


# -- Endpoints ----------------------------------------------------------------


def _endpointFromString(description):
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    return serverFromString(reactor, description)


def _checkEndpoint(description, key):
    """Construct (without listening) the endpoint, so a bad string fails now."""
    try:
        _endpointFromString(description)
    except Exception as e:
        raise ConfigError(
            key, f"bad endpoint string {_show(description)}: {_reason(e)}"
        ) from None


def _quote(argument):
    """Escape what separates the arguments of an endpoint string."""
    for special in ("\\", ":", "="):
        argument = argument.replace(special, "\\" + special)
    return argument


_HOST_PORT = re.compile(r"\[([^\]]*)\]:([0-9]+)|([A-Za-z0-9._-]*):([0-9]+)")


def _endpointForAddr(addr, net, tls):
    """The endpoint string for Distribution's C{http.net} and C{http.addr}."""
    if net == "unix":
        if tls is not None:
            raise ConfigError("http.tls", f"{_NOT_YET} on a unix socket")
        return "unix:" + _quote(addr)
    match = _HOST_PORT.fullmatch(addr)
    if not match:
        raise _expected(
            "http.addr", "HOST:PORT such as ':5000', '127.0.0.1:5000' or '[::1]:5000'", addr
        )
    bracketed, host = match.group(1), match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise _expected("http.addr", "a port from 0 to 65535", addr)
    if bracketed is not None:
        try:
            ipaddress.IPv6Address(bracketed)
        except ValueError:
            raise _expected("http.addr", "an IPv6 address in brackets", addr) from None
        host = bracketed
    # With http.tls, registryd.tls serves TLS on this plain listener.
    parts = ["tcp6" if bracketed is not None else "tcp", str(port)]
    if host:
        parts.append(f"interface={_quote(host)}")
    return ":".join(parts)


# -- YAML ---------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which PyYAML would merge silently."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for keyNode, _ in node.value:
            if keyNode.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(keyNode, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_show(key)}", keyNode.start_mark
                )
        return super().construct_mapping(node, deep)


def _yamlProblem(error):
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = ": ".join(part for part in (error.context, error.problem) if part)
    return _oneLine(f"invalid YAML{where}: {what}")
