"""The arguments of ``vfsftp users`` (vfsftp.cli.users runs them).

Apart from the commands' work, so that building the command line's parser
(``vfsftp --version``, ``vfsftp --help``, ``vfsftp reload``) loads neither
the config's models nor the user store.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser"]

DEFAULT_CONFIG = "mounts.yaml"


def add_parser(sub: Any, run: Callable[[argparse.Namespace, str], int]) -> None:
    """``vfsftp users ...`` on the command line's subparsers; ``run(args,
    command)`` runs one (vfsftp.cli.users.run, imported when it does)."""

    def _run(command: str) -> Callable[[argparse.Namespace], int]:
        def work(args: argparse.Namespace) -> int:
            return run(args, command)

        return work

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"the mounts.yaml whose users_store to use (default: ./{DEFAULT_CONFIG})",
    )
    common.add_argument(
        "--store",
        metavar="URL",
        help="the store itself: sqlite:///FILE or postgresql://... (with -c: the "
        "config's mounts are still checked)",
    )
    users = sub.add_parser(
        "users",
        help="manage the users of the user store (users_store:)",
        description="Add, change and remove the users of the user store that "
        "users_store: names in mounts.yaml. Servers read a user at each login: "
        "changes apply at the next one, without a restart.",
    )
    cmds = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = cmds.add_parser(
            name, parents=[common], help=help, description=help
        )
        parser.set_defaults(func=_run(name))
        return parser

    settings_help = (
        "keys of a mounts.yaml user, the value as in YAML: home=/bob perms=elr "
        "quota.max_bytes=1GiB mounts./in=osfs://./in/${user} allowed_networks=10.0.0.0/8 "
        "expires_at=2027-01-01 description='...'; KEY= removes a key"
    )
    add = command("add", "add a user (the password is read from the terminal or stdin)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("settings", nargs="*", metavar="KEY=VALUE", help=settings_help)
    add.add_argument("--password-hash", metavar="HASH", help="an argon2 hash to store as is")

    change = command("set", "change keys of a user")
    change.add_argument("name", metavar="NAME")
    change.add_argument("settings", nargs="*", metavar="KEY=VALUE", help=settings_help)

    show = command("show", "print a user as a mounts.yaml entry")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="one JSON object instead")

    listing = command("list", "list the users as a table")
    listing.add_argument("--json", action="store_true", help="a JSON array instead, for scripts")

    disable = command("disable", "refuse the user's logins from the next one on")
    disable.add_argument("name", metavar="NAME")
    disable.add_argument(
        "--kick", action="store_true", help="and end the user's running sessions on every server"
    )

    enable = command("enable", "allow a disabled user to log in again")
    enable.add_argument("name", metavar="NAME")

    delete = command("delete", "remove a user")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument(
        "--kick", action="store_true", help="and end the user's running sessions on every server"
    )

    passwd = command("passwd", "set a new password (read from the terminal or stdin)")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-hash", metavar="HASH", help="an argon2 hash to store as is")

    imports = cmds.add_parser(
        "import",
        parents=[common],
        help="copy the users of a mounts.yaml into the store",
        description="Copy the users of FILE (all but anonymous) into the store: the one "
        "FILE's users_store: names, unless -c or --store says otherwise. plaintext: "
        "passwords are hashed; ${NAME} references are kept, for the server to fill in.",
    )
    imports.add_argument("file", metavar="FILE")
    imports.add_argument("--replace", action="store_true", help="overwrite users that exist")
    imports.set_defaults(func=_run("import"))
