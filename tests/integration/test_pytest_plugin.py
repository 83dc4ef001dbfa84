"""The pytest plugin (vfsftp.pytest_plugin) as users get it: inner pytest
runs (pytester) of small test files using its fixtures, loaded through the
``pytest11`` entry point when vfsftp is installed (as in CI) and with
``-p vfsftp.pytest_plugin`` otherwise."""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "vfsftp.pytest_plugin"


def _entry_point_installed() -> bool:
    try:
        dist = importlib.metadata.distribution("vfsftp")
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(ep.group == "pytest11" and ep.value == PLUGIN for ep in dist.entry_points)


ENTRY_POINT = _entry_point_installed()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    plugin = () if ENTRY_POINT else ("-p", PLUGIN)
    return pytester.runpytest(*plugin, "-p", "no:cacheprovider", "-q", *args)


@pytest.mark.skipif(not ENTRY_POINT, reason="vfsftp is not installed (pip install -e .)")
def test_entry_point_provides_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_it(ftp_server):
            assert ftp_server.running
        """
    )
    # No -p, no conftest: only the entry point can have loaded the plugin.
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_fresh_memory_server_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import ftplib, io

        seen = []

        def test_upload(ftp_server):
            seen.append(ftp_server)
            with ftplib.FTP() as ftp:
                ftp.connect(ftp_server.host, ftp_server.port)
                ftp.login(ftp_server.user, ftp_server.password)
                ftp.storbinary("STOR /a.txt", io.BytesIO(b"hello"))
            assert ftp_server.read_file("/a.txt") == b"hello"
            from fs.memoryfs import MemoryFS
            assert isinstance(ftp_server.filesystems["/"], MemoryFS)

        def test_next_test_starts_empty(ftp_server):
            assert ftp_server is not seen[0] and not seen[0].running
            assert ftp_server.list_files() == []
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_session_server_is_shared_and_reset(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        seen = []

        def test_one(ftp_server_session):
            seen.append(ftp_server_session)
            ftp_server_session.put_file("/left-over.txt", b"x")

        def test_two(ftp_server_session):
            assert ftp_server_session is seen[0]
            assert ftp_server_session.list_files() == ["/left-over.txt"]
            ftp_server_session.reset()
            with ftp_server_session.connect() as ftp:
                assert ftp.nlst("/") == []
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_marker_mounts_tmp_path_and_anonymous(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import ftplib, io
        import pytest

        @pytest.mark.ftp_server(mounts={"/": "mem://", "/data": "tmp_path"}, anonymous=True)
        def test_it(ftp_server, tmp_path):
            with ftp_server.connect() as ftp:
                ftp.storbinary("STOR /data/on-disk.txt", io.BytesIO(b"disk"))
            assert (tmp_path / "data" / "on-disk.txt").read_bytes() == b"disk"
            with ftp_server.connect(anonymous=True) as anon:
                assert anon.nlst("/data") == ["on-disk.txt"]
                with pytest.raises(ftplib.error_perm):
                    anon.storbinary("STOR /data/no.txt", io.BytesIO(b"no"))
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_indirect_parameter_sets_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ftp_server(user="from-marker", password="m")
        @pytest.mark.parametrize(
            "ftp_server",
            [{}, {"user": "bob", "password": "b0b"}, {"mounts": {"/in": "mem://"}}],
            indirect=True,
        )
        def test_it(ftp_server):
            assert ftp_server.user in ("from-marker", "bob")
            with ftp_server.connect() as ftp:
                assert ftp.pwd() == "/"
            assert ftp_server.login_data()["passwd"] == ftp_server.password
        """
    )
    run(pytester, "-v").assert_outcomes(passed=3)


def test_marker_takes_keywords_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ftp_server({"/": "mem://"})
        def test_it(ftp_server):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*keyword arguments only*"])


def test_tls_fixture_without_trustme_says_what_to_install(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import sys\nsys.modules['trustme'] = None  # not installed\n")
    pytester.makepyfile("def test_it(ftp_server_tls):\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "ftp_server_tls: TLS test servers need trustme (no module named 'trustme' here): "
            "pip install 'vfsftp[test]', or pip install trustme"
        ]
    )
    assert "Traceback" not in result.stdout.str() and "ModuleNotFound" not in result.stdout.str()


