"""Small helpers every route uses to read requests and write responses."""

import json
import re

from registryd import errors

_HOST = re.compile(rb"^[A-Za-z0-9.\-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")


def respond(request, status=200, headers=None, body=b"", length=None):
    """
    Set status and headers (str or bytes values) and return C{body} for Klein
    to write.  C{length} is the Content-Length when the body is streamed
    later or omitted (HEAD); by default it is C{len(body)}.
    """
    request.setResponseCode(status)
    for name, value in (headers or {}).items():
        request.setHeader(name, value if isinstance(value, bytes) else str(value).encode())
    request.setHeader(b"Content-Length", b"%d" % (len(body) if length is None else length,))
    return body


def jsonBody(obj):
    """C{obj} as a compact JSON response body."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def errorParts(error):
    """The status, headers and body a L{errors.RegistryError} is answered with."""
    return error.status, {"Content-Type": "application/json", **error.headers}, error.envelope()


def respondJSON(request, obj, status=200, contentType="application/json", headers=None):
    return respond(request, status, {"Content-Type": contentType, **(headers or {})}, jsonBody(obj))


def arg(request, name):
    """The first value of query argument C{name} as str, or None."""
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise errors.BlobUploadInvalid(message=f"query argument {name} is not UTF-8") from None


def header(request, name):
    """The first value of request header C{name} (a str) as str, or None."""
    value = request.getHeader(name.encode("ascii"))
    return None if value is None else value.decode("latin-1")


class URLs:
    """
    Builds the URLs the registry hands out (C{Location}, C{Link}): relative
    when configured so, else absolute on C{http.host} or the request's Host.
    """

    def __init__(self, host=None, relative=False):
        self._host = host.rstrip("/") if host else None
        self._relative = relative

    def __call__(self, request, path):
        if self._relative:
            return path
        return self.absolute(path)(request)

    def absolute(self, path):
        """
        C{request -> str}: the absolute URL of C{path} (relative when the
        request's Host is not a plain host name, so nothing a client sends
        reaches a header unchecked).
        """

        def build(request):
            if self._host:
                return self._host + path
            host = request.getHeader(b"host")
            if host is None or not _HOST.match(host):
                return path
            scheme = "https" if request.isSecure() else "http"
            return f"{scheme}://{host.decode('ascii')}{path}"

        return build
