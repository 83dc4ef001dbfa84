"""mounts.yaml validation: every bad input names the key path and what was
expected; good inputs give the documented values."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from vfsftp.config.names import LOCAL_KINDS, fs_kind
from vfsftp.config.schema import (
    Config,
    ConfigError,
    QuotaConfig,
    bucket_name_problem,
    config_from_dict,
    config_from_yaml,
    load_config,
    s3_enum,
    with_overrides,
)
from vfsftp.identity.auth import hash_password
from vfsftp.protocol.permissions import ALL_PERMS

REPO = Path(__file__).resolve().parents[3]
PW = "plaintext:pw"


def problems_of(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "mounts.yaml", env=env or {})
    err = info.value
    assert str(err) == "\n".join(err.problems)
    return err.problems


# --- bad configs: (data, expected substring of one problem line)

BAD: list[tuple[str, Any, str]] = [
    ("top-level list", [1, 2], "mounts.yaml: expected a mapping at the top level"),
    ("unknown top key", {"mount": {}}, "mount: unknown key; did you mean mounts?"),
    ("unknown top key, far", {"disks": {}}, "disks: unknown key; expected one of server, logging"),
    ("internal key", {"source": "x"}, "source: unknown key"),
    ("unknown server key", {"server": {"prot": 1}}, "server.prot: unknown key; did you mean port?"),
    (
        "misspelt server key",
        {"server": {"max_conections": 1}},
        "mounts.yaml: server.max_conections: unknown key; did you mean max_connections?",
    ),
    (
        "listen not an IPv4 address",
        {"server": {"listen": "127.0.0.300"}},
        "mounts.yaml: server.listen[0]: '127.0.0.300' is not a valid IPv4 address: "
        "expected four numbers from 0 to 255, such as 127.0.0.1",
    ),
    (
        "listen with leading zeros",
        {"server": {"listen": "010.0.0.1"}},
        "server.listen[0]: '010.0.0.1' is not a valid IPv4 address",
    ),
    (
        "listen three numbers",
        {"server": {"listen": "10.1.2"}},
        "server.listen[0]: '10.1.2' is not a valid IPv4 address",
    ),
    (
        "metrics listen",
        {"metrics": {"listen": "256.0.0.1"}},
        "metrics.listen: '256.0.0.1' is not a valid IPv4 address",
    ),
    ("port not int", {"server": {"port": "abc"}}, "server.port: expected an integer, got 'abc'"),
    ("port bool", {"server": {"port": True}}, "server.port: expected a number, got true"),
    ("port too big", {"server": {"port": 70000}}, "server.port: expected a number <= 65535"),
    ("port negative", {"server": {"port": -1}}, "server.port: expected a number >= 0"),
    ("listen empty", {"server": {"listen": []}}, "server.listen: expected at least one address"),
    (
        "listen with port",
        {"server": {"listen": ["127.0.0.1:21"]}},
        "server.listen[0]: expected an address without a port",
    ),
    (
        "listen bad host",
        {"server": {"listen": ["::1", "bad host!"]}},
        "server.listen[1]: expected an IP address or a host name",
    ),
    (
        "passive reversed",
        {"server": {"passive_ports": "60100-60000"}},
        "server.passive_ports: expected low <= high",
    ),
    (
        "passive privileged",
        {"server": {"passive_ports": [20, 30]}},
        "server.passive_ports: expected ports between 1024 and 65535",
    ),
    (
        "passive one number",
        {"server": {"passive_ports": 60000}},
        "server.passive_ports: expected a port range as [low, high] or 'low-high'",
    ),
    (
        "passive three",
        {"server": {"passive_ports": [60000, 60001, 60002]}},
        "server.passive_ports: expected a port range",
    ),
    (
        "masquerade v6",
        {"server": {"masquerade_address": "::1"}},
        "server.masquerade_address: expected an IPv4 address",
    ),
    (
        "masquerade name",
        {"server": {"masquerade_address": "example.com"}},
        "server.masquerade_address: expected an IPv4 address",
    ),
    ("idle zero", {"server": {"idle_timeout": 0}}, "server.idle_timeout: expected a number > 0"),
    (
        "data timeout inf",
        {"server": {"data_timeout": "inf"}},
        "server.data_timeout: expected a finite number",
    ),
    (
        "max conn zero",
        {"server": {"max_connections": 0}},
        "server.max_connections: expected a number >= 1",
    ),
    (
        "bool field",
        {"server": {"permit_foreign_addresses": "maybe"}},
        "server.permit_foreign_addresses: expected true or false",
    ),
    ("banner CR", {"server": {"banner": "a\rb"}}, "server.banner: banner must not contain CR"),
    ("server not mapping", {"server": [1]}, "server: expected a mapping"),
    ("log file empty", {"logging": {"file": ""}}, "logging.file: expected a file name"),
    ("log level", {"logging": {"level": "trace"}}, "logging.level: expected one of debug, info"),
    ("log file type", {"logging": {"file": 3}}, "logging.file: expected a string, got 3"),
    (
        "mount relative",
        {"mounts": {"data": "mem://"}},
        "mounts.data: expected an absolute virtual path starting with '/'",
    ),
    (
        "mount no scheme",
        {"mounts": {"/data": "./ftp-data"}},
        "mounts./data.fs: expected a filesystem URL with a scheme",
    ),
    (
        "mount long form no scheme",
        {"mounts": {"/data": {"fs": "/srv/ftp"}}},
        "mounts./data.fs: expected a filesystem URL with a scheme",
    ),
    ("mount fs missing", {"mounts": {"/d": {"read_only": True}}}, "mounts./d.fs: required key"),
    (
        "mount unknown key",
        {"mounts": {"/d": {"fs": "mem://", "readonly": True}}},
        "mounts./d.readonly: unknown key; did you mean read_only?",
    ),
    (
        "mount null",
        {"mounts": {"/d": None}},
        "mounts./d: expected a filesystem URL such as",
    ),
    (
        "mount read_only type",
        {"mounts": {"/d": {"fs": "mem://", "read_only": "sometimes"}}},
        "mounts./d.read_only: expected true or false",
    ),
    (
        "mount duplicate after normalising",
        {"mounts": {"/data": "mem://", "/data/": "mem://"}},
        "mounts./data/: same path as '/data' (both are '/data')",
    ),
    (
        "mount dot segments",
        {"mounts": {"/a/../b": "mem://", "/b": "mem://"}},
        "mounts./b: same path as '/a/../b'",
    ),
    ("mount int key", {"mounts": {5: "mem://"}}, "mounts[5]: expected a string as the key"),
    ("mounts a list", {"mounts": ["/a"]}, "mounts: expected a mapping, got a list"),
    ("user not mapping", {"users": {"demo": "x"}}, "users.demo: expected a mapping"),
    (
        "user unknown key",
        {"users": {"demo": {"password": PW, "pass": 1}}},
        "users.demo.pass: unknown key; expected one of password, home, perms",
    ),
    (
        "user name key refused",
        {"users": {"demo": {"password": PW, "name": "x"}}},
        "users.demo.name: unknown key",
    ),
    (
        "user anonymous key refused",
        {"users": {"demo": {"password": PW, "anonymous": True}}},
        "users.demo.anonymous: unknown key",
    ),
    ("user int name", {"users": {7: {"password": PW}}}, "users[7]: expected the user name as a"),
    ("user ftp reserved", {"users": {"ftp": {}}}, "users.ftp: 'ftp' is the login alias"),
    (
        "user name spaces",
        {"users": {" bob": {"password": PW}}},
        "users[' bob']: expected a user name of letters, digits and . _ - @ + (not starting "
        "with '.' or '-', no '..'), got ' bob'",
    ),
    *(
        (
            f"user name {name!r}",
            {"users": {name: {"password": PW}}},
            "expected a user name of letters, digits and . _ - @ + (not starting with "
            f"'.' or '-', no '..'), got {name!r}",
        )
        for name in (
            "%2e%2e",
            "../escapee",
            "alice/",
            "a/b",
            "a\\b",
            "..",
            ".hidden",
            "-rf",
            "a..b",
            "nul\x00",
            "cr\rlf",
            "tab\t",
            "caf\u00e9",
            "a b",
            "a?b",
            "a!b",
            "a:b",
            "a#b",
        )
    ),
    (
        "user name too long",
        {"users": {"u" * 65: {"password": PW}}},
        "expected a user name of at most 64 characters, got 65",
    ),
    (
        "password missing",
        {"users": {"demo": {}}},
        "users.demo.password: required: expected an argon2 hash (vfsftp hash-password)",
    ),
    (
        "password bare",
        {"users": {"demo": {"password": "secret"}}},
        "users.demo.password: expected an argon2 hash (vfsftp hash-password) or "
        "'plaintext:<password>'",
    ),
    (
        "password empty plaintext",
        {"users": {"demo": {"password": "plaintext:"}}},
        "users.demo.password: empty password",
    ),
    (
        "password malformed hash",
        {"users": {"demo": {"password": "$argon2id$nonsense"}}},
        "users.demo.password: malformed argon2 hash",
    ),
    (
        "anonymous with password",
        {"users": {"anonymous": {"password": PW}}},
        "users.anonymous.password: anonymous logs in without a password",
    ),
    (
        "perms letter",
        {"users": {"demo": {"password": PW, "perms": "elrx"}}},
        "users.demo.perms: unknown permission letter(s) 'x'; expected letters from 'elradfmwMT'",
    ),
    (
        "permissions letter",
        {"users": {"demo": {"password": PW, "permissions": {"/pub": "eZ"}}}},
        "users.demo.permissions./pub: unknown permission letter(s) 'Z'",
    ),
    (
        "permissions relative dir",
        {"users": {"demo": {"password": PW, "permissions": {"pub": "e"}}}},
        "users.demo.permissions.pub: expected an absolute virtual path",
    ),
    (
        "permissions duplicate",
        {"users": {"demo": {"password": PW, "permissions": {"/p": "e", "/p/": "el"}}}},
        "users.demo.permissions./p/: same path as '/p'",
    ),
    (
        "home relative",
        {"users": {"demo": {"password": PW, "home": "pub"}}},
        "users.demo.home: expected an absolute virtual path",
    ),
    (
        "home outside root",
        {"users": {"demo": {"password": PW, "root": "/home/demo", "home": "/pub"}}},
        "users.demo.root: expected a directory holding the home '/pub' (the user sees "
        "nothing outside the root), got '/home/demo'",
    ),
    (
        "root relative",
        {"users": {"demo": {"password": PW, "root": "home"}}},
        "users.demo.root: expected an absolute virtual path",
    ),
    (
        "user mount bad url",
        {"users": {"demo": {"password": PW, "mounts": {"/h": "homes/${user}"}}}},
        "users.demo.mounts./h.fs: expected a filesystem URL",
    ),
    (
        "user max_connections",
        {"users": {"demo": {"password": PW, "max_connections": 0}}},
        "users.demo.max_connections: expected a number >= 1",
    ),
    (
        "rate without a unit it knows",
        {"server": {"session_download_rate": "10 furlongs/s"}},
        "server.session_download_rate: expected a size in bytes or with a unit",
    ),
    (
        "ban failures",
        {"server": {"ban": {"max_failures": 0}}},
        "server.ban.max_failures: expected a number >= 1",
    ),
    (
        "ban exempt network",
        {"server": {"ban": {"exempt": ["10.0.0.0/33"]}}},
        "server.ban.exempt[0]: expected an address or network such as '10.0.0.0/8'",
    ),
    (
        "stall timeout",
        {"server": {"stall_timeout": 0}},
        "server.stall_timeout: expected a number > 0",
    ),
    (
        "empty quota",
        {"users": {"demo": {"password": PW, "quota": {}}}},
        "users.demo.quota: expected max_bytes, max_files or both",
    ),
    (
        "quota size",
        {"mounts": {"/": {"fs": "mem://", "quota": {"max_bytes": "lots"}}}},
        "mounts./.quota.max_bytes: expected a size in bytes or with a unit",
    ),
    (
        "s3 encryption",
        {"mounts": {"/s3": {"fs": "s3://bkt", "server_side_encryption": "kms"}}},
        "mounts./s3.server_side_encryption: input should be 'AES256', 'aws:kms' or 'aws:kms:dsse'",
    ),
    (
        "s3 kms key without kms",
        {
            "mounts": {
                "/s3": {"fs": "s3://bkt", "server_side_encryption": "AES256", "sse_kms_key_id": "k"}
            }
        },
        "mounts./s3: sse_kms_key_id: only with server_side_encryption: aws:kms or aws:kms:dsse",
    ),
    (
        "s3 storage class",
        {"mounts": {"/s3": {"fs": "s3://bkt", "storage_class": "COLD"}}},
        "mounts./s3.storage_class: expected one of STANDARD, REDUCED_REDUNDANCY, STANDARD_IA",
    ),
    (
        "s3 acl",
        {"mounts": {"/s3": {"fs": "s3://bkt", "acl": "owner"}}},
        "mounts./s3.acl: expected one of private, public-read, public-read-write, "
        "authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control, "
        "got 'owner'",
    ),
    (
        "s3 content type",
        {"mounts": {"/s3": {"fs": "s3://bkt", "content_type": "text/csv"}}},
        "mounts./s3.content_type: input should be 'guess' or 'none'",
    ),
    (
        "s3 object settings on mem",
        {"mounts": {"/m": {"fs": "mem://", "storage_class": "STANDARD_IA", "acl": "private"}}},
        "mounts./m: storage_class, acl: only for s3:// mounts",
    ),
    (
        "s3 endpoint without scheme",
        {"mounts": {"/s3": {"fs": "s3://bkt", "endpoint_url": "127.0.0.1:5055"}}},
        "mounts.yaml: mounts./s3.endpoint_url: expected a URL with its scheme, such as "
        "'http://127.0.0.1:5055', got '127.0.0.1:5055'",
    ),
    (
        "s3 endpoint host:port",
        {"mounts": {"/s3": {"fs": "s3://bkt", "endpoint_url": "minio:9000"}}},
        "mounts./s3.endpoint_url: expected a URL with its scheme, such as 'http://minio:9000'",
    ),
    (
        "s3 endpoint scheme",
        {"mounts": {"/s3": {"fs": "s3://bkt", "endpoint_url": "ftp://minio:9000"}}},
        "mounts./s3.endpoint_url: expected a URL starting with http:// or https://, "
        "got 'ftp://minio:9000'",
    ),
    (
        "s3 endpoint port",
        {"mounts": {"/s3": {"fs": "s3://bkt", "endpoint_url": "http://minio:99999"}}},
        "mounts./s3.endpoint_url: expected a URL such as 'http://127.0.0.1:9000' "
        "(Port out of range 0-65535), got 'http://minio:99999'",
    ),
    (
        "s3 endpoint with credentials",
        {"mounts": {"/s3": {"fs": "s3://bkt", "endpoint_url": "http://ak:sk@minio:9000"}}},
        "mounts./s3.endpoint_url: credentials do not go in the URL; use access_key_id and "
        "secret_access_key",
    ),
    (
        "s3 endpoint host",
        {"mounts": {"/s3": {"fs": "s3://bkt", "endpoint_url": "http://min io:9000"}}},
        "mounts./s3.endpoint_url: expected a URL with a valid host name or address",
    ),
    (
        "s3 region",
        {"mounts": {"/s3": {"fs": "s3://bkt", "region": "eu west 1"}}},
        "mounts./s3.region: expected a region name such as 'eu-west-1'",
    ),
    (
        "s3 bucket characters",
        {"mounts": {"/s3": "s3://my_bucket!/prefix"}},
        "mounts.yaml: mounts./s3.fs: bucket name 'my_bucket!' is not valid: S3 bucket names "
        "use lowercase letters, digits, '.' and '-', not '!', '_'",
    ),
    (
        "s3 bucket short",
        {"mounts": {"/s3": "s3://ab"}},
        "mounts./s3.fs: bucket name 'ab' is not valid: S3 bucket names have 3 to 63 "
        "characters, not 2",
    ),
    (
        "s3 bucket ${user} fixed part",
        {"mounts": {"/s3": "s3://Ftp-${user}"}},
        "mounts./s3.fs: bucket name 'Ftp-user' is not valid",
    ),
    (
        "missing env var",
        {"mounts": {"/s3": "s3://bucket?endpoint_url=${S3_ENDPOINT}"}},
        "mounts./s3: environment variable 'S3_ENDPOINT' is not set",
    ),
    (
        "missing env var long form",
        {"mounts": {"/s3": {"fs": "s3://${BUCKET}"}}},
        "mounts./s3.fs: environment variable 'BUCKET' is not set",
    ),
    (
        "malformed reference",
        {"server": {"banner": "cost: ${1abc}"}},
        "server.banner: malformed '${'",
    ),
    (
        "unterminated reference",
        {"server": {"banner": "oops ${HOME"}},
        "server.banner: malformed '${'",
    ),
    (
        "hash algorithm",
        {"server": {"hash": {"algorithm": "SHA256"}}},
        "server.hash.algorithm: expected one of CRC32, MD5, SHA-1, SHA-256, SHA-512, got 'SHA256'",
    ),
    (
        "upload checksum algorithm",
        {"server": {"hash": {"upload": "sha3"}}},
        "server.hash.upload: expected one of CRC32, MD5, SHA-1, SHA-256, SHA-512, or none; "
        "got 'sha3'",
    ),
    ("hash places", {"server": {"hash": {"max_concurrent": 0}}}, "server.hash.max_concurrent"),
    ("hash key", {"server": {"hash": {"algo": "MD5"}}}, "server.hash.algo"),
    (
        "hash cap",
        {"mounts": {"/": {"fs": "mem://", "hash_max_size": "lots"}}},
        "mounts./.hash_max_size",
    ),
    ("cluster url", {"cluster": {"url": "http://x"}}, "cluster.url: expected a Redis URL"),
    ("cluster without url", {"cluster": {"lease": 5}}, "cluster.url: required key is missing"),
    (
        "heartbeat past the lease",
        {"cluster": {"url": "redis://x", "lease": 2, "heartbeat": 2}},
        "cluster: heartbeat (2s) must be shorter than the lease (2s)",
    ),
    (
        "proxy protocol without balancers",
        {"server": {"proxy_protocol": {"from": []}}},
        "server.proxy_protocol.from: expected the load balancers' addresses",
    ),
    (
        "proxy protocol misspelt",
        {"server": {"proxy_protocol": {"form": ["10.0.0.2"]}}},
        "server.proxy_protocol.form: unknown key; did you mean from?",
    ),
    (
        "proxy protocol network",
        {"server": {"proxy_protocol": {"from": ["lb.example"]}}},
        "server.proxy_protocol.from[0]: expected an address or network",
    ),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_names_key_and_expectation(data: Any, expected: str) -> None:
    problems = problems_of(data)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("mounts.yaml: ") for p in problems)


def test_s3_storage_class_lists_botocores_values() -> None:
    (problem,) = problems_of({"mounts": {"/s3": {"fs": "s3://bkt", "storage_class": "COLD"}}})
    allowed = ", ".join(s3_enum("StorageClass"))  # the installed botocore's S3 model
    expected = f"mounts.yaml: mounts./s3.storage_class: expected one of {allowed}, got 'COLD'"
    assert problem == expected


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of(
        {
            "server": {"port": "x", "idle_timeout": -1},
            "mounts": {"rel": "mem://", "/ok": "nourl"},
            "users": {"demo": {"perms": "q"}},
            "extra": 1,
        }
    )
    assert len(problems) == 7, problems


def test_missing_variable_is_not_reported_twice() -> None:
    # The literal "${PORT}" would also fail as an integer: that is noise.
    problems = problems_of({"server": {"port": "${PORT}"}})
    assert problems == ["mounts.yaml: server.port: environment variable 'PORT' is not set"]


def test_password_value_never_appears_in_messages() -> None:
    for secret in ("hunter2-secret", 123456789):
        problems = problems_of({"users": {"demo": {"password": secret}}})
        assert not any(str(secret) in p for p in problems), problems


# --- good configs: (data, getter, expected value)

GOOD: list[tuple[str, Any, Callable[[Config], Any], Any]] = [
    ("empty", {}, lambda c: (c.mounts, c.users), ({}, {})),
    ("none", None, lambda c: c.server.port, 2121),
    ("empty sections", {"server": None, "users": None, "mounts": None}, lambda c: c.users, {}),
    ("default listen", {}, lambda c: c.server.listen, ("127.0.0.1",)),
    ("listen string", {"server": {"listen": "::"}}, lambda c: c.server.listen, ("::",)),
    (
        "listen list",
        {"server": {"listen": ["0.0.0.0", "[::1]", "localhost"]}},
        lambda c: c.server.listen,
        ("0.0.0.0", "::1", "localhost"),
    ),
    ("port zero", {"server": {"port": 0}}, lambda c: c.server.port, 0),
    ("port string", {"server": {"port": "2222"}}, lambda c: c.server.port, 2222),
    (
        "passive string",
        {"server": {"passive_ports": "60000-60100"}},
        lambda c: c.server.passive_ports,
        (60000, 60100),
    ),
    (
        "passive spaced string",
        {"server": {"passive_ports": "60000 - 60000"}},
        lambda c: c.server.passive_ports,
        (60000, 60000),
    ),
    (
        "passive list",
        {"server": {"passive_ports": [60000, 60100]}},
        lambda c: c.server.passive_ports,
        (60000, 60100),
    ),
    ("passive unset", {}, lambda c: c.server.passive_ports, None),
    (
        "masquerade",
        {"server": {"masquerade_address": "203.0.113.10"}},
        lambda c: c.server.masquerade_address,
        "203.0.113.10",
    ),
    ("banner multiline", {"server": {"banner": "a\nb\n"}}, lambda c: c.server.banner, "a\nb"),
    ("timeouts", {"server": {"idle_timeout": 1}}, lambda c: c.server.idle_timeout, 1.0),
    ("level upper", {"logging": {"level": "DEBUG"}}, lambda c: c.logging.level, "debug"),
    ("logging defaults", {}, lambda c: c.logging.transfer_log, None),
    ("mount short", {"mounts": {"/s": "mem://"}}, lambda c: c.mounts["/s"].fs, "mem://"),
    (
        "mount long",
        {"mounts": {"/d": {"fs": "osfs://./x", "read_only": True, "create": True}}},
        lambda c: (c.mounts["/d"].read_only, c.mounts["/d"].create),
        (True, True),
    ),
    (
        "mount defaults",
        {"mounts": {"/d": "mem://"}},
        lambda c: (c.mounts["/d"].read_only, c.mounts["/d"].create),
        (False, False),
    ),
    (
        "mount path normalised",
        {"mounts": {"/data//archive/./": "mem://", "/": "mem://"}},
        lambda c: sorted(c.mounts),
        ["/", "/data/archive"],
    ),
    (
        "nested mounts",
        {"mounts": {"/data": "mem://", "/data/archive": "mem://"}},
        lambda c: sorted(c.mounts),
        ["/data", "/data/archive"],
    ),
    (
        "named user defaults",
        {"users": {"demo": {"password": PW}}},
        lambda c: (
            c.users["demo"].name,
            c.users["demo"].home,
            c.users["demo"].perms,
            c.users["demo"].anonymous,
            c.users["demo"].max_connections,
        ),
        ("demo", "/", ALL_PERMS, False, None),
    ),
    (
        "home normalised",
        {"users": {"u": {"password": PW, "home": "/a/./b/"}}},
        lambda c: c.users["u"].home,
        "/a/b",
    ),
    (
        "root: none, the home; or set and normalised",
        {
            "users": {
                "u": {"password": PW, "home": "/h"},
                "v": {"password": PW, "root": "/", "home": "/h"},
                "w": {"password": PW, "root": "/home/${user}/", "home": "/home/${user}/in"},
            }
        },
        lambda c: [c.users[n].root for n in ("u", "v", "w")],
        [None, "/", "/home/${user}"],
    ),
    (
        "permissions normalised",
        {"users": {"u": {"password": PW, "permissions": {"/pub/": "elr", "/x": ""}}}},
        lambda c: c.users["u"].permissions,
        {"/pub": "elr", "/x": ""},
    ),
    (
        "anonymous empty",
        {"users": {"anonymous": {}}},
        lambda c: (
            c.users["anonymous"].anonymous,
            c.users["anonymous"].password,
            c.users["anonymous"].perms,
            c.users["anonymous"].home,
        ),
        (True, None, "elr", "/"),
    ),
    (
        "anonymous null",
        {"users": {"anonymous": None}},
        lambda c: c.users["anonymous"].perms,
        "elr",
    ),
    (
        "anonymous home",
        {"users": {"anonymous": {"home": "/pub"}}},
        lambda c: c.users["anonymous"].home,
        "/pub",
    ),
    (
        "anonymous explicit perms",
        {"users": {"anonymous": {"perms": "elrw"}}},
        lambda c: c.users["anonymous"].perms,
        "elrw",
    ),
    (
        "user placeholder kept",
        {
            "users": {
                "u": {
                    "password": PW,
                    "home": "/home/${user}",
                    "mounts": {"/home/${user}": "osfs://./homes/${user}"},
                }
            }
        },
        lambda c: (c.users["u"].home, c.users["u"].mounts["/home/${user}"].fs),
        ("/home/${user}", "osfs://./homes/${user}"),
    ),
    (
        "user mount long form",
        {"users": {"u": {"password": PW, "mounts": {"/x": {"fs": "mem://", "read_only": 1}}}}},
        lambda c: c.users["u"].mounts["/x"].read_only,
        True,
    ),
    (
        "argon2 hash accepted",
        {"users": {"u": {"password": hash_password("pw")}}},
        lambda c: (c.users["u"].password or "").startswith("$argon2id$"),
        True,
    ),
    ("source default", {}, lambda c: c.source, "mounts.yaml"),
    (
        "rates with /s",
        {"server": {"session_download_rate": "10MB/s", "total_upload_rate": "1 MiB/s"}},
        lambda c: (c.server.session_download_rate, c.server.total_upload_rate),
        (10_000_000, 1024**2),
    ),
    (
        "bans on by default",
        {},
        lambda c: (c.server.ban.max_failures, c.server.ban.window, c.server.ban.duration),
        (10, 600.0, 900.0),
    ),
    ("bans off", {"server": {"ban": None}}, lambda c: c.server.ban, None),
    (
        "ban exempt networks",
        {"server": {"ban": {"exempt": ["10.1.2.3/8", "::1"]}}},
        lambda c: [str(n) for n in c.server.ban.exempt],
        ["10.0.0.0/8", "::1/128"],
    ),
    (
        "quotas",
        {
            "mounts": {"/": {"fs": "mem://", "quota": {"max_files": 10}}},
            "users": {"u": {"password": PW, "quota": {"max_bytes": "1GiB"}}},
        },
        lambda c: (
            c.mounts["/"].quota.max_files,
            c.mounts["/"].quota.max_bytes,
            c.users["u"].quota.max_bytes,
        ),
        (10, 256 * 1024**2, 1024**3),  # (mem:// gets its default size cap)
    ),
    (
        "mem:// capped by default, other mounts not",
        {
            "mounts": {
                "/m": "mem://",
                "/big": {"fs": "mem://", "quota": {"max_bytes": "2GiB"}},
                "/d": "osfs://.",
            },
            "users": {"u": {"password": PW, "mounts": {"/own": "MEM://"}}},
        },
        lambda c: (
            c.mounts["/m"].quota,
            c.mounts["/big"].quota.max_bytes,
            c.mounts["/d"].quota,
            c.users["u"].mounts["/own"].quota.max_bytes,
        ),
        (QuotaConfig(max_bytes=256 * 1024**2), 2 * 1024**3, None, 256 * 1024**2),
    ),
    (
        "checksums on by default, SHA-256",
        {"mounts": {"/": "mem://"}},
        lambda c: (
            c.server.hash.enabled,
            c.server.hash.anonymous,
            c.server.hash.algorithm,
            c.server.hash.upload,
            c.server.hash.max_concurrent,
            c.mounts["/"].hash_max_size,
            c.mounts["/"].require_checksum,
        ),
        (True, True, "SHA-256", "SHA-256", 4, None, False),
    ),
    (
        "checksum names in any case; upload none",
        {"server": {"hash": {"algorithm": "sha-1", "upload": "None"}}},
        lambda c: (c.server.hash.algorithm, c.server.hash.upload),
        ("SHA-1", None),
    ),
    (
        "upload checksum null; crc32",
        {"server": {"hash": {"algorithm": "crc32", "upload": None}}},
        lambda c: (c.server.hash.algorithm, c.server.hash.upload),
        ("CRC32", None),
    ),
    (
        "hash cap and required checksums",
        {"mounts": {"/": {"fs": "s3://bkt", "hash_max_size": "10GiB", "require_checksum": True}}},
        lambda c: (c.mounts["/"].hash_max_size, c.mounts["/"].require_checksum),
        (10 * 1024**3, True),
    ),
]


@pytest.mark.parametrize(
    ("data", "get", "expected"), [c[1:] for c in GOOD], ids=[c[0] for c in GOOD]
)
def test_good_config_values(data: Any, get: Callable[[Config], Any], expected: Any) -> None:
    config = config_from_dict(data, "mounts.yaml", env={})
    assert get(config) == expected


# --- environment substitution


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("s3://${BUCKET}/p", {"BUCKET": "bkt"}, "s3://bkt/p"),
        ("osfs://${EP}/data", {"EP": "/srv"}, "osfs:///srv/data"),
        ("mem://${A}${B}", {"A": "x", "B": "y"}, "mem://xy"),
        ("mem://${EMPTY}", {"EMPTY": ""}, "mem://"),
        ("mem://$${NOT_A_VAR}", {}, "mem://${NOT_A_VAR}"),
        ("mem://cost$5", {}, "mem://cost$5"),
        ("osfs://./homes/${user}", {"user": "ignored"}, "osfs://./homes/${user}"),
    ],
)
def test_env_substitution(text: str, env: dict[str, str], expected: str) -> None:
    config = config_from_dict({"mounts": {"/m": text}}, env=env)
    assert config.mounts["/m"].fs == expected


def test_env_substitution_everywhere_and_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VFS_PORT", "2345")
    monkeypatch.setenv("VFS_PW", "s3cret")
    monkeypatch.setenv("VFS_HOSTS", "::1")
    config = config_from_dict(
        {
            "server": {"port": "${VFS_PORT}", "listen": ["127.0.0.1", "${VFS_HOSTS}"]},
            "users": {"demo": {"password": "plaintext:${VFS_PW}"}},
        }
    )
    assert config.server.port == 2345
    assert config.server.listen == ("127.0.0.1", "::1")
    assert config.users["demo"].password == "plaintext:s3cret"


def test_missing_variable_names_path_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VFS_NOPE", raising=False)
    with pytest.raises(ConfigError, match=r"users\.demo\.password: .*'VFS_NOPE' is not set"):
        config_from_dict({"users": {"demo": {"password": "plaintext:${VFS_NOPE}"}}})


# --- models


def test_hook_events_are_the_hooks_sections_keys() -> None:
    """config.names.HOOK_EVENTS (what the server runs hooks for, without
    loading the models) and the keys ``hooks:`` accepts are one list."""
    from vfsftp.config.names import HOOK_EVENTS
    from vfsftp.config.schema import HooksConfig

    assert tuple(HooksConfig.model_fields) == HOOK_EVENTS


def test_models_are_frozen() -> None:
    config = config_from_dict({"mounts": {"/m": "mem://"}, "users": {"u": {"password": PW}}})
    with pytest.raises(ValidationError):
        config.server.port = 21  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.mounts["/m"].read_only = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.users["u"].perms = "e"  # type: ignore[misc]


def test_base_dir_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_from_dict({}).base_dir == tmp_path
    assert config_from_dict({}).source == "<dict>"
    assert config_from_dict({}, base_dir=Path("/srv")).base_dir == Path("/srv")


def test_with_overrides_keeps_network_lists() -> None:
    """A model dumped and validated again: networks come back as networks
    (a --port override with ban.exempt or proxy_protocol set failed)."""
    config = config_from_dict(
        {"server": {"ban": {"exempt": ["10.0.0.0/8"]}, "proxy_protocol": {"from": ["10.1.0.2"]}}}
    )
    new = with_overrides(config, server={"port": 0})
    assert new.server.ban == config.server.ban
    assert new.server.proxy_protocol == config.server.proxy_protocol


def test_with_overrides_validates() -> None:
    config = config_from_dict({"server": {"port": 2121}})
    new = with_overrides(config, server={"listen": ["::1"], "port": 0}, logging={"level": "debug"})
    assert (new.server.listen, new.server.port, new.logging.level) == (("::1",), 0, "debug")
    assert config.server.port == 2121  # the original is untouched
    with pytest.raises(ConfigError, match=r"^command line: server\.port: expected a number <="):
        with_overrides(config, server={"port": 70000})


# --- files


def write(tmp_path: Path, text: str, name: str = "mounts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, "mounts:\n  /data: osfs://./d\nusers:\n  anonymous:\n")
    config = load_config(path)
    assert config.source == str(path)
    assert config.base_dir == tmp_path
    assert config.mounts["/data"].fs == "osfs://./d"
    assert config.users["anonymous"].anonymous


def test_relative_log_files_are_next_to_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, "logging:\n  file: logs/vfsftp.log\n  transfer_log: '-'\n")
    logging = load_config(path).logging
    assert logging.file == str(tmp_path / "logs" / "vfsftp.log")
    assert logging.transfer_log == "-"  # stderr, not a file called "-"
    absolute = config_from_dict({"logging": {"transfer_log": "/var/log/x"}}, base_dir=tmp_path)
    assert absolute.logging.transfer_log == "/var/log/x"


def test_load_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "# nothing yet\n"))
    assert config.mounts == {} and config.users == {}
    assert config.server.port == 2121


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "users:\n  demo:\n    password: plaintext:x\n    perms: elrx\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: users.demo.perms: unknown permission letter")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("mounts: [1\n", r"line 1: the '\[' at column 9 is never closed with '\]'"),
        ("server:\n  port: 1\n\tbanner: x\n", r"line 3: a tab character; indent with spaces"),
        ("a: b\n---\nc: d\n", r"line 2, column 1: .*single document"),
        (
            "users:\n  demo: {password: 'plaintext:a'}\n  demo: {password: 'plaintext:b'}\n",
            r"line 3: duplicate key 'demo' \(first at line 2\)",
        ),
        ("- 1\n- 2\n", r"expected a mapping at the top level"),
    ],
)
def test_yaml_problems(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert re.search(pattern, message), message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read: No such file"):
        load_config(missing)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mounts.yaml"
    path.write_bytes(b"banner: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_config_from_yaml_text() -> None:
    config = config_from_yaml("server:\n  passive_ports: 60000-60010\n", "<text>")
    assert config.server.passive_ports == (60000, 60010)
    assert config.source == "<text>"


# --- the shipped configs


def test_repo_config_and_packaged_default_are_identical() -> None:
    repo = (REPO / "mounts.yaml").read_bytes()
    packaged = (REPO / "vfsftp" / "default_mounts.yaml").read_bytes()
    assert repo == packaged


def test_repo_config_loads() -> None:
    config = load_config(REPO / "mounts.yaml")
    assert config.server.listen == ("127.0.0.1",)
    assert config.server.port == 2121
    assert config.server.passive_ports is None
    assert sorted(config.mounts) == ["/data", "/pub", "/scratch"]
    assert config.mounts["/scratch"].fs == "mem://"
    assert config.mounts["/data"].create and not config.mounts["/data"].read_only
    assert config.mounts["/pub"].read_only and config.mounts["/pub"].create
    demo, anon = config.users["demo"], config.users["anonymous"]
    assert (demo.password, demo.perms, demo.home) == ("plaintext:demo", ALL_PERMS, "/")
    assert (anon.anonymous, anon.password, anon.perms, anon.home) == (True, None, "elr", "/pub")


S3_EXAMPLE = {
    "  # /archive:": "  /archive:",
    "  #   fs: s3://": "    fs: s3://",
    "  #   endpoint_url:": "    endpoint_url:",
    "  #   region:": "    region:",
    "  #   part_size:": "    part_size:",
    "  #   concurrency:": "    concurrency:",
    "  #   server_side_encryption:": "    server_side_encryption:",
    "  #   storage_class:": "    storage_class:",
}


def test_commented_examples_in_repo_config_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting the examples must give a valid file (no stale syntax)."""
    monkeypatch.setenv("S3_ENDPOINT", "http://127.0.0.1:9000")
    text = (REPO / "mounts.yaml").read_text(encoding="utf-8")
    examples = {
        '    # - "::1"': '    - "::1"',
        "  # passive_ports:": "  passive_ports:",
        "  # masquerade_address:": "  masquerade_address:",
        "  # file:": "  file:",
        "  # transfer_log:": "  transfer_log:",
        "  # hash:": "  hash:",
        "  #   enabled:": "    enabled:",
        "  #   anonymous:": "    anonymous:",
        "  #   algorithm:": "    algorithm:",
        "  #   upload:": "    upload:",
        "  #   max_concurrent:": "    max_concurrent:",
        "  # proxy_protocol:": "  proxy_protocol:",
        "  #   from:": "    from:",
        "  #   direct:": "    direct:",
        "# cluster:": "cluster:",
        "#   url: redis": "  url: redis",
        "#   lease:": "  lease:",
        **S3_EXAMPLE,
    }
    for commented, live in examples.items():
        assert commented in text, commented
        text = text.replace(commented, live)
    config = config_from_yaml(text, "mounts.yaml", REPO)
    assert config.server.listen == ("127.0.0.1", "::1")
    assert config.server.passive_ports == (60000, 60100)
    assert config.server.masquerade_address == "203.0.113.10"
    assert config.logging.file and config.logging.transfer_log
    assert config.server.hash.algorithm == config.server.hash.upload == "SHA-256"
    proxy = config.server.proxy_protocol
    assert proxy is not None and [str(n) for n in proxy.from_] == ["10.0.0.2/32"]
    assert config.cluster is not None and config.cluster.beat == 5
    archive = config.mounts["/archive"]
    assert archive.fs == "s3://my-bucket/some/prefix"
    assert archive.endpoint_url == "http://127.0.0.1:9000"
    assert (archive.region, archive.part_size, archive.concurrency) == ("eu-west-1", 8 * 1024**2, 4)
    assert (archive.server_side_encryption, archive.storage_class) == ("aws:kms", "STANDARD_IA")


