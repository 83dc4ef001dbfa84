"""The Linux-only fast paths, and the one switch that turns them all off.

vfsftp runs anywhere Python 3.10+ does, but some of its speed comes from
calls only Linux has:

- ``sendfile(2)`` for binary downloads of local files (vfsftp.session.data);
- ``MSG_MORE`` on a small file's last send, so its data and FIN share a
  segment (vfsftp.session.data);
- ``openat2(2)`` with ``RESOLVE_CACHED`` and ``preadv2(2)`` with
  ``RWF_NOWAIT``: small cached files read on the event loop without a thread
  hop (vfsftp.storage.nowait);
- ``SOCK_NONBLOCK``: a data listener created non-blocking, without the
  ``ioctl`` of ``setblocking(False)``: a system call fewer per PASV on the
  event loop, each of which lets another thread take the GIL
  (vfsftp.session.data);
- socket options a connection inherits from its listening socket
  (TCP_NODELAY, SO_OOBINLINE): set once on the control listener instead of
  twice per connection (vfsftp.service.listener);
- ``SO_REUSEPORT``, with which the kernel spreads connections over the
  processes of ``--workers N`` (vfsftp.service.workers; elsewhere one listening
  socket is shared).

Each has a portable fallback. ``VFSFTP_PORTABLE=1`` in the environment, read
once here at import, turns every fast path off, so that the fallbacks macOS
and Windows take run on Linux too: ``.ci/run`` runs the whole suite once that
way. Code asks the flags below instead of probing the platform itself.
"""

from __future__ import annotations

import os
import socket
import sys

__all__ = [
    "INHERITED_OPTIONS",
    "MSG_MORE",
    "NOWAIT_READS",
    "PORTABLE",
    "REUSEPORT_SPREADS",
    "SENDFILE",
    "SOCK_NONBLOCK",
]

#: True when VFSFTP_PORTABLE asks for the portable paths only.
PORTABLE: bool = os.environ.get("VFSFTP_PORTABLE", "").strip().lower() not in {
    "",
    "0",
    "false",
    "no",
}

_LINUX = sys.platform.startswith("linux") and not PORTABLE

#: os.sendfile for plain binary downloads of files with a descriptor.
SENDFILE: bool = hasattr(os, "sendfile") and not PORTABLE

#: flag for a send whose FIN follows at once (0: none).
MSG_MORE: int = getattr(socket, "MSG_MORE", 0) if _LINUX else 0

#: socket type flag for a socket created non-blocking (0: setblocking after).
SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0) if _LINUX else 0

#: accepted connections inherit their listener's socket options.
INHERITED_OPTIONS: bool = _LINUX

#: openat2(RESOLVE_CACHED) + preadv2(RWF_NOWAIT) reads on the event loop.
NOWAIT_READS: bool = _LINUX and hasattr(os, "preadv") and hasattr(os, "RWF_NOWAIT")

#: SO_REUSEPORT listeners per worker, spread by the kernel.
REUSEPORT_SPREADS: bool = _LINUX and hasattr(socket, "SO_REUSEPORT")
