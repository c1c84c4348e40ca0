"""``GET /metrics``: the data path's health for the operators' monitoring (Prometheus).

The Prometheus text format, made by ``prometheus-client``. Anyone may scrape it
unless ``web.metrics_token`` is set; then ``Authorization: Bearer <token>`` or
``?token=<token>`` must match it, or the answer is 401. The endpoint is public for
:mod:`webapp.auth` (no user, no session lookup): the token is the metrics' own.

Two kinds of metrics, decided by where their truth lives:

- **State**, computed at each scrape from what the status page reads
  (:func:`webapp.status.collect`, reused, never re-derived here): the receivers'
  heartbeat counters and pending bytes, the age of each subsystem's last snapshot
  (from its receiver's heartbeat), processing's lag, last pass duration and
  snapshots processed (the ZODB ``ProcessingStatus`` every worker writes its passes
  to: ``worker="processing"``) and, per worker record when the status page lists
  workers, its snapshots processed, last pass and heartbeat ages and whether it is
  alive (lag and pass duration are not recorded per worker), whether the database
  answers, free disk space, and open alarms by quality (``processing.list_alarms``,
  the alarms page's query). Every web worker answers the same, so these need no
  sharing between processes. Receiver counters restart at zero with their
  receiver: they are counters, and Prometheus' ``rate()`` treats the drop as a reset.
- **HTTP requests** (``overwatch_http_requests_total{endpoint,status}`` and the
  histogram ``overwatch_http_request_duration_seconds{endpoint,status}``; status is
  the class, ``2xx``..``5xx``; the endpoint is Flask's name, ``unmatched`` for a URL
  no route has), counted by a before/after_request pair. gunicorn spreads requests
  over several worker processes, so per-process counts would depend on which worker
  a scrape reaches: with ``PROMETHEUS_MULTIPROC_DIR`` set (``overwatch web`` sets
  it, see :mod:`webapp.server`) they use prometheus-client's multiprocess mode and
  every worker's counts are summed at each scrape. Without it (``--dev``, tests)
  they count this process only. The time is until the response is built: for the
  live event stream (``events.stream``) that is its opening, not its life.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from overwatch.notices import COUNTERS
from overwatch.quality import Quality
from overwatch.store.layout import DataDir
from processing import list_alarms
from webapp import status
from webapp.context import overwatch, resources
from webapp.http import json_error
from webapp.security import same_token

bp = Blueprint("metrics", __name__)

EXTENSION = "overwatch.metrics"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Request latency buckets (seconds): JSON answers take milliseconds, slices up to seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The worker label of processing's shared status record (see _processing).
DEFAULT_WORKER = "processing"
_STARTED = "metrics_started"


class _Requests:
    """The request counter and latency histogram of one app (shared files in multiprocess)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ("endpoint", "status")
        self.count = Counter("overwatch_http_requests", "HTTP requests answered, by route and status class",
                             labels, registry=registry)  # fmt: skip
        self.seconds = Histogram(
            "overwatch_http_request_duration_seconds",
            "Seconds from a request's arrival to its response, by route and status class",
            labels,
            registry=registry,
            buckets=BUCKETS,
        )


class _State:
    """A collector computing the state metrics at each scrape (inside the request)."""

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        report = status.collect(now)
        # The pending bytes are in the heartbeat files only (the status rows leave them out).
        beats = status._heartbeat_files(DataDir(resources().data_dir))
        yield from _receivers(report["receivers"], beats)
        yield from _processing(report)
        database = GaugeMetricFamily("overwatch_database_up", "1 when the database answers")
        database.add_metric([], 1.0 if report["database"]["reachable"] else 0.0)
        yield database
        disk = GaugeMetricFamily("overwatch_disk_free_bytes", "Free bytes on the data directory")
        if "free_bytes" in report["disk"]:
            disk.add_metric([], float(report["disk"]["free_bytes"]))
        yield disk
        if report["database"]["reachable"]:
            yield _open_alarms()


