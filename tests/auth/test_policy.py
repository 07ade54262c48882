"""The issuer's access policy: rules, groups, anonymous callers, the catalog, globs, errors."""

import os

import pytest

from registryd.auth.access import Access, catalog, delete, pull, push
from registryd.auth.policy import Policy, PolicyError

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "policy.yaml")

POLICY = {
    "groups": {"team": ["alice", "bob"], "ops": ["carol"]},
    "rules": [
        {"repositories": ["public/**"], "anonymous": ["pull"]},
        {"repositories": ["team/**"], "authenticated": ["pull"], "groups": {"team": ["pull", "push"]}},
        {"repositories": ["team/**", "ops/*"], "groups": {"ops": ["pull", "push", "delete"]}},
        {"repositories": ["**"], "users": {"admin": ["pull", "push", "delete"]}},
        {"repositories": ["home/alice"], "users": {"alice": ["pull"]}},
        {"repositories": ["home/alice"], "users": {"alice": ["push"]}},
    ],
    "catalog": {"users": ["admin"], "groups": ["ops"]},
}


@pytest.fixture
def policy():
    return Policy.fromMapping(POLICY)


def repo(name, action):
    return Access("repository", name, action)


def test_anonymousGetsOnlyAnonymousGrants(policy):
    assert policy.allows(None, repo("public/x", "pull"))
    assert policy.allows(None, repo("public/deep/x", "pull"))
    assert not policy.allows(None, repo("public/x", "push"))
    assert not policy.allows(None, repo("team/x", "pull"))  # authenticated only
    assert not policy.allows(None, repo("home/alice", "pull"))


def test_authenticatedUsersHoldWhatAnonymousCallersHold(policy):
    assert policy.allows("dave", repo("public/x", "pull"))
    assert policy.allows("dave", repo("team/x", "pull"))
    assert not policy.allows("dave", repo("team/x", "push"))


def test_emptyUserNameIsAnonymous(policy):
    assert not policy.allows("", repo("team/x", "pull"))
    assert policy.allows("", repo("public/x", "pull"))


def test_groups(policy):
    assert policy.allows("alice", repo("team/x", "push"))
    assert policy.allows("bob", repo("team/x", "push"))
    assert not policy.allows("bob", repo("team/x", "delete"))
    assert not policy.allows("bob", repo("ops/x", "pull"))
    assert policy.allows("carol", repo("ops/x", "delete"))


def test_everyMatchingRuleAddsItsActions(policy):
    """team/** gets pull+push from the team rule and delete only via the ops rule."""
    assert policy.allows("carol", repo("team/x", "delete"))
    assert policy.allows("alice", repo("home/alice", "pull"))
    assert policy.allows("alice", repo("home/alice", "push"))
    assert policy.granted("alice", push("home/alice")) == push("home/alice")
    assert not policy.allows("alice", repo("home/alice", "delete"))


def test_users(policy):
    assert policy.allows("admin", repo("anything/at/all", "delete"))
    assert not policy.allows("admin2", repo("anything", "pull"))


def test_starRequiresEveryAction(policy):
    assert policy.allows("admin", repo("x", "*"))
    assert policy.allows("carol", repo("ops/x", "*"))
    assert not policy.allows("alice", repo("team/x", "*"))


def test_catalog(policy):
    [access] = catalog()
    assert policy.allows("admin", access)
    assert policy.allows("carol", access)  # group ops
    assert not policy.allows("alice", access)
    assert not policy.allows(None, access)
    assert not policy.allows("admin", Access("registry", "catalog", "pull"))
    assert not policy.allows("admin", Access("registry", "other", "*"))
    assert not policy.allows("admin", Access("plugin", "x", "pull"))


@pytest.mark.parametrize(
    "settings, user, allowed",
    [
        ({"authenticated": True}, "anyone", True),
        ({"authenticated": True}, None, False),
        ({"authenticated": True}, "", False),
        ({"anonymous": True}, None, True),
        ({"anonymous": True}, "anyone", True),
        ({}, "anyone", False),
    ],
)
def test_catalogForEveryone(settings, user, allowed):
    assert Policy.fromMapping({"catalog": settings}).allows(user, catalog()[0]) is allowed


def test_grantedIsTheAllowedSubsetInOrder(policy):
    requested = (
        push("team/x") + delete("team/x") + pull("secret") + catalog() + pull("team/x") + pull("public/y")
    )
    assert policy.granted("alice", requested) == push("team/x") + pull("public/y")
    assert policy.granted(None, requested) == pull("public/y")
    assert policy.granted("admin", []) == []


@pytest.mark.parametrize(
    "glob, name, matches",
    [
        ("a/*", "a/b", True),
        ("a/*", "a/b/c", False),
        ("a/*", "a", False),
        ("a/**", "a/b", True),
        ("a/**", "a/b/c", True),
        ("a/**", "ab/c", False),
        ("*/app", "x/app", True),
        ("*/app", "x/y/app", False),
        ("**/app", "x/y/app", True),
        ("**/app", "x/y/application", False),
        ("lib*", "library", True),
        ("lib*", "library/ubuntu", False),
        ("**", "anything/at/all", True),
        ("a.b", "a.b", True),
        ("a.b", "axb", False),  # dots are literal
        ("a-*-c", "a-b-c", True),
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("exact", "not/exact", False),
    ],
)
def test_globs(glob, name, matches):
    policy = Policy.fromMapping({"rules": [{"repositories": [glob], "anonymous": ["pull"]}]})
    assert policy.allows(None, repo(name, "pull")) is matches


