"""Virtual path resolution (vfsftp/protocol/paths.py): every client path argument goes
through resolve(), so nothing may escape the tree or name the unnameable."""

from __future__ import annotations

import pytest

from vfsftp.protocol.paths import (
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    PathRejected,
    basename,
    dirname,
    is_under,
    resolve,
    to_tree,
    to_view,
)

N255 = "n" * 255
E255 = "\u00e9" * 127 + "x"  # 2-byte UTF-8 characters: 255 bytes, 128 characters
E256 = "\u00e9" * 128  # 256 bytes, 128 characters
J255 = "\u65e5" * 85  # 3-byte characters: 255 bytes
J258 = "\u65e5" * 86  # 258 bytes, 86 characters
EMOJI256 = "\U0001f600" * 64  # 4-byte characters: 256 bytes, 64 characters

# "/" + 15 * (255 + "/") ... : components of 255 bytes fill a path to the byte.
FULL = "/" + "/".join([N255] * 15) + "/" + "n" * (MAX_PATH_BYTES - 16 * 256 + 255)
assert len(FULL) == MAX_PATH_BYTES


@pytest.mark.parametrize(
    ("cwd", "arg", "expected"),
    [
        # relative and absolute
        ("/", "a", "/a"),
        ("/pub", "a.txt", "/pub/a.txt"),
        ("/pub", "sub/a.txt", "/pub/sub/a.txt"),
        ("/pub", "/etc/passwd", "/etc/passwd"),
        ("/pub", "/", "/"),
        ("/pub", "", "/pub"),  # empty argument: the current directory
        ("/", "", "/"),
        # . and empty components vanish
        ("/pub", ".", "/pub"),
        ("/pub", "./a/./b/.", "/pub/a/b"),
        ("/pub", "a//b", "/pub/a/b"),
        ("/pub", "//a///b//", "/a/b"),
        ("/pub", "a/", "/pub/a"),  # trailing slash
        ("/pub", "a/b/", "/pub/a/b"),
        # .. goes up, but never above the root
        ("/pub/sub", "..", "/pub"),
        ("/pub/sub", "../..", "/"),
        ("/pub/sub", "../../..", "/"),
        ("/", "..", "/"),
        ("/", "../../etc/passwd", "/etc/passwd"),
        ("/pub", "/../../etc", "/etc"),
        ("/pub", "a/../b", "/pub/b"),
        ("/pub", "a/b/../../c", "/pub/c"),
        ("/pub", "../pub2", "/pub2"),
        # a backslash is a separator
        ("/pub", "a\\b", "/pub/a/b"),
        ("/pub", "\\etc\\passwd", "/etc/passwd"),
        ("/pub", "..\\..\\..\\etc", "/etc"),
        ("/pub", "a\\..\\b\\", "/pub/b"),
        # names that only look special are names
        ("/pub", "...", "/pub/..."),
        ("/pub", ".hidden", "/pub/.hidden"),
        ("/pub", "..a", "/pub/..a"),
        ("/pub", " a b ", "/pub/ a b "),
        ("/pub", "~", "/pub/~"),
        ("/pub", "caf\u00e9/\u65e5\u672c", "/pub/caf\u00e9/\u65e5\u672c"),
        # length limits: 255-byte names and 4096-byte paths are fine
        ("/", N255, "/" + N255),
        ("/", E255, "/" + E255),
        ("/", J255, "/" + J255),
        ("/", FULL, FULL),
        ("/", FULL + "/..", FULL.rsplit("/", 1)[0]),
        ("/", "/".join([N255] * 20) + "/.." * 10, "/" + "/".join([N255] * 10)),
    ],
)
def test_resolve(cwd: str, arg: str, expected: str) -> None:
    assert resolve(cwd, arg) == expected


@pytest.mark.parametrize(
    ("cwd", "arg", "message"),
    [
        ("/", "a\x00b", "NUL"),
        ("/", "\x00", "NUL"),
        ("/", "a\rb", "CR"),
        ("/", "a\nb", "LF"),
        ("/", "a\r\n", "CR"),
        ("/", "../a\x00/..", "NUL"),  # refused even if .. would remove it
        ("/", "n" * 256, "name longer than 255 bytes"),
        ("/", E256, "name longer than 255 bytes"),  # 128 characters, 256 bytes
        ("/", J258, "name longer than 255 bytes"),
        ("/", EMOJI256, "name longer than 255 bytes"),  # 64 characters
        ("/", "a/" + "n" * 256 + "/b", "name longer than 255 bytes"),
        ("/", "a\\" + "n" * 256, "name longer than 255 bytes"),
        ("/", FULL[:-1] + "/x", "path longer than 4096 bytes"),  # 4097 bytes
        # 2176 characters but 4335 bytes: the limit is in bytes
        ("/", "/".join(["\u00e9" * 127] * 17), "path longer than 4096 bytes"),
        ("/", "/".join([N255] * 17), "path longer than 4096 bytes"),
        (FULL, "x", "path longer than 4096 bytes"),  # the cwd counts too
        (FULL.rsplit("/", 1)[0], "n" * 256, "name longer"),
    ],
)
def test_resolve_rejects(cwd: str, arg: str, message: str) -> None:
    with pytest.raises(PathRejected, match=message):
        resolve(cwd, arg)


def test_limits_are_linux_ones() -> None:
    assert (MAX_NAME_BYTES, MAX_PATH_BYTES) == (255, 4096)
    assert issubclass(PathRejected, ValueError)


@pytest.mark.parametrize(
    ("path", "parent", "name"),
    [
        ("/", "/", ""),
        ("/a", "/", "a"),
        ("/a/b", "/a", "b"),
        ("/a/b/c.txt", "/a/b", "c.txt"),
        ("/a b/c d", "/a b", "c d"),
        ("/caf\u00e9/\u65e5", "/caf\u00e9", "\u65e5"),
    ],
)
def test_dirname_basename(path: str, parent: str, name: str) -> None:
    assert dirname(path) == parent
    assert basename(path) == name


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("/pub", "/pub", True),
        ("/pub/a", "/pub", True),
        ("/pub/a/b", "/pub", True),
        ("/pub/a/b", "/pub/a", True),
        ("/public", "/pub", False),  # a path-component boundary, not a string prefix
        ("/pub2/a", "/pub", False),
        ("/pu", "/pub", False),
        ("/", "/pub", False),
        ("/pub", "/pub/a", False),
        ("/", "/", True),
        ("/anything/at/all", "/", True),
    ],
)
def test_is_under(path: str, prefix: str, expected: bool) -> None:
    assert is_under(path, prefix) is expected


@pytest.mark.parametrize(
    ("root", "view", "tree"),
    [
        ("/", "/", "/"),
        ("/", "/a/b", "/a/b"),
        ("/home/alice", "/", "/home/alice"),
        ("/home/alice", "/notes.txt", "/home/alice/notes.txt"),
        ("/home/alice", "/a/b", "/home/alice/a/b"),
    ],
)
def test_to_tree_and_back(root: str, view: str, tree: str) -> None:
    assert to_tree(root, view) == tree
    assert to_view(root, tree) == view


@pytest.mark.parametrize(
    ("root", "tree"),
    [
        ("/home/alice", "/"),
        ("/home/alice", "/home"),
        ("/home/alice", "/home/alicex"),  # a path-component boundary
        ("/home/alice", "/home/bob/x"),
        ("/data", "/scratch"),
    ],
)
def test_to_view_outside_the_root(root: str, tree: str) -> None:
    assert to_view(root, tree) is None
