"""Import PyFilesystem2 without setuptools' ``pkg_resources``.

``fs`` 2.4.16 (its last release) asks ``pkg_resources`` for two things:
``declare_namespace`` in ``fs/__init__.py`` and ``fs/opener/__init__.py``,
and ``iter_entry_points("fs.opener")`` in ``fs/opener/registry.py``, which is
how ``s3://`` and every other plugin URL finds its opener. setuptools 82
removed ``pkg_resources`` (PyFilesystem2 issue #577, fix unmerged), and
pinning an older setuptools would downgrade the user's.

:func:`install` puts a one-shot import hook in front of ``import fs``: while
``fs`` itself executes (its ``__init__`` imports ``fs.opener`` and the
registry), ``sys.modules["pkg_resources"]`` is a small module with exactly
those two functions, built on ``pkgutil.extend_path`` and
``importlib.metadata``; afterwards it is taken out again, so no other library
ever sees a fake ``pkg_resources`` (the registry keeps its own reference and
looks entry points up lazily through it). It is used even where the real
``pkg_resources`` exists: importing that costs ~0.13 s and a deprecation
warning, the shim ~1 ms. A ``pkg_resources`` that is already imported is
left to ``fs``.

Why not the alternatives: ``pkg-resources-backport`` puts a global
``pkg_resources`` back for every library in the environment, the very thing
setuptools removed; the fix upstream (PRs #589 and #590, importlib.metadata
and PEP 420) is unmerged, and forks of ``fs`` on the package index are not
maintained releases of the project. The last real release plus these few
lines keeps every behaviour vfsftp tests against.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

# importlib.abc, importlib.metadata and pkgutil cost ~15 ms of every start-up
# (email, zipfile, importlib.resources): they are imported when ``fs`` calls
# the stand-in, and the hook and loader below are duck-typed (PEP 451 asks
# only for the methods).
if TYPE_CHECKING:
    import importlib.abc
    import importlib.machinery
    import importlib.metadata  # noqa: TC004 (annotations only; importlib.util is what runs)

__all__ = ["install", "make_pkg_resources"]


def _declare_namespace(name: str) -> None:
    """pkg_resources.declare_namespace: extend the package's ``__path__`` with
    every ``name/`` directory on ``sys.path``, as old-style namespace packages
    expect."""
    import pkgutil

    module = sys.modules[name]
    module.__path__ = pkgutil.extend_path(list(module.__path__), name)


def _iter_entry_points(
    group: str, name: str | None = None
) -> Iterator[importlib.metadata.EntryPoint]:
    """pkg_resources.iter_entry_points: the installed entry points of
    ``group`` (named ``name`` if given), each once."""
    import importlib.metadata

    seen: set[tuple[str, str]] = set()
    for entry_point in importlib.metadata.entry_points(group=group):
        if name is not None and entry_point.name != name:
            continue
        key = (entry_point.name, entry_point.value)
        if key not in seen:
            seen.add(key)
            yield entry_point


def make_pkg_resources() -> types.ModuleType:
    """A module with the two ``pkg_resources`` functions ``fs`` calls."""
    module = types.ModuleType("pkg_resources", "vfsftp.fscompat's stand-in, only for fs")
    module.declare_namespace = _declare_namespace  # type: ignore[attr-defined]
    module.iter_entry_points = _iter_entry_points  # type: ignore[attr-defined]
    return module


class _ShimmedLoader:
    """Runs the real loader of ``fs`` with the stand-in importable."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        if "pkg_resources" in sys.modules:
            self._loader.exec_module(module)
            return
        stand_in = make_pkg_resources()
        sys.modules["pkg_resources"] = stand_in
        try:
            self._loader.exec_module(module)
        finally:
            if sys.modules.get("pkg_resources") is stand_in:
                del sys.modules["pkg_resources"]

    def __getattr__(self, name: str) -> Any:
        # get_resource_reader, is_package, get_filename...: the real loader's.
        return getattr(self._loader, name)


class _FsImportHook:
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "fs":
            return None
        _remove_hook()
        spec = importlib.util.find_spec("fs")
        if spec is not None and spec.loader is not None:
            spec.loader = cast("importlib.abc.Loader", _ShimmedLoader(spec.loader))
        return spec


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _FsImportHook)]


def install() -> None:
    """Make the next ``import fs`` (by anyone) use the stand-in. Nothing to
    do once ``fs`` is imported."""
    if "fs" in sys.modules or any(isinstance(f, _FsImportHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _FsImportHook())
