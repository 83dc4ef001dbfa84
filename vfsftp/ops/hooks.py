"""Event hooks: Python callables named in mounts.yaml (``hooks:``), called
after an upload, a download, a delete, a rename, a directory made or
removed, or a login.

    hooks:
      upload: mypackage.ftp_hooks:scan_upload     # or a list of them

Each callable gets one :class:`Event`. Hooks run in a small thread pool of
their own, never on the event loop and never in a session's way: a slow hook
delays other hooks, not clients; an exception is logged (and counted in the
metrics) and the session goes on.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config.errors import ConfigError
from ..config.names import HOOK_EVENTS

if TYPE_CHECKING:
    from ..config.schema import HooksConfig

__all__ = ["EVENTS", "Event", "HookTable", "Hooks", "load_hooks"]

log = logging.getLogger("vfsftp.hooks")

EVENTS = HOOK_EVENTS


@dataclass(frozen=True)
class Event:
    """What happened. ``path`` is the virtual path (for a rename, the old
    one; ``destination`` the new one); ``size`` the bytes transferred by an
    upload or a download."""

    name: str  # one of EVENTS
    user: str
    peer: str  # the client's IP address
    path: str = ""
    destination: str = ""
    size: int | None = None
    session: str = "-"
    time: float = field(default_factory=time.time)


HookFunction = Callable[[Event], object]
HookTable = dict[str, list[tuple[str, HookFunction]]]


def _resolve(ref: str) -> HookFunction:
    module_name, _, attr = ref.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref} is not callable")
    return obj  # type: ignore[return-value]


def load_hooks(cfg: HooksConfig, source: str) -> HookTable:
    """Import every configured callable (blocking: imports read files).
    Raises ConfigError naming each key whose callable cannot be found."""
    table: HookTable = {}
    problems: list[str] = []
    for event in EVENTS:
        for i, ref in enumerate(getattr(cfg, event)):
            try:
                table.setdefault(event, []).append((ref, _resolve(ref)))
            except Exception as exc:  # ImportError, AttributeError, errors in the module
                problems.append(
                    f"{source}: hooks.{event}[{i}]: cannot load {ref!r}: "
                    f"{type(exc).__name__}: {exc}"
                )
    if problems:
        raise ConfigError(problems)
    return table


class Hooks:
    """The server's hooks; ``fire`` returns at once."""

    def __init__(
        self, table: HookTable, on_failure: Callable[[str], None] | None = None, workers: int = 4
    ) -> None:
        self.table = table
        self.on_failure = on_failure
        # Threads start at the first submit: no hooks, no threads.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="vfsftp-hook")
        self._closed = False

    def fire(self, event: Event) -> None:
        if self._closed:
            return
        for ref, fn in self.table.get(event.name, ()):
            try:
                self._executor.submit(self._run, ref, fn, event)
            except RuntimeError:  # shut down meanwhile: the server is closing
                log.warning("hook %s for %s not run: server closing", ref, event.name)

    def _run(self, ref: str, fn: HookFunction, event: Event) -> None:
        try:
            fn(event)
        except Exception:
            log.exception("hook %s for %s %s failed", ref, event.name, event.path)
            if self.on_failure is not None:
                self.on_failure(event.name)

    def close(self) -> None:
        """Run the hooks already queued, then stop the threads (blocking)."""
        self._closed = True
        self._executor.shutdown(wait=True)
