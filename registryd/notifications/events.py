"""
What happened to content, as CNCF Distribution's notification receivers
expect to hear it.

The web layer builds one L{Event} per push, pull, mount or delete from what
it has at hand: the request, the repository, a blob's L{BlobInfo} or a
L{Manifest} and its digest, a tag.  L{Event.toJSON} renders it in
Distribution's shape; L{envelope} wraps rendered events for one POST.  The
field names, their order and what each action carries follow Distribution's
C{notifications/event.go} and C{bridge.go}, so existing receivers work.
"""

import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.logger import Logger

from registryd.auth.interfaces import IGrant

log = Logger()

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
# Distribution gives every blob event this media type: it does not know better.
BLOB_MEDIA_TYPE = "application/octet-stream"

PUSH = "push"
PULL = "pull"
MOUNT = "mount"
DELETE = "delete"

# Distribution's source record: this host, and one id per process so that a
# receiver can tell the instances behind one load balancer apart.
INSTANCE_ID = str(uuid.uuid4())
_HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class Target:
    """
    What an event is about.  Deletes carry only the repository and the
    digest or tag, as in Distribution: the content is gone, and reading it
    first would slow the delete.

    @ivar references: The manifest's config, layers or entries
        (L{registryd.manifest.Descriptor}s), rendered only when
        C{events.includereferences} asks for them.
    """

    repository: str
    mediaType: str | None = None
    digest: str | None = None
    size: int | None = None
    url: str | None = None
    tag: str | None = None
    fromRepository: str | None = None
    references: tuple = ()

    def toJSON(self, includeReferences=False):
        result = {}
        if self.mediaType is not None:
            result["mediaType"] = self.mediaType
        if self.size is not None:
            result["size"] = self.size
        if self.digest is not None:
            result["digest"] = str(self.digest)
        if self.size is not None:
            # Distribution's deprecated spelling of size, which older receivers read.
            result["length"] = self.size
        result["repository"] = self.repository
        if self.fromRepository is not None:
            result["fromRepository"] = self.fromRepository
        if self.url is not None:
            result["url"] = self.url
        if self.tag is not None:
            result["tag"] = self.tag
        if includeReferences and self.references:
            result["references"] = [d.toJSON() for d in self.references]
        return result


@dataclass(frozen=True)
class Event:
    """
    One push, pull, mount or delete.

    @ivar timestamp: Seconds since the epoch.
    @ivar request: Distribution's request record (id, addr, host, method,
        useragent), already in its JSON form.
    @ivar actor: C{{"name": user}}, or C{{}} for an anonymous caller.
    @ivar source: C{{"addr": "host:port", "instanceID": ...}}: this process.
    """

    id: str
    timestamp: float
    action: str
    target: Target
    request: dict
    actor: dict
    source: dict

    def toJSON(self, includeReferences=False):
        return {
            "id": self.id,
            "timestamp": rfc3339(self.timestamp),
            "action": self.action,
            "target": self.target.toJSON(includeReferences),
            "request": self.request,
            "actor": self.actor,
            "source": self.source,
        }

    def ignoredBy(self, endpoint):
        """
        Whether C{endpoint}'s filters (a L{NotificationEndpoint}) exclude this
        event.  Deletes have no media type, so only an action filter stops them.
        """
        return self.action in endpoint.ignoredActions or (
            self.target.mediaType is not None and self.target.mediaType in endpoint.ignoredMediaTypes
        )


def rfc3339(seconds):
    """C{seconds} since the epoch as an RFC 3339 UTC time, to the microsecond."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(records):
    """
    The body of one POST: Distribution's C{{"events": [...]}} around
    C{records}, events already rendered as JSON bytes (as they are spooled),
    in the order given.
    """
    return b'{"events":[' + b",".join(records) + b"]}"


def blobEvent(action, request, repository, info, url, fromRepository=None):
    """
    A blob pushed, pulled or mounted (C{fromRepository}: where it was
    mounted from, when known).

    @param info: The blob's L{registryd.interfaces.BlobInfo}.
    @param url: Where the blob is served.
    """
    target = Target(
        repository, BLOB_MEDIA_TYPE, info.digest, info.size, url, fromRepository=fromRepository
    )
    return _event(action, request, target)


def manifestEvent(action, request, repository, manifest, digest, url, tag=None):
    """
    A manifest pushed or pulled, by C{tag} when it was named by one.

    @param digest: The digest it is stored and served under (the
        L{Manifest}'s own is always sha256).
    """
    target = Target(
        repository,
        manifest.mediaType,
        digest,
        len(manifest.payload),
        url,
        tag,
        references=manifest.blobReferences() + manifest.manifestReferences(),
    )
    return _event(action, request, target)


def deleteEvent(request, repository, digest=None, tag=None):
    """A manifest or blob deleted by C{digest}, or a tag removed."""
    return _event(DELETE, request, Target(repository, digest=digest, tag=tag))


def notify(listener, build):
    """
    Hand C{build()} to C{listener.emit}, if there is a listener.  Never
    raises: the operation reported has succeeded, and its client must hear so.
    """
    if listener is None:
        return
    try:
        listener.emit(build())
    except Exception:
        log.failure("notifications: could not emit an event")


def _event(action, request, target):
    grant = request.getComponent(IGrant)
    return Event(
        id=str(uuid.uuid4()),
        timestamp=time.time(),
        action=action,
        target=target,
        request=_requestRecord(request),
        actor={"name": grant.user} if grant is not None and grant.user else {},
        source={"addr": _withPort(_HOSTNAME, request.getHost()), "instanceID": INSTANCE_ID},
    )


def _requestRecord(request):
    # Each request emits one event, so the record's id can be made here.
    record = {"id": str(uuid.uuid4())}
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    if host is not None:
        record["addr"] = _withPort(f"[{host}]" if ":" in host else host, address)
    hostHeader = request.getHeader(b"host")
    if hostHeader is not None:
        record["host"] = hostHeader.decode("latin-1")
    record["method"] = request.method.decode("latin-1")
    userAgent = request.getHeader(b"user-agent")
    record["useragent"] = "" if userAgent is None else userAgent.decode("latin-1")
    return record


def _withPort(host, address):
    port = getattr(address, "port", None)
    return host if port is None else f"{host}:{port}"
