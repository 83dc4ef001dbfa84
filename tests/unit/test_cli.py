"""The command line, without `serve` (that needs the server)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from broken_configs import BROKEN, Broken, write

from vfsftp import __version__
from vfsftp.cli import main
from vfsftp.identity.auth import verify_password

REPO = Path(__file__).resolve().parents[2]


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "mounts.yaml"
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{path}: OK (3 mounts, 2 users)"
    assert err == ""


def test_check_config_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "server:\n  port: nope\nusers:\n  demo:\n    password: secret\n    perms: elrx\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert f"{path}: server.port: expected an integer, got 'nope'" in lines
    assert any(line.startswith(f"{path}: users.demo.perms: unknown permission") for line in lines)
    assert any(
        line.startswith(f"{path}: users.demo.password: expected an argon2") for line in lines
    )
    assert "Traceback" not in err
    assert "secret" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mounts: [1\n", "line 1: the '[' at column 9 is never closed with ']'"),
        ("users:\n  demo: {}\n  demo: {}\n", "duplicate key 'demo'"),
    ],
)
def test_check_config_yaml_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "mounts.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: ") and expected in err
    assert "Traceback" not in err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: cannot read" in err and "Traceback" not in err


def test_check_config_defaults_to_local_then_builtin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check-config"]) == 0
    assert "built-in default_mounts.yaml" in capsys.readouterr().out

    (tmp_path / "mounts.yaml").write_text("mounts:\n  /m: mem://\n", encoding="utf-8")
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.strip() == "mounts.yaml: OK (1 mount, 0 users)"


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_check_config_names_file_key_value_and_fix(
    case: Broken, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, first_line = write(case, tmp_path)
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == first_line
    assert "Traceback" not in err


def test_check_config_warnings_do_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A home folder not made yet, and a ${user} folder for a user who has
    none: the server starts (exit 0), and says what will not work."""
    (tmp_path / "data").mkdir()
    (tmp_path / "homes" / "demo").mkdir(parents=True)
    path = tmp_path / "mounts.yaml"
    path.write_text(
        "mounts:\n  /data: osfs://./data\n  /home: osfs://./homes/${user}\n"
        "users:\n  demo:\n    password: plaintext:d\n    home: /data/demo\n"
        "  eve:\n    password: plaintext:e\n    home: /home\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"{path}: mounts./home.fs: warning: folder {tmp_path}/homes/eve for user eve does "
        "not exist: eve cannot log in until it does; create it, or set create: true",
        f"{path}: users.demo.home: warning: '/data/demo' does not exist (folder "
        f"{tmp_path}/data/demo): demo starts in / until it does; create it",
    ]
    assert out == f"{path}: OK (2 mounts, 2 users, 2 warnings)\n"


def test_check_config_creatable_folders_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mounts.yaml"
    path.write_text(
        "mounts:\n  /new: {fs: 'osfs://./a/b/c', create: true}\n"
        "  /home: {fs: 'osfs://./homes/${user}', create: true}\n"
        "users:\n  demo:\n    password: plaintext:d\n    home: /home\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr() == (f"{path}: OK (2 mounts, 1 user)\n", "")
    assert not (tmp_path / "a").exists()  # a check creates nothing


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"vfsftp {__version__}\n"


def test_serve_rejects_bad_override_before_starting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Validation fails before the server module is imported or a port opened.
    assert main(["-c", str(REPO / "mounts.yaml"), "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "server.port: expected a number <= 65535" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cpu-affinity", "99999"], "--cpu-affinity '99999': CPU 99999 is not among the CPUs"),
        (["--workers", "2", "--cpu-affinity", "a-b"], "--cpu-affinity 'a-b': 'a-b' is not a CPU"),
    ],
)
def test_serve_rejects_a_bad_cpu_affinity_before_starting(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not hasattr(os, "sched_setaffinity"):
        message = "--cpu-affinity needs Linux"
    assert main(["serve", "-c", str(REPO / "mounts.yaml"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


def test_serve_bad_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("bogus: 1\n", encoding="utf-8")
    assert main(["serve", "--config", str(path)]) == 2
    assert f"{path}: bogus: unknown key" in capsys.readouterr().err


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "a", "b"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_hash_password_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-password", "s3cret"]) == 0
    stored = capsys.readouterr().out.strip()
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "s3cret")
    assert not verify_password(stored, "other")


def test_hash_password_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("piped pw\n"))
    assert main(["hash-password"]) == 0
    assert verify_password(capsys.readouterr().out.strip(), "piped pw")


def test_hash_password_tty_confirmation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty())
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["hash-password"]) == 1
    assert "do not match" in capsys.readouterr().err

    answers = iter(["same", "same"])
    assert main(["hash-password"]) == 0
    assert verify_password(capsys.readouterr().out.strip(), "same")


def test_hash_password_refuses_empty(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["hash-password"]) == 2
    assert "empty password" in capsys.readouterr().err


def _handshake(cert: Path, key: Path, hostname: str) -> str:
    """A TLS handshake in memory: server with the generated pair, client
    trusting the certificate itself (as curl --cacert cert.pem would)."""
    import ssl

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return str(client.version())
    raise AssertionError("handshake did not complete")


def test_gen_cert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ssl

    pytest.importorskip("cryptography")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    argv = ["gen-cert", "--cert", str(cert), "--key", str(key)]
    assert main([*argv, "--host", "ftp.example.test", "192.0.2.7"]) == 0
    out, err = capsys.readouterr()
    assert "SELF-SIGNED" in err and "NOT for production" in err
    assert f"certificate: {cert}" in out and f"key: {key}" in out and "tls:" in out
    assert key.stat().st_mode & 0o777 == 0o600
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    assert _handshake(cert, key, "ftp.example.test") in ("TLSv1.2", "TLSv1.3")
    assert _handshake(cert, key, "192.0.2.7")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert, key, "other.example.test")

    # Existing files are kept unless --force.
    before = cert.read_bytes()
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err and cert.read_bytes() == before
    key.chmod(0o644)
    assert main([*argv, "--force"]) == 0
    capsys.readouterr()
    assert cert.read_bytes() != before and key.stat().st_mode & 0o777 == 0o600
    assert _handshake(cert, key, "localhost")  # the default names
    assert _handshake(cert, key, "127.0.0.1")


def test_gen_cert_without_cryptography(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cryptography", None)  # the import fails
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    argv = ["gen-cert", "--cert", str(cert), "--key", str(key), "--host", "h.test", "::1"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "cryptography" in err
    assert out.startswith("openssl req -x509 ")
    assert f"-keyout {key}" in out and f"-out {cert}" in out
    assert "subjectAltName=DNS:h.test,IP:::1" in out
    assert not cert.exists() and not key.exists()


@pytest.mark.parametrize("command", [["status"], ["unban", "192.0.2.7"]])
def test_fleet_commands_without_a_cluster_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    cfg = tmp_path / "mounts.yaml"
    cfg.write_text("mounts:\n  /: mem://\n")
    assert main([command[0], "-c", str(cfg), *command[1:]]) == 2
    assert "has no cluster section" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["status"], ["unban", "192.0.2.7"]])
def test_fleet_commands_when_redis_does_not_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "mounts.yaml"
    cfg.write_text(f"cluster:\n  url: redis://:hunter2@127.0.0.1:{port}/0\n  timeout: 0.5\n")
    assert main([command[0], "-c", str(cfg), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert "does not answer" in err and "hunter2" not in err
