"""The ``vfsftp`` command line.

    vfsftp [serve] [-c mounts.yaml] [--host H ...] [--port P] [-v] [--pid-file FILE]
    vfsftp reload --pid-file FILE
    vfsftp check-config [--connect] [FILE]
    vfsftp --version
    vfsftp hash-password [PASSWORD]
    vfsftp gen-cert [--cert cert.pem] [--key key.pem] [--host H ...] [--force]
    vfsftp users add|set|show|list|disable|enable|delete|passwd|import ...
    vfsftp status [-c mounts.yaml] [--json]
    vfsftp unban [-c mounts.yaml] ADDRESS

Exit status: 0 success, 1 runtime failure (e.g. the port is taken),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import functools
import getpass
import io
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config.errors import ConfigError

# Each command imports what it uses: `vfsftp --version`, `reload` and the
# parser itself load neither the config's models nor the server.
if TYPE_CHECKING:
    import asyncio

    from ..config.schema import Config

__all__ = ["main"]

log = logging.getLogger("vfsftp.session")

DEFAULT_CONFIG = "mounts.yaml"
PACKAGED_CONFIG = "default_mounts.yaml"
_COMMANDS = (
    "serve",
    "check-config",
    "hash-password",
    "gen-cert",
    "reload",
    "users",
    "status",
    "unban",
)
DEFAULT_CERT_HOSTS = ["localhost", "127.0.0.1", "::1"]


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _chosen(path: str | None) -> tuple[str | None, str]:
    """The file to read: the one named on the command line, else
    ./mounts.yaml, else None for the packaged default; and a label saying
    which one it is."""
    if path is not None or Path(DEFAULT_CONFIG).exists():
        name = path or DEFAULT_CONFIG
        return name, name
    return None, f"built-in {PACKAGED_CONFIG} (no ./{DEFAULT_CONFIG})"


def _packaged() -> str:
    from importlib import resources

    return resources.files("vfsftp").joinpath(PACKAGED_CONFIG).read_text(encoding="utf-8")


def _load(path: str | None) -> tuple[Config, str]:
    """The config ``_chosen`` picks, validated here."""
    from ..config.schema import config_from_yaml, load_config

    name, label = _chosen(path)
    if name is not None:
        return load_config(name), label
    # Relative osfs:// paths of the default land in the current directory,
    # never inside the installed package.
    return config_from_yaml(_packaged(), f"<{PACKAGED_CONFIG}>", Path.cwd()), label


def _serve(args: argparse.Namespace) -> int:
    from ..config.isolated import Validation
    from ..service.memory import tune_allocator

    # Before anything allocates (and before --workers forks): freed memory
    # goes back to the system after a load (vfsftp/service/memory.py).
    tune_allocator()
    # `kill -USR1 PID` writes every thread's stack to stderr: where a server
    # that stopped answering is stuck, without stopping it. (Not when stderr
    # is no file, as when a caller captures it.)
    with contextlib.suppress(io.UnsupportedOperation, ValueError):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    cpus = _cpu_plan(args.cpu_affinity, args.workers)
    server: dict[str, Any] = {}
    if args.host:
        server["listen"] = args.host
    if args.port is not None:
        server["port"] = args.port
    logging = {"level": "debug"} if args.verbose else None
    # The file is validated in a child process (vfsftp.config.isolated: this
    # one, which serves, never loads pydantic), while this one imports the
    # server.
    reload_from, label = _chosen(args.config)
    # The command line's overrides, for the first reading and every reload.
    validate = functools.partial(Validation, server=server, logging=logging)
    if reload_from is not None:
        validation = validate(reload_from)
    else:
        validation = validate(text=_packaged(), source=f"<{PACKAGED_CONFIG}>", base_dir=Path.cwd())

    def reload() -> Config:
        # The file again, with the command line's overrides again.
        assert reload_from is not None
        return validate(reload_from).result()

    # Imported here so that check-config and hash-password work without
    # loading the server (and its optional dependencies).
    from ..ops.logs import configure_logging, lean_log_records
    from ..service.lifecycle import run_service
    from ..service.preflight import ensure_ready
    from ..service.server import FTPServer

    config = validation.result()
    _err(f"vfsftp: using config {label}")
    # check-config's checks, before the log file is opened: a ConfigError
    # naming the keys, reported by main() like any other.
    warnings = ensure_ready(config)
    try:
        lean_log_records()
        configure_logging(config.logging)
        for problem in warnings:
            log.warning("%s", problem)
        factory = _loop_factory(args.loop)
        load = reload if reload_from else None
        if args.workers != 1:
            from ..service.workers import serve_workers

            def worker(server: FTPServer, load: Callable[[], Config] | None) -> None:
                _run(run_service(server, load, label=label), factory)

            return serve_workers(
                config, args.workers, worker, load, pid_file=args.pid_file, checked=True, cpus=cpus
            )
        if cpus is not None:
            from ..service.affinity import pin_process

            pin_process(cpus[0])
            log.info("pinned to CPU %d (--cpu-affinity)", cpus[0])
        ftp_server = FTPServer(config, checked=True)
        _run(run_service(ftp_server, load, label=label, pid_file=args.pid_file), factory)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:  # e.g. address already in use, no such interface
        _err(f"vfsftp: {exc}")
        return 1
    return 0


def _cpu_plan(spec: str | None, workers: int) -> list[int] | None:
    """Each worker's CPU for ``--cpu-affinity`` (vfsftp.service.affinity),
    checked before anything starts."""
    if spec is None:
        return None
    from ..service.affinity import allowed_cpus, available, plan_cpus

    if not available():
        raise ConfigError(["--cpu-affinity needs Linux (sched_setaffinity)"])
    return plan_cpus(spec, max(workers, 1), allowed_cpus())


def _reload(args: argparse.Namespace) -> int:
    try:
        text = Path(args.pid_file).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        _err(f"vfsftp: cannot read {args.pid_file}: {getattr(exc, 'strerror', None) or exc}")
        return 1
    if not text.isdigit() or int(text) <= 1:
        _err(f"vfsftp: {args.pid_file} does not hold a process id")
        return 1
    try:
        os.kill(int(text), signal.SIGHUP)
    except ProcessLookupError:
        _err(f"vfsftp: no process {text}: the server is not running (stale {args.pid_file})")
        return 1
    except PermissionError:
        _err(f"vfsftp: not allowed to signal process {text}")
        return 1
    print(f"vfsftp: asked process {text} to reload; its log tells the result")
    return 0


def _run(
    main: Coroutine[Any, Any, None], factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    import asyncio

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main)
        return
    if factory is not None:  # pragma: no cover - Python 3.10
        import uvloop

        uvloop.install()
    asyncio.run(main)  # pragma: no cover


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop for ``--loop``. ``auto`` (the default) takes uvloop
    when it is installed, which serves more sessions per second (the
    sessions benchmark, benchmarks/RESULTS.md); asyncio's own otherwise."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit(
                "vfsftp: --loop uvloop needs uvloop (pip install 'vfsftp[fast]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _check_config(args: argparse.Namespace) -> int:
    from ..service.preflight import plural, preflight

    config, label = _load(args.file)
    problems = preflight(config, connect=args.connect)
    # The verdict is the command's output (stdout); problems go to stderr.
    for problem in problems:
        _err(problem.line)
    errors = sum(not p.warning for p in problems)
    if errors:
        return 2
    counts = [plural(len(config.mounts), "mount"), plural(len(config.users), "user")]
    if problems:
        counts.append(plural(len(problems), "warning"))
    opened = "; every mount opened" if args.connect else ""
    print(f"{label}: OK ({', '.join(counts)}{opened})")
    return 0


def _read_new_password() -> str | None:
    if not sys.stdin.isatty():
        # Scripted use: `echo secret | vfsftp hash-password`; one line, no echo.
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Again: ")
    if first != second:
        _err("vfsftp: passwords do not match")
        return None
    return first


def _hash_password(args: argparse.Namespace) -> int:
    from ..identity.auth import hash_password

    password = args.password if args.password is not None else _read_new_password()
    if password is None:
        return 1
    if not password:
        _err("vfsftp: refusing to hash an empty password")
        return 2
    print(hash_password(password))
    return 0


def _openssl_command(cert: str, key: str, hosts: list[str]) -> str:
    """The openssl equivalent of gen-cert, for machines without cryptography."""
    san = ",".join(("IP:" if _is_ip(h) else "DNS:") + h for h in hosts)
    return shlex.join(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-sha256",
            "-nodes",
            "-days",
            "365",
            "-keyout",
            key,
            "-out",
            cert,
            "-subj",
            f"/CN={hosts[0]}",
            "-addext",
            f"subjectAltName={san}",
        ]
    )


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _gen_cert(args: argparse.Namespace) -> int:
    hosts: list[str] = args.host or DEFAULT_CERT_HOSTS
    cert, key = Path(args.cert), Path(args.key)
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _err(
            "vfsftp: gen-cert needs the 'cryptography' package "
            "(pip install 'vfsftp[tls]'); or run this openssl command:"
        )
        print(_openssl_command(args.cert, args.key, hosts))
        return 1
    existing = [str(p) for p in (cert, key) if p.exists()]
    if existing and not args.force:
        _err(f"vfsftp: {', '.join(existing)} already exist(s); use --force to replace")
        return 1
    from ..session.tls import write_self_signed

    write_self_signed(cert, key, hosts)
    _err(
        f"vfsftp: wrote a SELF-SIGNED certificate {cert} (for {', '.join(hosts)}) and its "
        f"key {key} (mode 0600).\n"
        "vfsftp: it is NOT for production: clients cannot verify it and will either refuse "
        "it or must be told to trust it (curl --cacert, or skip verification). Use a "
        "certificate from your CA or from Let's Encrypt for real deployments."
    )
    print(
        "# mounts.yaml\n"
        "server:\n"
        "  tls:                           # relative paths: next to mounts.yaml\n"
        f"    certificate: {cert}\n"
        f"    key: {key}\n"
        "    # implicit_port: 990        # also serve ftps:// (implicit TLS)\n"
        "    # require_tls: true         # refuse logins without AUTH TLS"
    )
    return 0


def _cluster_of(args: argparse.Namespace) -> Any:
    """The config's cluster section, or None (said on stderr)."""
    config, label = _load(args.config)
    if config.cluster is None:
        _err(
            f"vfsftp: {label} has no cluster section: each instance keeps its limits, "
            "bans and quotas to itself (nothing to show or change in a shared store)"
        )
    return config.cluster


