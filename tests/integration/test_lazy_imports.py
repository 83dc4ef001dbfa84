"""A configuration loads the optional libraries it uses, when it uses them
(issue 22: start-up time and base memory).

Each case runs in a fresh interpreter: ``sys.modules`` is per process, and
this one has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

#: what a server of local and memory mounts, plaintext passwords, no
#: metrics, no cluster and no user store never needs
OPTIONAL = [
    "argon2",
    "boto3",
    "botocore",
    "fs_s3fs",
    "prometheus_client",
    "psycopg",
    "redis",
    "sqlite3",
    "vfsftp.identity.migrations",
    "vfsftp.identity.store",
    "vfsftp.identity.stored",
    "vfsftp.storage.s3",
]


def _loaded(script: str, names: list[str]) -> list[str]:
    """Runs ``script`` in a new interpreter; which of ``names`` it loaded."""
    probe = textwrap.dedent(script) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps([n for n in {names!r} if n in sys.modules]))
        """
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stderr
    loaded: list[str] = json.loads(r.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_server_loads_no_optional_library() -> None:
    assert _loaded("import vfsftp.service.server", OPTIONAL) == []


def test_importing_the_server_loads_neither_the_config_models_nor_yaml() -> None:
    """The server's modules name the models in annotations only: the
    validator (pydantic, ~0.2 s and ~20 MB) is loaded by whoever loads a
    config, not by ``import vfsftp.service.server`` (an embedder that builds
    its own tree, the pytest plugin, a CLI command that reads no file)."""
    heavy = ["pydantic", "pydantic_core", "yaml", "vfsftp.config.schema"]
    assert _loaded("import vfsftp.service.server, vfsftp.service.lifecycle", heavy) == []


def test_version_loads_neither_the_config_models_nor_the_event_loop() -> None:
    script = """
        import contextlib, io
        from vfsftp.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["--version"]) == 0
        assert out.getvalue().startswith("vfsftp "), out.getvalue()
    """
    heavy = ["pydantic", "yaml", "asyncio", "fs", "vfsftp.config.schema", *OPTIONAL]
    assert _loaded(script, heavy) == []


_SESSION = """
    import ftplib, io, urllib.request
    from vfsftp.testing import ThreadedFTPServer

    config = {{
        "mounts": {{"/mem": "mem://", "/disk": {{"fs": "osfs://{disk}", "create": True}}}},
        "users": {{"u": {{"password": {password!r}}}}},
        "metrics": {{"port": {metrics_port}}},
    }}
    with ThreadedFTPServer(config, user="u", password="pw") as srv:
        ftp = ftplib.FTP()
        ftp.connect(srv.host, srv.port)
        ftp.login("u", "pw")
        for folder in ("/mem", "/disk"):
            ftp.storbinary(f"STOR {{folder}}/f", io.BytesIO(b"x" * 100))
            ftp.retrbinary(f"RETR {{folder}}/f", lambda _: None)
            ftp.nlst(folder)
        ftp.quit()
        if srv.server.metrics.address is not None:
            host, port = srv.server.metrics.address
            urllib.request.urlopen(f"http://{{host}}:{{port}}/metrics", timeout=10).read()
"""


def test_a_session_on_local_and_memory_mounts_loads_no_optional_library(tmp_path: Path) -> None:
    script = _SESSION.format(disk=tmp_path, password="plaintext:pw", metrics_port=None)
    assert _loaded(script, OPTIONAL) == []


def test_what_a_config_uses_is_loaded(tmp_path: Path) -> None:
    """The other side: an argon2 hash loads argon2, a metrics port the
    Prometheus client (so the case above is not empty by accident)."""
    from vfsftp.identity.auth import hash_password

    script = _SESSION.format(disk=tmp_path, password=hash_password("pw"), metrics_port=0)
    assert _loaded(script, OPTIONAL) == ["argon2", "prometheus_client"]
