"""
The manifest routes: CNCF Distribution's manifest handler, then OCI 1.1.

Each step below follows /shared/reference/manifest-semantics.md in order;
the comments name the step.
"""

import dataclasses

from registryd import errors
from registryd.concurrency import deferred
from registryd.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    parseManifest,
)
from registryd.notifications.events import PULL, PUSH, deleteEvent, manifestEvent, notify
from registryd.reference import Digest, parseReference, validateName
from registryd.web.blobs import etagMatches
from registryd.web.body import bodyOf
from registryd.web.responses import header, respond

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


ALL_TYPES = frozenset([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


def acceptedTypes(values):
    """
    Every media type listed in C{values} (the raw C{Accept} headers, or
    None), parameters (C{q=} included) ignored, unparsable parts skipped
    (GET step 1).

    Unlike Distribution, a request without C{Accept}, or accepting C{*/*} or
    C{application/*}, accepts every manifest type: HTTP reads it so, and the
    spec says "A GET request to an existing manifest URL MUST provide the
    expected manifest".  Gating applies to clients that list their types.
    """
    if not values:
        return ALL_TYPES
    accepted = set()
    for value in values:
        for part in value.decode("latin-1").split(","):
            mediaType = part.split(";", 1)[0].strip().lower()
            if mediaType in ("*/*", "application/*"):
                return ALL_TYPES
            if mediaType.count("/") == 1 and " " not in mediaType:
                accepted.add(mediaType)
    return accepted


async def readBounded(body, limit):
    """The whole body, or 413 MANIFEST_INVALID as soon as it exceeds C{limit} bytes."""
    chunks = []
    received = 0

    def collect(data):
        nonlocal received
        received += len(data)
        if received > limit:
            raise errors.ManifestTooLarge(
                detail={"limit": limit}, message=f"manifest exceeds {limit} bytes"
            )
        chunks.append(data)

    if body.length is not None and body.length > limit:
        body.discard()
        raise errors.ManifestTooLarge(detail={"limit": limit}, message=f"manifest exceeds {limit} bytes")
    await body.deliver(collect)
    return b"".join(chunks)


@dataclasses.dataclass(frozen=True)
class ManifestAnswer:
    """A manifest GET's answer: a 304 has no C{manifest}."""

    status: int
    headers: dict
    manifest: object = None
    digest: str = None
    tag: str = None


class ManifestRoutes:
    """
    C{/v2/<name>/manifests/<reference>}.

    @param events: Told of pushes, pulls and deletes (see
        L{registryd.notifications.events.notify}), or None.
    """

    def __init__(self, registry, urls, readOnly, repositoryClasses, resources, events=None):
        self._registry = registry
        self._urls = urls
        self._readOnly = readOnly
        self._classes = tuple(repositoryClasses)
        self._resources = resources
        self._events = events

    def _refuseWrites(self):
        # Dispatch: PUT and DELETE are not routed in read-only mode.
        if self._readOnly:
            raise errors.Unsupported(message=self._readOnly)

    async def get(self, request, name, reference):
        answer = await self.resolve(
            name,
            reference,
            request.requestHeaders.getRawHeaders(b"accept"),
            request.requestHeaders.getRawHeaders(b"if-none-match"),
        )
        if answer.manifest is None:
            return respond(request, answer.status, answer.headers)
        if request.method == b"HEAD":
            return respond(request, answer.status, answer.headers, length=len(answer.manifest.payload))
        self._notify(PULL, request, name, answer.manifest, answer.digest, answer.tag)
        return respond(request, answer.status, answer.headers, answer.manifest.payload)

    @deferred
    async def resolve(self, name, reference, accept, ifNoneMatch):
        """
        What a GET or HEAD of C{reference} is answered (steps 1 to 6),
        whoever writes the answer (this route, or L{registryd.web.hotpath}).

        @param accept: The raw C{Accept} header values, or None.
        @param ifNoneMatch: The raw C{If-None-Match} header values, or None.
        @return: Deferred firing with a L{ManifestAnswer}.
        @raise RegistryError: The answer is an error.
        """
        repository = self._registry.repository(validateName(name))
        tag, digest = parseReference(reference)
        supports = acceptedTypes(accept)
        if tag is not None:
            digest = await repository.tags.get(tag)  # step 2
        if etagMatches(ifNoneMatch, digest):  # step 3
            return ManifestAnswer(304, {"ETag": f'"{digest}"', "Docker-Content-Digest": digest})
        manifest = await repository.manifests.get(digest)  # step 4
        # Step 5: format gating.
        if manifest.mediaType == OCI_MANIFEST and OCI_MANIFEST not in supports:
            raise errors.ManifestUnknown(
                message="OCI manifest found, but accept header does not support OCI manifests"
            )
        if manifest.mediaType == OCI_INDEX and OCI_INDEX not in supports:
            raise errors.ManifestUnknown(
                message="OCI index found, but accept header does not support OCI indexes"
            )
        if tag is not None and manifest.mediaType == DOCKER_LIST and DOCKER_LIST not in supports:
            entry = manifest.platformEntry("linux", "amd64")
            if entry is None:
                raise errors.ManifestUnknown(
                    detail={"tag": tag}, message="no linux/amd64 manifest in the list"
                )
            manifest = await repository.manifests.get(entry.digest)
            if manifest.mediaType == DOCKER_MANIFEST and DOCKER_MANIFEST not in supports:
                raise errors.ManifestInvalid(message="Schema 2 manifest not supported by client")
            digest = entry.digest
        # Step 6.
        headers = {
            "Content-Type": manifest.mediaType,
            "Docker-Content-Digest": digest,
            "ETag": f'"{digest}"',
        }
        return ManifestAnswer(200, headers, manifest, digest, tag)

    async def put(self, request, name, reference):
        headers = await self.store(request, name, reference, lambda: readBounded(bodyOf(request), MAX_MANIFEST_BYTES))
        return respond(request, 201, headers)

    @deferred
    async def store(self, request, name, reference, read):
        """
        A manifest PUT, for the route and for L{registryd.web.hotpath}, which
        has the body at hand: C{read()} gives the body (awaitable), asked for
        once the name and reference are known good.

        @return: Deferred firing with the 201's headers.
        @raise RegistryError: The answer is an error.
        """
        self._refuseWrites()
        name = validateName(name)
        repository = self._registry.repository(name)
        tag, digest = parseReference(reference)
        payload = await read()  # step 1
        manifest = parseManifest(payload, header(request, "content-type"))  # step 2
        if digest is not None:  # step 3
            if Digest.of(payload, digest.algorithm) != digest:
                raise errors.DigestInvalid(
                    detail={"digest": digest}, message="manifest digest did not match the reference"
                )
            manifest = dataclasses.replace(manifest, digest=digest)
        self._applyResourcePolicy(request, name, manifest)  # step 4
        # Steps 5 and 6: stored, then tagged, with one flush.
        digest = await repository.manifests.put(manifest, tag)
        self._notify(PUSH, request, name, manifest, digest, tag)
        headers = {  # step 7
            "Location": self._urls(request, f"/v2/{name}/manifests/{digest}"),
            "Docker-Content-Digest": digest,
        }
        if manifest.subject is not None:
            headers["OCI-Subject"] = manifest.subject.digest
        return headers

    def _applyResourcePolicy(self, request, name, manifest):
        if not self._classes:
            return
        manifestClass = manifest.resourceClass()
        if manifestClass is None:
            return
        if manifestClass not in self._classes:
            raise errors.Denied(message=f"registry does not allow {manifestClass} manifest")
        found = False
        for resource in self._resources(request):
            if resource.name == name:
                if (resource.resourceClass or "image") == manifestClass:
                    return
                found = True
        if found:
            raise errors.Denied(message=f"repository not authorized for {manifestClass} manifest")

    async def delete(self, request, name, reference):
        self._refuseWrites()
        repository = self._registry.repository(validateName(name))
        tag, digest = parseReference(reference)
        if tag is not None:  # step 2
            await repository.tags.untag(tag)
            notify(self._events, lambda: deleteEvent(request, name, tag=tag))
            return respond(request, 202)
        await repository.manifests.delete(digest)  # step 3
        for tagged in await repository.tags.lookup(digest):
            try:
                await repository.tags.untag(tagged)
            except errors.ManifestUnknown:
                pass  # removed meanwhile
        notify(self._events, lambda: deleteEvent(request, name, digest=digest))
        return respond(request, 202)

    def _notify(self, action, request, name, manifest, digest, tag):
        notify(
            self._events,
            lambda: manifestEvent(
                action,
                request,
                name,
                manifest,
                digest,
                self._urls.absolute(f"/v2/{name}/manifests/{digest}")(request),
                tag,
            ),
        )
