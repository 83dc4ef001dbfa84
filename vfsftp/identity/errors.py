"""What a user store raises, apart from the store (vfsftp.identity.store):
a server whose configuration has no ``users_store`` catches these on every
login without importing the database code."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database cannot be reached now (down, unreachable, or no answer in
    time): a login gets ``421``, and the next call tries again."""


class StoreError(Exception):
    """The store cannot be used as it is (a schema newer than this vfsftp,
    a driver that is not installed, a file that cannot be made): the
    administrator's to fix."""
