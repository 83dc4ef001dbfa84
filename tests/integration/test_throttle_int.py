"""Traffic control through the server: a user's transfers together stay
under the user's rate. Only lower bounds on time are asserted (a limit can
make things slower, never faster); nothing here measures speed."""

from __future__ import annotations

import ftplib
import io
import threading
import time

from conftest import PASSWORD, USER, ServerFactory, login_at

RATE = 1024 * 1024  # 1 MiB/s; the default burst is a tenth of that


def test_download_and_upload_rates_are_capped_per_user(make_server: ServerFactory) -> None:
    srv = make_server(
        {
            "mounts": {"/": "mem://"},
            "users": {
                USER: {
                    "password": f"plaintext:{PASSWORD}",
                    "max_download_rate": "1MiB",
                    "max_upload_rate": "1MiB",
                },
                "free": {"password": "plaintext:free"},
            },
        }
    )
    size = 768 * 1024
    payload = bytes(range(256)) * (size // 256)
    f = login_at(srv.host, srv.port, timeout=20)
    started = time.monotonic()
    f.storbinary("STOR a.bin", io.BytesIO(payload))
    upload = time.monotonic() - started
    assert upload >= (size - RATE / 10) / RATE * 0.95

    # Two sessions of the same user share one bucket: together they take at
    # least as long as the total at the user's rate.
    g = login_at(srv.host, srv.port, timeout=20)
    out: dict[str, bytes] = {}

    def fetch(client: ftplib.FTP, key: str) -> None:
        buf = io.BytesIO()
        client.retrbinary("RETR a.bin", buf.write)
        out[key] = buf.getvalue()

    started = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(c, k)) for c, k in ((f, "f"), (g, "g"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    both = time.monotonic() - started
    assert out == {"f": payload, "g": payload}
    assert both >= (2 * size - RATE / 10) / RATE * 0.95
    f.quit()
    g.quit()

    # Another user is not limited by alice's bucket (no lower bound to check;
    # the transfer simply completes).
    h = ftplib.FTP(timeout=20)
    h.connect(srv.host, srv.port)
    h.login("free", "free")
    buf = io.BytesIO()
    h.retrbinary("RETR a.bin", buf.write)
    assert buf.getvalue() == payload
    h.quit()
