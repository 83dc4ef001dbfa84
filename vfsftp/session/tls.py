"""FTPS (RFC 4217): the server's TLS context, the data-connection wrapping
done in transfer threads, and a self-signed certificate for quick starts.

Data connections do not require TLS session reuse from the client. Reuse
ties the data connection to the control connection's TLS session, which
stops a third party from connecting to a passive port first; vfsftp instead
accepts a passive data connection only from the control connection's own
address (RFC 2577 §3). Requiring reuse would lock out Python's ftplib and
other clients that never reuse sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.errors import ConfigError

if TYPE_CHECKING:
    from ..config.schema import TLSConfig

__all__ = [
    "handshake_data_socket",
    "make_server_context",
    "shrink_control_buffer",
    "unwrap_quietly",
    "wrap_data_socket",
    "write_self_signed",
]

#: bytes read from the socket at a time by a TLS control connection
CONTROL_READ_SIZE = 8 * 1024

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def make_server_context(cfg: TLSConfig, source: str = "mounts.yaml") -> ssl.SSLContext:
    """A server context from the configured PEM files; a missing or bad file
    is a ConfigError naming the key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[cfg.min_version]
    ctx.options |= ssl.OP_NO_COMPRESSION
    try:
        ctx.load_cert_chain(cfg.certificate, cfg.key)
    except FileNotFoundError:
        # (ssl's error names no file: look which one is missing)
        files = [("certificate", cfg.certificate), ("key", cfg.key)]
        key, path = next(((k, p) for k, p in files if p and not os.path.exists(p)), files[0])
        raise ConfigError(
            [
                f"{source}: server.tls.{key}: file not found: {path}; fix the path, "
                "or make a certificate for testing with 'vfsftp gen-cert'"
            ]
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            [f"{source}: server.tls.certificate: cannot load the certificate and key: {exc}"]
        ) from None
    return ctx


def wrap_data_socket(ctx: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket:
    """An accepted data connection as a server-side TLS socket, handshake
    not done yet (``handshake_data_socket`` does it, in the transfer
    thread). Call it on the event loop's thread.

    No TLS 1.3 session tickets on data connections. A server sends its
    NewSessionTicket messages right after the handshake; a client that only
    uploads never reads them, and data left unread makes its close() a TCP
    reset (RFC 1122 §4.2.2.13) that throws away the upload bytes still in
    its send buffer: one curl or lftp upload in three failed with 426.
    Tickets stay on the control connection, whose replies the client reads,
    and a data connection still resumes the control connection's session
    with them: the ticket keys belong to the context, which is the same.

    OpenSSL copies the ticket count into each connection when it is made
    (SSL_new), so it is 0 for this one only. Every connection of the
    context is made on the event loop's thread (asyncio's start_tls makes
    the control connections' there too), so none is made while it is 0.

    suppress_ragged_eofs=False: an upload ends with the client's
    close_notify; a TCP close without it (a forged FIN, a client that
    died) raises SSLEOFError, so the transfer fails (426) and the partial
    file is discarded instead of being kept as complete (vsftpd's
    strict_ssl_read_eof)."""
    tickets = ctx.num_tickets
    ctx.num_tickets = 0
    try:
        return ctx.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False, suppress_ragged_eofs=False
        )
    finally:
        ctx.num_tickets = tickets


def shrink_control_buffer(transport: asyncio.BaseTransport, size: int = CONTROL_READ_SIZE) -> bool:
    """Give a TLS control connection a read buffer of ``size`` bytes instead
    of asyncio's 256 KiB; True when done. Call it once ``loop.start_tls``
    has returned (between two reads: nothing holds the old buffer).

    asyncio's SSLProtocol (Python 3.11+) allocates and zero-fills a buffer
    of ``max_size`` (256 KiB, sized for bulk data) for every connection, and
    keeps it for the connection's life: an idle logged-in FTPS session cost
    about 260 KiB of RSS, 26 KiB without it. A control connection carries command
    lines (up to 8 KiB): a smaller buffer only means more reads for a long
    burst, and ``max_size`` also bounds each plaintext read, which allocates
    that much before shrinking. Data connections do not use asyncio's TLS
    (``wrap_data_socket``). Another loop's transport (uvloop, Python 3.10's
    older SSLProtocol, which has no such buffer) is left as it is."""
    proto: Any = getattr(transport, "_ssl_protocol", None)
    buffer = getattr(proto, "_ssl_buffer", None)
    if not isinstance(buffer, bytearray) or len(buffer) <= size:
        return False
    proto.max_size = size  # (get_buffer would grow it back to the class's)
    proto._ssl_buffer = bytearray(size)
    proto._ssl_buffer_view = memoryview(proto._ssl_buffer)
    return True


def handshake_data_socket(sock: ssl.SSLSocket, timeout: float) -> None:
    """Blocking TLS handshake of a data connection (in a transfer thread).
    The timeout bounds a client that connects and says nothing."""
    sock.settimeout(timeout)
    sock.do_handshake()


def unwrap_quietly(sock: socket.socket) -> None:
    """Send TLS close_notify and wait for the client's (ftplib and curl send
    theirs), so the client can tell a complete file from a cut one."""
    if isinstance(sock, ssl.SSLSocket):
        with contextlib.suppress(OSError, ValueError):
            sock.unwrap()


def write_self_signed(cert_path: Path, key_path: Path, hostnames: list[str]) -> None:
    """A self-signed certificate for a quick start. NOT for production:
    clients cannot verify it (use a certificate from your CA or Let's
    Encrypt)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600: write-then-chmod would leave the key readable (umask
    # 022) for a moment. chmod still, for a file that existed before.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
