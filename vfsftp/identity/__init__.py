"""Who a client is: password hashing, the ``Account`` a login yields and the
authorizers that check logins (users from mounts.yaml; your own). A login
hands back the session's own tree, as Medusa's authorizer did.

Imports storage, config and protocol; never a session or the service.
"""
