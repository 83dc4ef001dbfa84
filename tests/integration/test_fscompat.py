"""PyFilesystem2 works without setuptools' pkg_resources (vfsftp/fscompat.py).

Each case runs in a fresh interpreter, because the import of ``fs`` happens
once per process. The test environment itself has today's setuptools (no
pkg_resources since 82: requirements/test.txt); the ``absent`` case also hides
setuptools entirely, as in a venv made without it. A third-party opener is a
distribution of the test's own (a ``.dist-info`` with an ``fs.opener`` entry
point) put on ``sys.path``, as pip would install it.
"""

# Fixtures imported from s3_fixtures are "redefined" as test parameters:
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from s3_fixtures import S3Bucket, moto_endpoint, s3_bucket  # noqa: F401

pytestmark = pytest.mark.s3

_HIDE_SETUPTOOLS = """
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"setuptools", "pkg_resources", "_distutils_hack"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Absent())
"""

_PROBE = """
import json, sys
import vfsftp
import fs, fs.opener
from fs.opener import registry
out = {}
with fs.open_fs("mem://") as m:
    m.writetext("a.txt", "mem")
    out["mem"] = m.readtext("a.txt")
with fs.open_fs("osfs://" + sys.argv[1]) as o:
    o.writetext("b.txt", "osfs")
    out["osfs"] = o.readtext("b.txt")
with fs.open_fs("demo://anything") as d:
    out["plugin"] = type(d).__name__
s3 = fs.open_fs(f"s3://{sys.argv[2]}?endpoint_url={sys.argv[3]}&strict=0")
s3.writetext("c.txt", "s3")
out["s3"] = s3.readtext("c.txt")
s3.close()
out["protocols"] = sorted(registry.protocols)
out["pkg_resources_left"] = "pkg_resources" in sys.modules
print(json.dumps(out))
"""


def _plugin(root: Path) -> Path:
    """A third-party opener plugin, installed the way pip lays one out."""
    site = root / "site"
    (site / "demo_opener").mkdir(parents=True)
    (site / "demo_opener" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from fs.memoryfs import MemoryFS
            from fs.opener import Opener

            class DemoFS(MemoryFS):
                pass

            class DemoOpener(Opener):
                protocols = ["demo"]

                def open_fs(self, fs_url, parse_result, writeable, create, cwd):
                    return DemoFS()
            """
        )
    )
    info = site / "demo_opener-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-opener\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[fs.opener]\ndemo = demo_opener:DemoOpener\n")
    return site


@pytest.mark.parametrize("setuptools", ["newest", "absent"])
def test_fs_and_its_openers_resolve_without_pkg_resources(
    setuptools: str, tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    site = _plugin(tmp_path)
    (tmp_path / "local").mkdir()
    prelude = _HIDE_SETUPTOOLS if setuptools == "absent" else ""
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            prelude + _PROBE,
            str(tmp_path / "local"),
            s3_bucket.name,
            s3_bucket.endpoint,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pkg_resources" not in proc.stderr  # no deprecation warning either
    out = json.loads(proc.stdout)
    assert out["mem"] == "mem" and out["osfs"] == "osfs" and out["s3"] == "s3"
    assert out["plugin"] == "DemoFS"
    assert {"demo", "mem", "osfs", "s3"} <= set(out["protocols"])
    # The stand-in served fs alone: no other library can import it.
    assert out["pkg_resources_left"] is False


def test_the_test_environment_has_no_pkg_resources() -> None:
    """The case users of today's setuptools are in: if the locked environment
    ever brought pkg_resources back, the test above would stop proving it."""
    proc = subprocess.run(
        [sys.executable, "-c", "import pkg_resources"], capture_output=True, timeout=50
    )
    assert proc.returncode != 0


def test_a_pkg_resources_already_imported_is_left_to_fs(tmp_path: Path) -> None:
    """An application that imported the real pkg_resources first keeps it:
    fs then uses that module, and the stand-in is not put in its place."""
    probe = textwrap.dedent(
        """
        import sys, types
        from vfsftp import fscompat
        real = fscompat.make_pkg_resources()   # any module already imported
        real.marker = True
        sys.modules["pkg_resources"] = real
        import fs
        module = sys.modules["fs.opener.registry"]
        print(module.pkg_resources is real, sys.modules["pkg_resources"] is real)
        """
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]
