"""The access controller contract and what it hands back."""

from dataclasses import dataclass, field

from zope.interface import Attribute, Interface


@dataclass(frozen=True)
class Resource:
    """A repository the caller is authorised for, with its manifest class (policy)."""

    name: str
    resourceClass: str = ""


@dataclass(frozen=True)
class Grant:
    """
    Who the caller is and what they may do: the avatar a controller's
    portal returns.

    @ivar user: The authenticated name, or None for an anonymous caller.
    @ivar accesses: The L{registryd.auth.access.Access}es granted; None
        means everything (htpasswd and silly authorise any authenticated user).
    @ivar resources: L{Resource}s named by the grant (token access claims).
    """

    user: str | None
    accesses: frozenset | None = None
    resources: tuple = field(default=())

    def allows(self, needed):
        from registryd.auth.access import covers

        return self.accesses is None or all(covers(self.accesses, n) for n in needed)


class IGrant(Interface):
    """The avatar interface of the controllers' portals: a L{Grant}."""


class IAccessController(Interface):
    """Decides whether a request may have what it needs."""

    def authorize(request, needed):
        """
        Authenticate the caller from the request's headers and check it
        holds every L{registryd.auth.access.Access} in C{needed} (possibly
        empty: authentication only).

        @return: Deferred firing with the caller's L{Grant}.
        @raise registryd.errors.Unauthorized: Not authenticated, or (token
            auth) the token does not cover C{needed}; its C{headers} carry the
            C{WWW-Authenticate} challenge for exactly C{needed}.
        @raise registryd.errors.Denied: Authenticated and not allowed.
        """

    challengeScheme = Attribute("'Basic' or 'Bearer'.")
