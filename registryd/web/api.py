"""
The Klein application: the routes of the Distribution API and its errors.

L{RegistryAPI} takes an L{IRegistry} and options; C{RegistryAPI(...).resource()}
is the resource to mount in any Twisted Web site.  Route handlers live in
L{registryd.web.blobs}, L{registryd.web.manifests} and L{registryd.web.listings};
this module maps URLs to them and every failure to the OCI error envelope.
"""

from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter

from registryd import errors
from registryd.auth import access
from registryd.auth.interfaces import IGrant
from registryd.reference import validateName
from registryd.web.blobs import BlobRoutes
from registryd.web.listings import ListingRoutes
from registryd.web.manifests import ManifestRoutes
from registryd.web.hotpath import HotPath
from registryd.web.responses import URLs, errorParts, respond, respondJSON

log = Logger()


class RepositoryConverter(BaseConverter):
    """
    A repository name in a URL: one or more path segments.  Its grammar is
    checked by the handler, so a bad name gets NAME_INVALID, not a 404.
    """

    regex = r"[^?#]+?"
    part_isolating = False


def grantedResources(request):
    """The resources the caller's L{Grant} names (none without authentication)."""
    grant = request.getComponent(IGrant)
    return grant.resources if grant is not None else ()


class _Root(Resource):
    """
    Sets the headers every response carries, then hands over to Klein, or
    to a resource mounted at an extra path (the token endpoint).

    @ivar hotPath: The L{HotPath} a L{registryd.web.site.RegistrySite} answers
        pulls with, below twisted.web.
    """

    isLeaf = True

    def __init__(self, inner, headers, extra, hotPath):
        super().__init__()
        self._inner = inner
        self._headers = headers
        self._extra = extra
        self.hotPath = hotPath

    def render(self, request):
        for name, values in self._headers:
            request.responseHeaders.setRawHeaders(name, values)
        extra = self._extra.get(request.path)
        if extra is not None:
            request.prepath, request.postpath = request.postpath, []
            return extra.render(request)
        return self._inner.render(request)