def _receivers(rows: list[dict[str, Any]], beats: dict[str, dict]) -> Iterator[Metric]:
    families = {
        name: CounterMetricFamily(f"overwatch_receiver_{name}", f"Receiver counter {name!r} "
                                  "since the receiver started (heartbeat)", labels=["subsystem"])
        for name in COUNTERS
    }  # fmt: skip
    pending_bytes = GaugeMetricFamily(
        "overwatch_receiver_pending_bytes",
        "Bytes of snapshots a receiver holds in memory, not yet written (disk full)",
        labels=["subsystem"],
    )
    heartbeat_age = GaugeMetricFamily(
        "overwatch_receiver_heartbeat_age_seconds", "Seconds since the receiver's last heartbeat",
        labels=["subsystem"],
    )  # fmt: skip
    up = GaugeMetricFamily(
        "overwatch_receiver_up",
        "1 while the status page shows the receiver alive, 0 when late, dead or unknown",
        labels=["subsystem"],
    )
    snapshot_age = GaugeMetricFamily(
        "overwatch_last_snapshot_age_seconds",
        "Seconds since the subsystem's receiver stored its last snapshot",
        labels=["subsystem"],
    )
    for row in rows:
        labels = [row["subsystem"]]
        counters = row["counters"]
        for name, family in families.items():
            value = counters.get(name, 0)
            if isinstance(value, int | float) and not isinstance(value, bool):
                family.add_metric(labels, float(value))
        pending = _pending_bytes(beats.get(row["subsystem"], {}))
        if pending is not None:
            pending_bytes.add_metric(labels, pending)
        if row["heartbeat_age"] is not None:
            heartbeat_age.add_metric(labels, row["heartbeat_age"])
        if row["snapshot_age"] is not None:
            snapshot_age.add_metric(labels, row["snapshot_age"])
        up.add_metric(labels, 1.0 if row["status"] == status.ALIVE else 0.0)
    yield from families.values()
    yield from (pending_bytes, heartbeat_age, up, snapshot_age)


