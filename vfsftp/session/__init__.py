"""One control connection, from the socket's bytes to the storage call:
``channel`` (read, parse, preflight, dispatch, reply), ``commands`` (the
registry, the one ``preflight`` and the handlers), ``data`` (passive and
active data connections and the transfer loops), ``tls`` (FTPS), ``eager``
(commands that never wait are answered without a Task), ``throttle`` (rate
limits in the transfer loop), ``failures`` (why a transfer failed).

The session reaches the service only through ``host.SessionHost``, the small
interface it defines and the service implements.
"""
