"""Listing routes: tags, the catalog and OCI 1.1 referrers, with pagination."""

import bisect
from urllib.parse import quote

from registryd import errors
from registryd.concurrency import deferred
from registryd.manifest import OCI_INDEX
from registryd.reference import Digest, lexicalKey, validateName
from registryd.web.responses import arg, respondJSON

CATALOG_PAGE = 1000
CATALOG_MAX_PAGE = 10000


def pageSize(n, default=None, maximum=None):
    """The C{n} query argument (str, or None): a non-negative integer, or C{default}."""
    if n is None or n == "":
        return default
    if not n.isdigit() or len(n) > 9:
        raise errors.PaginationInvalid(detail={"n": n[:20]})
    n = int(n)
    return n if maximum is None else min(n, maximum)


def paginate(names, n, last, link):
    """
    The page of sorted C{names} after C{last}, and the headers: C{Link} to the
    next page exactly when more names remain.

    @param link: C{link(query)} is the URL of this listing with C{query}.
    """
    if last:
        names = names[bisect.bisect_right(names, lexicalKey(last), key=lexicalKey) :]
    if n is None:
        return names, {}
    page = names[:n]
    headers = {}
    if n and len(names) > n:
        following = link(f"?last={quote(page[-1], safe='')}&n={n}")
        headers["Link"] = f'<{following}>; rel="next"'
    return page, headers


class ListingRoutes:
    def __init__(self, registry, urls):
        self._registry = registry
        self._urls = urls

    async def tags(self, request, name):
        document, headers = await self.tagPage(request, name, arg(request, "n"), arg(request, "last"))
        return respondJSON(request, document, headers=headers)

    @deferred
    async def tagPage(self, client, name, n, last):
        """
        A page of a repository's tags and its headers, whoever writes the
        answer (this route, or L{registryd.web.hotpath}).

        @param client: Has C{getHeader} and C{isSecure}, for the C{Link} URL.
        @param n: The C{n} query argument (str), or None.
        @param last: The C{last} query argument (str), or None.
        @return: Deferred firing with C{(document, headers)}.
        @raise RegistryError: The answer is an error.
        """
        name = validateName(name)
        n = pageSize(n)
        tags = await self._registry.repository(name).tags.list()
        path = f"/v2/{name}/tags/list"
        page, headers = paginate(tags, n, last, lambda query: self._urls(client, path + query))
        return {"name": name, "tags": page}, headers

    async def catalog(self, request):
        n = pageSize(arg(request, "n"), CATALOG_PAGE, CATALOG_MAX_PAGE)
        names = await self._registry.catalog()
        page, headers = paginate(
            names, n, arg(request, "last"), lambda query: self._urls(request, "/v2/_catalog" + query)
        )
        return respondJSON(request, {"repositories": page}, headers=headers)

    async def referrers(self, request, name, digest):
        repository = self._registry.repository(validateName(name))
        subject = Digest.parse(digest)
        artifactType = arg(request, "artifactType")
        descriptors = await repository.referrers.referrers(subject, artifactType)
        headers = {"OCI-Filters-Applied": "artifactType"} if artifactType else {}
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [d.toJSON() for d in descriptors],
        }
        return respondJSON(request, index, contentType=OCI_INDEX, headers=headers)
