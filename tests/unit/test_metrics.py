"""GET /metrics (webapp.metrics): the Prometheus text format, each metric, values that move,
the optional token; and the shipped Grafana dashboard uses only metrics /metrics exposes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from overwatch.store.db import overwatch_root, transact
from overwatch.store.models import Alarm
from receivers.heartbeat import Heartbeat
from tests.unit.test_web_support import (
    T0,
    add_user,
    login,
    make_app,
    process,
    tiny_snapshot,
    write_snapshot,
)

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "config" / "grafana-dashboard.json"

#: The families the issue names (a counter family is named without its _total).
NAMED = {
    "overwatch_receiver_received",
    "overwatch_receiver_stored",
    "overwatch_receiver_stored_bytes",
    "overwatch_receiver_quarantined",
    "overwatch_receiver_pending_bytes",
    "overwatch_last_snapshot_age_seconds",
    "overwatch_processing_lag_seconds",
    "overwatch_processing_pass_duration_seconds",
    "overwatch_processing_snapshots_processed",
    "overwatch_processing_bad_snapshots",
    "overwatch_processing_failing_chains",
    "overwatch_alarms_open",
    "overwatch_http_requests",
    "overwatch_http_request_duration_seconds",
    "overwatch_database_up",
}


def scrape(client, **kwargs) -> dict:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(response.data.decode())}


def value(families: dict, sample: str, **labels: str) -> float | None:
    """The value of one sample (by its full name and labels), None if absent."""
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_bucket")
    for found in families[family].samples:
        if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items()):
            return found.value
    return None


@pytest.fixture
def app_db(tmp_path: Path):
    app, db = make_app(tmp_path)
    return app, db, Path(app.extensions["overwatch"].data_dir)


def test_metrics_need_no_login_and_name_every_metric(app_db) -> None:
    app, _db, _data = app_db
    families = scrape(app.test_client())
    assert NAMED <= set(families)
    assert families["overwatch_http_request_duration_seconds"].type == "histogram"
    assert families["overwatch_receiver_stored"].type == "counter"
    assert value(families, "overwatch_database_up") == 1.0
    for quality in ("Good", "Medium", "Bad", "Null"):
        assert value(families, "overwatch_alarms_open", quality=quality) == 0.0


def test_values_move_as_data_arrives(app_db) -> None:
    app, db, data = app_db
    client = app.test_client()
    before = scrape(client)
    assert value(before, "overwatch_receiver_stored_total", subsystem="EMC") is None
    assert value(before, "overwatch_processing_snapshots_processed_total") == 0.0

    # A receiver's heartbeat (the receivers' own writer).
    beat = Heartbeat(data, "EMC")
    beat.count("received", 3)
    beat.count("stored", 2)
    beat.count("stored_bytes", 5000)
    beat.count("quarantined", 1)
    beat.pending["bytes"] = 4096
    beat.update(last_snapshot=T0)
    assert beat.maybe_write(force=True)
    # A snapshot processed by the real pipeline, and an alarm open in the database.
    write_snapshot(data, 1, "EMC", T0, tiny_snapshot(1))
    process(data, db)

    def open_alarm(root: dict) -> None:
        overwatch_root(root).alarms[1] = Alarm(
            1, T0, 1, "EMC", "hot", "EMCal/cell hits", "", "EMCal", "Bad", "too hot"
        )

    transact(db, open_alarm)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/api/runs").status_code == 401
    assert client.get("/no/such/page").status_code in (302, 404)

    after = scrape(client)
    emc = {"subsystem": "EMC"}
    assert value(after, "overwatch_receiver_received_total", **emc) == 3.0
    assert value(after, "overwatch_receiver_stored_total", **emc) == 2.0
    assert value(after, "overwatch_receiver_stored_bytes_total", **emc) == 5000.0
    assert value(after, "overwatch_receiver_quarantined_total", **emc) == 1.0
    assert value(after, "overwatch_receiver_pending_bytes", **emc) == 4096.0
    assert value(after, "overwatch_last_snapshot_age_seconds", **emc) >= 0.0
    assert value(after, "overwatch_receiver_heartbeat_age_seconds", **emc) < 60.0
    assert value(after, "overwatch_processing_snapshots_processed_total") == 1.0
    assert value(after, "overwatch_processing_pass_duration_seconds") >= 0.0
    assert value(after, "overwatch_processing_lag_seconds") >= 0.0
    assert value(after, "overwatch_alarms_open", quality="Bad") == 1.0
    assert value(after, "overwatch_alarms_open", quality="Medium") == 0.0
    healthz = {"endpoint": "api.healthz", "status": "2xx"}
    assert value(after, "overwatch_http_requests_total", **healthz) == 3.0
    assert value(after, "overwatch_http_request_duration_seconds_count", **healthz) == 3.0
    assert value(after, "overwatch_http_requests_total", endpoint="api.runs", status="4xx") == 1.0
    # The first scrape counts itself once it has answered.
    assert value(after, "overwatch_http_requests_total", endpoint="metrics.scrape") == 1.0

    def close_alarm(root: dict) -> None:
        overwatch_root(root).alarms[1].cleared_at = T0 + 60

    transact(db, close_alarm)
    assert value(scrape(client), "overwatch_alarms_open", quality="Bad") == 0.0


def test_a_signed_in_session_is_answered_the_same(app_db) -> None:
    app, db, _data = app_db
    add_user(db, "alice")
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    assert "overwatch_alarms_open" in scrape(client)


def test_the_token_is_required_when_set(tmp_path: Path) -> None:
    app, _db = make_app(tmp_path, metrics_token="s3cret-metrics")
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "metrics need the token of web.metrics_token"}
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics?token=wrong").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    assert "overwatch_alarms_open" in scrape(client, query_string={"token": "s3cret-metrics"})
    header = {"Authorization": "Bearer s3cret-metrics"}
    assert "overwatch_alarms_open" in scrape(client, headers=header)


def test_the_database_being_away_is_a_metric_not_an_error(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    db.close()  # every read now fails: the status page's collect() says unreachable
    families = scrape(app.test_client())
    assert value(families, "overwatch_database_up") == 0.0
    assert value(families, "overwatch_processing_lag_seconds") is None
    assert "overwatch_alarms_open" not in families


def dashboard_metric_names(document: dict) -> set[str]:
    """Every overwatch_* name in the dashboard's queries."""
    import re

    names: set[str] = set()
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            names |= set(re.findall(r"\boverwatch_[a-z_]+", target["expr"]))
    return names


def test_the_grafana_dashboard_uses_only_exposed_metrics(app_db) -> None:
    app, db, data = app_db
    Heartbeat(data, "EMC").maybe_write(force=True)
    client = app.test_client()
    client.get("/healthz")
    families = scrape(client)
    exposed = {s.name for f in families.values() for s in f.samples} | set(families)
    exposed |= {f"{name}_total" for name, f in families.items() if f.type == "counter"}
    exposed |= {f"{name}_{suffix}" for name, f in families.items() if f.type == "histogram"
                for suffix in ("bucket", "count", "sum")}  # fmt: skip
    document = json.loads(DASHBOARD.read_text())
    used = dashboard_metric_names(document)
    assert len(document["panels"]) >= 6
    assert {"overwatch_receiver_stored_total", "overwatch_alarms_open"} <= used
    assert "overwatch_http_request_duration_seconds_bucket" in used
    assert used <= exposed, used - exposed