class RegistryAPI:
    """
    The registry's HTTP API over C{registry}.

    @param registry: An L{registryd.interfaces.IRegistry}.
    @param readOnly: Refuse every write with 405 UNSUPPORTED, before any
        body is read; a string says why (default: read-only mode).
    @param host: The registry's external base URL for Location headers
        (default: from the request's Host header).
    @param relativeURLs: Hand out relative URLs instead.
    @param headers: Extra response headers, C{{name: [values]}}.
    @param repositoryClasses: Manifest classes allowed (empty: all).
    @param resources: C{resources(request)} names the repositories (with
        C{.name} and C{.resourceClass}) the caller is authorised for; by
        default those of the caller's grant.
    @param accessController: An L{IAccessController}, or None to serve
        everyone everything.
    @param events: Told of every push, pull, mount and delete with
        C{emit(event)} (a L{registryd.notifications.events.Event}), or None.
    """

    app = Klein()
    app.url_map.converters["repository"] = RepositoryConverter
    app.url_map.merge_slashes = False

    def __init__(
        self,
        registry,
        readOnly=False,
        host=None,
        relativeURLs=False,
        headers=None,
        repositoryClasses=(),
        resources=grantedResources,
        accessController=None,
        events=None,
    ):
        if readOnly is True:
            readOnly = "the registry is in read-only mode"
        urls = URLs(host, relativeURLs)
        self._accessController = accessController
        self._events = events
        # A PUT's event and the caller's grant (for the classes) need the request.
        self._putsFromHeads = events is None and not repositoryClasses
        self._blobs = BlobRoutes(registry, urls, readOnly, events)
        self._manifests = ManifestRoutes(registry, urls, readOnly, repositoryClasses, resources, events)
        self._listings = ListingRoutes(registry, urls)
        self._headers = [(b"Docker-Distribution-API-Version", [b"registry/2.0"])] + [
            (name.encode(), [v.encode() for v in values]) for name, values in (headers or {}).items()
        ]

    def resource(self, extra=None):
        """
        The L{IResource} serving the API; mount it at the site root.

        @param extra: More resources to serve, by exact path (str).
        """
        extra = {path.encode(): resource for path, resource in (extra or {}).items()}
        controller = self._accessController
        hotPath = HotPath(
            self._manifests,
            self._blobs,
            self._listings,
            self._headers,
            manifestGets=self._events is None,
            manifestPuts=self._putsFromHeads,
            authorize=None if controller is None else controller.authorize,
        )
        return _Root(self.app.resource(), self._headers, extra, hotPath)

    async def _authorize(self, request, needed):
        """
        Check, from the headers alone, that the caller may have C{needed}:
        this runs before a handler accepts any byte of a body.
        """
        if self._accessController is None:
            return
        grant = await self._accessController.authorize(request, needed)
        request.setComponent(IGrant, grant)

    # Each route says what access it needs (Distribution's rule: GET and
    # HEAD pull, POST/PUT/PATCH push, DELETE delete) and is authorised first.

    @app.route("/v2/", methods=["GET", "HEAD"])
    async def base(self, request):
        await self._authorize(request, [])
        return respondJSON(request, {})

    @app.route("/v2/_catalog", methods=["GET", "HEAD"])
    async def catalog(self, request):
        await self._authorize(request, access.catalog())
        return await self._listings.catalog(request)

    @app.route("/v2/<repository:name>/tags/list", methods=["GET", "HEAD"])
    async def tags(self, request, name):
        await self._authorize(request, access.pull(validateName(name)))
        return await self._listings.tags(request, name)

    @app.route("/v2/<repository:name>/referrers/<digest>", methods=["GET", "HEAD"])
    async def referrers(self, request, name, digest):
        await self._authorize(request, access.pull(validateName(name)))
        return await self._listings.referrers(request, name, digest)

    @app.route("/v2/<repository:name>/manifests/<reference>", methods=["GET", "HEAD"])
    async def getManifest(self, request, name, reference):
        await self._authorize(request, access.pull(validateName(name)))
        return await self._manifests.get(request, name, reference)

    @app.route("/v2/<repository:name>/manifests/<reference>", methods=["PUT"])
    async def putManifest(self, request, name, reference):
        await self._authorize(request, access.push(validateName(name)))
        return await self._manifests.put(request, name, reference)

    @app.route("/v2/<repository:name>/manifests/<reference>", methods=["DELETE"])
    async def deleteManifest(self, request, name, reference):
        await self._authorize(request, access.delete(validateName(name)))
        return await self._manifests.delete(request, name, reference)

    @app.route("/v2/<repository:name>/blobs/<digest>", methods=["GET", "HEAD"])
    async def getBlob(self, request, name, digest):
        await self._authorize(request, access.pull(validateName(name)))
        return await self._blobs.get(request, name, digest)

    @app.route("/v2/<repository:name>/blobs/<digest>", methods=["DELETE"])
    async def deleteBlob(self, request, name, digest):
        await self._authorize(request, access.delete(validateName(name)))
        return await self._blobs.delete(request, name, digest)

    @app.route("/v2/<repository:name>/blobs/uploads/", methods=["POST"])
    async def startUpload(self, request, name):
        # A mount needs pull on its source too; without it the request is an
        # ordinary upload (202), as the spec has it, not a refusal.
        await self._authorize(request, access.push(validateName(name)))
        grant = request.getComponent(IGrant)
        readable = None
        if grant is not None and grant.accesses is not None:
            readable = {
                a.name for a in grant.accesses if a.type == "repository" and a.action in (access.PULL, access.ALL)
            }
        return await self._blobs.startUpload(request, name, readable)

    @app.route("/v2/<repository:name>/blobs/uploads/<uploadID>", methods=["GET"])
    async def uploadStatus(self, request, name, uploadID):
        await self._authorize(request, access.push(validateName(name)))
        return await self._blobs.uploadStatus(request, name, uploadID)

    @app.route("/v2/<repository:name>/blobs/uploads/<uploadID>", methods=["PATCH"])
    async def appendChunk(self, request, name, uploadID):
        await self._authorize(request, access.push(validateName(name)))
        return await self._blobs.appendChunk(request, name, uploadID)

    @app.route("/v2/<repository:name>/blobs/uploads/<uploadID>", methods=["PUT"])
    async def completeUpload(self, request, name, uploadID):
        await self._authorize(request, access.push(validateName(name)))
        return await self._blobs.completeUpload(request, name, uploadID)

    @app.route("/v2/<repository:name>/blobs/uploads/<uploadID>", methods=["DELETE"])
    async def cancelUpload(self, request, name, uploadID):
        await self._authorize(request, access.push(validateName(name)))
        return await self._blobs.cancelUpload(request, name, uploadID)

    # Errors: every failure becomes the OCI envelope.
    @app.handle_errors(errors.RegistryError)
    def registryError(self, request, failure):
        return _errorResponse(request, failure.value)

    @app.handle_errors(HTTPException)
    def routingError(self, request, failure):
        exception = failure.value
        if isinstance(exception, NotFound):
            error = errors.RouteUnknown(detail={"path": request.path.decode("latin-1")[:200]})
            return _errorResponse(request, error)
        if isinstance(exception, MethodNotAllowed):
            return _errorResponse(
                request,
                errors.Unsupported(
                    message="method not allowed",
                    headers={"Allow": ", ".join(exception.valid_methods or ())},
                ),
            )
        # Redirects (a missing trailing slash): werkzeug's own response.
        response = exception.get_response({})
        for name, value in response.headers:
            if name.lower() in ("location", "content-type"):
                request.setHeader(name, value)
        return respond(request, exception.code, {}, b"".join(response.iter_encoded()))

    @app.handle_errors(Exception)
    def unexpectedError(self, request, failure):
        if failure.check(CancelledError):
            return b""  # the client went away; nobody to answer
        log.failure(
            "unexpected error on {method} {uri}",
            failure,
            method=request.method.decode("latin-1"),
            uri=request.uri.decode("latin-1")[:500],
        )
        return _errorResponse(request, errors.Unknown(message="internal server error"))


def _errorResponse(request, error):
    if request.startedWriting:
        # Failed mid-response (a blob stream): the client must see a short
        # body, not an error appended to it.
        request.loseConnection()
        return None
    return respond(request, *errorParts(error))
