"""The server as a service: listeners and connection limits (``server``),
bans (``limits``), counts shared by ``--workers`` processes (``counts``,
``workers``), signals, reload and shutdown (``lifecycle``), and the checks a
configuration must pass before it is served (``preflight``).

The top of the stack: it builds sessions and implements their
``SessionHost``; nothing below imports it.
"""
