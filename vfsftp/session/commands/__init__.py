"""The command set, one module per concern: importing this package
registers every handler in ``REGISTRY`` (vfsftp.session.commands.registry).

login (USER PASS ACCT REIN QUIT), navigation (PWD CWD CDUP), parameters
(TYPE MODE STRU ALLO REST), data_connections (PASV EPSV PORT EPRT),
listings (LIST NLST MLSD MLST), transfers (RETR STOR APPE STOU ABOR), files
(DELE RMD MKD RNFR RNTO SIZE MDTM MFMT), hashes (HASH RANG XCRC XMD5 XSHA1
XSHA256 XSHA512), info (SYST NOOP FEAT OPTS HELP STAT), site (SITE), ftps
(AUTH PBSZ PROT CCC).
"""

from . import (  # noqa: F401  (imported for their @command registrations)
    data_connections,
    files,
    ftps,
    hashes,
    info,
    listings,
    login,
    navigation,
    parameters,
    site,
    transfers,
)
from .registry import (
    ENDS_RANGE,
    IMMEDIATE_DURING_TRANSFER,
    REGISTRY,
    UPLOADS,
    Arg,
    CommandSpec,
    Invocation,
    _not_implemented,
    preflight,
)

__all__ = [
    "ENDS_RANGE",
    "IMMEDIATE_DURING_TRANSFER",
    "REGISTRY",
    "UPLOADS",
    "Arg",
    "CommandSpec",
    "Invocation",
    "preflight",
]


REGISTRY.setdefault(
    "SMNT", CommandSpec("SMNT", _not_implemented, "SMNT: not supported", Arg.OPTIONAL)
)
