"""Operations: the session and transfer logs (``logs``), Prometheus metrics
(``metrics``) and event hooks (``hooks``). Sessions and the service report
to them; they never reach back: the metrics read the server through the
small ``MetricsSource`` interface they define.
"""
