"""User names (config.user_name_problem) and the ``${user}`` substitution in
mount URLs (mounts.user_url): a name is a name, never a path."""

from __future__ import annotations

import pytest

from vfsftp.config.names import USER_NAME_MAX, user_name_problem
from vfsftp.storage.mounts import user_url

GOOD = ["alice", "a", "Bob_2", "john.doe", "john.doe@example.com", "a+b", "x-y", "_svc", "9lives"]
BAD = [
    "",
    "%2e%2e",
    "..",
    ".",
    "../escapee",
    "a..b",
    "alice/",
    "a/b",
    "/root",
    "a\\b",
    "a\x00b",
    "a\rb",
    "a\nb",
    "a\tb",
    "a\x7fb",
    "a b",
    " a",
    ".hidden",
    "-rf",
    "caf\u00e9",
    "a%b",
    "a?b",
    "a!b",
    "a:b",
    "a#b",
    "a*b",
    "a;b",
    "a${user}",
    "u" * (USER_NAME_MAX + 1),
]


@pytest.mark.parametrize("name", [*GOOD, "u" * USER_NAME_MAX])
def test_good_user_names(name: str) -> None:
    assert user_name_problem(name) is None


@pytest.mark.parametrize("name", BAD)
def test_bad_user_names(name: str) -> None:
    assert user_name_problem(name) is not None


@pytest.mark.parametrize(
    ("template", "name", "url"),
    [
        ("osfs://./homes/${user}", "alice", "osfs://./homes/alice"),
        ("osfs:///srv/ftp/${user}/in", "bob", "osfs:///srv/ftp/bob/in"),
        # percent-encoded for the opener, which decodes the resource
        ("osfs://./homes/${user}", "john.doe@example.com", "osfs://./homes/john.doe%40example.com"),
        ("osfs://./homes/${user}", "a+b", "osfs://./homes/a%2Bb"),
        # (a name the rule refuses, but here as a name: a folder called %2e%2e)
        ("osfs://./homes/${user}", "%2e%2e", "osfs://./homes/%252e%252e"),
        # literally on S3: the key prefix holds the name itself
        ("s3://bucket/homes/${user}", "alice", "s3://bucket/homes/alice"),
        ("s3://bucket/homes/${user}", "j@x.com", "s3://bucket/homes/j@x.com"),
        ("s3://ftp-${user}/in", "alice", "s3://ftp-alice/in"),
        ("mem://", "alice", "mem://"),
    ],
)
def test_user_url(template: str, name: str, url: str) -> None:
    assert user_url(template, name) == url


@pytest.mark.parametrize(
    ("template", "name"),
    [
        # the attacks of issue 23: each used to reach outside its own folder
        ("osfs://./homes/${user}", ".."),
        ("osfs://./homes/${user}", "../escapee"),
        ("osfs://./homes/${user}", "a/b"),
        ("osfs://./homes/${user}", "alice/"),
        ("osfs://./homes/${user}", "."),
        ("osfs://./homes/${user}/in", ".."),
        ("s3://bucket/homes/${user}", "../prefix"),
        ("s3://bucket/homes/${user}", ".."),
        ("s3://bucket/homes/${user}", "a/b"),
        ("s3://bucket/homes/${user}", "a?b"),
        ("s3://bucket/${user}", ".."),
        ("s3://${user}/x", "b/c"),
    ],
)
def test_user_url_refuses_names_that_lead_out(template: str, name: str) -> None:
    with pytest.raises(ValueError, match="would lead out of the folder"):
        user_url(template, name)
