"""The configuration as the serving process holds it (vfsftp.config.plain)
and its validation in a child process (vfsftp.config.isolated): the same
attributes, equality and properties as the models, and the same error
lines as validating here."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from vfsftp.config.isolated import Validation
from vfsftp.config.plain import Section, replace, to_plain
from vfsftp.config.schema import ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[3]

#: every section the schema has, set (cluster, users store, S3 keys, quotas,
#: TLS, bans, PROXY protocol, hooks, metrics, a user with mounts and rights)
EVERYTHING: dict[str, Any] = {
    "server": {
        "listen": ["127.0.0.1", "::1"],
        "port": 0,
        "passive_ports": "60000-60049",
        "ban": {"max_failures": 4, "window": 60, "duration": 60, "exempt": ["10.0.0.0/8"]},
        "proxy_protocol": {"from": ["127.0.0.1"]},
        "tls": {"certificate": "cert.pem", "key": "key.pem", "implicit_port": 0},
    },
    "logging": {"level": "debug", "transfer_log": "xfer.log"},
    "metrics": {"port": 0},
    "cluster": {"url": "redis://127.0.0.1:6379/0", "lease": 9},
    "users_store": "postgresql://ftp:s3cret@db/ftp",
    "mounts": {
        "/mem": "mem://",
        "/s3": {
            "fs": "s3://bucket/prefix",
            "endpoint_url": "http://127.0.0.1:9000",
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": "key!",
            "part_size": "8MiB",
            "quota": {"max_bytes": "1GiB"},
        },
    },
    "users": {
        "alice": {
            "password": "plaintext:pw",
            "perms": "elr",
            "expires_at": "2030-01-01",
            "mounts": {"/own": {"fs": "osfs://./alice", "create": True}},
        }
    },
}


@pytest.fixture
def both(tmp_path: Path) -> tuple[Any, Any]:
    config = config_from_dict(EVERYTHING, "mounts.yaml", tmp_path)
    return config, to_plain(config)


def _walk(model: Any, plain: Any, where: str = "config") -> int:
    """Asserts ``plain`` mirrors ``model`` field by field; the fields seen."""
    fields = getattr(type(model), "model_fields", None)
    if fields is None:
        if isinstance(model, dict):
            assert isinstance(plain, dict) and model.keys() == plain.keys(), where
            return sum(_walk(v, plain[k], f"{where}[{k!r}]") for k, v in model.items())
        if isinstance(model, (list, tuple)):
            assert type(plain) is type(model) and len(plain) == len(model), where
            return sum(
                _walk(a, b, f"{where}[{i}]")
                for i, (a, b) in enumerate(zip(model, plain, strict=True))
            )
        assert plain == model and type(plain) is type(model), where
        return 1
    assert isinstance(plain, Section) and plain.kind == type(model).__name__, where
    assert "pydantic" not in type(plain).__module__
    return sum(_walk(getattr(model, f), getattr(plain, f), f"{where}.{f}") for f in fields)


def test_every_field_of_every_section_is_kept(both: tuple[Any, Any]) -> None:
    model, plain = both
    assert _walk(model, plain) > 100  # (the walk went everywhere)
    # the properties the server reads, from the one definition both share
    assert plain.mounts["/s3"].s3_options == model.mounts["/s3"].s3_options
    assert plain.mounts["/s3"].s3_options["part_size"] == 8 * 1024**2
    assert plain.cluster.beat == model.cluster.beat == 3
    assert (
        plain.users_store.redacted == model.users_store.redacted == ("postgresql://ftp:***@db/ftp")
    )


def test_sections_survive_pickling_compare_and_hash_like_frozen_models(
    both: tuple[Any, Any],
) -> None:
    model, plain = both
    again = pickle.loads(pickle.dumps(plain, pickle.HIGHEST_PROTOCOL))
    assert again == plain and again is not plain
    assert type(again.mounts["/s3"]) is type(plain.mounts["/s3"])
    assert again.mounts["/s3"].s3_options == plain.mounts["/s3"].s3_options
    # equal when the model's sections are equal, unequal when not
    assert plain.server.ban == to_plain(model.server.ban)
    assert hash(plain.server.ban) == hash(to_plain(model.server.ban))
    assert plain.server != plain.logging and plain.server.ban != model.server.ban
    other = config_from_dict({**EVERYTHING, "metrics": {"port": 1}}, "mounts.yaml")
    assert to_plain(other).metrics != plain.metrics
    with pytest.raises(TypeError):  # (a dict field: as the frozen model)
        hash(plain)
    with pytest.raises(AttributeError, match="frozen"):
        plain.server.port = 21
    with pytest.raises(AttributeError, match="frozen"):
        del plain.server.port


def test_a_repr_never_shows_a_secret(both: tuple[Any, Any]) -> None:
    _, plain = both
    shown = repr(plain)
    assert "key!" not in shown and "plaintext:pw" not in shown
    assert "secret_access_key=***," in repr(plain.mounts["/s3"])
    assert repr(plain.server.ban).startswith("BanConfig(max_failures=4, ")


def test_replace_sets_values_the_program_chose_on_either_kind(both: tuple[Any, Any]) -> None:
    model, plain = both
    for config in (model, plain):
        tls = replace(config.server.tls, implicit_port=990)
        fixed = replace(config, server=replace(config.server, port=2121, tls=tls))
        assert (fixed.server.port, fixed.server.tls.implicit_port) == (2121, 990)
        assert (config.server.port, config.server.tls.implicit_port) == (0, 0)  # untouched
        assert fixed.mounts == config.mounts and type(fixed) is type(config)


# --- the child process


def test_the_child_returns_what_validating_here_gives(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "mounts.yaml"
    cfg.write_text(
        "server: {port: 0}\nmounts:\n  /: osfs://./data\n  /m: mem://\n"
        "users:\n  u: {password: 'plaintext:pw', expires_at: 2030-01-01}\n",
        encoding="utf-8",
    )
    got = Validation(str(cfg)).result()
    assert got == to_plain(load_config(cfg))
    assert got.base_dir == tmp_path and got.source == str(cfg)
    # the command line's overrides, validated there too
    got = Validation(str(cfg), server={"port": 2100}, logging={"level": "debug"}).result()
    assert (got.server.port, got.logging.level) == (2100, "debug")


def test_text_and_its_base_folder(tmp_path: Path) -> None:
    got = Validation(text="mounts:\n  /: osfs://./x\n", source="<t>", base_dir=tmp_path).result()
    assert (got.source, got.base_dir) == ("<t>", tmp_path)


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        ("server:\n  port: [1]\n", {}, "mounts.yaml: server.port: expected an integer"),
        ("mounts: {/: 'nope://'}\nfoo: 1\n", {}, "mounts.yaml: foo: unknown key"),
        ("server: {port: 0}\n", {"port": -1}, "command line: server.port: expected a number >="),
    ],
)
def test_the_childs_error_lines_are_validations_own(
    tmp_path: Path, text: str, overrides: dict[str, Any], expected: str
) -> None:
    cfg = tmp_path / "mounts.yaml"
    cfg.write_text(text, encoding="utf-8")
    here: list[str] = []
    try:
        from vfsftp.config.schema import with_overrides

        with_overrides(load_config(cfg), server=overrides)
    except ConfigError as exc:
        here = exc.problems
    with pytest.raises(ConfigError) as info:
        Validation(str(cfg), server=overrides).result()
    assert info.value.problems == here
    assert any(expected in line.replace(str(tmp_path) + "/", "") for line in here), here


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read: No such file"):
        Validation(str(tmp_path / "absent.yaml")).result()


def test_a_child_that_dies_is_reported_with_its_last_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An interpreter that fails before it validates (a broken installation).
    broken = tmp_path / "python"
    broken.write_text(
        "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
        "echo 'ImportError: no pydantic here' >&2\nexit 3\n"
    )
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    with pytest.raises(ConfigError) as info:
        Validation(str(tmp_path / "mounts.yaml")).result()
    assert info.value.problems == [
        f"{tmp_path / 'mounts.yaml'}: validation failed (exit status 3): "
        "ImportError: no pydantic here"
    ]


def test_what_the_child_prints_before_its_result_is_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A sitecustomize (or a .pth file) that prints on every start.
    (tmp_path / "sitecustomize.py").write_text("print('hello from sitecustomize')\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    got = Validation(text="mounts: {/: 'mem://'}\n", source="<t>").result()
    assert got.mounts["/"].fs == "mem://"
