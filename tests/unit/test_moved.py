"""The flat layout's module paths still import, for one release, with a
DeprecationWarning that names the new home (vfsftp/moved.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from vfsftp.moved import MOVED


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_forwards_to_the_new_module_and_warns(old: str, new: str) -> None:
    # A fresh interpreter: the first import of the old path is the one that warns.
    probe = (
        "import importlib, warnings\n"
        "warnings.simplefilter('error')\n"
        "try:\n"
        f"    importlib.import_module({old!r})\n"
        "except DeprecationWarning as w:\n"
        "    print(w)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{old} is now {new};"), proc.stdout


def test_names_reached_through_an_old_path_are_the_new_modules_objects() -> None:
    sys.modules.pop("vfsftp.server", None)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("vfsftp.server")
    from vfsftp.service.server import FTPServer

    assert old.FTPServer is FTPServer
    with pytest.raises(AttributeError):
        _ = old.no_such_name


def test_every_moved_module_exists() -> None:
    for new in MOVED.values():
        importlib.import_module(new)


def test_the_public_api_is_importable_from_vfsftp_without_warnings() -> None:
    import vfsftp

    for name in vfsftp.__all__:
        assert getattr(vfsftp, name) is not None
