"""
What a request needs: Docker's token scopes, C{type:name:actions}.

C{repository:library/ubuntu:pull,push} or C{registry:catalog:*}.  Routes say
what they need with the helpers below; controllers grant or refuse whole
lists of L{Access}.
"""

import re
from dataclasses import dataclass

from registryd import errors
from registryd.reference import validateName

PULL, PUSH, DELETE, ALL = "pull", "push", "delete", "*"

# What a scope may contain: the name grammar plus the catalog's "*".  Anything
# else is refused rather than echoed into a WWW-Authenticate header.
_SCOPE = re.compile(r"^(repository|registry)(?:\([a-z0-9]+\))?:([a-z0-9._/-]+|catalog):([a-z*]+(?:,[a-z*]+)*)$")


@dataclass(frozen=True)
class Access:
    """One action on one resource."""

    type: str
    name: str
    action: str


def pull(name):
    return [Access("repository", name, PULL)]


def push(name):
    """Pushing needs pull too, as Distribution asks (clients request both)."""
    return [Access("repository", name, PULL), Access("repository", name, PUSH)]


def delete(name):
    return [Access("repository", name, DELETE)]


def catalog():
    return [Access("registry", "catalog", ALL)]


def scopes(accesses):
    """The scope strings for C{accesses}, one per resource, in a stable order."""
    grouped = {}
    for access in accesses:
        grouped.setdefault((access.type, access.name), []).append(access.action)
    return [
        f"{type}:{name}:{','.join(sorted(set(actions)))}" for (type, name), actions in grouped.items()
    ]


def parseScope(scope):
    """
    The L{Access}es a scope string asks for; C{[]} if it is malformed (a
    client asking for nonsense gets nothing).
    """
    match = _SCOPE.match(scope)
    if not match:
        return []
    type, name, actions = match.groups()
    if type == "registry" and name != "catalog":
        return []
    if type == "repository":
        try:
            validateName(name)
        except errors.NameInvalid:
            return []
    return [Access(type, name, action) for action in actions.split(",")]


def covers(granted, needed):
    """Whether the L{Access}es C{granted} include C{needed} (C{*} covers any action)."""
    return needed in granted or Access(needed.type, needed.name, ALL) in granted