def _status(args: argparse.Namespace) -> int:
    import json

    cluster = _cluster_of(args)
    if cluster is None:
        return 2
    import redis

    from ..service.cluster import fleet_status, redact

    try:
        fleet = fleet_status(cluster)
    except (redis.RedisError, OSError) as exc:
        _err(f"vfsftp: cluster store {redact(cluster.url)} does not answer: {exc}")
        return 1
    if args.json:
        print(
            json.dumps(
                {"instances": fleet.instances, "users": fleet.users, "bans": fleet.bans},
                indent=2,
                sort_keys=True,
            )
        )
        return 0
    where = f"{redact(cluster.url)} (prefix {cluster.prefix})"
    print(f"fleet at {where}: instances: {len(fleet.instances)}")
    for row in sorted(fleet.instances, key=lambda r: str(r["id"])):
        listen = ", ".join(row.get("listen") or []) or "-"
        print(f"  {row['id']}  sessions {row['sessions']}  listen {listen}")
    print(f"sessions per user: {len(fleet.users)} user(s)")
    for user, n in sorted(fleet.users.items()):
        print(f"  {user}  {n}")
    print(f"bans: {len(fleet.bans)}")
    for key, left in sorted(fleet.bans.items()):
        print(f"  {key}  {left:.0f}s left")
    return 0


