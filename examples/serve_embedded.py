"""vfsftp inside a program of your own: serve a mounts.yaml until Ctrl-C.

    python serve_embedded.py [mounts.yaml]

Logs go to stderr (listening address, connections, logins, transfers).
Ctrl-C or SIGTERM stops the server the way ``vfsftp serve`` does: no new
connections, running transfers get ``server.shutdown_timeout`` seconds,
exit status 0. SIGHUP re-reads the file.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from vfsftp import ConfigError, FTPServer, load_config, run_service


def main(path: str = "mounts.yaml") -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        # The checks of `vfsftp check-config`: a bad file stops here, each
        # problem on a line naming the file, the key and the fix.
        server = FTPServer(load_config(path))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    # run_service handles SIGINT (Ctrl-C), SIGTERM and SIGHUP itself, so
    # Ctrl-C is a graceful stop rather than a KeyboardInterrupt.
    asyncio.run(run_service(server, lambda: load_config(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