def test_commented_s3_example_needs_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3_ENDPOINT", raising=False)
    text = (REPO / "mounts.yaml").read_text(encoding="utf-8")
    for commented, live in S3_EXAMPLE.items():
        text = text.replace(commented, live)
    with pytest.raises(
        ConfigError, match=r"mounts\./archive\.endpoint_url: .*'S3_ENDPOINT' is not set"
    ):
        config_from_yaml(text, "mounts.yaml")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("my-bucket", None),
        ("a.b.c", None),
        ("123", None),
        ("", "expected a bucket name: s3://BUCKET[/PREFIX]"),
        ("ab", "bucket name 'ab' is not valid: S3 bucket names have 3 to 63 characters, not 2"),
        (
            "a" * 64,
            f"bucket name '{'a' * 64}' is not valid: S3 bucket names have 3 to 63 "
            "characters, not 64",
        ),
        (
            "My-Bucket",
            "bucket name 'My-Bucket' is not valid: S3 bucket names use lowercase "
            "letters, digits, '.' and '-', not 'B', 'M'",
        ),
        (
            "-bucket",
            "bucket name '-bucket' is not valid: it must begin and end with a letter or digit",
        ),
        (
            "bucket.",
            "bucket name 'bucket.' is not valid: it must begin and end with a letter or digit",
        ),
        ("a..b", "bucket name 'a..b' is not valid: two dots in a row"),
        (
            "192.168.5.4",
            "bucket name '192.168.5.4' is not valid: it must not look like an IP address",
        ),
    ],
)
def test_bucket_names(name: str, problem: str | None) -> None:
    assert bucket_name_problem(name) == problem


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("mem://", "mem"),
        ("OSFS:///srv/ftp", "osfs"),
        ("file:///srv/ftp", "file"),
        ("s3://bucket/prefix?region=eu-west-1", "s3"),
        ("faulty+osfs://./data", "faulty+osfs"),
        ("./data", "fs"),  # no scheme: the generic opener's
    ],
)
def test_fs_kind(url: str, kind: str) -> None:
    # One reading of a mount URL's kind for the mount table, the checks
    # before start-up and the start-up summary.
    assert fs_kind(url) == kind
    assert (kind in LOCAL_KINDS) == (kind in ("osfs", "file"))