@pytest.mark.parametrize("glob", ["", "a?b", "A/b", "a/***", "a b", "[ab]", "a/{b,c}", 3, None])
def test_malformedGlobs(glob):
    with pytest.raises(PolicyError, match=r"^rules\[0\]\.repositories\[0\]: "):
        Policy.fromMapping({"rules": [{"repositories": [glob], "anonymous": ["pull"]}]})


@pytest.mark.parametrize(
    "mapping, where",
    [
        ([], "policy"),
        ({"rule": []}, "policy"),
        ({"groups": []}, "groups"),
        ({"groups": {"g": "alice"}}, "groups.g"),
        ({"groups": {"g": [1]}}, r"groups.g\[0\]"),
        ({"rules": {}}, "rules"),
        ({"rules": ["x"]}, r"rules\[0\]"),
        ({"rules": [{"anonymous": ["pull"]}]}, r"rules\[0\].repositories"),
        ({"rules": [{"repositories": []}]}, r"rules\[0\].repositories"),
        ({"rules": [{"repositories": "a/*"}]}, r"rules\[0\].repositories"),
        ({"rules": [{"repositories": ["a"], "anonymous": ["read"]}]}, r"rules\[0\].anonymous\[0\]"),
        ({"rules": [{"repositories": ["a"], "anonymous": "pull"}]}, r"rules\[0\].anonymous"),
        ({"rules": [{"repositories": ["a"], "anonymous": [["pull"]]}]}, r"rules\[0\].anonymous\[0\]"),
        ({"rules": [{"repositories": ["a"], "authenticated": ["*"]}]}, r"rules\[0\].authenticated\[0\]"),
        ({"rules": [{"repositories": ["a"], "users": ["alice"]}]}, r"rules\[0\].users"),
        ({"rules": [{"repositories": ["a"], "users": {"alice": "pull"}}]}, r"rules\[0\].users.alice"),
        ({"rules": [{"repositories": ["a"], "groups": {"nope": ["pull"]}}]}, r"rules\[0\].groups.nope"),
        ({"rules": [{"repositories": ["a"], "user": {}}]}, r"rules\[0\]: unknown key user"),
        ({"catalog": []}, "catalog"),
        ({"catalog": {"user": []}}, "catalog: unknown key user"),
        ({"catalog": {"users": "admin"}}, "catalog.users"),
        ({"catalog": {"groups": ["nope"]}}, "catalog.groups: no such group 'nope'"),
        ({"catalog": {"anonymous": "yes"}}, "catalog.anonymous"),
        ({"catalog": {"authenticated": 1}}, "catalog.authenticated"),
    ],
)
def test_errorsNameTheKey(mapping, where):
    with pytest.raises(PolicyError, match=f"^{where}") as caught:
        Policy.fromMapping(mapping)
    assert "\n" not in str(caught.value)


def test_emptyPolicyGrantsNothing(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("")
    policy = Policy.fromFile(str(path))
    assert policy.granted("admin", pull("a") + catalog()) == []
    assert Policy.fromMapping({}).granted(None, pull("a")) == []


def test_fromFile(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - repositories: ['x/*']\n    users: {alice: [pull]}\n")
    assert Policy.fromFile(str(path)).allows("alice", repo("x/y", "pull"))


def test_fromFileErrorsNameTheFile(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - repositories: ['x/*']\n    users: {alice: [pul]}\n")
    with pytest.raises(
        PolicyError, match=r"policy.yaml: rules\[0\].users.alice\[0\]: must be pull, push or delete$"
    ):
        Policy.fromFile(str(path))
    path.write_text("rules: [\n")
    with pytest.raises(PolicyError, match=r"policy.yaml: .* \(line \d+\)$"):
        Policy.fromFile(str(path))
    with pytest.raises(PolicyError, match="missing.yaml: No such file"):
        Policy.fromFile(str(tmp_path / "missing.yaml"))


def test_exampleFile():
    """etc/policy.yaml loads and says what its comments say."""
    policy = Policy.fromFile(EXAMPLE)
    assert policy.allows(None, repo("public/tools", "pull"))
    assert not policy.allows(None, repo("public/tools", "push"))
    assert policy.allows("dave", repo("team/app", "pull"))
    assert policy.granted("alice", push("team/app") + delete("team/app")) == push("team/app") + delete(
        "team/app"
    )
    assert policy.granted("builder", push("team/app") + delete("team/app")) == push("team/app")
    assert policy.allows("alice", repo("home/alice/x", "delete"))
    assert not policy.allows("bob", repo("home/alice/x", "pull"))
    assert policy.allows("admin", repo("anything", "delete"))
    assert policy.allows("admin", catalog()[0])
    assert policy.allows("bob", catalog()[0])
    assert not policy.allows("dave", catalog()[0])
