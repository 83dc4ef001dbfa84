"""Broken mounts.yaml files and the first line of what vfsftp says about
each, shared by the check-config tests (tests/unit/test_cli.py) and the
start-up tests (tests/integration/test_service.py): the same file must get
the same first line from both, so that "OK" from check-config means the
server starts.

``{dir}`` in a text is the folder holding the file, ``{file}`` the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

_HEAD = "server:\n  listen: 127.0.0.1\n  port: 0\n"
_USER = "users:\n  demo:\n    password: plaintext:demo\n"

# The indentation slip: 3 spaces before `password:` on line 21
# among keys indented 4 (PyYAML reports line 22 in its grammar's words).
_TEAM = """\
# vfsftp for the team
server:
  listen: 127.0.0.1
  port: 0

mounts:
  /scratch: mem://

users:
  demo:
    password: plaintext:demo
    home: /
  anna:
    password: plaintext:anna
    perms: elr
  bert:
    password: plaintext:bert
  carl:
    password: plaintext:carl
  dora:
   password: {password}
    home: /scratch
"""


class Broken(NamedTuple):
    name: str
    text: str
    first_line: str


BROKEN: list[Broken] = [
    Broken(
        "missing folder",
        _HEAD + "mounts:\n  /files: osfs://{dir}/filez\n" + _USER,
        "{file}: mounts./files.fs: folder {dir}/filez does not exist; "
        "create it, or set create: true to have the server make it",
    ),
    Broken(
        "missing relative folder",
        _HEAD + "mounts:\n  /files: osfs://./filez\n" + _USER,
        "{file}: mounts./files.fs: folder {dir}/filez ('osfs://./filez') does not exist; "
        "create it, or set create: true to have the server make it",
    ),
    Broken(
        "endpoint without scheme",
        _HEAD
        + "mounts:\n  /s3:\n    fs: s3://my-bucket\n    endpoint_url: 127.0.0.1:5055\n"
        + _USER,
        "{file}: mounts./s3.endpoint_url: expected a URL with its scheme, "
        "such as 'http://127.0.0.1:5055', got '127.0.0.1:5055'",
    ),
    Broken(
        "bucket name",
        _HEAD + "mounts:\n  /s3: s3://my_bucket!\n" + _USER,
        "{file}: mounts./s3.fs: bucket name 'my_bucket!' is not valid: S3 bucket names use "
        "lowercase letters, digits, '.' and '-', not '!', '_'",
    ),
    Broken(
        "listen address",
        "server:\n  listen: 127.0.0.300\n  port: 0\nmounts:\n  /: mem://\n" + _USER,
        "{file}: server.listen[0]: '127.0.0.300' is not a valid IPv4 address: "
        "expected four numbers from 0 to 255, such as 127.0.0.1",
    ),
    Broken(
        "home outside the tree",
        _HEAD + "mounts:\n  /data: mem://\n" + _USER + "    home: /nowhere\n",
        "{file}: users.demo.home: '/nowhere' is outside demo's tree: no mount at, above or "
        "below it (mounts: /data); set home to a folder in a mount, or mount one there",
    ),
    Broken(
        "indentation, quoted value",
        _TEAM.format(password='"plaintext:dora"'),
        "{file}: line 21: indentation does not match: 'password' is indented 3 spaces but "
        "'home' (line 22) 4 spaces; keys of one mapping must start in the same column",
    ),
    Broken(
        "indentation, plain value",
        _TEAM.format(password="plaintext:dora"),
        "{file}: line 21: indentation does not match: 'password' is indented 3 spaces but "
        "'home' (line 22) 4 spaces; keys of one mapping must start in the same column",
    ),
    Broken(
        "misspelt key",
        "server:\n  port: 0\n  max_conections: 5\nmounts:\n  /: mem://\n",
        "{file}: server.max_conections: unknown key; did you mean max_connections?",
    ),
    Broken(
        "bad permission letter",
        _HEAD + "mounts:\n  /: mem://\n" + _USER + "    perms: elrx\n",
        "{file}: users.demo.perms: unknown permission letter(s) 'x'; "
        "expected letters from 'elradfmwMT'",
    ),
    Broken(
        "${user} folder's fixed part missing",
        _HEAD + "mounts:\n  /home: osfs://./homes/${{user}}\n" + _USER,
        "{file}: mounts./home.fs: no user can log in: folder {dir}/homes "
        "('osfs://./homes/${{user}}') does not exist; create it, or set create: true "
        "to have the server make it",
    ),
    Broken(
        "${user} bucket of one user",
        _HEAD + "mounts:\n  /b: s3://ftp-${{user}}\n" + _USER.replace("demo", "Demo_1"),
        "{file}: mounts./b.fs: bucket name 'ftp-Demo_1' is not valid: S3 bucket names use "
        "lowercase letters, digits, '.' and '-', not 'D', '_' (for user Demo_1)",
    ),
    Broken(
        "a file, not a folder",
        _HEAD + "mounts:\n  /files: osfs://./mounts.yaml\n" + _USER,
        "{file}: mounts./files.fs: folder {file} ('osfs://./mounts.yaml') is a file, "
        "not a folder; point fs at a folder",
    ),
    Broken(
        "unknown filesystem type",
        _HEAD + "mounts:\n  /x: nosuchfs://somewhere\n" + _USER,
        "{file}: mounts./x.fs: unknown filesystem type 'nosuchfs' in 'nosuchfs://somewhere'; "
        "expected mem://, osfs://PATH, s3://BUCKET[/PREFIX] or another PyFilesystem2 "
        "opener's URL",
    ),
    Broken(
        "log file in a missing folder",
        _HEAD + "logging:\n  file: logs/vfsftp.log\nmounts:\n  /: mem://\n" + _USER,
        "{file}: logging.file: cannot create {dir}/logs/vfsftp.log: folder {dir}/logs "
        "does not exist; create it or fix the path",
    ),
    Broken(
        "certificate missing",
        _HEAD + "  tls:\n    certificate: cert.pem\nmounts:\n  /: mem://\n" + _USER,
        "{file}: server.tls.certificate: file not found: {dir}/cert.pem; fix the path, "
        "or make a certificate for testing with 'vfsftp gen-cert'",
    ),
]


def write(case: Broken, folder: Path) -> tuple[Path, str]:
    """The case's file in ``folder`` (as mounts.yaml) and its expected first line."""
    path = folder / "mounts.yaml"
    path.write_text(case.text.format(dir=folder), encoding="utf-8")
    return path, case.first_line.format(dir=folder, file=path)
