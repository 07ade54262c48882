"""
The blob routes: reading blobs, and upload sessions (OCI Distribution 1.1).

Upload bodies reach these handlers while they are still arriving (see
L{registryd.web.site}); every handler checks what it can from the headers
before it accepts a byte, so a refused request stores nothing.
"""

import dataclasses
import re

from registryd import errors
from registryd.concurrency import deferred
from registryd.notifications.events import MOUNT, PULL, PUSH, blobEvent, deleteEvent, notify
from registryd.reference import Digest, validateName
from registryd.web.body import bodyOf
from registryd.web.producers import streamBlob
from registryd.web.responses import arg, header, respond

_CONTENT_RANGE = re.compile(r"^(?:bytes[= ])?([0-9]{1,19})-([0-9]{1,19})$")
_RANGE = re.compile(r"^bytes=([0-9]{0,19})-([0-9]{0,19})$")
_IMMUTABLE = "max-age=31536000"


def parseRange(value, size):
    """
    The C{(start, end)} of a single C{Range: bytes=...}, or None to serve
    the whole blob (no header, several ranges, or a syntax we ignore).

    @raise RangeInvalid: The range cannot be satisfied.
    """
    if value is None:
        return None
    match = _RANGE.match(value.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise errors.RangeInvalid(headers={"Content-Range": f"bytes */{size}"})
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise errors.RangeInvalid(headers={"Content-Range": f"bytes */{size}"})
    return start, end


def etagMatches(values, digest):
    """Whether C{values} (the raw C{If-None-Match} headers, or None) name C{digest}, quoted or not."""
    for value in values or ():
        for candidate in value.decode("latin-1").split(","):
            if candidate.strip() in (digest, f'"{digest}"', "*"):
                return True
    return False


@dataclasses.dataclass(frozen=True)
class BlobAnswer:
    """A blob GET's answer, but for the bytes: C{length} of them from C{start}."""

    status: int
    headers: dict
    info: object
    start: int = 0
    length: int = 0


class BlobRoutes:
    """
    C{/v2/<name>/blobs/...}.

    @param events: Told of pushes, mounts, pulls and deletes (see
        L{registryd.notifications.events.notify}), or None.
    """

    def __init__(self, registry, urls, readOnly, events=None):
        self._registry = registry
        self._urls = urls
        self._readOnly = readOnly
        self._events = events

    def _refuseWrites(self):
        if self._readOnly:
            raise errors.Unsupported(message=self._readOnly)

    async def get(self, request, name, digest):
        answer = await self.resolve(
            name, digest, request.requestHeaders.getRawHeaders(b"if-none-match"), header(request, "range")
        )
        respond(request, answer.status, answer.headers, length=answer.length)
        if request.method == b"HEAD" or answer.status == 304:
            return b""
        info = answer.info
        if answer.length:
            reader = await self._registry.repository(name).blobs.open(info.digest, answer.start)
            await streamBlob(request, reader, answer.start, answer.length)
        self._notify(PULL, request, name, info)
        return None if answer.length else b""

    @deferred
    async def resolve(self, name, digest, ifNoneMatch, rangeHeader):
        """
        What a GET or HEAD of blob C{digest} is answered, before its bytes
        (whoever writes the answer: this route, or L{registryd.web.hotpath}).

        @param ifNoneMatch: The raw C{If-None-Match} header values, or None.
        @param rangeHeader: The C{Range} header (str), or None.
        @return: Deferred firing with a L{BlobAnswer}.
        @raise RegistryError: The answer is an error.
        """
        blobs = self._registry.repository(validateName(name)).blobs
        digest = Digest.parse(digest)
        info = await blobs.stat(digest)
        headers = {
            "Docker-Content-Digest": digest,
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
            "Cache-Control": _IMMUTABLE,
        }
        if etagMatches(ifNoneMatch, digest):
            return BlobAnswer(304, headers, info)
        headers["Content-Type"] = "application/octet-stream"
        span = parseRange(rangeHeader, info.size)
        start, end = span if span is not None else (0, info.size - 1)
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        return BlobAnswer(200 if span is None else 206, headers, info, start, end - start + 1)

    async def delete(self, request, name, digest):
        self._refuseWrites()
        blobs = self._registry.repository(validateName(name)).blobs
        digest = Digest.parse(digest)
        await blobs.delete(digest)
        notify(self._events, lambda: deleteEvent(request, name, digest=digest))
        return respond(request, 202)

    # Uploads.
    async def startUpload(self, request, name, readable=None):
        """
        @param readable: The repositories the caller may read, for mounts;
            None when it may read any.
        """
        self._refuseWrites()
        name = validateName(name)
        blobs = self._registry.repository(name).blobs
        body = bodyOf(request)
        mount = arg(request, "mount")
        if mount is not None:
            mount = Digest.parse(mount)
            source = arg(request, "from")
            if source is not None:
                validateName(source)
            mounted = await self._mount(blobs, mount, source, readable)
            if mounted:
                body.discard()
                self._notify(MOUNT, request, name, *mounted)
                return self._created(request, name, mount)
            # Otherwise an ordinary upload session, as the spec says.
        digest = arg(request, "digest")
        if digest is not None:
            digest = Digest.parse(digest)
            upload = await blobs.createUpload()
            await self._receive(upload, body, None)
            info = await upload.commit(digest)
            self._notify(PUSH, request, name, info)
            return self._created(request, name, digest)
        body.discard()
        upload = await blobs.createUpload()
        await upload.close()
        return respond(request, 202, self._progress(request, name, upload))

    async def _mount(self, blobs, digest, source, readable):
        """
        The L{BlobInfo} of C{digest} and the repository it was mounted from
        (None: wherever the registry had it), if it could be mounted from a
        repository the caller may read; else None.
        """
        if readable is None:
            sources = [source]
        elif source is not None:
            sources = [source] if source in readable else []
        else:
            sources = sorted(readable)
        for candidate in sources:
            try:
                return await blobs.mount(digest, candidate), candidate
            except errors.BlobUnknown:
                pass
        return None

    async def uploadStatus(self, request, name, uploadID):
        name = validateName(name)
        upload = await self._registry.repository(name).blobs.resumeUpload(uploadID)
        await upload.close()
        return respond(request, 204, self._progress(request, name, upload))

    async def appendChunk(self, request, name, uploadID):
        self._refuseWrites()
        name = validateName(name)
        upload = await self._registry.repository(name).blobs.resumeUpload(uploadID)
        try:
            declared = self._checkContentRange(request, upload, name)
            await self._receive(upload, bodyOf(request), declared)
        finally:
            await upload.close()
        return respond(request, 202, self._progress(request, name, upload))

    async def completeUpload(self, request, name, uploadID):
        self._refuseWrites()
        name = validateName(name)
        digest = arg(request, "digest")
        if digest is None:
            raise errors.DigestInvalid(message="digest query parameter missing")
        digest = Digest.parse(digest)
        upload = await self._registry.repository(name).blobs.resumeUpload(uploadID)
        try:
            declared = self._checkContentRange(request, upload, name)
            await self._receive(upload, bodyOf(request), declared)
        except BaseException:
            await upload.close()
            raise
        info = await upload.commit(digest)
        self._notify(PUSH, request, name, info)
        return self._created(request, name, digest)

    async def cancelUpload(self, request, name, uploadID):
        self._refuseWrites()
        name = validateName(name)
        upload = await self._registry.repository(name).blobs.resumeUpload(uploadID)
        await upload.cancel()
        return respond(request, 204)

    async def _receive(self, upload, body, declared):
        """Stream the body into C{upload}; check it was C{declared} bytes long."""
        before = upload.size
        try:
            await body.deliver(upload.write)
        except errors.RegistryError:
            raise
        except Exception as e:
            raise errors.BlobUploadInvalid(
                message=f"upload body not received: {type(e).__name__}"
            ) from e
        if declared is not None and upload.size - before != declared:
            raise errors.SizeInvalid(detail={"declared": declared, "received": upload.size - before})

    def _checkContentRange(self, request, upload, name):
        """
        Check a chunk's C{Content-Range} against the session and its
        C{Content-Length}; return the length it declares, or None.
        """
        contentRange = header(request, "content-range")
        if contentRange is None:
            return None
        match = _CONTENT_RANGE.match(contentRange.strip())
        if not match:
            raise errors.BlobUploadInvalid(
                detail={"Content-Range": contentRange[:100]}, message="malformed Content-Range"
            )
        start, end = map(int, match.groups())
        if start != upload.size or end < start:
            raise errors.RangeInvalid(
                detail={"Content-Range": contentRange, "expected start": upload.size},
                message="chunk does not start at the end of the upload",
                headers=self._progress(request, name, upload),
            )
        length = header(request, "content-length")
        if length is not None and length.strip().isdigit() and int(length) != end - start + 1:
            raise errors.SizeInvalid(
                detail={"Content-Range": contentRange, "Content-Length": int(length)},
                message="Content-Length does not match Content-Range",
            )
        return end - start + 1

    def _notify(self, action, request, name, info, fromRepository=None):
        notify(
            self._events,
            lambda: blobEvent(
                action,
                request,
                name,
                info,
                self._urls.absolute(f"/v2/{name}/blobs/{info.digest}")(request),
                fromRepository,
            ),
        )

    def _progress(self, request, name, upload):
        return {
            "Location": self._urls(request, f"/v2/{name}/blobs/uploads/{upload.id}"),
            "Range": f"0-{max(upload.size - 1, 0)}",
            "Docker-Upload-UUID": upload.id,
        }

    def _created(self, request, name, digest):
        return respond(
            request,
            201,
            {
                "Location": self._urls(request, f"/v2/{name}/blobs/{digest}"),
                "Docker-Content-Digest": digest,
            },
        )
