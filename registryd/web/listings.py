"""Listing routes: tags, the catalog and OCI 1.1 referrers, with pagination."""

import bisect
from urllib.parse import quote

from registryd import errors
from registryd.manifest import OCI_INDEX
from registryd.reference import Digest, lexicalKey, validateName
from registryd.web.responses import arg, respondJSON

CATALOG_PAGE = 1000
CATALOG_MAX_PAGE = 10000


def pageSize(request, default=None, maximum=None):
    """The C{n} query argument: a non-negative integer, or C{default}."""
    n = arg(request, "n")
    if n is None or n == "":
        return default
    if not n.isdigit() or len(n) > 9:
        raise errors.PaginationInvalid(detail={"n": n[:20]})
    n = int(n)
    return n if maximum is None else min(n, maximum)


def paginate(request, urls, path, names, n):
    """
    The page of sorted C{names} after C{last}, and the headers: C{Link} to the
    next page exactly when more names remain.
    """
    last = arg(request, "last")
    if last:
        names = names[bisect.bisect_right(names, lexicalKey(last), key=lexicalKey) :]
    if n is None:
        return names, {}
    page = names[:n]
    headers = {}
    if n and len(names) > n:
        following = f"{path}?last={quote(page[-1], safe='')}&n={n}"
        headers["Link"] = f'<{urls(request, following)}>; rel="next"'
    return page, headers


class ListingRoutes:
    def __init__(self, registry, urls):
        self._registry = registry
        self._urls = urls

    async def tags(self, request, name):
        name = validateName(name)
        n = pageSize(request)
        tags = await self._registry.repository(name).tags.list()
        page, headers = paginate(request, self._urls, f"/v2/{name}/tags/list", tags, n)
        return respondJSON(request, {"name": name, "tags": page}, headers=headers)

    async def catalog(self, request):
        n = pageSize(request, CATALOG_PAGE, CATALOG_MAX_PAGE)
        names = await self._registry.catalog()
        page, headers = paginate(request, self._urls, "/v2/_catalog", names, n)
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
