"""
The built-in token issuer's access policy: who may do what to which
repositories, read from a YAML file such as C{etc/policy.yaml}::

    groups:                      # optional: group name -> its users
      team: [alice, bob]
    rules:                       # every rule matching a repository adds its actions
      - repositories: ["public/**"]
        anonymous: [pull]        # everyone, logged in or not
      - repositories: ["team/**"]
        authenticated: [pull]    # every user who logged in
        groups: {team: [pull, push, delete]}
      - repositories: ["**"]
        users: {admin: [pull, push, delete]}
    catalog:                     # who may list all repositories (registry:catalog:*)
      users: [admin]
      groups: []
      authenticated: false
      anonymous: false

Every key is optional; an empty file grants nothing.  Actions are C{pull},
C{push} and C{delete}, and none implies another (clients ask for pull with
push, so pushers need both).  A logged-in user also holds what anonymous
callers hold: logging in never loses access.  A request for C{*} on a
repository is granted only with all three actions.

Repository globs: C{*} matches any characters but C{/} (within one path
component), C{**} matches anything, C{/} included; everything else matches
itself.  Globs may only hold repository name characters (C{a-z0-9._/-}) and
stars, at most two in a row.  Groups named by rules and the catalog must be
defined.
"""

import re

import yaml

from registryd.auth.access import ALL, DELETE, PULL, PUSH

ACTIONS = frozenset({PULL, PUSH, DELETE})


class PolicyError(Exception):
    """A policy file that cannot be used; the message names the offending key."""


def _check(condition, where, problem):
    if not condition:
        raise PolicyError(f"{where}: {problem}")


def _mapping(value, where, keys):
    _check(isinstance(value, dict), where, "must be a mapping")
    unknown = sorted(str(k) for k in value if k not in keys)
    _check(not unknown, where, f"unknown key {', '.join(unknown)}")
    return value


def _names(value, where):
    _check(isinstance(value, list), where, "must be a list of names")
    for i, name in enumerate(value):
        _check(isinstance(name, str) and name, f"{where}[{i}]", "must be a non-empty string")
    return frozenset(value)


def _actions(value, where):
    _check(isinstance(value, list), where, "must be a list of actions")
    for i, action in enumerate(value):
        _check(isinstance(action, str) and action in ACTIONS, f"{where}[{i}]", "must be pull, push or delete")
    return frozenset(value)


def _actionsByName(value, where, known=None):
    _check(isinstance(value, dict), where, "must map names to lists of actions")
    result = {}
    for name, actions in value.items():
        _check(isinstance(name, str) and name, where, "names must be non-empty strings")
        _check(known is None or name in known, f"{where}.{name}", "no such group")
        result[name] = _actions(actions, f"{where}.{name}")
    return result


def _glob(glob, where):
    """The regular expression (to match whole names) for a repository glob."""
    _check(
        isinstance(glob, str) and re.fullmatch(r"[a-z0-9._/*-]+", glob) and "***" not in glob,
        where,
        f"malformed repository glob {glob!r}",
    )
    parts = re.split(r"(\*\*|\*)", glob)
    return re.compile("".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts))


class _Rule:
    def __init__(self, mapping, where, groups):
        _mapping(mapping, where, {"repositories", "anonymous", "authenticated", "users", "groups"})
        globs = mapping.get("repositories")
        _check(isinstance(globs, list) and globs, f"{where}.repositories", "must be a non-empty list")
        self._patterns = [_glob(g, f"{where}.repositories[{i}]") for i, g in enumerate(globs)]
        self._anonymous = _actions(mapping.get("anonymous", []), f"{where}.anonymous")
        self._authenticated = _actions(mapping.get("authenticated", []), f"{where}.authenticated")
        self._users = _actionsByName(mapping.get("users", {}), f"{where}.users")
        self._groups = _actionsByName(mapping.get("groups", {}), f"{where}.groups", groups)

    def actions(self, user, groups, name):
        if not any(p.fullmatch(name) for p in self._patterns):
            return set()
        actions = set(self._anonymous)
        if user:
            actions |= self._authenticated | self._users.get(user, set())
            for group in groups:
                actions |= self._groups.get(group, set())
        return actions


class _Catalog:
    def __init__(self, mapping, where, groups):
        _mapping(mapping, where, {"users", "groups", "authenticated", "anonymous"})
        self._users = _names(mapping.get("users", []), f"{where}.users")
        self._groups = _names(mapping.get("groups", []), f"{where}.groups")
        for group in sorted(self._groups):
            _check(group in groups, f"{where}.groups", f"no such group {group!r}")
        self._authenticated = mapping.get("authenticated", False)
        self._anonymous = mapping.get("anonymous", False)
        _check(isinstance(self._authenticated, bool), f"{where}.authenticated", "must be true or false")
        _check(isinstance(self._anonymous, bool), f"{where}.anonymous", "must be true or false")

    def allows(self, user, groups):
        if not user:
            return self._anonymous
        return self._anonymous or self._authenticated or user in self._users or bool(groups & self._groups)


class Policy:
    """Which L{Access}es each user (None: anonymous) may be granted."""

    def __init__(self, groups, rules, catalog):
        self._groupsOf = {}
        for group, members in groups.items():
            for user in members:
                self._groupsOf.setdefault(user, set()).add(group)
        self._rules = rules
        self._catalog = catalog

    @classmethod
    def fromMapping(cls, mapping):
        """@raise PolicyError: C{mapping} is not a policy."""
        mapping = _mapping({} if mapping is None else mapping, "policy", {"groups", "rules", "catalog"})
        groups = mapping.get("groups", {})
        _check(isinstance(groups, dict), "groups", "must map group names to lists of users")
        groups = {name: _names(members, f"groups.{name}") for name, members in groups.items()}
        rules = mapping.get("rules", [])
        _check(isinstance(rules, list), "rules", "must be a list")
        rules = [_Rule(rule, f"rules[{i}]", groups) for i, rule in enumerate(rules)]
        return cls(groups, rules, _Catalog(mapping.get("catalog", {}), "catalog", groups))

    @classmethod
    def fromFile(cls, path):
        """@raise PolicyError: The file cannot be read or is not a policy."""
        try:
            with open(path, "rb") as f:
                mapping = yaml.safe_load(f)
        except OSError as e:
            raise PolicyError(f"{path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or "not YAML"
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise PolicyError(f"{path}: {problem}{where}") from None
        try:
            return cls.fromMapping(mapping)
        except PolicyError as e:
            raise PolicyError(f"{path}: {e}") from None

    def allows(self, user, access):
        """Whether C{user} may hold the L{Access} C{access}."""
        groups = self._groupsOf.get(user, set())
        if access.type == "registry":
            return access.name == "catalog" and access.action == ALL and self._catalog.allows(user, groups)
        if access.type != "repository":
            return False
        actions = set()
        for rule in self._rules:
            actions |= rule.actions(user, groups, access.name)
        return ACTIONS <= actions if access.action == ALL else access.action in actions

    def granted(self, user, requested):
        """The L{Access}es of C{requested} that C{user} may hold, each once, in order."""
        granted = []
        for access in requested:
            if access not in granted and self.allows(user, access):
                granted.append(access)
        return granted
