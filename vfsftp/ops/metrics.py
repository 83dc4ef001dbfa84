"""Prometheus metrics (Medusa's ``counter``, grown up), served as text at
``GET /metrics`` on ``metrics.listen``:``metrics.port`` when a port is set.

Each server has a registry of its own (tests run several servers in one
process). Totals kept by ``Counters`` are read at scrape time; what needs
labels (per mount, per reply code, per S3 operation) is counted here as it
happens. The endpoint is a tiny HTTP/1.0 responder on the server's event
loop: rendering the text is a few milliseconds of CPU, and it needs no
thread to start or stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .logs import TransferRecord

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["Metrics"]

log = logging.getLogger("vfsftp.session")

_MAX_REQUEST = 8192


class MetricsSource(Protocol):
    """What the metrics read of the server at scrape time (FTPServer
    implements it; the metrics never import the service)."""

    def totals(self) -> Mapping[str, float]:
        """The running totals of vfsftp.ops.logs.Counters."""

    def sessions_active(self) -> int: ...

    def transfers_active(self) -> int: ...

    def quota_usage(self) -> Iterable[tuple[str, int, int]]:
        """(scope label, bytes, files) of each quota account measured so
        far; never blocks (read on the event loop)."""


#: name, help, label names of the counters kept by ``Metrics``
_COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "transfers": (
        "vfsftp_transfers",
        "Transfers ended, by mount point, direction (in = upload) and outcome",
        ("mount", "direction", "outcome"),
    ),
    "transfer_bytes": (
        "vfsftp_transfer_bytes",
        "Bytes moved by transfers (aborted ones included), by mount point and direction",
        ("mount", "direction"),
    ),
    "faults": (
        "vfsftp_transfer_faults",
        "Transfers that failed or were aborted, by direction and fault",
        ("direction", "fault"),
    ),
    "error_replies": ("vfsftp_error_replies", "4xx and 5xx replies sent, by reply code", ("code",)),
    "s3_requests": ("vfsftp_s3_requests", "S3 API calls made, by operation", ("operation",)),
    "reloads": ("vfsftp_config_reloads", "Configuration reloads, by result", ("result",)),
    "hook_failures": ("vfsftp_hook_failures", "Event hooks that raised, by event", ("event",)),
}


class _Series:
    """One labelled counter: a value and a creation time per label tuple
    (prometheus_client's ``Counter`` reports both, as ``_total`` and
    ``_created``)."""

    __slots__ = ("created", "values")

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], float] = {}
        self.created: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        if labels in values:
            values[labels] += amount
        else:
            self.created[labels] = time.time()
            values[labels] = amount


def _collector(source: MetricsSource, series: Mapping[str, _Series]) -> Any:
    """A prometheus_client collector of the server's ``Counters`` and live
    state, read at scrape time, and of ``series``."""
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

    def counters() -> Iterator[Any]:
        for key, (name, doc, labels) in _COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=labels)
            kept = series[key]
            for values, value in kept.values.items():
                family.add_metric(values, value, created=kept.created[values])
            yield family

    def quotas() -> Iterator[Any]:
        used_bytes = GaugeMetricFamily(
            "vfsftp_quota_used_bytes",
            "Bytes a quota account counts as used (accounts measured so far)",
            labels=["scope"],
        )
        used_files = GaugeMetricFamily(
            "vfsftp_quota_used_files",
            "Files a quota account counts as used (accounts measured so far)",
            labels=["scope"],
        )
        for label, nbytes, nfiles in source.quota_usage():
            used_bytes.add_metric([label], nbytes)
            used_files.add_metric([label], nfiles)
        yield used_bytes
        yield used_files

    class Collector:
        def collect(self) -> Iterator[Any]:
            c = source.totals()
            sessions = CounterMetricFamily(
                "vfsftp_sessions", "Control connections accepted (refused ones included)"
            )
            sessions.add_metric([], c["connections"])
            yield sessions
            refused = CounterMetricFamily(
                "vfsftp_sessions_refused", "Control connections refused by a connection limit"
            )
            refused.add_metric([], c["connections_refused"])
            yield refused
            logins = CounterMetricFamily("vfsftp_logins", "Login attempts", labels=["result"])
            logins.add_metric(["ok"], c["logins"])
            logins.add_metric(["failed"], c["login_failures"])
            yield logins
            active = GaugeMetricFamily("vfsftp_sessions_active", "Open control connections")
            active.add_metric([], source.sessions_active())
            yield active
            moving = GaugeMetricFamily("vfsftp_transfers_active", "Transfers in progress")
            moving.add_metric([], source.transfers_active())
            yield moving
            yield from quotas()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # render() called off the server's loop
                pass
            else:
                tasks = GaugeMetricFamily(
                    "vfsftp_asyncio_tasks",
                    "asyncio tasks alive on the server's event loop (this scrape's own included)",
                )
                tasks.add_metric([], len(asyncio.all_tasks(loop)))
                yield tasks
            yield from counters()

    return Collector()


class Metrics:
    """One server's metrics and its HTTP endpoint.

    Events are counted in plain dictionaries; prometheus_client (~15 ms and
    ~3 MB to import) is loaded at the first scrape or ``registry`` access,
    so a server without ``metrics.port`` never loads it."""

    def __init__(self, source: MetricsSource) -> None:
        self._source = source
        self._series = {key: _Series() for key in _COUNTERS}
        self._transfers = self._series["transfers"]
        self._transfer_bytes = self._series["transfer_bytes"]
        self._registry: CollectorRegistry | None = None
        self._http: asyncio.base_events.Server | None = None
        self._requests: set[asyncio.Task[Any]] = set()
        self.address: tuple[str, int] | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """The prometheus_client registry of these metrics (its own: tests
        run several servers in one process)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry()
            self._registry.register(_collector(self._source, self._series))
        return self._registry

    # ------------------------------------------------------------ counting

    def transfer(self, rec: TransferRecord) -> None:
        direction = "in" if rec.direction == "i" else "out"
        self._transfers.inc((rec.mount, direction, rec.outcome))
        # (a series of 0 bytes too: the mount and direction have been seen)
        self._transfer_bytes.inc((rec.mount, direction), rec.bytes)

    def fault(self, direction: str, kind: str) -> None:
        """A failed transfer's fault; ``direction`` as in TransferRecord."""
        self._series["faults"].inc(("in" if direction == "i" else "out", kind))

    def reply(self, code: int) -> None:
        if code >= 400:
            self._series["error_replies"].inc((str(code),))

    def reloaded(self, ok: bool) -> None:
        """A configuration reload ended (``ok``: applied)."""
        self._series["reloads"].inc(("ok" if ok else "failed",))

    def hook_failed(self, event: str) -> None:
        self._series["hook_failures"].inc((event,))

    def observe_fs(self, filesystem: Any) -> None:
        """Count the S3 requests of a newly opened filesystem (botocore's
        event system, on the client ``vfsftp.storage.s3`` creates)."""
        add = getattr(filesystem, "add_client_hook", None)
        if add is not None:
            add(self._instrument)

    def _instrument(self, client: Any) -> None:
        # before-call fires once per API call (retries are not new calls).
        client.meta.events.register("before-call.s3", self._s3_call)

    def _s3_call(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", None) or "unknown"
        self._series["s3_requests"].inc((name,))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # ------------------------------------------------------------ endpoint

    async def start(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._http = await asyncio.start_server(self._serve, host, port, family=family)
        addr = self._http.sockets[0].getsockname()
        self.address = (str(addr[0]), int(addr[1]))
        log.info("metrics on http://%s:%d/metrics", *self.address)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._requests.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            parts = head[:_MAX_REQUEST].split(b"\r\n", 1)[0].split()
            method = parts[0] if parts else b""
            target = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
            if method not in (b"GET", b"HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif target in (b"/metrics", b"/"):
                from prometheus_client.exposition import CONTENT_TYPE_LATEST

                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.render()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /metrics\n"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (body if method != b"HEAD" else b"")
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.TimeoutError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._requests.discard(task)

    async def close(self) -> None:
        if self._http is None:
            return
        self._http.close()
        for task in list(self._requests):
            task.cancel()
        if self._requests:
            await asyncio.gather(*self._requests, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._http.wait_closed()
        self._http = None
