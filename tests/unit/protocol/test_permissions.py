"""Permission letters (vfsftp/protocol/permissions.py): per-directory overrides, the
read-only strip, validation, and the RFC 3659 perm fact."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from vfsftp.protocol.permissions import (
    ALL_PERMS,
    READ_PERMS,
    WRITE_PERMS,
    effective_perms,
    mlst_perm_fact,
    move_changes_rights,
    overrides_in_view,
    validate_perms,
)

OVERRIDES = {
    "/pub": "elr",
    "/pub/incoming": "elrw",
    "/pub/incoming/private": "",
    "/home": ALL_PERMS,
}


@pytest.mark.parametrize(
    ("user", "overrides", "path", "read_only", "expected"),
    [
        # no override: the user's own set
        ("elr", {}, "/", False, "elr"),
        (ALL_PERMS, {}, "/a/b", False, ALL_PERMS),
        ("elradfmwMT", OVERRIDES, "/other", False, ALL_PERMS),
        # an override covers its directory and everything below
        (ALL_PERMS, OVERRIDES, "/pub", False, "elr"),
        (ALL_PERMS, OVERRIDES, "/pub/file.txt", False, "elr"),
        (ALL_PERMS, OVERRIDES, "/pub/a/b/c", False, "elr"),
        # the most specific override wins, whatever the mapping's order
        (ALL_PERMS, OVERRIDES, "/pub/incoming", False, "elrw"),
        (ALL_PERMS, OVERRIDES, "/pub/incoming/x.bin", False, "elrw"),
        (ALL_PERMS, OVERRIDES, "/pub/incoming/private", False, ""),
        (ALL_PERMS, OVERRIDES, "/pub/incoming/private/deep/x", False, ""),
        (ALL_PERMS, dict(reversed(list(OVERRIDES.items()))), "/pub/incoming/x", False, "elrw"),
        # the prefix must end at a path-component boundary
        ("e", OVERRIDES, "/public", False, "e"),
        ("e", OVERRIDES, "/pub2/x", False, "e"),
        ("e", OVERRIDES, "/pub/incomingx", False, "elr"),
        ("e", OVERRIDES, "/homework", False, "e"),
        # an override on / is the fallback for everything
        ("e", {"/": "elr", "/w": "elrw"}, "/x", False, "elr"),
        ("e", {"/": "elr", "/w": "elrw"}, "/w/x", False, "elrw"),
        # an override may grant more than the user's default set
        ("elr", {"/upload": "elrw"}, "/upload/f", False, "elrw"),
        # read-only storage strips every write letter, override or not
        (ALL_PERMS, {}, "/x", True, READ_PERMS),
        (ALL_PERMS, OVERRIDES, "/pub/incoming/x", True, "elr"),
        (ALL_PERMS, OVERRIDES, "/home/u", True, READ_PERMS),
        ("wadfmMT", {}, "/x", True, ""),
        ("elr", {}, "/x", True, "elr"),
    ],
)
def test_effective_perms(
    user: str, overrides: Mapping[str, str], path: str, read_only: bool, expected: str
) -> None:
    assert effective_perms(user, overrides, path, read_only) == frozenset(expected)


def test_letter_sets() -> None:
    assert READ_PERMS + WRITE_PERMS == ALL_PERMS
    assert not set(READ_PERMS) & set(WRITE_PERMS)
    assert len(set(ALL_PERMS)) == len(ALL_PERMS) == 10


@pytest.mark.parametrize(
    ("letters", "bad"),
    [
        ("", None),
        ("elr", None),
        (ALL_PERMS, None),
        ("MT", None),
        ("rrr", None),
        ("x", "'x'"),
        ("elrx", "'x'"),
        ("zyx", "'xyz'"),  # sorted, each named once
        ("xx", "'x'"),
        ("mt", "'t'"),  # case matters: T is change-time, t is nothing
        ("E", "'E'"),
        ("r w", "' '"),
    ],
)
def test_validate_perms(letters: str, bad: str | None) -> None:
    problem = validate_perms(letters)
    if bad is None:
        assert problem is None
    else:
        assert problem is not None
        assert f"unknown permission letter(s) {bad}" in problem
        assert ALL_PERMS in problem


@pytest.mark.parametrize(
    ("granted", "is_dir", "parent", "fact"),
    [
        # files: a append, d delete / f rename (decided in the parent), r read, w write
        (ALL_PERMS, False, ALL_PERMS, "adfrw"),
        (READ_PERMS, False, READ_PERMS, "r"),
        ("", False, "", ""),
        ("a", False, "", "a"),
        ("w", False, "", "w"),
        ("r", False, "df", "dfr"),
        ("df", False, "", ""),  # delete/rename at the file itself is not what counts
        ("elmcp", False, "elm", ""),  # directory-only letters never show on files
        # directories: c create, d delete, e enter, f rename, l list, m mkdir, p purge
        (ALL_PERMS, True, ALL_PERMS, "cdeflmp"),
        (READ_PERMS, True, READ_PERMS, "el"),
        ("w", True, "", "c"),
        ("a", True, "", "c"),
        ("aw", True, "", "c"),
        ("d", True, "", "p"),
        ("", True, "d", "d"),
        ("", True, "f", "f"),
        ("m", True, "", "m"),
        ("r", True, "", ""),  # r is for files
        ("elr", True, ALL_PERMS, "defl"),
    ],
)
def test_mlst_perm_fact(granted: str, is_dir: bool, parent: str, fact: str) -> None:
    assert mlst_perm_fact(frozenset(granted), is_dir, frozenset(parent)) == fact


def test_mlst_perm_fact_of_read_only_tree_has_no_write_facts() -> None:
    ro = effective_perms(ALL_PERMS, {}, "/x", read_only=True)
    assert mlst_perm_fact(ro, False, ro) == "r"
    assert mlst_perm_fact(ro, True, ro) == "el"


HR = {"/data/projects/hr": ""}
DROP = {"/data/drop/in": "elw"}


@pytest.mark.parametrize(
    ("user", "overrides", "src", "dst", "refused_at"),
    [
        # no override anywhere: every move keeps the rights
        (ALL_PERMS, {}, "/a", "/b", None),
        (ALL_PERMS, {}, "/a/b/c", "/x", None),
        # the issue's attack: renaming the parent of an override
        (ALL_PERMS, HR, "/data/projects", "/data/projects_x", "/data/projects/hr"),
        (ALL_PERMS, HR, "/data", "/elsewhere", "/data/projects/hr"),
        (ALL_PERMS, DROP, "/data/drop", "/data/drop2", "/data/drop/in"),
        # ...and moving a folder so that its contents land under one
        (ALL_PERMS, HR, "/data/x", "/data/projects", "/data/x/hr"),
        # moves beside the override, or inside it, are fine
        (ALL_PERMS, HR, "/data/other", "/data/other2", None),
        (ALL_PERMS, HR, "/data/projects/a", "/data/projects/b", None),
        ("elrf", {"/data/projects/hr": "elrf"}, "/data/projects/hr/a", "/data/projects/hr/b", None),
        # a name that merely starts like an override is not under it
        (ALL_PERMS, HR, "/data/projects/hrx", "/data/projects/hry", None),
        # the moved thing itself: from one set of rights to another
        (ALL_PERMS, {"/in": "elwf"}, "/in/f", "/f", "/in/f"),
        (ALL_PERMS, {"/in": "elwf"}, "/f", "/in/f", "/f"),
        (ALL_PERMS, {"/p": "elrf"}, "/p", "/q", "/p"),
        # an override equal to the rights around it changes nothing
        (ALL_PERMS, {"/data/projects/hr": ALL_PERMS}, "/data/projects", "/y", None),
        ("elr", {"/data/projects/hr": "elr", "/data": ALL_PERMS}, "/data/p", "/data/q", None),
        # the same layout of overrides at both ends: same rights
        (
            ALL_PERMS,
            {"/a/secret": "", "/b/secret": ""},
            "/a",
            "/b2",
            "/a/secret",
        ),
        (
            ALL_PERMS,
            {"/t/a/secret": "", "/t/b/secret": "", "/t": "elrf"},
            "/t/a",
            "/t/b",
            None,
        ),
        # nested overrides: the deepest that differs is found too
        (
            ALL_PERMS,
            {"/d/x": ALL_PERMS, "/d/x/y": ""},
            "/d",
            "/e",
            "/d/x/y",
        ),
        (
            ALL_PERMS,
            {"/d/x": "elr", "/d/x/y": ALL_PERMS},
            "/d",
            "/e",
            "/d/x",
        ),
        # an override on / covers both ends alike
        ("e", {"/": ALL_PERMS}, "/a", "/b", None),
    ],
)
def test_move_changes_rights(
    user: str, overrides: Mapping[str, str], src: str, dst: str, refused_at: str | None
) -> None:
    reason = move_changes_rights(user, overrides, src, dst)
    if refused_at is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(refused_at + " "), reason


def test_move_changes_rights_names_both_sets() -> None:
    reason = move_changes_rights(ALL_PERMS, HR, "/data/projects", "/data/projects_x")
    assert reason == (
        "/data/projects/hr has permissions none; at /data/projects_x/hr it would have 'elradfmwMT'"
    )


@pytest.mark.parametrize(
    ("overrides", "root", "expected"),
    [
        ({}, "/home/a", {}),
        (OVERRIDES, "/", OVERRIDES),
        # inside the root: keyed by the user's own paths
        ({"/home/a/ro": "elr"}, "/home/a", {"/ro": "elr"}),
        ({"/home/a": "elr", "/home/a/w": "elrw"}, "/home/a", {"/": "elr", "/w": "elrw"}),
        # outside: gone
        ({"/data": "", "/home/b": ""}, "/home/a", {}),
        ({"/home/ab": ""}, "/home/a", {}),
        # above: the deepest one covers the whole view
        ({"/": "elr", "/home": "elrw"}, "/home/a", {"/": "elrw"}),
        ({"/home": "elrw", "/home/a": "e"}, "/home/a", {"/": "e"}),
        ({"/pub": "elr", "/pub/incoming": "elrw"}, "/pub", {"/": "elr", "/incoming": "elrw"}),
    ],
)
def test_overrides_in_view(
    overrides: Mapping[str, str], root: str, expected: Mapping[str, str]
) -> None:
    assert overrides_in_view(overrides, root) == expected


@pytest.mark.parametrize("root", ["/", "/pub", "/pub/incoming", "/home", "/other"])
@pytest.mark.parametrize(
    "rel", ["/", "/x", "/incoming", "/incoming/private/deep", "/u/f", "/pub/incoming"]
)
def test_rights_in_a_view_are_those_of_the_tree(root: str, rel: str) -> None:
    view = overrides_in_view(OVERRIDES, root)
    tree_path = rel if root == "/" else (root + rel if rel != "/" else root)
    assert effective_perms("el", view, rel) == effective_perms("el", OVERRIDES, tree_path)
