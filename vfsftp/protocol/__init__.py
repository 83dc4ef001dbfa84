"""The FTP wire format, with no I/O: bytes in, commands out; replies,
addresses and listings in, bytes out; virtual paths and their jail; the
permission letters and their rules.

Everything here is pure, so that every rule of the protocol is table-tested
without a socket (tests/unit/protocol/). Nothing here imports another layer.

- ``lines``: the control connection's line buffer and command parsing;
- ``replies``: reply encoding (RFC 959 §4.2);
- ``arguments``: PORT/PASV/EPRT/EPSV addresses, ALLO, MDTM/MFMT times;
- ``listings``: LIST lines and MLSx facts;
- ``ascii``: TYPE A line-ending conversion;
- ``paths``: a client's path argument made absolute, normalised and jailed;
- ``permissions``: the permission letters and the rules that apply them;
- ``errors``: ``ProtocolError`` and ``FTPError`` (an error answered with a
  reply).
"""