def _pending_bytes(beat: dict[str, Any]) -> float | None:
    pending = beat.get("pending")
    value = pending.get("bytes") if isinstance(pending, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _number(entry: dict[str, Any], key: str) -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _gauge(name: str, text: str, labels: tuple[str, ...] = ("worker",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=list(labels))


def _processing(report: dict[str, Any]) -> Iterator[Metric]:
    """Processing's shared record (``worker="processing"``: every worker writes its passes
    there) and one series per worker record when workers have claimed subsystems."""
    processing = report["processing"]
    lag = _gauge(
        "overwatch_processing_lag_seconds",
        "How long the newest received snapshot has waited for a processing pass",
    )
    duration = _gauge(
        "overwatch_processing_pass_duration_seconds",
        "Seconds the last recorded processing pass took",
    )
    pass_age = _gauge(
        "overwatch_processing_last_pass_age_seconds",
        "Seconds since the last recorded processing pass finished",
    )
    processed = CounterMetricFamily(
        "overwatch_processing_snapshots_processed",
        "Snapshots processed: in all (worker=processing, restarts at 0 after overwatch db "
        "rebuild) and by each worker since it started",
        labels=["worker"],
    )
    up = _gauge(
        "overwatch_processing_up", "1 while the status page shows processing (or the worker) alive"
    )
    heartbeat = _gauge(
        "overwatch_processing_worker_heartbeat_age_seconds",
        "Seconds since the worker's last heartbeat in the database",
    )
    failing = _gauge(
        "overwatch_processing_failing_chains",
        "Chains (run, subsystem) processing isolated because they keep failing",
        (),
    )
    bad = _gauge(
        "overwatch_processing_bad_snapshots",
        f"Snapshot files processing could not read (of the newest {status.BAD_SNAPSHOT_RUNS} "
        f"runs, at most {status.BAD_SNAPSHOT_ROWS}: the status page's list)", (),
    )  # fmt: skip
    if report["database"]["reachable"]:
        labels = [DEFAULT_WORKER]
        lag.add_metric(labels, float(processing["lag_seconds"]))
        started = _number(processing, "last_pass_started")
        finished = _number(processing, "last_pass_finished")
        if started and finished and finished >= started:
            duration.add_metric(labels, finished - started)
            pass_age.add_metric(labels, max(0.0, report["now"] - finished))
        processed.add_metric(labels, float(processing.get("snapshots_processed") or 0))
        up.add_metric(labels, 1.0 if processing["status"] == status.ALIVE else 0.0)
        failing.add_metric([], float(len(processing.get("failing_chains", []))))
        bad.add_metric([], float(len(processing.get("bad_snapshots", []))))
    for worker in report.get("workers") or []:  # the worker records (processing.workers)
        labels = [str(worker.get("name"))]
        count = _number(worker, "processed")
        if count is not None:
            processed.add_metric(labels, count)
        for family, key in ((pass_age, "pass_age"), (heartbeat, "heartbeat_age")):
            value = _number(worker, key)
            if value is not None:
                family.add_metric(labels, value)
        up.add_metric(labels, 1.0 if worker.get("status") == status.ALIVE else 0.0)
    yield from (lag, duration, pass_age, processed, up, heartbeat, failing, bad)


def _open_alarms() -> Metric:
    family = GaugeMetricFamily(
        "overwatch_alarms_open", "Alarms not yet closed, by quality", labels=["quality"]
    )
    counts = dict.fromkeys((q.value for q in Quality), 0)
    for alarm in list_alarms(overwatch(), active=True):
        counts[alarm["quality"]] = counts.get(alarm["quality"], 0) + 1
    for quality, count in counts.items():
        family.add_metric([quality], float(count))
    return family


def multiprocess_dir() -> str | None:
    """The folder shared by the web workers' request counters, when in multiprocess mode.

    prometheus-client chooses its mode when it is first imported: a folder named
    after that is ignored (counted per process), which :func:`init_app` logs.
    """
    folder = os.environ.get(MULTIPROCESS_ENV)
    if folder and values.ValueClass is values.MutexValue:
        return None
    return folder or None


def init_app(app: Flask) -> None:
    """Count every request and register ``/metrics``; call before ``auth.init_app``
    so the timer starts before the login check (its 401s and redirects count too)."""
    shared = multiprocess_dir()
    if os.environ.get(MULTIPROCESS_ENV) and shared is None:
        app.logger.error(
            "%s is set but prometheus_client was imported before it: request metrics are "
            "counted per web process", MULTIPROCESS_ENV,
        )  # fmt: skip
    registry = CollectorRegistry()  # no auto_describe: the state is read in a request only
    if shared is not None:
        MultiProcessCollector(registry, path=shared)
        requests = _Requests(None)  # written to the shared folder, read by the collector
    else:
        requests = _Requests(registry)
    registry.register(_State())
    app.extensions[EXTENSION] = (registry, requests)
    app.before_request(_start)
    app.after_request(_count)
    app.register_blueprint(bp)


def _start() -> None:
    g.setdefault(_STARTED, time.perf_counter())


def _count(response: Response) -> Response:
    started = g.get(_STARTED)
    if started is not None:
        _registry, requests = current_app.extensions[EXTENSION]
        labels = (request.endpoint or "unmatched", f"{response.status_code // 100}xx")
        requests.count.labels(*labels).inc()
        requests.seconds.labels(*labels).observe(time.perf_counter() - started)
    return response


def _given_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.args.get("token") or None


@bp.route("/metrics")
def scrape() -> Response:
    expected = resources().settings.web.metrics_token
    if expected and not same_token(expected, _given_token()):
        response = json_error("metrics need the token of web.metrics_token", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="overwatch metrics"'
        return response
    registry, _requests = current_app.extensions[EXTENSION]
    # The format the scraper asks for (Prometheus' text format, or OpenMetrics).
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encoder(registry), mimetype=None)
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-store"
    return response