def test_tls_fixture_with_verified_certificate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import ftplib, io, ssl

        def test_it(ftp_server_tls):
            ctx = ssl.create_default_context(cafile=str(ftp_server_tls.ca_path))
            with ftplib.FTP_TLS(context=ctx, timeout=10) as ftp:
                ftp.connect(ftp_server_tls.host, ftp_server_tls.port)
                ftp.login(ftp_server_tls.user, ftp_server_tls.password)
                ftp.prot_p()
                ftp.storbinary("STOR /secret.bin", io.BytesIO(b"tls"))
            assert ftp_server_tls.read_file("/secret.bin") == b"tls"
            assert ftp_server_tls.implicit_port

        def test_same_ca_for_the_session(ftp_server_tls, ftp_tls_files):
            assert ftp_server_tls.ca_path == ftp_tls_files.ca
        """
    )
    run(pytester).assert_outcomes(passed=2)


@pytest.mark.s3
def test_s3_mount_from_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import io
        import pytest

        buckets = []

        @pytest.mark.ftp_server(mounts={"/": "mem://", "/s3": "s3", "/fixed": "s3://mine/in"})
        def test_upload_lands_in_the_bucket(ftp_server, ftp_moto):
            with ftp_server.connect() as ftp:
                ftp.storbinary("STOR /s3/a.txt", io.BytesIO(b"object"))
                ftp.storbinary("STOR /fixed/b.txt", io.BytesIO(b"prefixed"))
            fresh = ftp_server.config.mounts["/s3"].fs.removeprefix("s3://")
            buckets.extend([fresh, "mine"])
            client = ftp_moto.client()
            assert client.get_object(Bucket=fresh, Key="a.txt")["Body"].read() == b"object"
            assert client.get_object(Bucket="mine", Key="in/b.txt")["Body"].read() == b"prefixed"

        def test_buckets_are_gone_afterwards(ftp_moto):
            names = {b["Name"] for b in ftp_moto.client().list_buckets()["Buckets"]}
            assert len(buckets) == 2 and not names & set(buckets)
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_tests_running_their_own_event_loop(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import asyncio
        import pytest

        @pytest.fixture
        def loop():
            # What pytest-asyncio and similar plugins do around a test.
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            yield loop
            asyncio.set_event_loop(None)
            loop.close()
        """
    )
    pytester.makepyfile(
        """
        import asyncio

        async def greeting(host, port):
            reader, writer = await asyncio.open_connection(host, port)
            line = await reader.readline()
            writer.write(b"QUIT\\r\\n")
            await writer.drain()
            await reader.readline()
            writer.close()
            await writer.wait_closed()
            return line

        def test_asyncio_run(ftp_server):
            line = asyncio.run(greeting(ftp_server.host, ftp_server.port))
            assert line.startswith(b"220")

        def test_loop_fixture(loop, ftp_server):
            line = loop.run_until_complete(greeting(ftp_server.host, ftp_server.port))
            assert line.startswith(b"220")

        def test_fixture_server_stopped_inside_a_running_loop(ftp_server):
            async def main():
                ftp_server.put_file("/x", b"x")
                ftp_server.stop()
            asyncio.run(main())
            assert not ftp_server.running
        """
    )
    run(pytester).assert_outcomes(passed=3)


def test_conftest_fixtures_with_the_same_names_win(pytester: pytest.Pytester) -> None:
    # A project's own `server` / `ftp` fixtures (ours, in tests/conftest.py)
    # live beside the plugin's.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def server():
            return "project's own"

        @pytest.fixture
        def ftp():
            return "project's own too"
        """
    )
    pytester.makepyfile(
        """
        def test_it(server, ftp, ftp_server):
            assert server == "project's own" and ftp == "project's own too"
            assert ftp_server.running
        """
    )
    run(pytester).assert_outcomes(passed=1)


def _fixture_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(d) for d in node.decorator_list)
    }


def test_plugin_fixture_names_differ_from_our_conftest() -> None:
    ours = _fixture_names(REPO / "tests" / "conftest.py")
    plugin = _fixture_names(REPO / "vfsftp" / "pytest_plugin.py")
    assert {"server", "ftp", "make_server"} <= ours
    assert plugin == {
        "ftp_server",
        "ftp_server_session",
        "ftp_server_tls",
        "ftp_tls_files",
        "ftp_moto",
    }
    assert not ours & plugin


def test_plugin_import_is_cheap() -> None:
    # pytest imports the plugin in every run of every project that has
    # vfsftp installed: none of the server's dependencies may come with it.
    heavy = ["fs", "pydantic", "yaml", "boto3", "moto", "trustme", "argon2"]
    heavy += ["vfsftp.service.server", "vfsftp.testing", "vfsftp.config"]
    code = f"import sys, {PLUGIN}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_example_suite_passes(pytester: pytest.Pytester) -> None:
    for name in ("upload_reports.py", "test_upload_reports.py"):
        shutil.copy(REPO / "examples" / name, pytester.path / name)
    run(pytester).assert_outcomes(passed=3)


def test_readme_example_passes(pytester: pytest.Pytester) -> None:
    readme = (REPO / "README.md").read_text()
    start = readme.index("```python", readme.index("Copy this into `test_upload.py`"))
    body = readme[readme.index("\n", start) + 1 : readme.index("```", start + 3)]
    pytester.makepyfile(test_upload=body)
    run(pytester).assert_outcomes(passed=1)


def test_listed_in_pytest_plugins_as_well(pytester: pytest.Pytester) -> None:
    # Loaded both by name (conftest) and by the entry point: registered
    # once, no "already registered under a different name" error.
    pytester.makeconftest(f"pytest_plugins = [{PLUGIN!r}]")
    pytester.makepyfile(
        """
        def test_it(ftp_server):
            assert ftp_server.running
        """
    )
    run(pytester).assert_outcomes(passed=1)