def _unban(args: argparse.Namespace) -> int:
    cluster = _cluster_of(args)
    if cluster is None:
        return 2
    import redis

    from ..service.cluster import redact, unban
    from ..service.limits import BanList

    key = BanList.key(args.address)
    try:
        lifted = unban(cluster, key)
    except (redis.RedisError, OSError) as exc:
        _err(f"vfsftp: cluster store {redact(cluster.url)} does not answer: {exc}")
        return 1
    if not lifted:
        _err(f"vfsftp: {key} is not banned (its failed logins are forgotten all the same)")
        return 1
    print(f"vfsftp: {key} unbanned on every instance of the fleet")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfsftp",
        description="FTP server over a virtual tree of local, in-memory and S3 filesystems.",
        epilog="Without a command, 'serve' is assumed.",
    )
    parser.add_argument("--version", action="version", version=f"vfsftp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (default)")
    serve.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"configuration file (default: ./{DEFAULT_CONFIG}, else the built-in default)",
    )
    serve.add_argument(
        "--host",
        nargs="+",
        action="extend",
        metavar="H",
        help="address(es) to listen on, replacing server.listen",
    )
    serve.add_argument("--port", type=int, metavar="P", help="control port, replacing server.port")
    serve.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    serve.add_argument(
        "--pid-file", metavar="FILE", help="write the process id here (for 'vfsftp reload')"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (POSIX; limits are counted across them)",
    )
    serve.add_argument(
        "--cpu-affinity",
        metavar="SPEC",
        help="run each worker on one CPU: 'auto' (worker i on the i-th CPU this process may "
        "use) or a CPU list such as 0,2-3 (Linux; cuts latency under load, see the README)",
    )
    serve.add_argument(
        "--loop",
        choices=("asyncio", "uvloop", "auto"),
        default="auto",
        help="event loop: auto (default): uvloop when installed (the 'fast' extra), "
        "else asyncio's own; or asyncio, or uvloop",
    )
    serve.set_defaults(func=_serve)

    reload = sub.add_parser(
        "reload",
        help="make a running server re-read its configuration (SIGHUP)",
        description="Send SIGHUP to the server whose process id is in FILE (written by "
        "'vfsftp serve --pid-file FILE'). The server logs whether the new configuration "
        "was taken or rejected; check it first with 'vfsftp check-config'.",
    )
    reload.add_argument("--pid-file", metavar="FILE", required=True)
    reload.set_defaults(func=_reload)

    check = sub.add_parser(
        "check-config",
        help="check a configuration file as 'serve' would, and exit",
        description="Check everything 'serve' needs from a configuration file: its syntax "
        "and keys, addresses, URLs, S3 endpoint and bucket names, local folders, users' "
        "homes, TLS files, hooks and log files. Nothing is bound, and without --connect "
        "nothing touches the network. Exit status 0: the server starts with this file "
        "(warnings, if any, are printed); 2: it would not.",
    )
    check.add_argument(
        "file", nargs="?", metavar="FILE", help=f"file to check (default: ./{DEFAULT_CONFIG})"
    )
    check.add_argument(
        "--connect",
        action="store_true",
        help="also open every mount: S3 buckets are asked HeadBucket and a list of the "
        "prefix with the credentials the server would use; listen host names are resolved",
    )
    check.set_defaults(func=_check_config)

    hasher = sub.add_parser(
        "hash-password",
        help="print an argon2 hash for users.NAME.password",
        description="Print an argon2 hash to paste into users.NAME.password. Without "
        "PASSWORD, it is read from the terminal (twice) or one line of stdin; prefer "
        "that, as an argument shows up in the shell history and the process list.",
    )
    hasher.add_argument("password", nargs="?", metavar="PASSWORD")
    hasher.set_defaults(func=_hash_password)

    gen = sub.add_parser(
        "gen-cert",
        help="write a self-signed certificate and key for server.tls (testing only)",
        description="Write a self-signed TLS certificate and its private key (mode 0600) "
        "and print the server.tls snippet for mounts.yaml. For trying FTPS out, NOT for "
        "production: clients cannot verify a self-signed certificate. Needs the "
        "'cryptography' package (pip install 'vfsftp[tls]'); without it, the equivalent "
        "openssl command is printed.",
    )
    gen.add_argument(
        "--cert",
        default="cert.pem",
        metavar="FILE",
        help="certificate file to write (default: cert.pem)",
    )
    gen.add_argument(
        "--key",
        default="key.pem",
        metavar="FILE",
        help="private key file to write (default: key.pem)",
    )
    gen.add_argument(
        "--host",
        nargs="+",
        action="extend",
        metavar="H",
        help="host names and IP addresses the certificate is for "
        f"(default: {' '.join(DEFAULT_CERT_HOSTS)})",
    )
    gen.add_argument("--force", action="store_true", help="replace existing files")
    gen.set_defaults(func=_gen_cert)

    from . import users_parser

    users_parser.add_parser(sub, _users)
    _fleet_parsers(sub)
    return parser


