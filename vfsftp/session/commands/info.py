"""SYST, NOOP, FEAT, OPTS, HELP, STAT: the server and the session described (RFC 959, RFC 2389)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ...protocol.errors import FTPError
from ...protocol.hashes import XCOMMANDS, algorithm_named, feat_hash_line
from ...protocol.listings import (
    MLST_FACTS,
    ListEntry,
    feat_mlst_line,
    parse_opts_mlst,
)
from .listings import ls_lines
from .registry import (
    REGISTRY,
    Arg,
    Invocation,
    _binary,
    _fs,
    command,
    strip_ls_options,
)

if TYPE_CHECKING:
    from ...config.schema import HashConfig
    from ..state import Channel, SessionState

#: FEAT lines of the checksum commands, left out when they are off
_HASH_FEATS = frozenset({"RANG STREAM", *XCOMMANDS})


@command("SYST", "SYST: system type", needs_login=False)
async def cmd_syst(s: Channel, inv: Invocation) -> None:
    # What every client expects so that it parses LIST as ls -l.
    s.reply(215, "UNIX Type: L8")


@command("NOOP", "NOOP: do nothing", needs_login=False)
async def cmd_noop(s: Channel, inv: Invocation) -> None:
    s.reply(200, "NOOP ok")


def feat_lines(
    state: SessionState, tls: bool = False, hashes: HashConfig | None = None
) -> list[str]:
    lines = {spec.feat for spec in REGISTRY.values() if spec.feat}
    if hashes is not None and hashes.enabled:
        # draft-bryan-ftpext-hash §3.1: every algorithm, the session's marked
        lines.add(feat_hash_line(state.hash_algorithm or hashes.algorithm))
    else:
        lines -= _HASH_FEATS
    lines.add(feat_mlst_line(state.mlst_facts))
    lines.add("UTF8")
    lines.add("TVFS")
    if tls:
        lines.update({"AUTH TLS", "AUTH SSL", "PBSZ", "PROT"})
    return sorted(lines)


@command("FEAT", "FEAT: list extensions (RFC 2389)", needs_login=False)
async def cmd_feat(s: Channel, inv: Invocation) -> None:
    # §3.2: feature lines start with a single space.
    s.reply(
        211,
        (
            "Features:",
            *(
                " " + line
                for line in feat_lines(s.state, s.tls_context is not None, s.config.server.hash)
            ),
            "End",
        ),
    )


@command(
    "OPTS", "OPTS <command> [options]: set options (RFC 2389)", Arg.REQUIRED, needs_login=False
)
async def cmd_opts(s: Channel, inv: Invocation) -> None:
    verb, _, rest = inv.arg.strip().partition(" ")
    verb = verb.upper()
    if verb == "UTF8":
        if rest.strip().upper() in ("ON", ""):
            s.reply(200, "UTF8 mode is always on")
            return
        raise FTPError(504, "UTF8 cannot be turned off (RFC 2640)")
    if verb == "MLST":
        s.state.mlst_facts = frozenset(parse_opts_mlst(rest))
        s.reply(200, "MLST OPTS " + "".join(f + ";" for f in MLST_FACTS if f in s.state.mlst_facts))
        return
    if verb == "HASH" and s.config.server.hash.enabled:
        # draft-bryan-ftpext-hash §3.2: no argument asks, one chooses
        name = rest.strip()
        if name:
            algorithm = algorithm_named(name)
            if algorithm is None:
                raise FTPError(501, "Unknown algorithm, current selection not changed")
            s.state.hash_algorithm = algorithm
        s.reply(200, s.state.hash_algorithm or s.config.server.hash.algorithm)
        return
    raise FTPError(501, f"OPTS {verb} not understood")


def _help_lines() -> list[str]:
    verbs = sorted(REGISTRY)
    rows = [" ".join(f"{v:<5}" for v in verbs[i : i + 8]).rstrip() for i in range(0, len(verbs), 8)]
    return [" " + r for r in rows]


@command("HELP", "HELP [command]: help on commands", Arg.OPTIONAL, needs_login=False)
async def cmd_help(s: Channel, inv: Invocation) -> None:
    topic = inv.arg.strip().upper()
    if topic:
        spec = REGISTRY.get(topic)
        if spec is None:
            raise FTPError(501, f"Unknown command {topic}")
        s.reply(214, f"Syntax: {spec.help}")
        return
    s.reply(214, ("The following commands are recognized:", *_help_lines(), "Help OK"))


@command(
    "STAT",
    "STAT [path]: session status, or a listing over the control connection",
    Arg.OPTIONAL,
    needs_login=False,
    ls_options=True,
)
async def cmd_stat(s: Channel, inv: Invocation) -> None:
    text = strip_ls_options(inv.arg)
    if text.strip():
        if not s.state.logged_in:
            raise FTPError(530, "Please log in with USER and PASS first")
        fs_ = _fs(s)
        path = fs_.resolve(text)
        fs_.require(path, "l")
        listing = await fs_.listing_or_file(path, want_unique=False)
        # RFC 959 §4.1.3: like LIST, but over the control connection (213).
        # Streamed, as a LIST is, rather than capped: a client may list a
        # folder of any size this way (some without a data connection
        # through their firewall), and the control transport's flow
        # control bounds what is held (see Channel.reply_streamed).
        head: list[ListEntry] | None = listing.head

        async def more() -> list[str] | None:
            nonlocal head
            batch, head = head, None
            if batch is None:
                batch = await fs_.next_batch(listing, path)
            return None if batch is None else ls_lines(batch)

        try:
            await s.reply_streamed(213, f"Status of {path}:", more, "End of status")
        finally:
            await fs_.close_listing(listing)
        return
    lines = ["vfsftp status", f"Connected from {s.peer}"]
    if s.state.logged_in:
        lines.append(f"Logged in as {s.username}")
    else:
        lines.append("Not logged in")
    lines.append(f"TYPE: {'BINARY' if _binary(s) else 'ASCII'}, STRUcture: File, MODE: Stream")
    t = s.transfer
    if t is not None and t.describe is not None:
        lines.append(t.describe())  # (a HASH reading its file)
    elif t is not None and t.state is not None:
        elapsed = time.monotonic() - t.state.started
        lines.append(
            f"Transfer in progress: {t.verb} {t.path}, {t.state.bytes} bytes in {elapsed:.1f}s"
        )
    elif t is not None:
        # The command was accepted; its data connection is being opened.
        lines.append(f"Transfer in progress: {t.verb} {t.path}, opening the data connection")
    elif s.state.passive is not None:
        lines.append(f"Passive data port {s.state.passive.port} waiting")
    else:
        lines.append("No data connection")
    lines.append("End of status")
    s.reply(211, tuple(lines))
