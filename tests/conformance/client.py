"""
A small synchronous client for the conformance tests: raw HTTP over
C{http.client}, and the few OCI steps (push a blob, push a manifest) that
nearly every test needs before it can check its own requirement.

The HTTP layer sends exactly what it is given: any method, repeated headers,
any body with its C{Content-Length} sent explicitly.  It answers with the
status, the headers (looked up without regard to case) and the body.

Upload and manifest C{Location}s may be absolute or relative (the spec allows
both); L{Client.request} takes either, resolving a relative one against the
URL of the request that handed it out, as RFC 7231 section 7.1.2 says.
"""

import hashlib
import http.client
import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
EMPTY_CONFIG = b"{}"
ACCEPT_MANIFESTS = f"{OCI_MANIFEST}, {OCI_INDEX}"

# RFC 5988: <URI-Reference>; link-params, one of them rel="next".
_LINK = re.compile(r'^\s*<([^>]*)>((?:\s*;\s*[^;]+)*)\s*$')
_NEXT = re.compile(r'^\s*rel\s*=\s*(?:"next"|next)\s*$', re.IGNORECASE)


def digestOf(data):
    """The sha256 digest of C{data}, C{sha256:<hex>}."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Response:
    """
    @ivar status: The HTTP status code.
    @ivar headers: An L{http.client.HTTPMessage}: case-insensitive C{get}
        and C{get_all}.
    @ivar body: Every byte of the body (none for HEAD).
    @ivar url: The absolute URL that was requested, to resolve relative
        C{Location} and C{Link} values against.
    """

    status: int
    headers: object
    body: bytes
    url: str

    def header(self, name):
        """The value of header C{name} (any case), or None."""
        return self.headers.get(name)

    def headerValues(self, name):
        """Every value of header C{name}, in order."""
        return self.headers.get_all(name) or []

    def json(self):
        return json.loads(self.body)

    @property
    def location(self):
        """The C{Location} header resolved to an absolute URL, or None."""
        value = self.header("Location")
        return None if value is None else urljoin(self.url, value)

    @property
    def nextLink(self):
        """The C{rel="next"} target of the C{Link} header, absolute, or None."""
        value = self.header("Link")
        if value is None:
            return None
        match = _LINK.match(value)
        if match is None or not any(_NEXT.match(p) for p in match.group(2).split(";")):
            raise AssertionError(f"Link header is not RFC 5988 rel=\"next\": {value!r}")
        return urljoin(self.url, match.group(1))

    @property
    def errorCodes(self):
        return [error["code"] for error in self.json()["errors"]]

    def __repr__(self):
        return f"<Response {self.status} {dict(self.headers.items())!r} {self.body[:300]!r}>"


def withQuery(url, **params):
    """C{url} with C{params} added to its query, keeping what it already has."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


class Client:
    """Talks HTTP/1.1 to the registry at C{host} (C{"127.0.0.1:PORT"})."""

    def __init__(self, host, timeout=60):
        self.host = host
        self.base = f"http://{host}"
        self.timeout = timeout

    def request(self, method, target, body=None, headers=(), sendHost=True):
        """
        Send one request and read the whole response.

        @param target: A path (C{/v2/...}), or a URL (absolute, or relative to
            the registry's root), e.g. a C{Location} the registry handed out.
        @param body: Bytes, sent with an explicit C{Content-Length}; None
            sends neither body nor C{Content-Length}.
        @param headers: A dict, or a sequence of C{(name, value)} pairs in
            which a name may repeat.
        @param sendHost: False leaves out the C{Host} header.
        """
        url = urljoin(self.base + "/", target)
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise AssertionError(f"cannot follow {url!r}")
        path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        if isinstance(headers, dict):
            headers = list(headers.items())
        connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        try:
            connection.putrequest(
                method, path, skip_host=not sendHost, skip_accept_encoding=True
            )
            for name, value in headers:
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return Response(response.status, response.headers, response.read(), url)
        finally:
            connection.close()

    # OCI steps the tests build on.
    def get(self, target, headers=()):
        return self.request("GET", target, headers=headers)

    def head(self, target, headers=()):
        return self.request("HEAD", target, headers=headers)

    def getManifest(self, name, reference, method="GET"):
        """GET (or HEAD) a manifest, accepting the OCI manifest and index types."""
        return self.request(
            method, f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT_MANIFESTS}
        )

    def pushBlob(self, name, data):
        """
        Push C{data} monolithically (POST then PUT) and return its digest.
        Any answer but the spec's is an assertion error.
        """
        started = self.request("POST", f"/v2/{name}/blobs/uploads/", body=b"")
        assert started.status == 202, started
        digest = digestOf(data)
        finished = self.request(
            "PUT",
            withQuery(started.location, digest=digest),
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert finished.status == 201, finished
        return digest

    def pushManifest(self, name, reference, payload, mediaType=OCI_MANIFEST):
        """PUT C{payload} as manifest C{reference}; return the response."""
        return self.request(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            body=payload,
            headers={"Content-Type": mediaType},
        )

    def pushImage(self, name, reference, layers=(), **fields):
        """
        Push the empty config, C{layers} and an image manifest naming them,
        tagged or addressed by C{reference} (None: by its digest).

        @return: C{(payload, digest)} of the manifest.
        """
        self.pushBlob(name, EMPTY_CONFIG)
        for layer in layers:
            self.pushBlob(name, layer)
        payload = imageManifest(layers, **fields)
        digest = digestOf(payload)
        response = self.pushManifest(name, reference or digest, payload)
        assert response.status == 201, response
        return payload, digest


def descriptor(mediaType, data, **extra):
    return {"mediaType": mediaType, "digest": digestOf(data), "size": len(data), **extra}


def encode(document):
    """Serialise with unusual spacing, so a registry re-encoding it would show."""
    return json.dumps(document, indent=3).encode("utf-8") + b"\n"


def imageManifest(layers=(), config=EMPTY_CONFIG, configType=OCI_EMPTY, **fields):
    """An OCI image manifest of C{config} and C{layers}; C{fields} added as they are."""
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(configType, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
            **fields,
        }
    )


def imageIndex(manifests=(), **fields):
    """An OCI image index of the image manifest payloads C{manifests}."""
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, payload) for payload in manifests],
            **fields,
        }
    )


def subjectOf(payload, mediaType=OCI_MANIFEST):
    """The C{subject} descriptor naming manifest C{payload}."""
    return descriptor(mediaType, payload)