def _users(args: argparse.Namespace, command: str) -> int:
    from . import users

    return users.run(args, command)


def _fleet_parsers(sub: Any) -> None:
    """`status` and `unban`: the fleet's shared state (config `cluster`)."""
    status = sub.add_parser(
        "status",
        help="show the fleet's instances, sessions per user and bans (cluster)",
        description="Read the shared state of the fleet named by the config's cluster "
        "section (Redis): the live instances with their sessions, the sessions per user, "
        "the current bans with the seconds left.",
    )
    status.add_argument(
        "-c", "--config", metavar="FILE", help=f"configuration file (default: ./{DEFAULT_CONFIG})"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(func=_status)
    unban = sub.add_parser(
        "unban",
        help="lift the ban of an address on every instance of the fleet (cluster)",
        description="Lift the ban of ADDRESS (an IPv6 address stands for its /64) in the "
        "fleet's shared state and forget its failed logins.",
    )
    unban.add_argument(
        "-c", "--config", metavar="FILE", help=f"configuration file (default: ./{DEFAULT_CONFIG})"
    )
    unban.add_argument("address", metavar="ADDRESS")
    unban.set_defaults(func=_unban)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `serve` is the default command: anything that does not start with a
    # command name or a top-level help flag is serve's arguments.
    if not args_list or args_list[0] not in (*_COMMANDS, "-h", "--help", "--version"):
        args_list.insert(0, "serve")
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        status: int = args.func(args)
    except ConfigError as exc:
        _err(str(exc))
        return 2
    return status
