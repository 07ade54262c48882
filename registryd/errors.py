"""
The registry's error family: one exception type per OCI error code.

Storage and web code raise these; the web layer turns any of them into the
spec's JSON envelope in one place, so the code table below is the only place
where a code meets its HTTP status.
"""

import json


class RegistryError(Exception):
    """
    An error a client should see, with the OCI error code and HTTP status.

    @ivar code: The spec's error code, e.g. C{"BLOB_UNKNOWN"}.
    @ivar status: The HTTP status the code is answered with.
    @ivar message: A human readable sentence.
    @ivar detail: JSON-serialisable detail (a digest, a name, a dict), or None.
    @ivar headers: Extra response headers, e.g. C{Range} on a 416.
    """

    code = "UNKNOWN"
    status = 500
    message = "unknown error"

    def __init__(self, detail=None, message=None, headers=None):
        super().__init__(message or self.message, detail)
        if message is not None:
            self.message = message
        self.detail = detail
        self.headers = dict(headers or {})

    def envelope(self):
        """Return the response body: the spec's C{{"errors": [...]}} as bytes."""
        return errorsBody([self])

    def __repr__(self):
        return f"{type(self).__name__}({self.message!r}, detail={self.detail!r})"


def errorsBody(errors):
    """Serialise several registry errors into one envelope."""
    return json.dumps(
        {
            "errors": [
                {"code": e.code, "message": e.message, "detail": e.detail}
                for e in errors
            ]
        }
    ).encode("utf-8")


def _code(name, code, status, message):
    cls = type(name, (RegistryError,), {"code": code, "status": status, "message": message})
    cls.__doc__ = f"{code} ({status}): {message}."
    cls.__module__ = __name__
    return cls


# The OCI Distribution 1.1 codes, and Distribution's own extra ones.
BlobUnknown = _code("BlobUnknown", "BLOB_UNKNOWN", 404, "blob unknown to registry")
BlobUploadInvalid = _code(
    "BlobUploadInvalid", "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"
)
BlobUploadUnknown = _code(
    "BlobUploadUnknown", "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"
)
DigestInvalid = _code(
    "DigestInvalid", "DIGEST_INVALID", 400, "provided digest did not match uploaded content"
)
ManifestBlobUnknown = _code(
    "ManifestBlobUnknown", "MANIFEST_BLOB_UNKNOWN", 404,
    "manifest references a manifest or blob unknown to registry",
)
ManifestInvalid = _code("ManifestInvalid", "MANIFEST_INVALID", 400, "manifest invalid")
ManifestUnknown = _code("ManifestUnknown", "MANIFEST_UNKNOWN", 404, "manifest unknown")
ManifestUnverified = _code(
    "ManifestUnverified", "MANIFEST_UNVERIFIED", 400, "manifest failed signature verification"
)
NameInvalid = _code("NameInvalid", "NAME_INVALID", 400, "invalid repository name")
NameUnknown = _code("NameUnknown", "NAME_UNKNOWN", 404, "repository name not known to registry")
SizeInvalid = _code(
    "SizeInvalid", "SIZE_INVALID", 400, "provided length did not match content length"
)
TagInvalid = _code("TagInvalid", "TAG_INVALID", 400, "manifest tag did not match URI")
Unauthorized = _code("Unauthorized", "UNAUTHORIZED", 401, "authentication required")
Denied = _code("Denied", "DENIED", 403, "requested access to the resource is denied")
Unsupported = _code("Unsupported", "UNSUPPORTED", 405, "the operation is unsupported")
TooManyRequests = _code("TooManyRequests", "TOOMANYREQUESTS", 429, "too many requests")
# Distribution answers PAGINATION_NUMBER_INVALID, which is not in the spec's
# code table ("The code field MUST be one of the following").
PaginationInvalid = _code(
    "PaginationInvalid", "UNSUPPORTED", 400, "invalid number of results requested"
)
# The spec: a registry enforcing a manifest size limit "SHOULD respond ...
# with a response code 413 Payload Too Large" (Distribution: 400).
ManifestTooLarge = _code("ManifestTooLarge", "MANIFEST_INVALID", 413, "manifest too large")
RangeInvalid = _code(
    "RangeInvalid", "BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable"
)
RouteUnknown = _code("RouteUnknown", "UNSUPPORTED", 404, "no such endpoint")
Unknown = _code("Unknown", "UNKNOWN", 500, "unknown error")
